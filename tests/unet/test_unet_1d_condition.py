import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from stable_audio_kit.unet import UNet1DConditionModel, UNet1DConditionOutput

# Three levels (so frames are padded to a multiple of 4), attention only in the middle level and the
# mid block, a channel change between in/out, and global conditioning: about 13k parameters.
TINY = {
    "in_channels": 4,
    "out_channels": 3,
    "sample_size": 16,
    "block_out_channels": (8, 8, 8),
    "layers_per_block": 1,
    "attention_levels": (False, True, False),
    "attention_head_dim": 4,
    "transformer_layers_per_block": 1,
    "cross_attention_dim": 6,
    "global_cond_dim": 3,
    "norm_num_groups": 4,
    "time_embedding_dim": 16,
}
BATCH, TOKENS = 2, 5


def make_model(**overrides) -> UNet1DConditionModel:
    torch.manual_seed(0)
    return UNet1DConditionModel(**{**TINY, **overrides}).eval()


def make_inputs(frames: int = 16, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(BATCH, TINY["in_channels"], frames, generator=g),
        "timestep": torch.tensor([10.0, 700.0]),
        "encoder_hidden_states": torch.randn(BATCH, TOKENS, TINY["cross_attention_dim"], generator=g),
        "encoder_attention_mask": torch.tensor([[True, True, True, False, False], [True] * TOKENS]),
        "global_hidden_states": torch.randn(BATCH, TINY["global_cond_dim"], generator=g),
    }


@pytest.fixture(scope="module")
def model() -> UNet1DConditionModel:
    return make_model()


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 7, 16, 33])
def test_output_shape_for_any_length(model, frames):
    out = model(**make_inputs(frames))
    assert isinstance(out, UNet1DConditionOutput)
    assert out.sample.shape == (BATCH, TINY["out_channels"], frames)
    assert torch.isfinite(out.sample).all()


@torch.no_grad()
def test_tuple_output_and_default_out_channels():
    model = make_model(out_channels=None)
    (sample,) = model(**make_inputs(), return_dict=False)
    assert sample.shape == (BATCH, TINY["in_channels"], 16)


@torch.no_grad()
def test_scalar_timestep_is_broadcast(model):
    inputs = make_inputs()
    inputs["timestep"] = torch.tensor([250.0, 250.0])
    expected = model(**inputs).sample
    for timestep in (250, 250.0, torch.tensor(250.0), torch.tensor([250])):
        inputs["timestep"] = timestep
        torch.testing.assert_close(model(**inputs).sample, expected)


@torch.no_grad()
def test_deterministic(model):
    inputs = make_inputs()
    assert torch.equal(model(**inputs).sample, model(**inputs).sample)


@torch.no_grad()
def test_batch_items_are_independent(model):
    inputs = make_inputs()
    batched = model(**inputs).sample
    single = model(**{k: v[1:] for k, v in inputs.items()}).sample
    torch.testing.assert_close(single, batched[1:])


@torch.no_grad()
def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = UNet1DConditionModel.from_pretrained(tmp_path).eval()
    assert loaded.config.block_out_channels == list(TINY["block_out_channels"])
    inputs = make_inputs(frames=7)
    assert torch.equal(loaded(**inputs).sample, model(**inputs).sample)


def test_attention_uses_sdpa(model):
    processors = model.attn_processors
    assert processors, "the model has no attention layers"
    assert all(isinstance(p, AttnProcessor2_0) for p in processors.values())


def test_gradient_reaches_every_parameter():
    model = make_model().train()
    model(**make_inputs(frames=7)).sample.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"
    # The parameters a broken wiring would most likely cut off, named so a failure is obvious.
    names = dict(model.named_parameters())
    for name in (
        "conv_in.weight",
        "global_embedding.0.weight",
        "mid_attention.transformer_blocks.0.attn2.to_k.weight",
        "down_attentions.1.transformer_blocks.0.attn1.to_q.weight",
    ):
        assert names[name].grad.abs().sum() > 0, name


