import json
import math
import shutil

import numpy as np
import pytest
import torch

from stable_audio_kit import StableAudioKitPipeline
from stable_audio_kit.schedulers import SCHEDULERS, swap_scheduler

STEPS = 3


def run(pipe, prompt="a calm piano melody", seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("seconds_total", 0.5)
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **kwargs).audios


def test_same_seed_same_audio(tiny_pipeline):
    a = run(tiny_pipeline, seed=3)
    b = run(tiny_pipeline, seed=3)
    c = run(tiny_pipeline, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_a_sampler_that_adds_noise_each_step_draws_it_from_the_seed(tiny_pipeline):
    # DDPM adds noise at every step: it comes from the call's generator, not torch's global one, so the seed alone
    # decides the audio whatever was drawn before.
    pipe = StableAudioKitPipeline(
        **{**tiny_pipeline.components, "scheduler": swap_scheduler(tiny_pipeline.scheduler, "ddpm")}
    )
    torch.manual_seed(1)
    a = run(pipe, seed=3)
    torch.manual_seed(2)
    b = run(pipe, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, run(pipe, seed=4))


def test_initial_noise_passed_back_as_latents_starts_the_same_sample(tiny_pipeline):
    frames = tiny_pipeline.sampled_frames(0.0, 0.5)
    noise = tiny_pipeline.initial_noise(2, torch.Generator().manual_seed(5), frames)
    assert noise.shape == (2, tiny_pipeline.unet.config.in_channels, frames)
    given = tiny_pipeline("x", num_inference_steps=STEPS, seconds_total=0.5, num_waveforms_per_prompt=2, latents=noise)
    drawn = run(tiny_pipeline, "x", seed=5, num_waveforms_per_prompt=2)
    np.testing.assert_allclose(given.audios, drawn, atol=1e-6)


@pytest.mark.parametrize("seconds", [0.25, 0.5, 0.3333, 0.123457, 1.0, 1e-3])
def test_exact_sample_count(tiny_pipeline, seconds):
    audio = run(tiny_pipeline, seconds_total=seconds)
    assert audio.shape == (1, tiny_pipeline.audio_channels, round(seconds * tiny_pipeline.sample_rate))
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_default_length_is_the_window(tiny_pipeline):
    audio = tiny_pipeline("x", num_inference_steps=1).audios
    assert audio.shape[-1] == round(tiny_pipeline.max_seconds * tiny_pipeline.sample_rate)


def test_output_types(tiny_pipeline):
    pt = run(tiny_pipeline, output_type="pt")
    np_ = run(tiny_pipeline, output_type="np")
    assert isinstance(pt, torch.Tensor)
    np.testing.assert_allclose(pt.numpy(), np_)
    lat = run(tiny_pipeline, output_type="latent")
    assert lat.shape == (1, tiny_pipeline.unet.config.in_channels, tiny_pipeline.unet.config.sample_size)
    tup = tiny_pipeline("x", num_inference_steps=1, seconds_total=0.5, return_dict=False)
    assert isinstance(tup, tuple) and tup[0].shape[-1] == 4000


def test_cfg_on_and_off_differ(tiny_pipeline):
    off = run(tiny_pipeline, guidance_scale=1.0)
    on = run(tiny_pipeline, guidance_scale=7.0)
    assert off.shape == on.shape
    assert not np.allclose(off, on)


def test_cfg_uses_one_batched_forward(tiny_pipeline):
    calls = []
    handle = tiny_pipeline.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        run(tiny_pipeline, prompt=["a", "b"], guidance_scale=5.0)
        assert calls == [4] * STEPS
        calls.clear()
        run(tiny_pipeline, prompt=["a", "b"], guidance_scale=1.0)
        assert calls == [2] * STEPS
    finally:
        handle.remove()


def test_negative_prompt_changes_output(tiny_pipeline):
    plain = run(tiny_pipeline, guidance_scale=3.0)
    neg = run(tiny_pipeline, guidance_scale=3.0, negative_prompt="noisy drums")
    assert not np.allclose(plain, neg)


def test_batch_of_prompts_and_waveforms(tiny_pipeline):
    out = run(tiny_pipeline, prompt=["piano", "drums", "strings"], num_waveforms_per_prompt=2, seconds_total=0.3)
    assert out.shape == (6, tiny_pipeline.audio_channels, 2400)
    # Each prompt in a batch gets the same audio as alone with one generator per waveform.
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    pair = tiny_pipeline(["piano", "drums"], num_inference_steps=STEPS, seconds_total=0.3, generator=gens).audios
    alone = tiny_pipeline(
        "drums", num_inference_steps=STEPS, seconds_total=0.3, generator=torch.Generator().manual_seed(1)
    ).audios
    np.testing.assert_allclose(pair[1:], alone, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_swap(tiny_pipeline, name):
    original = tiny_pipeline.scheduler
    try:
        tiny_pipeline.scheduler = swap_scheduler(original, name)
        audio = run(tiny_pipeline, seconds_total=0.2)
        assert audio.shape[-1] == 1600 and np.isfinite(audio).all()
    finally:
        tiny_pipeline.scheduler = original


def test_unknown_scheduler(tiny_pipeline):
    with pytest.raises(ValueError, match="unknown scheduler 'nope'"):
        swap_scheduler(tiny_pipeline.scheduler, "nope")


def test_timing_conditioning_reaches_the_unet(tiny_pipeline):
    a = run(tiny_pipeline, seconds_total=0.5, output_type="latent")
    b = run(tiny_pipeline, seconds_total=0.9, output_type="latent")
    c = run(tiny_pipeline, seconds_total=0.5, seconds_start=0.3, output_type="latent")
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_callback_on_step_end(tiny_pipeline):
    seen = []

    def cb(pipe, i, t, tensors):
        seen.append(i)
        return {"latents": tensors["latents"]}

    run(tiny_pipeline, callback_on_step_end=cb)
    assert seen == list(range(STEPS))


def test_user_latents(tiny_pipeline):
    shape = (1, tiny_pipeline.unet.config.in_channels, tiny_pipeline.unet.config.sample_size)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    a = tiny_pipeline("x", num_inference_steps=2, latents=latents, seconds_total=0.5).audios
    b = tiny_pipeline("x", num_inference_steps=2, latents=latents.clone(), seconds_total=0.5).audios
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(seconds_total=0.0), "seconds_total must be in"),
        (dict(seconds_total=-1.0), "seconds_total must be in"),
        (dict(seconds_total=99.0, output_type="latent"), "long-form generation returns audio"),
        (dict(seconds_total=float("nan")), "seconds_total must be finite, got nan"),
        (dict(seconds_total=float("inf")), "seconds_total must be finite"),
        (dict(seconds_total="3"), "seconds_total must be a number"),
        (dict(seconds_total=1e-6), "shorter than one sample"),
        (dict(seconds_start=-0.5), "seconds_start must be >= 0, got -0.5"),
        (dict(seconds_start=float("nan")), "seconds_start must be finite"),
        (dict(seconds_start=1e6), "seconds_start must be below seconds_total"),
        (dict(num_inference_steps=0), "num_inference_steps must be >= 1, got 0"),
        (dict(num_inference_steps=2.5), "num_inference_steps must be an integer"),
        (dict(guidance_scale=float("inf")), "guidance_scale must be finite"),
        (dict(num_waveforms_per_prompt=0), "num_waveforms_per_prompt must be >= 1"),
        (dict(output_type="mp3"), "output_type must be"),
        (dict(prompt=3), "prompt must be a string"),
        (dict(prompt=["ok", None]), "got an item None"),
        (dict(prompt=[]), "non-empty list"),
        (dict(negative_prompt=5), "negative_prompt must be"),
        (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 items for 1 prompts"),
        (dict(latents=torch.zeros(1, 1, 1)), "latents must be a tensor of shape"),
    ],
)
def test_bad_input_raises_before_work(tiny_pipeline, kwargs, match):
    calls = []
    handle = tiny_pipeline.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        prompt = kwargs.pop("prompt", "a prompt")
        kwargs.setdefault("seconds_total", 0.5)
        with pytest.raises(ValueError, match=match):
            tiny_pipeline(prompt, num_inference_steps=kwargs.pop("num_inference_steps", 2), **kwargs)
        assert calls == []
    finally:
        handle.remove()


