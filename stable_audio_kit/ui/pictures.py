"""The page's pictures: a result's waveform over its log-mel spectrogram, and an input's waveform with the
seconds a request regenerates shaded.

matplotlib without pyplot (an explicit Agg canvas, as :mod:`stable_audio_kit.evaluation.plots` does), so
nothing global changes in the server process; the spectrogram is the evaluation report's
(:func:`~stable_audio_kit.evaluation.plots.log_mel_db`). PNGs are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..evaluation.plots import log_mel_db
from ..utils import atomic_path

WAVE_COLOUR = "#3b6fb6"
REGION_COLOUR = "#e8a33d"


def _figure(width: float, height: float, rows: int, **kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, 1, squeeze=False, **kwargs)[:, 0]


def _waveform(ax, audio: np.ndarray, sample_rate: int) -> None:
    """Min/max envelope of ``(channels, samples)`` (mixed down), 2000 columns at most."""
    mono = audio.mean(axis=0)
    seconds = mono.size / sample_rate
    columns = min(2000, mono.size)
    edges = np.linspace(0, mono.size, columns + 1).astype(int)
    lows = np.minimum.reduceat(mono, edges[:-1])
    highs = np.maximum.reduceat(mono, edges[:-1])
    times = edges[:-1] / sample_rate
    ax.fill_between(times, lows, highs, color=WAVE_COLOUR, linewidth=0.6, step="post")
    top = max(1e-3, float(np.abs(mono).max()))
    ax.set_xlim(0.0, seconds)
    ax.set_ylim(-top * 1.05, top * 1.05)
    ax.set_yticks([])
    ax.margins(x=0)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def result_png(audio: np.ndarray, sample_rate: int, path: str | Path, n_mels: int = 80) -> Path:
    """Write the waveform of ``(channels, samples)`` above its log-mel spectrogram (-90..0 dB re a
    full-scale sine, the evaluation report's scale) to ``path``."""
    fig, (wave_ax, spec_ax) = _figure(8.0, 2.8, 2, sharex=True, height_ratios=(1, 2))
    seconds = audio.shape[-1] / sample_rate
    _waveform(wave_ax, audio, sample_rate)
    wave_ax.set_ylabel("waveform")
    mel_db, _ = log_mel_db(audio, sample_rate, n_mels)
    spec_ax.imshow(
        mel_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-90.0,
        vmax=0.0,
        extent=(0.0, seconds, 0.0, float(n_mels)),
        interpolation="nearest",
    )
    spec_ax.set_yticks([])
    spec_ax.set_ylabel("mel spectrogram")
    spec_ax.set_xlabel("seconds")
    return _save(fig, path)


def input_png(
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    regions: Sequence[tuple[float, float]] = (),
    seconds: float | None = None,
    title: str = "",
) -> Path:
    """Write the waveform of an input ``(channels, samples)`` with ``regions`` (seconds) shaded, on an axis
    ``seconds`` long (default: the input's length; longer for a continuation) to ``path``."""
    fig, (ax,) = _figure(8.0, 1.8, 1)
    _waveform(ax, audio, sample_rate)
    end = max(audio.shape[-1] / sample_rate, seconds or 0.0, *(b for _, b in regions))
    for start, stop in regions:
        ax.axvspan(start, stop, color=REGION_COLOUR, alpha=0.35, linewidth=0)
    ax.set_xlim(0.0, end)
    ax.set_xlabel("seconds")
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return _save(fig, path)