@torch.no_grad()
def test_masked_tokens_are_ignored_and_unmasked_ones_used(model):
    inputs = make_inputs()
    reference = model(**inputs).sample

    changed = dict(inputs, encoder_hidden_states=inputs["encoder_hidden_states"].clone())
    changed["encoder_hidden_states"][0, 3:] = 100.0  # masked out in row 0
    assert torch.equal(model(**changed).sample, reference)

    changed["encoder_hidden_states"][0, 1] += 1.0  # attended in row 0
    out = model(**changed).sample
    assert not torch.allclose(out[0], reference[0])
    torch.testing.assert_close(out[1], reference[1])


@torch.no_grad()
def test_mask_accepts_bool_and_0_1(model):
    inputs = make_inputs()
    reference = model(**inputs).sample
    for dtype in (torch.long, torch.float32):
        mask = inputs["encoder_attention_mask"].to(dtype)
        assert torch.equal(model(**dict(inputs, encoder_attention_mask=mask)).sample, reference)


@torch.no_grad()
def test_fully_masked_row_equals_no_context(model):
    inputs = make_inputs()
    inputs["encoder_attention_mask"] = torch.zeros(BATCH, TOKENS, dtype=torch.bool)
    masked = model(**inputs).sample
    assert torch.isfinite(masked).all()
    no_context = model(**dict(inputs, encoder_hidden_states=None, encoder_attention_mask=None)).sample
    torch.testing.assert_close(masked, no_context)


@torch.no_grad()
def test_global_conditioning_changes_output(model):
    inputs = make_inputs()
    reference = model(**inputs).sample
    changed = dict(inputs, global_hidden_states=inputs["global_hidden_states"] + 1.0)
    assert not torch.allclose(model(**changed).sample, reference)


def test_gradient_checkpointing_matches_plain_path(monkeypatch):
    inputs = make_inputs(frames=7)

    def run(checkpointing: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = make_model().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.is_gradient_checkpointing
        out = model(**inputs).sample
        out.square().mean().backward()
        return out.detach(), {n: p.grad for n, p in model.named_parameters()}

    plain_out, plain_grads = run(checkpointing=False)

    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint

    def counting_checkpoint(*args, **kwargs):
        calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting_checkpoint)
    ckpt_out, ckpt_grads = run(checkpointing=True)

    # 3 levels x 1 res block, twice (down and up), + 2 mid res blocks + 3 attention blocks.
    assert len(calls) == 11
    torch.testing.assert_close(ckpt_out, plain_out)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, msg=name)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"sample": torch.randn(BATCH, 5, 16)}, "sample must be"),
        ({"sample": torch.randn(4, 16)}, "sample must be"),
        ({"encoder_hidden_states": torch.randn(BATCH, TOKENS, 7)}, "encoder_hidden_states must be"),
        ({"encoder_hidden_states": torch.randn(1, TOKENS, 6)}, "encoder_hidden_states must be"),
        ({"encoder_attention_mask": torch.ones(BATCH, TOKENS + 1, dtype=torch.bool)}, "encoder_attention_mask"),
        ({"encoder_attention_mask": torch.full((BATCH, TOKENS), -10000.0)}, "only 0/1"),
        ({"encoder_hidden_states": None}, "without encoder_hidden_states"),
        ({"global_hidden_states": None}, "global_hidden_states .* is required"),
        ({"global_hidden_states": torch.randn(BATCH, 4)}, "global_hidden_states must be"),
        ({"timestep": torch.ones(3)}, "timestep must be"),
        ({"timestep": torch.ones(BATCH, 1)}, "timestep must be"),
    ],
)
def test_bad_inputs_raise(model, change, match):
    with pytest.raises(ValueError, match=match):
        model(**{**make_inputs(), **change})