def test_save_load_round_trip(tiny_pipeline, tiny_model_dir):
    files = {p.relative_to(tiny_model_dir).as_posix() for p in tiny_model_dir.rglob("*") if p.is_file()}
    for component in ("vae", "text_encoder", "projection", "unet"):
        assert any(f.startswith(component + "/") and f.endswith(".safetensors") for f in files), component
    assert not any(f.endswith(".bin") for f in files)
    loaded = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    loaded.set_progress_bar_config(disable=True)
    # Equal to float32 rounding: the VAE's weight-norm recomputes its weights from the saved (g, v).
    np.testing.assert_allclose(run(tiny_pipeline), run(loaded), rtol=0, atol=2e-6)
    assert type(loaded.scheduler) is type(tiny_pipeline.scheduler)


def test_half_precision_weights_load_as_float32(tiny_model_dir, tmp_path):
    half = StableAudioKitPipeline.from_pretrained(tiny_model_dir).to(torch.float16)
    half.save_pretrained(tmp_path / "half")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "half")
    for name in ("vae", "text_encoder", "projection", "unet"):
        assert next(getattr(loaded, name).parameters()).dtype == torch.float32, name
    assert run(loaded, seconds_total=0.2).shape[-1] == 1600


def test_load_works_offline(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    StableAudioKitPipeline.from_pretrained(tiny_model_dir)


def test_missing_component_is_named(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ValueError, match="missing component.*unet"):
        StableAudioKitPipeline.from_pretrained(broken)
    with pytest.raises(ValueError, match="does not exist"):
        StableAudioKitPipeline.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json is missing"):
        StableAudioKitPipeline.from_pretrained(tmp_path / "empty")


def test_mismatched_latent_channels_are_named(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    cfg_path = broken / "vae" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["decoder_input_channels"] = cfg["decoder_input_channels"] + 2
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"unet.in_channels=4 but the VAE has 6 latent channels"):
        StableAudioKitPipeline.from_pretrained(broken)


def test_max_seconds(tiny_pipeline):
    assert math.isclose(tiny_pipeline.max_seconds, 1.0)


def test_spectral_vae_pipeline_saves_loads_and_keeps_exact_length(tiny_config, tmp_path):
    # vae.architecture = spectral: model_index.json names SpectralAudioVAE and loading brings it back.
    import copy

    from stable_audio_kit import SpectralAudioVAE, build_pipeline

    cfg = copy.deepcopy(tiny_config)
    spectral = {"architecture": "spectral", "n_fft": 64, "stft_hop": 16, "latent_stride": 2, "hidden_channels": 16}
    for key, value in {**spectral, "encoder_layers": 1, "decoder_layers": 1}.items():
        setattr(cfg.vae, key, value)
    pipe = build_pipeline(cfg)
    assert isinstance(pipe.vae, SpectralAudioVAE) and pipe.vae.hop_length == 32
    pipe.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["vae"][1] == "SpectralAudioVAE"
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vae, SpectralAudioVAE)
    audio = run(loaded, seconds_total=0.3333)
    assert audio.shape == (1, 1, round(0.3333 * loaded.sample_rate))


