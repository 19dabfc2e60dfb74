"""A result's picture shows what its workflow kept and what it made: inpainting's regenerated seconds shaded on the
waveform and the spectrogram, a continuation's join, a loop's wrap; a text-to-audio picture marks nothing."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from stable_audio_kit.ui.pictures import Marks, input_png, result_figure, result_png, spans

RATE = 8000


def clip(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 330 * t))[None].astype(np.float32)


def shaded(ax, gid: str) -> list[tuple[float, float]]:
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches if p.get_gid() == gid]


def lines_at(ax, gid: str) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines if line.get_gid() == gid]


def texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def test_spans_tile_the_clip_into_input_and_what_was_made():
    inpaint = Marks(regenerated=((0.6, 0.7), (0.2, 0.4), (0.3, 0.5)))
    assert spans(inpaint, 1.0) == [
        (0.0, 0.2, "input"),
        (0.2, 0.5, "regenerated"),
        (0.5, 0.6, "input"),
        (0.6, 0.7, "regenerated"),
        (0.7, 1.0, "input"),
    ]
    assert spans(Marks(regenerated=((0.5, 2.0),)), 1.0) == [(0.0, 0.5, "input"), (0.5, 1.0, "regenerated")]
    assert spans(Marks(regenerated=((0.4, 1.0),), join=0.4), 1.0) == [(0.0, 0.4, "input"), (0.4, 1.0, "generated")]
    assert spans(Marks(), 1.0) == spans(Marks(loop=True), 1.0) == []


def test_an_inpainting_picture_shades_the_regions_at_their_seconds_on_both_axes():
    fig = result_figure(clip(), RATE, marks=Marks(regenerated=((0.2, 0.4), (0.6, 0.7))))
    wave_ax, spec_ax = fig.axes
    for ax in (wave_ax, spec_ax):
        np.testing.assert_allclose(shaded(ax, "regenerated"), [(0.2, 0.4), (0.6, 0.7)])
    assert wave_ax.get_xlim() == (0.0, 1.0)
    assert [t.get_text() for t in wave_ax.get_legend().get_texts()] == ["input, kept", "regenerated"]


def test_a_continuation_picture_marks_the_input_the_join_and_what_was_generated():
    fig = result_figure(clip(), RATE, marks=Marks(regenerated=((0.4, 1.0),), join=0.4))
    wave_ax, spec_ax = fig.axes
    for ax in (wave_ax, spec_ax):
        assert lines_at(ax, "join") == [0.4]
        np.testing.assert_allclose(shaded(ax, "generated"), [(0.4, 1.0)])
    assert texts(wave_ax) == ["input", "generated"]
    assert wave_ax.get_legend() is None


def test_a_loop_picture_draws_its_start_again_after_the_wrap():
    fig = result_figure(clip(), RATE, marks=Marks(loop=True))
    wave_ax, spec_ax = fig.axes
    for ax in (wave_ax, spec_ax):
        assert lines_at(ax, "loop") == [1.0]
    start, end = wave_ax.get_xlim()
    assert start == 0.0 and end == pytest.approx(1.1, abs=0.02)
    assert len(spec_ax.images) == 2 and spec_ax.images[1].get_extent()[0] == 1.0
    assert not shaded(wave_ax, "regenerated")


def test_a_text_to_audio_picture_marks_nothing():
    fig = result_figure(clip(), RATE)
    for ax in fig.axes:
        assert not ax.patches and not ax.lines and not ax.texts and ax.get_legend() is None
        assert ax.get_xlim() == (0.0, 1.0)


@pytest.mark.parametrize(
    "marks", [Marks(), Marks(regenerated=((0.2, 0.4),)), Marks(regenerated=((0.5, 1.0),), join=0.5), Marks(loop=True)]
)
def test_every_picture_is_a_png_of_the_same_size(marks, tmp_path):
    path = result_png(clip(), RATE, tmp_path / "a.png", marks=marks)
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (800, 280)


def dark(png, colour: float = 0.25) -> np.ndarray:
    """``(rows, columns)`` bool: the pixels of a PNG darker than ``colour`` (the spines, ticks, a marker line)."""
    from matplotlib.image import imread

    return imread(png)[..., :3].max(axis=2) < colour


@pytest.mark.parametrize("seconds", [0.5, 1.0, 37.3])
def test_an_input_pictures_time_axis_is_where_its_axes_are_in_the_png(seconds, tmp_path):
    axis = input_png(clip(seconds), RATE, tmp_path / "in.png", regions=[(0.1 * seconds, 0.2 * seconds)])
    pixels = dark(tmp_path / "in.png")
    assert pixels.shape == (180, 800)
    # The spines: the columns and rows dark along most of the axes' height and width.
    columns = np.flatnonzero(pixels.sum(axis=0) > 0.8 * (axis.bottom - axis.top))
    rows = np.flatnonzero(pixels.sum(axis=1) > 0.8 * (axis.right - axis.left))
    assert abs(columns[0] - axis.left) <= 1 and abs(columns[-1] - axis.right) <= 1
    assert abs(rows[0] - axis.top) <= 1 and abs(rows[-1] - axis.bottom) <= 1

    middle = (axis.top + axis.bottom) / 2
    assert axis.seconds_at(axis.left, middle) == 0.0
    assert axis.seconds_at(axis.right, middle) == pytest.approx(seconds)
    per_pixel = seconds / (axis.right - axis.left)
    for second in (0.3 * seconds, 0.77 * seconds):
        assert abs(axis.seconds_at(round(axis.x_at(second)), middle) - second) <= per_pixel
    for x, y in [(axis.left - 2, middle), (axis.right + 2, middle), (400, axis.top - 2), (400, axis.bottom + 2)]:
        assert axis.seconds_at(x, y) is None


def test_an_input_pictures_pending_start_is_a_line_at_its_pixel(tmp_path):
    def marked_columns(pending: float | None):
        """The columns inside the axes (off the spines and ticks) dark down a third of their height, and the axis."""
        axis = input_png(clip(0.5), RATE, tmp_path / "in.png", pending=pending)
        top, bottom, left, right = (round(v) for v in (axis.top, axis.bottom, axis.left, axis.right))
        inside = dark(tmp_path / "in.png")[top + 3 : bottom - 3, left + 3 : right - 3]
        return np.flatnonzero(inside.sum(axis=0) > 0.3 * inside.shape[0]) + left + 3, axis

    columns, axis = marked_columns(0.3)
    assert columns.size and np.abs(columns - axis.x_at(0.3)).max() <= 1
    assert marked_columns(None)[0].size == 0
