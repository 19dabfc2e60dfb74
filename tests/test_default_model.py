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