def test_position_embedding_from_the_model_config(tiny_config, tmp_path):
    import copy

    from stable_audio_kit import build_pipeline

    cfg = copy.deepcopy(tiny_config)
    cfg.unet.position_embedding_dim = 8
    pipe = build_pipeline(cfg)
    assert pipe.unet.position_embedding is not None
    pipe.save_pretrained(tmp_path / "model")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.unet.config.position_embedding_dim == 8
    assert run(loaded, seconds_total=0.5).shape == (1, loaded.audio_channels, round(0.5 * loaded.sample_rate))


def test_timing_mask_channel_from_the_model_config(tiny_config, tmp_path):
    """The pipeline hands a timing-mask U-Net the frames that seconds_total covers, in both CFG halves."""
    import copy

    from stable_audio_kit import build_pipeline

    cfg = copy.deepcopy(tiny_config)
    cfg.unet.timing_mask_channel = True
    build_pipeline(cfg).save_pretrained(tmp_path / "model")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.projection.routes["input_channels"] == ["timing_mask"] and loaded.unet.extra_channels == 1
    seen = []
    loaded.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["channel_inputs"][:, 0]), with_kwargs=True
    )
    seconds = 0.3
    assert run(loaded, seconds_total=seconds).shape == (1, loaded.audio_channels, round(seconds * loaded.sample_rate))
    covered = -(-round(seconds * loaded.sample_rate) // loaded.vae.hop_length)
    assert seen and all(m.shape == (2, loaded.unet.config.sample_size) for m in seen)
    assert (seen[0][:, :covered] == 1).all() and (seen[0][:, covered:] == 0).all()
    assert covered < loaded.unet.config.sample_size


def test_prompt_numbers_from_the_model_config(tiny_config, tiny_pipeline, tmp_path):
    """A projection with prompt_numbers gets the numbers of each prompt; a new one changes nothing until
    trained, and once trained the number's value changes the audio."""
    import copy

    from stable_audio_kit import build_pipeline

    assert "prompt_numbers" not in tiny_pipeline.projection.conditioners
    cfg = copy.deepcopy(tiny_config)
    cfg.conditioning.prompt_numbers = True
    build_pipeline(cfg).save_pretrained(tmp_path / "model")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    seen, scale = [], {"by": 1.0}

    def numbers_hook(module, args):
        (features,) = args
        seen.append(features["prompt_numbers"])
        return ({**features, "prompt_numbers": features["prompt_numbers"] * scale["by"]},)

    loaded.projection.register_forward_pre_hook(numbers_hook)
    as_written = run(loaded, "drums at 96 BPM")
    assert {v for v in seen[0][0].tolist() if v == v} == {96.0}
    scale["by"] = 1.5
    np.testing.assert_array_equal(run(loaded, "drums at 96 BPM"), as_written)  # zero until trained
    torch.nn.init.normal_(loaded.projection.embedders["prompt_numbers"].mlp[-1].weight)
    at_144 = run(loaded, "drums at 96 BPM")
    scale["by"] = 1.0
    assert not np.allclose(run(loaded, "drums at 96 BPM"), at_144)


def test_beat_grid_from_the_prompt_or_bpm(tiny_config, tmp_path):
    """A beat-grid U-Net gets the grid of the prompt's tempo (or of bpm=) in the conditional half of CFG
    and the negative prompt's (or none) in the other; bpm is checked before any work."""
    import copy

    from stable_audio_kit import build_pipeline
    from stable_audio_kit.conditioning import beat_grid

    cfg = copy.deepcopy(tiny_config)
    cfg.unet.beat_grid_channel = True
    build_pipeline(cfg).save_pretrained(tmp_path / "model")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.projection.routes["input_channels"] == ["beat_grid"] and loaded.unet.extra_channels == 4
    seen = []
    loaded.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["channel_inputs"]), with_kwargs=True
    )
    frames, sr, hop = loaded.unet.config.sample_size, loaded.sample_rate, loaded.vae.hop_length

    def expected(*bpm):
        return beat_grid(torch.tensor(bpm, dtype=torch.float32), 0.0, frames, sr, hop)

    run(loaded, "drums at 96 bpm", num_inference_steps=2)
    assert len(seen) == 2
    for grid in seen:
        torch.testing.assert_close(grid, torch.cat([torch.zeros_like(expected(96.0)), expected(96.0)]))
    seen.clear()
    run(loaded, "drums at 96 bpm", negative_prompt="slow 60 bpm", num_inference_steps=1, bpm=140)
    torch.testing.assert_close(seen[0], torch.cat([expected(60.0), expected(140.0)]))
    seen.clear()
    run(loaded, ["a 120 bpm beat", "a pad"], num_inference_steps=1, guidance_scale=1.0, num_waveforms_per_prompt=2)
    torch.testing.assert_close(seen[0], expected(120.0, 120.0, float("nan"), float("nan")))
    # With zero grid weights (what `sak extend --beat-grid` starts from) the tempo changes nothing;
    # with trained ones it changes the audio.
    with torch.no_grad():
        loaded.unet.conv_in.weight[:, -4:] = 0
    assert np.array_equal(run(loaded, "drums at 96 bpm"), run(loaded, "drums at 96 bpm", bpm=150))
    with torch.no_grad():
        loaded.unet.conv_in.weight[:, -4:].normal_()
    assert not np.allclose(run(loaded, "drums at 96 bpm"), run(loaded, "drums at 96 bpm", bpm=150))
    top = 30.0 * loaded.sample_rate / loaded.vae.hop_length  # two latent frames a beat
    assert loaded.max_bpm == top
    for bad, match in (
        (-5, "bpm must be a finite number > 0, got -5"),
        (float("nan"), "bpm must be a finite number > 0, got nan"),
        (top, f"bpm must be above 0 and below {top:.0f}"),
    ):
        with pytest.raises(ValueError, match=match):
            run(loaded, "drums", bpm=bad)
    for prompt, negative in ((f"drums at {top:g} bpm", None), ("drums", "0 bpm")):
        with pytest.raises(ValueError, match=r"names a tempo of \d+ bpm; this model's beat grid takes tempi"):
            run(loaded, prompt, negative_prompt=negative)


