"""The spectrogram grid and the duration plot are PNGs written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from stable_audio_kit.evaluation import plots

from .helpers import PNG_MAGIC, SR, burst_grid, harmonic_tone


def test_spectrogram_grid_png(tmp_path):
    clips = [harmonic_tone(60, 1.0), np.stack([burst_grid(120, 1.5)] * 2), np.zeros(SR // 2, np.float32)]
    titles = ["a warm piano chord " * 6, "drums", "silence"]
    path = plots.spectrogram_grid_png(clips, SR, titles, tmp_path / "grid.png", cols=2)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left behind
    with pytest.raises(ValueError, match="title"):
        plots.spectrogram_grid_png(clips, SR, titles[:2], tmp_path / "x.png")
    with pytest.raises(ValueError, match=".png"):
        plots.spectrogram_grid_png(clips, SR, titles, tmp_path / "grid.jpg")


def test_duration_plot_png(tmp_path):
    path = plots.duration_plot_png([5.0, 10.0, 30.0], [5.1, 11.0, 29.8], tmp_path / "plots" / "durations.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="same length"):
        plots.duration_plot_png([5.0, 10.0], [5.0], tmp_path / "d.png")