def test_global_input_rejected_without_global_cond():
    model = make_model(global_cond_dim=0)
    with pytest.raises(ValueError, match="global_cond_dim=0"):
        model(**make_inputs())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"attention_levels": (False, True)}, "attention_levels"),
        ({"block_out_channels": (8, 8, 10)}, r"block_out_channels\[2\]=10 .* norm_num_groups"),
        (
            {"block_out_channels": (8, 12, 8), "norm_num_groups": 2, "attention_head_dim": 8},
            r"\[1\]=12 .* attention_head_dim",
        ),
        ({"block_out_channels": (), "attention_levels": ()}, "at least one level"),
        ({"layers_per_block": 0}, "layers_per_block"),
        ({"global_cond_dim": -1}, "global_cond_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"position_embedding_dim": 3}, "position_embedding_dim"),
        ({"position_embedding_dim": -2}, "position_embedding_dim"),
        ({"position_embedding_dim": True}, "position_embedding_dim"),
        ({"timing_mask_channel": 1}, "timing_mask_channel"),
    ],
)
def test_bad_config_raises(change, match):
    with pytest.raises(ValueError, match=match):
        UNet1DConditionModel(**{**TINY, **change})


@torch.no_grad()
def test_position_embedding_tells_frames_apart(tmp_path):
    """The same input at every frame: without positions the interior frames (beyond the reach of
    the zero padding at the edges) get the same output; with them, each frame knows where it is."""
    inputs = make_inputs(256)
    inputs["sample"] = inputs["sample"][:, :, :1].repeat(1, 1, 256)
    plain = make_model()(**inputs).sample
    # Frames 124 and 132: the same phase of the two stride-2 downsamples, far from both edges.
    torch.testing.assert_close(plain[..., 124], plain[..., 132])
    model = make_model(position_embedding_dim=8)
    placed = model(**inputs).sample
    assert not torch.allclose(placed[..., 124], placed[..., 132], atol=1e-4)
    model.save_pretrained(tmp_path / "unet")
    loaded = UNet1DConditionModel.from_pretrained(tmp_path / "unet").eval()
    assert loaded.config.position_embedding_dim == 8
    torch.testing.assert_close(loaded(**inputs).sample, placed)


@torch.no_grad()
def test_channel_input_tells_frames_past_the_end_apart(tmp_path):
    """A timing mask as an extra input channel. The same input at every frame: with the mask all ones,
    interior frames get the same output; with the requested audio ending at frame 128, frames before
    and after the end differ."""
    inputs = make_inputs(256)
    inputs["sample"] = inputs["sample"][:, :, :1].repeat(1, 1, 256)
    model = make_model(extra_in_channels=1)
    ones = torch.ones(BATCH, 1, 256)
    mask = ones.clone()
    mask[..., 128:] = 0
    full = model(**inputs, channel_inputs=ones).sample
    torch.testing.assert_close(full[..., 124], full[..., 132])
    ended = model(**inputs, channel_inputs=mask).sample
    assert not torch.allclose(ended[..., 124], ended[..., 132], atol=1e-4)
    # Away from the end (and the window's edges) the mask is all the model has to tell frames apart.
    torch.testing.assert_close(ended[..., 60], ended[..., 68])
    torch.testing.assert_close(ended[..., 188], ended[..., 196])
    model.save_pretrained(tmp_path / "unet")
    loaded = UNet1DConditionModel.from_pretrained(tmp_path / "unet").eval()
    assert loaded.extra_channels == 1
    torch.testing.assert_close(loaded(**inputs, channel_inputs=mask).sample, ended)


def test_channel_inputs_are_required_and_checked():
    model = make_model(extra_in_channels=5)
    assert model.conv_in.in_channels == TINY["in_channels"] + 5
    with pytest.raises(ValueError, match=r"channel_inputs of shape \(2, 5, 16\) is required"):
        model(**make_inputs())
    with pytest.raises(ValueError, match=r"channel_inputs must be \(2, 5, 16\), got \(2, 5, 15\)"):
        model(**make_inputs(), channel_inputs=torch.ones(BATCH, 5, 15))
    with pytest.raises(ValueError, match="channel_inputs given .* but this model takes none"):
        make_model()(**make_inputs(), channel_inputs=torch.ones(BATCH, 1, 16))
    with pytest.raises(ValueError, match="extra_in_channels must be an int >= 0"):
        make_model(extra_in_channels=-1)