def test_bpm_needs_a_beat_grid_unet(tiny_pipeline):
    with pytest.raises(ValueError, match=r"bpm=120.0 given but this model has no input that reads it"):
        run(tiny_pipeline, "drums", bpm=120)


def test_key_from_the_prompt_or_key_argument(tiny_config, tmp_path):
    """A key-conditioned U-Net gets the profile of the prompt's key (or of key=) in the conditional half of
    CFG and the negative prompt's (or none) in the other; key= is checked before any work."""
    import copy

    from stable_audio_kit import build_pipeline
    from stable_audio_kit.conditioning import key_profile

    cfg = copy.deepcopy(tiny_config)
    cfg.unet.key_conditioning = True
    build_pipeline(cfg).save_pretrained(tmp_path / "model")
    loaded = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.projection.routes["film"] == ["key"] and loaded.unet.film_dim == 24
    seen = []
    loaded.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["film_inputs"]), with_kwargs=True
    )
    run(loaded, "a melody in D minor", num_inference_steps=2)
    assert len(seen) == 2
    for keys in seen:
        torch.testing.assert_close(keys, key_profile([None, (2, "minor")]))
    seen.clear()
    run(loaded, "a melody in D minor", negative_prompt="in C major", num_inference_steps=1, key="Bb major")
    torch.testing.assert_close(seen[0], key_profile([(0, "major"), (10, "major")]))
    seen.clear()
    run(loaded, ["in E major", "drums"], num_inference_steps=1, guidance_scale=1.0, num_waveforms_per_prompt=2)
    torch.testing.assert_close(seen[0], key_profile([(4, "major"), (4, "major"), None, None]))
    # The key embedding starts at zero: the key changes nothing until trained, then it changes the audio.
    assert np.array_equal(run(loaded, "a melody in D minor"), run(loaded, "a melody in D minor", key="F# major"))
    with torch.no_grad():
        loaded.unet.film_embedding.weight.normal_()
    assert not np.allclose(run(loaded, "a melody in D minor"), run(loaded, "a melody in D minor", key="F# major"))
    for bad in ("H major", "C lydian", 5):
        with pytest.raises(ValueError, match="key must name a major or minor key"):
            run(loaded, "a melody", key=bad)


