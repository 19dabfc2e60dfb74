"""Marking an inpainting region by clicking the input's picture, without a browser: the panel's click handler reads
the pixel Gradio reports (``SelectData.index``) through the picture's own time axis; the first click marks a start,
the second adds ``start:end`` to the regions field, and clicks outside the axes or in other modes change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


RATE = 8000  # the tiny model's sample rate


@pytest.fixture
def panel(gradio, tiny_pipeline):
    from stable_audio_kit.ui.input_panel import InputPanel

    return InputPanel(tiny_pipeline)


@pytest.fixture
def tone(tmp_path) -> str:
    t = np.arange(RATE // 2) / RATE  # 0.5 s
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)
    return str(tmp_path / "in.wav")


def click(panel, fields: dict, marking, second: float | None = None, at: tuple[float, float] | None = None):
    """``panel.mark`` for a click at ``second`` on the picture's time axis (mid-height), or at the pixel ``at``."""
    import gradio as gr

    if at is None:
        at = round(marking.axis.x_at(second)), round((marking.axis.top + marking.axis.bottom) / 2)
    x, y = at
    return panel.mark(**fields, marking=marking, evt=gr.SelectData(None, {"index": [x, y], "value": None}))


def skipped(value) -> bool:
    return value == {"__type__": "update"}  # gr.skip(): the output is left as it is


def test_two_clicks_add_a_sorted_region_to_the_regions_field(panel, tone):
    fields = dict(input_audio=tone, mode="inpaint", regions="0.4:0.45", length="")
    picture, note, marking = panel.preview(**fields)
    assert picture["visible"] and "regenerates 0.4-0.45 s" in note and marking.start is None
    assert marking.clip == 0.5 and marking.axis.end == 0.5

    regions, picture, note, marking = click(panel, fields, marking, 0.3)
    assert skipped(regions) and marking.start == 0.3
    assert "start 0.3 s: click the end" in note and picture["visible"]

    regions, picture, note, marking = click(panel, fields, marking, 0.1)  # the end before the start
    assert regions == "0.4:0.45, 0.1:0.3"
    assert skipped(picture) and skipped(note) and marking.start is None

    # The field's change redraws the picture: both regions shaded, as if typed.
    _, note, marking = panel.preview(**{**fields, "regions": regions}, marking=marking)
    assert "regenerates 0.1-0.3 s, 0.4-0.45 s" in note and "click the end" not in note


def test_a_click_is_rounded_to_a_hundredth_and_kept_in_the_clip(panel, tone):
    fields = dict(input_audio=tone, mode="inpaint", regions="", length="")
    _, _, marking = panel.preview(**fields)
    axis = marking.axis
    middle = round((axis.top + axis.bottom) / 2)
    _, _, _, marking = click(panel, fields, marking, at=(round(axis.x_at(0.1234)), middle))
    assert marking.start == 0.12
    regions, _, _, marking = click(panel, fields, marking, at=(axis.right, middle))
    assert regions == "0.12:0.5"

    # A shorter length asked: the clip a region must lie in.
    fields["length"] = "0.4"
    _, _, marking = panel.preview(**fields, marking=marking)
    _, _, _, marking = click(panel, fields, marking, at=(axis.right, middle))
    assert marking.start == 0.4


def test_the_start_clicked_again_drops_it(panel, tone):
    fields = dict(input_audio=tone, mode="inpaint", regions="", length="")
    _, _, marking = panel.preview(**fields)
    _, _, _, marking = click(panel, fields, marking, 0.25)
    regions, _, note, marking = click(panel, fields, marking, 0.25)
    assert skipped(regions) and marking.start is None and "click the end" not in note


def test_clicks_outside_the_axes_are_ignored_with_a_note(panel, tone):
    fields = dict(input_audio=tone, mode="inpaint", regions="", length="")
    _, _, marking = panel.preview(**fields)
    _, _, _, pending = click(panel, fields, marking, 0.2)
    axis = marking.axis
    for at in [(axis.left - 3, 60), (axis.right + 3, 60), (400, axis.bottom + 10), (400, 0)]:
        regions, picture, note, kept = click(panel, fields, pending, at=at)
        assert skipped(regions) and skipped(picture) and skipped(kept)
        assert "outside the waveform: ignored" in note and "start 0.2 s: click the end" in note


@pytest.mark.parametrize("mode", ["audio to audio", "continue"])
def test_clicks_in_other_modes_do_nothing(mode, panel, tone):
    _, _, marking = panel.preview(input_audio=tone, mode="inpaint", regions="", length="")
    fields = dict(input_audio=tone, mode=mode, regions="", length="0.8")
    picture, _, none = panel.preview(**fields, marking=marking)
    assert picture["visible"] and none is None  # shown, but nothing to click
    assert all(skipped(value) for value in click(panel, fields, marking, 0.2))
    assert all(skipped(value) for value in click(panel, fields, None, at=(400, 60)))


def test_a_pending_start_is_dropped_for_another_input(panel, tone, tmp_path):
    fields = dict(input_audio=tone, mode="inpaint", regions="", length="")
    _, _, marking = panel.preview(**fields)
    _, _, _, marking = click(panel, fields, marking, 0.2)
    other = tmp_path / "other.wav"
    other.write_bytes(open(tone, "rb").read())
    _, note, marking = panel.preview(**{**fields, "input_audio": str(other)}, marking=marking)
    assert marking.start is None and marking.input_audio == str(other) and "click the end" not in note