@torch.no_grad()
def test_film_inputs_start_at_zero_and_are_checked(tmp_path):
    """FiLM features (a key profile) drive the FiLM embedding: zero at the start (no change), required,
    shape-checked."""
    from stable_audio_kit.conditioning import key_profile

    base = make_model()
    model = make_model(film_cond_dim=24)
    model.load_state_dict(base.state_dict(), strict=False)
    inputs, keys = make_inputs(), key_profile([(0, "major"), (9, "minor")])
    torch.testing.assert_close(model(**inputs, film_inputs=keys).sample, base(**inputs).sample)
    model.film_embedding.weight.normal_()
    out = model(**inputs, film_inputs=keys).sample
    assert not torch.allclose(out, model(**inputs, film_inputs=torch.zeros_like(keys)).sample)
    with pytest.raises(ValueError, match=r"film_inputs of shape \(2, 24\) is required"):
        model(**inputs)
    with pytest.raises(ValueError, match=r"film_inputs must be \(2, 24\), got \(2, 12\)"):
        model(**inputs, film_inputs=keys[:, :12])
    with pytest.raises(ValueError, match="film_inputs given .* but this model takes none"):
        base(**inputs, film_inputs=keys)
    model.save_pretrained(tmp_path / "unet")
    loaded = UNet1DConditionModel.from_pretrained(tmp_path / "unet").eval()
    assert loaded.film_dim == 24
    torch.testing.assert_close(loaded(**inputs, film_inputs=keys).sample, out)


@torch.no_grad()
def test_unets_saved_with_input_flags_still_load(tmp_path):
    """U-Nets saved before the conditioning seam name a timing mask (1 channel), a beat grid (4 channels)
    and a key (24 FiLM features, weights called key_embedding) by flags; they load with the same weights."""
    import json

    from safetensors.torch import load_file, save_file

    model = make_model(timing_mask_channel=True, beat_grid_channel=True, key_conditioning=True)
    assert model.extra_channels == 5 and model.film_dim == 24
    model.film_embedding.weight.normal_()
    model.save_pretrained(tmp_path / "unet")
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state = {k.replace("film_embedding.", "key_embedding."): v for k, v in state.items()}
    save_file(state, weights)  # the old weight names
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config["timing_mask_channel"] and config["extra_in_channels"] == 0
    loaded = UNet1DConditionModel.from_pretrained(tmp_path / "unet").eval()
    inputs = make_inputs()
    channels, film = torch.randn(BATCH, 5, 16), torch.randn(BATCH, 24)
    expected = model(**inputs, channel_inputs=channels, film_inputs=film).sample
    torch.testing.assert_close(loaded(**inputs, channel_inputs=channels, film_inputs=film).sample, expected)
    again = make_model(timing_mask_channel=True, beat_grid_channel=True, key_conditioning=True)
    again.load_state_dict(state)  # torch's own loading (a training checkpoint) renames them too
    torch.testing.assert_close(again(**inputs, channel_inputs=channels, film_inputs=film).sample, expected)


@pytest.mark.parametrize(
    "steps, guidance, match",
    [
        (8, None, "set together"),
        (None, 7.0, "set together"),
        (0, 7.0, "distilled_steps must be an int >= 1, got 0"),
        (8, 0.5, "distilled_guidance_scale must be a finite number >= 1, got 0.5"),
        (8, float("nan"), "distilled_guidance_scale must be a finite number >= 1, got nan"),
        (8, "7", "distilled_guidance_scale must be a number, got '7'"),
    ],
)
def test_a_students_config_is_checked(steps, guidance, match):
    with pytest.raises(ValueError, match=match):
        make_model(distilled_steps=steps, distilled_guidance_scale=guidance)


def test_a_student_config_round_trips(tmp_path):
    make_model(distilled_steps=8, distilled_guidance_scale=7.0).save_pretrained(tmp_path)
    loaded = UNet1DConditionModel.from_pretrained(tmp_path)
    assert (loaded.config.distilled_steps, loaded.config.distilled_guidance_scale) == (8, 7.0)