def test_key_needs_a_key_conditioned_unet(tiny_pipeline):
    with pytest.raises(ValueError, match=r"key='C major' given but this model has no input that reads it"):
        run(tiny_pipeline, "a melody", key="C major")


# ------------------------------------------------------------------------ frames sampled (tail_seconds)
def sampled_shapes(pipe, **kwargs):
    shapes = []

    def cb(p, i, t, tensors):
        shapes.append(tuple(tensors["latents"].shape))
        return tensors

    audio = run(pipe, callback_on_step_end=cb, **kwargs)
    return audio, shapes


@pytest.mark.parametrize("seconds, tail, frames", [(0.25, 0.1, 88), (0.5, 0.0, 126), (0.9, 0.2, 250), (0.1, 5.0, 250)])
def test_only_the_frames_the_audio_needs_are_sampled(tiny_pipeline, seconds, tail, frames):
    # Tiny model: 8 kHz, hop 32 (250 frames a second), a 250-frame window, the U-Net's multiple 2.
    audio, shapes = sampled_shapes(tiny_pipeline, seconds_total=seconds, tail_seconds=tail)
    assert tiny_pipeline.sampled_frames(0.0, seconds, tail) == frames
    assert set(shapes) == {(1, tiny_pipeline.unet.config.in_channels, frames)}
    assert audio.shape == (1, 1, round(seconds * tiny_pipeline.sample_rate))
    latents = run(tiny_pipeline, seconds_total=seconds, tail_seconds=tail, output_type="latent")
    assert latents.shape[-1] == frames


