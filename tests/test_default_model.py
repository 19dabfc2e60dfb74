"""The bundled default model: `from_pretrained()` and `sak generate` with no --model."""

import numpy as np
import pytest
import torch

from stable_audio_kit import StableAudioKitPipeline
from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR


@pytest.mark.skipif(DEFAULT_MODEL_DIR.exists(), reason="the default model is installed")
def test_missing_default_model_is_a_clear_error():
    with pytest.raises(ValueError, match="bundled default model is not installed"):
        StableAudioKitPipeline.from_pretrained()


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_default_model_loads_offline_and_generates_exact_length(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    pipe = StableAudioKitPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    audio = pipe(
        "a calm piano melody in C major at 80 bpm",
        seconds_total=1.37,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
    ).audios
    assert audio.shape == (1, pipe.audio_channels, round(1.37 * pipe.sample_rate))
    assert np.isfinite(audio).all()


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_sak_generate_without_model_writes_the_exact_length(tmp_path):
    import soundfile as sf

    from stable_audio_kit.cli import main

    out = tmp_path / "out.wav"
    args = ["generate", "a rock drum groove at 120 bpm", "--seconds", "2.5", "--steps", "3", "-o", str(out)]
    assert main(args) == 0
    info = sf.info(out)
    assert info.frames == round(2.5 * info.samplerate)


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_default_model_has_its_card_and_evaluation():
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert "## Measured scores" in card and "## Training" in card
    assert (DEFAULT_MODEL_DIR / "evaluation.md").is_file()
    size_mb = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()) / 2**20
    assert size_mb <= 60


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
@pytest.mark.parametrize("kwargs, bpm", [({}, 100.0), ({"bpm": 140.0}, 140.0)])
def test_default_model_plays_at_the_requested_tempo(kwargs, bpm):
    """The bundled model's beat grid: the prompt's tempo, or bpm= over it (any seed works; 10 steps suffice)."""
    pytest.importorskip("librosa")
    from stable_audio_kit.evaluation import metrics

    pipe = StableAudioKitPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    assert "beat_grid" in pipe.projection.routes["input_channels"]
    audio = pipe(
        "a rock drum groove at 100 bpm",
        seconds_total=6.0,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    ).audios[0]
    assert abs(metrics.estimate_tempo(audio.mean(axis=0), pipe.sample_rate) / bpm - 1) <= 0.05


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_default_model_reads_the_key_of_the_prompt():
    """The bundled model's key input is wired and trained: the key named in the prompt, or key= over it,
    changes what is generated from the same noise, and the same key gives the same audio."""
    pipe = StableAudioKitPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    assert pipe.projection.routes["film"] == ["key"] and pipe.unet.film_embedding.weight.abs().max() > 0

    def make(prompt, **kwargs):
        generator = torch.Generator().manual_seed(0)
        return pipe(prompt, seconds_total=2.0, num_inference_steps=4, generator=generator, **kwargs).audios[0]

    c_major = make("a calm piano melody in C major at 80 bpm")
    assert np.array_equal(c_major, make("a calm piano melody in C major at 80 bpm", key="C major"))
    assert not np.allclose(c_major, make("a calm piano melody in C major at 80 bpm", key="F# minor"), atol=1e-4)


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_default_model_ships_the_sampling_the_bundle_tool_applies():
    # tools/bundle_demo.py writes these settings into a new bundle; the README's Speed section and the card cite them.
    import importlib.util
    from pathlib import Path

    from stable_audio_kit.sampling import DEFAULT_STEPS

    spec = importlib.util.spec_from_file_location("bundle_demo", Path(__file__).parents[1] / "tools" / "bundle_demo.py")
    bundle_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundle_demo)
    pipe = StableAudioKitPipeline.from_pretrained()
    assert bundle_demo.BUNDLED_SAMPLING == {"scheduler": "unipc", "griffin_lim_iters": 16}
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert pipe.vae.decoder.griffin_lim_iters == pipe.vae.config.griffin_lim_iters == 16
    assert DEFAULT_STEPS == 15
    assert bundle_demo.SHIPPED_SAMPLING_NOTE in (DEFAULT_MODEL_DIR / "README.md").read_text()


@pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")
def test_the_bundled_student_names_the_bundled_unet_as_its_teacher():
    """unet_distilled/teacher.json records the bundled unet/, byte for byte and tensor for tensor."""
    import json

    from stable_audio_kit import UNet1DConditionModel
    from stable_audio_kit.students import file_sha256, student_is_stale
    from stable_audio_kit.lora import weights_sha256

    record = json.loads((DEFAULT_MODEL_DIR / "unet_distilled" / "teacher.json").read_text())
    weights = DEFAULT_MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert record["files"] == {weights.name: {"sha256": file_sha256(weights), "bytes": weights.stat().st_size}}
    assert record["unet_sha256"] == weights_sha256(UNet1DConditionModel.from_pretrained(DEFAULT_MODEL_DIR / "unet"))
    assert not student_is_stale(DEFAULT_MODEL_DIR)
