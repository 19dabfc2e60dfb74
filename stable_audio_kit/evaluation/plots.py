"""Plots for ``sak evaluate``: a grid of log-mel spectrograms and the duration-adherence scatter.

numpy and matplotlib only (no pyplot, so no global backend switch), so they work without the optional
librosa. PNGs are written atomically (temp file beside the path, then rename).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..utils import atomic_path
from .arrays import as_channels, as_float_vector, as_mono, check_sample_rate, frame_size
from .metrics import duration_adherence

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def log_mel_db(audio: np.ndarray, sample_rate: float, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_mels, frames)`` mel power in dB re a full-scale sine, and the band centre frequencies.

    numpy only, so the plots work without the optional librosa.
    """
    y = as_mono(audio).astype(np.float64)
    n_fft = frame_size(sample_rate)
    hop = n_fft // 4
    y = np.pad(y, (n_fft // 2, n_fft // 2))
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    window = np.hanning(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * window
    # Scaling by (sum(w) / 2)^2 puts a full-scale sine at 0 dB.
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 / (window.sum() / 2) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)

    def to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10.0 ** (np.linspace(0.0, to_mel(np.array(sample_rate / 2)), n_mels + 2) / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    mel = weights @ power.T
    return 10.0 * np.log10(np.maximum(mel, 1e-12)), edges[1:-1]


def _check_png_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    return path


def _save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def spectrogram_grid_png(
    audios: Sequence[np.ndarray],
    sample_rate: float,
    titles: Sequence[str],
    path: str | Path,
    cols: int = 3,
    n_mels: int = 128,
) -> Path:
    """Write a PNG grid of log-mel spectrograms, one panel per clip, titled with its prompt.

    All panels share one colour scale (-90..0 dB re a full-scale sine), so loudness and trailing
    silence compare across clips. Written atomically (temp file beside ``path``, then rename).

    Args:
        audios: clips, each ``(samples,)`` or ``(channels, samples)``.
        sample_rate: samples per second, > 0, shared by all clips.
        titles: one title per clip (wrapped to three lines).
        path: output file, ending in ``.png``.
        cols: panels per row.
        n_mels: mel bands per panel.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = _check_png_path(path)
    sr = check_sample_rate(sample_rate)
    audios, titles = list(audios), list(titles)
    if not audios:
        raise ValueError("audios is empty")
    if len(titles) != len(audios):
        raise ValueError(f"need one title per clip, got {len(titles)} titles for {len(audios)} clips")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be an integer >= 1, got {cols!r}")
    if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 2:
        raise ValueError(f"n_mels must be an integer >= 2, got {n_mels!r}")
    specs = [log_mel_db(as_channels(a, f"audios[{i}]"), sr, n_mels) for i, a in enumerate(audios)]

    cols = min(cols, len(audios))
    rows = math.ceil(len(audios) / cols)
    # A Figure with an explicit Agg canvas: no pyplot, so no global backend switch or figure leak.
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for i, ax in enumerate(axes.flat):
        if i >= len(specs):
            ax.set_axis_off()
            continue
        mel_db, centres = specs[i]
        seconds = np.asarray(audios[i]).shape[-1] / sr
        image = ax.imshow(
            mel_db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-90.0,
            vmax=0.0,
            extent=(0.0, seconds, 0.0, float(n_mels)),
            interpolation="nearest",
        )
        ticks = [f for f in (100, 300, 1000, 3000, 10000) if f < sr / 2]
        labels = [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks]
        ax.set_yticks(np.interp(ticks, centres, np.arange(n_mels) + 0.5), labels)
        ax.set_xlabel("seconds")
        ax.set_ylabel("Hz (mel)")
        ax.set_title("\n".join(textwrap.wrap(str(titles[i]), 40, max_lines=3, placeholder=" …")), fontsize=9)
    fig.colorbar(image, ax=axes, label="dB re full-scale sine", shrink=0.8)
    _save_figure(fig, path)
    return path


def duration_plot_png(
    requested: Sequence[float] | np.ndarray,
    measured: Sequence[float] | np.ndarray,
    path: str | Path,
    tolerance: float = 0.5,
) -> Path:
    """Write a scatter PNG of measured silence onset vs requested ``seconds_total``.

    Draws the ideal ``y = x`` line and the ``±tolerance`` band; the title reports how many clips
    fall inside it. Written atomically.

    Args:
        requested: ``(N,)`` requested ``seconds_total`` in seconds.
        measured: ``(N,)`` measured silence onsets in seconds (``silence_onset``).
        path: output file, ending in ``.png``.
        tolerance: half-width of the band in seconds.

    Returns:
        ``path`` as a ``Path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = _check_png_path(path)
    req = as_float_vector(requested, "requested")
    meas = as_float_vector(measured, "measured")
    if req.shape != meas.shape:
        raise ValueError(f"requested and measured must have the same length, got {req.size} and {meas.size}")
    summary = duration_adherence(meas, req, tolerance)

    top = max(float(req.max()), float(meas.max()), 1e-3) * 1.05 + tolerance
    line = np.array([0.0, top])
    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.fill_between(line, line - tolerance, line + tolerance, color="tab:green", alpha=0.2, label=f"±{tolerance:g} s")
    ax.plot(line, line, color="tab:green", linewidth=1.0, label="measured = requested")
    ax.scatter(req, meas, s=18, color="tab:blue", zorder=3, label="clips")
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("requested seconds_total (s)")
    ax.set_ylabel("measured silence onset (s)")
    within = round(summary["within_tolerance"] * summary["count"])
    ax.set_title(
        f"Duration adherence: {within}/{summary['count']} within ±{tolerance:g} s, "
        f"MAE {summary['mean_abs_error']:.2f} s",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    _save_figure(fig, path)
    return path