def test_frames_follow_seconds_start_and_the_timing_mask_fits_them(tiny_pipeline):
    assert tiny_pipeline.sampled_frames(0.5, 0.75, 0.0) == tiny_pipeline.sampled_frames(0.0, 0.25, 0.0) == 64
    request, _, workflow = tiny_pipeline.check_call("x", seconds_start=0.5, seconds_total=0.75, tail_seconds=0.0)
    assert request.frames == workflow.frames == 64


def test_whole_window_tail_is_the_old_sampling(tiny_pipeline):
    window = run(tiny_pipeline, seconds_total=0.3, tail_seconds=100.0)
    shorter = run(tiny_pipeline, seconds_total=0.3, tail_seconds=0.1)
    assert window.shape == shorter.shape and not np.allclose(window, shorter)
    latents = run(tiny_pipeline, seconds_total=0.3, tail_seconds=100.0, output_type="latent")
    assert latents.shape[-1] == tiny_pipeline.unet.config.sample_size


def test_user_latents_set_the_frames(tiny_pipeline):
    latents = torch.randn(1, tiny_pipeline.unet.config.in_channels, 100, generator=torch.Generator().manual_seed(0))
    audio, shapes = sampled_shapes(tiny_pipeline, seconds_total=0.3, latents=latents)
    assert set(s[-1] for s in shapes) == {100} and audio.shape[-1] == 2400
    with pytest.raises(
        ValueError, match=r"frames from 75 \(the requested audio\) to 250 \(the window\), got \(1, 4, 60\)"
    ):
        run(tiny_pipeline, seconds_total=0.3, latents=latents[..., :60])


@pytest.mark.parametrize("tail, match", [(-0.5, "tail_seconds must be >= 0, got -0.5"), ("1", "tail_seconds must be")])
def test_bad_tail_is_refused(tiny_pipeline, tail, match):
    with pytest.raises(ValueError, match=match):
        run(tiny_pipeline, tail_seconds=tail)
