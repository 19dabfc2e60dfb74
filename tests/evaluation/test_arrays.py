"""Malformed audio is refused with a ValueError naming it, by every metric and plot."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from stable_audio_kit.evaluation import metrics, plots

from .helpers import SR


@pytest.mark.parametrize(
    ("audio", "sample_rate", "message"),
    [
        (np.zeros(0, np.float32), SR, "empty"),
        (np.array([0.0, math.nan, 0.0]), SR, "NaN"),
        (np.zeros(SR), 0, "sample_rate"),
        (np.zeros(SR), -SR, "sample_rate"),
        (np.zeros(SR), math.nan, "sample_rate"),
        (np.zeros((SR, 2)), SR, r"\(channels, samples\)"),
        (np.zeros((1, 2, SR)), SR, "shape"),
    ],
)
def test_bad_audio_raises_value_error(audio, sample_rate, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        metrics.silence_onset(audio, sample_rate)
    with pytest.raises(ValueError, match=message):
        plots.spectrogram_grid_png([audio], sample_rate, ["t"], tmp_path / "grid.png")
    # Validation runs before librosa is used, but the import comes first.
    if importlib.util.find_spec("librosa") is not None:
        for fn in (metrics.estimate_tempo, metrics.percussive_ratio, metrics.median_f0, metrics.estimate_key):
            with pytest.raises(ValueError, match=message):
                fn(audio, sample_rate)
