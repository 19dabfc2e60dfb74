"""The page's pictures: a result's waveform over its log-mel spectrogram, with what its workflow kept and made
marked (:class:`Marks`), and an input's waveform with the seconds a request regenerates shaded, which says where
its seconds lie in its pixels (:class:`TimeAxis`) so a click on it is a time.

matplotlib without pyplot (an explicit Agg canvas, as :mod:`stable_audio_kit.evaluation.plots` does), so
nothing global changes in the server process; the spectrogram is the evaluation report's
(:func:`~stable_audio_kit.evaluation.plots.log_mel_db`). PNGs are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation.plots import log_mel_db
from ..utils import atomic_path

WAVE_COLOUR = "#3b6fb6"
REGION_COLOUR = "#e8a33d"
MARK_COLOUR = "#333333"
# A loop's picture goes on past its end into a faded copy of its first tenth, so the wrap is seen as it is heard.
LOOP_HEAD = 0.1
DPI = 100


@dataclass(frozen=True)
class Marks:
    """What a result's picture shows besides its sound: the ``(start, end)`` seconds its workflow regenerated
    (the rest is the input, kept as is), the second a continuation's input ends (``join``), and whether the clip
    loops. The default marks nothing: text-to-audio, and audio-to-audio, which regenerates every second."""

    regenerated: tuple[tuple[float, float], ...] = ()
    join: float | None = None
    loop: bool = False


NO_MARKS = Marks()


def spans(marks: Marks, seconds: float) -> list[tuple[float, float, str]]:
    """The ``(start, end, label)`` spans that tile a ``seconds``-long result, in order: ``"input"`` for what was
    kept, ``"regenerated"`` (``"generated"`` after a continuation's join) for what the model made, the regions
    clipped to the clip and merged where they touch. Empty without regions: text-to-audio, audio-to-audio, a loop."""
    made = "generated" if marks.join is not None else "regenerated"
    merged: list[list[float]] = []
    for start, end in sorted(marks.regenerated):
        start, end = max(0.0, float(start)), min(seconds, float(end))
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return []
    out, at = [], 0.0
    for start, end in merged:
        if start > at:
            out.append((at, start, "input"))
        out.append((start, end, made))
        at = end
    if at < seconds:
        out.append((at, seconds, "input"))
    return out


def _figure(width: float, height: float, rows: int, **kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, 1, squeeze=False, **kwargs)[:, 0]


def _envelope(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, lows, highs)``: the min/max envelope of ``(samples,)``, 2000 columns at most."""
    columns = min(2000, mono.size)
    edges = np.linspace(0, mono.size, columns + 1).astype(int)
    return edges[:-1] / sample_rate, np.minimum.reduceat(mono, edges[:-1]), np.maximum.reduceat(mono, edges[:-1])


def _waveform(ax, audio: np.ndarray, sample_rate: int) -> None:
    """Min/max envelope of ``(channels, samples)`` (mixed down), 2000 columns at most."""
    mono = audio.mean(axis=0)
    seconds = mono.size / sample_rate
    times, lows, highs = _envelope(mono, sample_rate)
    ax.fill_between(times, lows, highs, color=WAVE_COLOUR, linewidth=0.6, step="post")
    top = max(1e-3, float(np.abs(mono).max()))
    ax.set_xlim(0.0, seconds)
    ax.set_ylim(-top * 1.05, top * 1.05)
    ax.set_yticks([])
    ax.margins(x=0)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def result_figure(audio: np.ndarray, sample_rate: int, n_mels: int = 80, marks: Marks = NO_MARKS):
    """The figure :func:`result_png` saves: the waveform of ``(channels, samples)`` above its log-mel spectrogram
    (-90..0 dB re a full-scale sine, the evaluation report's scale), with ``marks`` drawn on both."""
    fig, (wave_ax, spec_ax) = _figure(8.0, 2.8, 2, sharex=True, height_ratios=(1, 2))
    seconds = audio.shape[-1] / sample_rate
    _waveform(wave_ax, audio, sample_rate)
    wave_ax.set_ylabel("waveform")
    mel_db, _ = log_mel_db(audio, sample_rate, n_mels)
    spectrogram = dict(origin="lower", aspect="auto", cmap="magma", vmin=-90.0, vmax=0.0, interpolation="nearest")
    spec_ax.imshow(mel_db, extent=(0.0, seconds, 0.0, float(n_mels)), **spectrogram)
    spec_ax.set_yticks([])
    spec_ax.set_ylabel("mel spectrogram")
    spec_ax.set_xlabel("seconds")
    _mark_regions(wave_ax, spec_ax, marks, seconds)
    if marks.loop:
        _mark_loop(wave_ax, spec_ax, audio, sample_rate, mel_db, spectrogram)
    return fig


def _mark_regions(wave_ax, spec_ax, marks: Marks, seconds: float) -> None:
    """Shade what the model made on both axes, with a line at each edge; name the parts: ``input`` and
    ``generated`` either side of a continuation's join line, else a legend."""
    tiles = spans(marks, seconds)
    for start, end, label in tiles:
        if label == "input":
            continue
        # Behind the waveform, which a tint over it would turn grey; over the spectrogram, whose colours it tints.
        wave_ax.axvspan(start, end, color=REGION_COLOUR, alpha=0.35, linewidth=0, zorder=0, gid=label)
        spec_ax.axvspan(start, end, color=REGION_COLOUR, alpha=0.25, linewidth=0, gid=label)
        for edge in (start, end):
            if 0.0 < edge < seconds and edge != marks.join:
                for ax in (wave_ax, spec_ax):
                    ax.axvline(edge, color=REGION_COLOUR, linewidth=0.8)
    if not tiles:
        return
    if marks.join is not None and 0.0 < marks.join < seconds:
        for ax in (wave_ax, spec_ax):
            ax.axvline(marks.join, color=MARK_COLOUR, linewidth=1.0, gid="join")
        label = dict(y=0.96, transform=wave_ax.get_xaxis_transform(), fontsize=7, va="top", clip_on=True)
        box = dict(boxstyle="square,pad=0.15", facecolor="white", alpha=0.75, linewidth=0)
        wave_ax.text(marks.join - 0.01 * seconds, s="input", ha="right", bbox=box, **label)
        wave_ax.text(marks.join + 0.01 * seconds, s="generated", ha="left", bbox=box, **label)
        return
    from matplotlib.patches import Patch

    shown = {label for _, _, label in tiles}
    handles = [Patch(facecolor=REGION_COLOUR, alpha=0.6, linewidth=0, label=made) for made in sorted(shown - {"input"})]
    if "input" in shown:
        handles.insert(0, Patch(facecolor="white", edgecolor="#999999", linewidth=0.6, label="input, kept"))
    wave_ax.legend(
        handles=handles, loc="upper right", ncols=2, fontsize=7, framealpha=0.8, borderpad=0.3, handlelength=1.2
    )


def _mark_loop(wave_ax, spec_ax, audio: np.ndarray, sample_rate: int, mel_db: np.ndarray, spectrogram: dict) -> None:
    """Draw the first :data:`LOOP_HEAD` of the clip again, faded, after a dashed line at its end: where it wraps.
    The seconds past the end are left unnumbered."""
    mono = audio.mean(axis=0)
    seconds = mono.size / sample_rate
    times, lows, highs = _envelope(mono, sample_rate)
    head = max(1, round(mel_db.shape[1] * LOOP_HEAD))
    head_seconds = head * seconds / mel_db.shape[1]
    keep = times < head_seconds
    wave_ax.fill_between(
        times[keep] + seconds, lows[keep], highs[keep], color=WAVE_COLOUR, alpha=0.3, linewidth=0.6, step="post"
    )
    spec_ax.imshow(
        mel_db[:, :head], extent=(seconds, seconds + head_seconds, *spec_ax.get_ylim()), alpha=0.4, **spectrogram
    )
    for ax in (wave_ax, spec_ax):
        ax.axvline(seconds, color=MARK_COLOUR, linewidth=1.0, linestyle=(0, (3, 2)), gid="loop")
    wave_ax.text(
        seconds + 0.01 * seconds, 0.96, "\u21bb loop", transform=wave_ax.get_xaxis_transform(), fontsize=7, va="top"
    )
    wave_ax.set_xlim(0.0, seconds + head_seconds)
    spec_ax.set_xticks([tick for tick in spec_ax.get_xticks() if 0.0 <= tick <= seconds * (1 + 1e-9)])


def result_png(
    audio: np.ndarray, sample_rate: int, path: str | Path, n_mels: int = 80, marks: Marks = NO_MARKS
) -> Path:
    """Write :func:`result_figure` of ``(channels, samples)``, with ``marks``, to ``path``."""
    return _save(result_figure(audio, sample_rate, n_mels, marks), path)


@dataclass(frozen=True)
class TimeAxis:
    """Where a picture's time axis lies in its PNG, in pixels from the image's top-left corner (as a browser
    reports a click on it, Gradio's ``SelectData.index``): the axes span ``left..right`` across, which is
    ``start..end`` seconds, and ``top..bottom`` down."""

    left: float
    right: float
    top: float
    bottom: float
    start: float
    end: float

    def seconds_at(self, x: float, y: float) -> float | None:
        """The second under pixel ``(x, y)``, or ``None`` outside the axes."""
        if not (self.left <= x <= self.right and self.top <= y <= self.bottom):
            return None
        return self.start + (x - self.left) / (self.right - self.left) * (self.end - self.start)

    def x_at(self, seconds: float) -> float:
        """The pixel column of ``seconds``: the inverse of :meth:`seconds_at` across."""
        return self.left + (seconds - self.start) / (self.end - self.start) * (self.right - self.left)


def _time_axis(fig, ax) -> TimeAxis:
    """``ax``'s :class:`TimeAxis` in the PNG :func:`_save` wrote of ``fig``: its position as the save laid it
    out (figure fractions, y up) times the figure's size in pixels at the saved dpi."""
    width, height = fig.get_size_inches() * DPI
    box = ax.get_position()
    start, end = ax.get_xlim()
    return TimeAxis(
        left=float(box.x0 * width),
        right=float(box.x1 * width),
        top=float((1.0 - box.y1) * height),
        bottom=float((1.0 - box.y0) * height),
        start=float(start),
        end=float(end),
    )


def input_png(
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    regions: Sequence[tuple[float, float]] = (),
    seconds: float | None = None,
    title: str = "",
    pending: float | None = None,
) -> TimeAxis:
    """Write the waveform of an input ``(channels, samples)`` with ``regions`` (seconds) shaded, on an axis
    ``seconds`` long (default: the input's length; longer for a continuation), and a dashed line at a ``pending``
    region's start, to ``path``. Returns where its seconds lie in the PNG's pixels."""
    fig, (ax,) = _figure(8.0, 1.8, 1)
    _waveform(ax, audio, sample_rate)
    end = max(audio.shape[-1] / sample_rate, seconds or 0.0, *(b for _, b in regions))
    for start, stop in regions:
        ax.axvspan(start, stop, color=REGION_COLOUR, alpha=0.35, linewidth=0)
    if pending is not None:
        ax.axvline(pending, color=MARK_COLOUR, linewidth=1.0, linestyle=(0, (3, 2)), gid="pending")
    ax.set_xlim(0.0, end)
    ax.set_xlabel("seconds")
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    _save(fig, path)
    return _time_axis(fig, ax)
