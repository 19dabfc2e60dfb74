"""`sak convert clap`: a LAION-CLAP checkpoint with the original names and shapes (tiny, random weights) becomes a
transformers ClapModel folder whose text and audio embeddings are the reference model's."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import torch
from transformers import ClapConfig, ClapModel

from stable_audio_kit.cli import main
from stable_audio_kit.clap_audio import ClapAudioEmbedder, extract_features
from stable_audio_kit.conditioning.text import build_text_encoder, train_tokenizer
from stable_audio_kit.config import TextConfig
from stable_audio_kit.convert import LAION_FEATURES, clap_config_from_laion, convert_clap_checkpoint

# RoBERTa-shaped text tower (64-wide heads) and an HTSAT-shaped audio tower on LAION's 256 x 64 spectrogram.
TEXT = dict(
    vocab_size=300,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=1,
    intermediate_size=96,
    max_position_embeddings=40,
)
AUDIO = dict(
    spec_size=256,
    num_mel_bins=64,
    patch_size=4,
    patch_stride=[4, 4],
    patch_embeds_hidden_size=8,
    depths=[2, 2],
    num_attention_heads=[1, 2],
    window_size=8,
    hidden_size=16,
    num_classes=5,
)
# Names as LAION-CLAP's own modules spell them (htsat.py, model.py): the checkpoint the test writes must use them.
LAION_NAMES = [
    "module.logit_scale_a",
    "module.logit_scale_t",
    "module.text_branch.embeddings.word_embeddings.weight",
    "module.text_branch.encoder.layer.1.attention.self.query.weight",
    "module.text_branch.pooler.dense.weight",
    "module.text_projection.0.weight",
    "module.text_projection.2.bias",
    "module.audio_projection.0.weight",
    "module.audio_branch.bn0.running_var",
    "module.audio_branch.patch_embed.proj.weight",
    "module.audio_branch.patch_embed.norm.weight",
    "module.audio_branch.layers.0.blocks.1.norm1.weight",
    "module.audio_branch.layers.0.blocks.1.attn.qkv.weight",
    "module.audio_branch.layers.0.blocks.1.attn.proj.bias",
    "module.audio_branch.layers.0.blocks.1.attn.relative_position_bias_table",
    "module.audio_branch.layers.0.blocks.1.attn_mask",
    "module.audio_branch.layers.0.blocks.1.mlp.fc2.weight",
    "module.audio_branch.layers.0.downsample.reduction.weight",
    "module.audio_branch.layers.1.blocks.0.norm2.bias",
    "module.audio_branch.norm.weight",
    "module.audio_branch.tscam_conv.weight",
    "module.audio_branch.spectrogram_extractor.stft.conv_real.weight",
    "module.text_transform.sequential.0.weight",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference() -> ClapModel:
    """The model the checkpoint is written from, with non-trivial batch-norm statistics and logit scales."""
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=TEXT, audio_config=AUDIO, projection_dim=16)).eval()
    # transformers' initialisation (std 0.02) leaves attention almost uniform, so that a query swapped for a key
    # would hardly show; weights of unit gain make every tensor count.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 1.5 / param[0].numel() ** 0.5)
            elif "norm" in name.lower() and name.endswith("weight"):
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.1)
    bn = model.audio_model.audio_encoder.batch_norm
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    model.logit_scale_a.data.fill_(2.5)
    return model


def _shift_mask(grid: int, window: int) -> torch.Tensor:
    """HTSAT's shifted-window mask buffer ``(windows, window**2, window**2)`` (values do not matter here)."""
    return torch.zeros((grid // window) ** 2, window * window, window * window)


def laion_state_dict(model: ClapModel) -> dict[str, torch.Tensor]:
    """``model``'s tensors under LAION-CLAP's names, with the LAION-only tensors added (as a real checkpoint has)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in model.state_dict().items():
        value = value.clone()
        if key.endswith("embeddings.token_type_ids"):
            continue  # older transformers did not save it
        if key.startswith("text_model."):
            out["text_branch." + key[len("text_model.") :]] = value
        elif m := re.match(r"(text|audio)_projection\.linear([12])\.(\w+)$", key):
            out[f"{m[1]}_projection.{0 if m[2] == '1' else 2}.{m[3]}"] = value
        elif key.startswith("logit_scale"):
            out[key] = value
        else:
            rest = key[len("audio_model.audio_encoder.") :]
            if m := re.match(r"(layers\.\d+\.blocks\.\d+)\.attention\.self\.(query|key|value)\.(\w+)$", rest):
                qkv.setdefault(f"audio_branch.{m[1]}.attn.qkv.{m[3]}", {})[m[2]] = value
                continue
            for hf, laion in [
                ("batch_norm.", "bn0."),
                ("layernorm_before.", "norm1."),
                ("layernorm_after.", "norm2."),
                ("attention.output.dense.", "attn.proj."),
                ("attention.self.relative_position", "attn.relative_position"),
                ("intermediate.dense.", "mlp.fc1."),
                ("output.dense.", "mlp.fc2."),
            ]:
                rest = rest.replace(hf, laion)
            out["audio_branch." + rest] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]])
    # LAION-only tensors: the shifted blocks' masks, the torchlibrosa front end, the AudioSet head, the loss MLPs.
    grid = AUDIO["spec_size"] // AUDIO["patch_size"]
    out["audio_branch.layers.0.blocks.1.attn_mask"] = _shift_mask(grid, 8)
    out["audio_branch.layers.1.blocks.1.attn_mask"] = _shift_mask(grid // 2, 8)
    out["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.randn(9, 1, 16)
    out["audio_branch.logmel_extractor.melW"] = torch.randn(9, 64)
    out["audio_branch.tscam_conv.weight"] = torch.randn(5, 16, 2, 3)
    out["audio_branch.tscam_conv.bias"] = torch.randn(5)
    out["audio_branch.head.weight"] = torch.randn(5, 5)
    for tower in ("text", "audio"):
        for index in (0, 3):
            out[f"{tower}_transform.sequential.{index}.weight"] = torch.randn(16, 16)
    return out


def write_checkpoint(path, state: dict[str, torch.Tensor], **extra) -> None:
    """What LAION-CLAP's training saves: DDP-prefixed names in ``state_dict``, beside the epoch and optimizer."""
    torch.save({"epoch": 45, "name": "tiny", "state_dict": {"module." + k: v for k, v in state.items()}, **extra}, path)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("roberta_tokenizer")
    train_tokenizer(["a calm piano melody", "rock drums at 120 bpm"], vocab_size=280, min_frequency=1).save_pretrained(
        path
    )
    return path


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("laion") / "tiny-best.pt"
    write_checkpoint(path, laion_state_dict(reference), optimizer={"state": {}, "param_groups": [{"lr": 1e-4}]})
    return path


@pytest.fixture(scope="module")
def converted(checkpoint, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "clap"
    assert main(["convert", "clap", str(checkpoint), str(out), "--tokenizer", str(tokenizer_dir)]) == 0
    return out


def _audio_embeds(model: ClapModel, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.audio_projection(model.audio_model(input_features=features).pooler_output)


def _text_embeds(model: ClapModel, tokens) -> torch.Tensor:
    with torch.no_grad():
        out = model.text_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
        return model.text_projection(out.pooler_output)


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def test_the_test_checkpoint_uses_laion_names(checkpoint, reference):
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert set(LAION_NAMES) <= set(saved)
    assert saved["module.audio_branch.layers.0.blocks.1.attn.qkv.weight"].shape == (3 * 8, 8)
    # One LAION tensor per transformers tensor, q/k/v fused, plus the LAION-only ones.
    laion_only = [k for k in saved if re.search(r"attn_mask|extractor|tscam|head\.|transform\.", k)]
    hf = [k for k in reference.state_dict() if not k.endswith("token_type_ids")]
    assert len(saved) - len(laion_only) == len(hf) - 4 * 4  # four Swin blocks: six q/k/v tensors become two


def test_config_is_read_off_the_shapes(checkpoint, reference):
    state = {k.removeprefix("module."): v for k, v in torch.load(checkpoint, weights_only=True)["state_dict"].items()}
    config = clap_config_from_laion(state)
    for name, value in TEXT.items():
        assert getattr(config.text_config, name) == value, name
    for name, value in AUDIO.items():
        assert getattr(config.audio_config, name) == value, name
    assert config.projection_dim == 16 and config.audio_config.mlp_ratio == 4.0


def test_converted_embeddings_match_the_reference(converted, reference, tokenizer_dir):
    assert sorted(p.name for p in converted.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    model = ClapModel.from_pretrained(converted, local_files_only=True).eval()
    embedder = ClapAudioEmbedder.from_pretrained(converted)
    assert embedder.sample_rate == LAION_FEATURES["sample_rate"] and embedder.clip_seconds == 10.0
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(48000 * s).astype(np.float32) * 0.1 for s in (3, 10)]
    features = extract_features(embedder.feature_extractor, clips)
    assert features.shape == (2, 1, 1001, 64)

    tokens = embedder.tokenizer(["a calm piano melody", "rock drums at 120 bpm"], padding=True, return_tensors="pt")
    audio_error = _relative_error(_audio_embeds(model, features), _audio_embeds(reference, features))
    text_error = _relative_error(_text_embeds(model, tokens), _text_embeds(reference, tokens))
    print(f"relative error of the converted embeddings: audio {audio_error:.2e}, text {text_error:.2e}")
    assert audio_error <= 1e-6 and text_error <= 1e-6
    assert model.logit_scale_a.item() == pytest.approx(2.5)

    # The toolkit's two readers of the folder: the evaluation's embedder and text.pretrained.
    expected = torch.nn.functional.normalize(_audio_embeds(reference, features), dim=-1).numpy()
    np.testing.assert_allclose(embedder.embed_audio(clips, 48000), expected, atol=1e-5)
    encoder, tokenizer = build_text_encoder(TextConfig(pretrained=str(converted)))
    with torch.no_grad():
        states = encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).text_embeds
    torch.testing.assert_close(states, _text_embeds(reference, tokens), atol=1e-6, rtol=0)
    assert len(tokenizer) == len(embedder.tokenizer)


def test_a_wrong_qkv_split_would_show(reference, tmp_path):
    """The embedding check is sensitive to the renaming: query and key swapped in one block changes the audio."""
    state = laion_state_dict(reference)
    qkv = state["audio_branch.layers.0.blocks.0.attn.qkv.weight"]
    state["audio_branch.layers.0.blocks.0.attn.qkv.weight"] = torch.cat([qkv[8:16], qkv[:8], qkv[16:]])
    write_checkpoint(tmp_path / "swapped.pt", state)
    convert_clap_checkpoint(tmp_path / "swapped.pt", tmp_path / "out")
    model = ClapModel.from_pretrained(tmp_path / "out", local_files_only=True).eval()
    features = torch.randn(1, 1, 1001, 64, generator=torch.Generator().manual_seed(0)) * 10
    error = _relative_error(_audio_embeds(model, features), _audio_embeds(reference, features))
    print(f"relative error with query and key swapped in one block: {error:.2e}")
    assert error > 1e-2


def test_without_a_tokenizer_the_folder_embeds_audio_only(checkpoint, tmp_path, caplog):
    out = convert_clap_checkpoint(checkpoint, tmp_path / "clap")
    assert not (out / "tokenizer_config.json").exists()
    assert "needs RoBERTa's tokenizer" in caplog.text
    assert ClapAudioEmbedder.from_pretrained(out).tokenizer is None
    # transformers would build an empty tokenizer from such a folder; text.pretrained refuses it instead.
    with pytest.raises(ValueError, match="has no tokenizer"):
        build_text_encoder(TextConfig(pretrained=str(out)))


def test_bad_input_is_refused_before_any_work(checkpoint, reference, tokenizer_dir, tmp_path, capsys):
    def refused(args, message):
        assert main(["convert", "clap", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert err.count("\n") == 1

    out = tmp_path / "out"
    refused([tmp_path / "missing.pt", out], "missing.pt' is not a file")
    refused([checkpoint, out, "--tokenizer", tmp_path / "nowhere"], "nowhere' is not a local folder")
    (tmp_path / "garbage.pt").write_bytes(b"not a pickle")
    refused([tmp_path / "garbage.pt", out], "cannot be read as a torch checkpoint")
    existing = tmp_path / "existing"
    existing.mkdir()
    refused([checkpoint, existing], "already exists; pass --force")
    assert not out.exists()

    # Pickled objects besides tensors: refused unless the user trusts the file.
    write_checkpoint(tmp_path / "args.pt", laion_state_dict(reference), args=argparse.Namespace(lr=1e-4))
    refused([tmp_path / "args.pt", out], r"argparse\.Namespace.*--trust-pickle")
    assert main(["convert", "clap", str(tmp_path / "args.pt"), str(out), "--trust-pickle"]) == 0
    capsys.readouterr()

    # Not a LAION-CLAP checkpoint; a fused one; a tensor with no place; a shape the config does not fit.
    torch.save({"state_dict": {"encoder.weight": torch.ones(2)}}, tmp_path / "other.pt")
    refused([tmp_path / "other.pt", tmp_path / "o1"], "not a LAION-CLAP checkpoint: no text_branch keys")
    state = laion_state_dict(reference)
    write_checkpoint(tmp_path / "fused.pt", {**state, "audio_branch.patch_embed.mel_conv2d.weight": torch.ones(1)})
    refused([tmp_path / "fused.pt", tmp_path / "o2"], "fused LAION-CLAP .*mel_conv2d")
    write_checkpoint(tmp_path / "extra.pt", {**state, "audio_branch.absolute_pos_embed": torch.ones(1)})
    refused(
        [tmp_path / "extra.pt", tmp_path / "o3"], "no place in transformers' ClapModel: audio_branch.absolute_pos_embed"
    )
    del state["audio_branch.layers.1.blocks.0.mlp.fc1.bias"]
    write_checkpoint(tmp_path / "missing_tensor.pt", state)
    refused(
        [tmp_path / "missing_tensor.pt", tmp_path / "o4"],
        r"gives no audio_model\.audio_encoder\.layers\.1\.blocks\.0\.intermediate",
    )
    config = ClapConfig(text_config={**TEXT, "intermediate_size": 128}, audio_config=AUDIO, projection_dim=16)
    config.save_pretrained(tmp_path / "config")
    refused(
        [checkpoint, tmp_path / "o5", "--config", tmp_path / "config" / "config.json"],
        r"\(96, 64\), the config wants \(128, 64\)",
    )

    # A tokenizer that is not RoBERTa's: another padding id shifts every position.
    other = train_tokenizer([], vocab_size=280)
    other.add_special_tokens({"pad_token": "<new_pad>"})
    other.save_pretrained(tmp_path / "other_tokenizer")
    refused(
        [checkpoint, tmp_path / "o6", "--tokenizer", tmp_path / "other_tokenizer"], "pad_token_id 261, the text tower 1"
    )
    big = train_tokenizer([], vocab_size=280)
    big.add_tokens([f"word{i}" for i in range(50)])
    assert len(big) > TEXT["vocab_size"]
    big.save_pretrained(tmp_path / "big_tokenizer")
    refused([checkpoint, tmp_path / "o7", "--tokenizer", tmp_path / "big_tokenizer"], "more than the text tower's 300")
    for name in ("o1", "o2", "o3", "o4", "o5", "o6", "o7"):
        assert not (tmp_path / name).exists()
    assert json.loads((out / "config.json").read_text())["projection_dim"] == 16
    assert tokenizer_dir.is_dir()
