"""LoRA adapters on the pipeline, diffusers' way: ``load_lora_weights`` (several at once, each at its scale),
``set_adapters``, ``unload_lora_weights``, a merged copy, ``sak generate --lora``, and the refusal of an adapter
made for other base weights. Adapters here are made with random weights; tests/train/test_lora.py trains them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_kit import StableAudioKitPipeline
from stable_audio_kit.cli import main
from stable_audio_kit.lora import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoraAdapter,
    LoraSpec,
    add_adapters,
    merge,
    read_config,
    weights_sha256,
)


def run(pipe, seed=0):
    """float32, so a merged model and its adapters can be compared to 1e-5 (bfloat16 would round them apart)."""
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    out = pipe("a tone", seconds_total=0.5, num_inference_steps=3, generator=generator, precision="fp32")
    return torch.from_numpy(np.asarray(out.audios))


def make_adapter(model_dir: Path, out: Path, seed: int, spec: LoraSpec | None = None, **info) -> Path:
    """An adapter of the model in ``model_dir`` with random (non-zero) weights, saved to ``out``."""
    pipe = StableAudioKitPipeline.from_pretrained(model_dir)
    spec = spec or LoraSpec(rank=2)
    components = {"unet": pipe.unet, "projection": pipe.projection}
    adapted = add_adapters(components, spec)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in [*pipe.unet.named_parameters(), *pipe.projection.named_parameters()]:
            if "lora_" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    LoraAdapter.from_modules(components, spec, adapted, **info).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    with_projection = LoraSpec(rank=3, alpha=6.0, projection_targets=["time_positional_embedding.1"])
    return {
        "a": make_adapter(tiny_model_dir, root / "a", 1),
        "b": make_adapter(tiny_model_dir, root / "b", 2, with_projection),
    }


@pytest.fixture
def pipe(tiny_model_dir) -> StableAudioKitPipeline:
    return StableAudioKitPipeline.from_pretrained(tiny_model_dir)


def test_adapter_folder_is_small_and_names_its_base(tiny_model_dir, adapters, pipe):
    files = sorted(p.name for p in adapters["b"].iterdir())
    assert files == [CONFIG_NAME, WEIGHTS_NAME]
    config = read_config(adapters["b"])
    assert (config["rank"], config["alpha"]) == (3, 6.0)
    assert config["components"]["unet"]["base_sha256"] == weights_sha256(pipe.unet)
    assert config["components"]["projection"]["base_sha256"] == weights_sha256(pipe.projection)
    assert config["components"]["projection"]["modules"] == [
        "embedders.seconds_start.time_positional_embedding.1",
        "embedders.seconds_total.time_positional_embedding.1",
    ]
    assert "projection" not in read_config(adapters["a"])["components"]
    adapter_bytes = (adapters["a"] / WEIGHTS_NAME).stat().st_size
    unet_bytes = (tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert adapter_bytes < unet_bytes / 2


def test_hash_ignores_loaded_adapters_and_sees_any_weight_change(pipe, adapters):
    before = weights_sha256(pipe.unet)
    pipe.load_lora_weights(adapters["a"])
    assert weights_sha256(pipe.unet) == before, "the base weights under the adapter are what is hashed"
    other = copy.deepcopy(pipe.unet)
    other.unload_lora()
    with torch.no_grad():
        other.conv_out.bias[0] += 1e-6
    assert weights_sha256(other) != before


def test_load_scale_set_adapters_and_unload(pipe, adapters):
    base = run(pipe)
    name = pipe.load_lora_weights(adapters["a"], adapter_name="style", scale=1.0)
    assert name == "style"
    full = run(pipe)
    assert (full - base).abs().max() > 1e-3, "the adapter changes the output"
    pipe.set_adapters(["style"], weights=[0.0])
    torch.testing.assert_close(run(pipe), base, rtol=0, atol=0)
    pipe.set_adapters("style", 0.5)
    half = run(pipe)
    assert 1e-4 < (half - base).abs().max() < (full - base).abs().max()
    pipe.set_adapters(["style"], adapter_weights=[1.0])  # diffusers' pipelines call them adapter_weights
    torch.testing.assert_close(run(pipe), full)
    pipe.unload_lora_weights()
    torch.testing.assert_close(run(pipe), base, rtol=0, atol=1e-6)
    assert not any("lora" in name for name, _ in pipe.unet.named_parameters())
    # Loaded again after an unload, it gives what it gave.
    pipe.load_lora_weights(adapters["a"], scale=0.5)
    torch.testing.assert_close(run(pipe), half)


def test_two_adapters_at_once(pipe, adapters):
    pipe.load_lora_weights(adapters["a"], adapter_name="a")
    only_a = run(pipe)
    pipe.load_lora_weights(adapters["b"], adapter_name="b", scale=0.7)  # a stays active beside it
    both = run(pipe)
    assert (both - only_a).abs().max() > 1e-3
    pipe.set_adapters(["a", "b"], weights=[1.0, 0.0])
    torch.testing.assert_close(run(pipe), only_a)
    pipe.set_adapters(["b"], weights=[0.7])  # a inactive, b alone (on the U-Net and the projection)
    only_b = run(pipe)
    pipe.set_adapters(["a", "b"], weights=[1.0, 0.7])
    torch.testing.assert_close(run(pipe), both)
    assert (only_b - both).abs().max() > 1e-3

    with pytest.raises(ValueError, match=r"already loaded"):
        pipe.load_lora_weights(adapters["a"], adapter_name="a")
    with pytest.raises(ValueError, match=r"no adapter named \['c'\]; loaded: \['a', 'b'\]"):
        pipe.set_adapters(["a", "c"])
    with pytest.raises(ValueError, match=r"2 adapter\(s\) but 1 weight"):
        pipe.set_adapters(["a", "b"], weights=[1.0])
    with pytest.raises(ValueError, match="finite"):
        pipe.set_adapters(["a"], weights=[float("nan")])


def test_merge_gives_what_the_loaded_adapters_give(pipe, adapters, tiny_model_dir, tmp_path):
    pipe.load_lora_weights(adapters["a"], scale=0.8)
    pipe.load_lora_weights(adapters["b"], scale=0.5)
    loaded = run(pipe)
    merge(pipe)
    assert not any("lora" in name for name, _ in pipe.unet.named_parameters())
    torch.testing.assert_close(run(pipe), loaded, rtol=0, atol=1e-5)
    pipe.save_pretrained(tmp_path / "merged")
    reloaded = StableAudioKitPipeline.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(run(reloaded), loaded, rtol=0, atol=1e-5)


def test_an_adapter_for_another_base_is_refused(pipe, adapters, tiny_model_dir, tmp_path):
    other_dir = tmp_path / "other"
    other = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        other.unet.conv_in.weight.mul_(1.01)
    other.save_pretrained(other_dir)
    foreign = make_adapter(other_dir, tmp_path / "foreign", 3, base_model=str(other_dir))
    base = run(pipe)
    expected, actual = read_config(foreign)["components"]["unet"]["base_sha256"], weights_sha256(pipe.unet)
    with pytest.raises(ValueError, match=rf"trained on another base model .*{expected}.*{actual}") as err:
        pipe.load_lora_weights(foreign)
    assert str(other_dir) in str(err.value)
    # Nothing was loaded, and the right adapter still loads as the first one.
    torch.testing.assert_close(run(pipe), base, rtol=0, atol=0)
    assert pipe.load_lora_weights(adapters["a"]) == "default_0"


def test_not_an_adapter_folder(pipe, tmp_path):
    with pytest.raises(ValueError, match="is not a LoRA adapter folder"):
        pipe.load_lora_weights(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"format": "something else"}))
    (tmp_path / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(ValueError, match="is not a stable-audio-kit LoRA config"):
        pipe.load_lora_weights(tmp_path)


def test_generate_with_lora(tiny_model_dir, adapters, tmp_path, capsys):
    common = ["a tone", "--model", str(tiny_model_dir), "--seconds", "0.5", "--steps", "3", "--seed", "5"]
    common += ["--no-normalize"]
    for name, extra in {
        "base": [],
        "half": ["--lora", f"{adapters['a']}:0.5"],
        "full": ["--lora", str(adapters["a"])],
        "two": ["--lora", str(adapters["a"]), "--lora", f"{adapters['b']}:0.7"],
    }.items():
        assert main(["generate", *common, *extra, "-o", str(tmp_path / f"{name}.wav")]) == 0
    audio = {name: sf.read(tmp_path / f"{name}.wav")[0] for name in ("base", "half", "full", "two")}
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    pipe.load_lora_weights(adapters["a"], scale=0.5)
    expected = pipe(
        "a tone", seconds_total=0.5, num_inference_steps=3, generator=torch.Generator().manual_seed(5)
    ).audios[0]
    np.testing.assert_allclose(audio["half"], expected[0], atol=1e-6)
    for a, b in [("base", "half"), ("half", "full"), ("full", "two")]:
        assert np.abs(audio[a] - audio[b]).max() > 1e-4, (a, b)

    capsys.readouterr()
    assert main(["generate", *common, "--lora", str(tmp_path / "missing"), "-o", str(tmp_path / "x.wav")]) == 2
    assert "--lora: " in capsys.readouterr().err
    assert main(["generate", *common, "--lora", f"{adapters['a']}:inf", "-o", str(tmp_path / "x.wav")]) == 2
    assert "the scale must be finite" in capsys.readouterr().err
    foreign_base = tmp_path / "other"
    other = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        other.unet.conv_out.bias.add_(0.1)
    other.save_pretrained(foreign_base)
    assert main(["generate", *common[:1], "--model", str(foreign_base), *common[3:], "--lora", str(adapters["a"])]) == 2
    err = capsys.readouterr().err
    assert "trained on another base model" in err and "sha256" in err
    assert not (tmp_path / "x.wav").exists()
