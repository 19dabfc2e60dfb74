"""The page's input panel: the input's waveform with what a request regenerates shaded, the regions field it
reads, and inpainting regions marked by two clicks on the picture (``gr.Image.select``), read through the picture's
own time axis (:class:`~stable_audio_kit.ui.pictures.TimeAxis`)."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr

from ..prompt_lists import parse_region, parse_seconds
from ..workflows import check_regions, load_input_audio
from .history import MODES
from .pictures import TimeAxis, input_png


def split_regions(text: str | None) -> list[tuple[float, float]]:
    """``"2.0:3.5, 6:7"`` -> ``[(2.0, 3.5), (6.0, 7.0)]``: ``sak inpaint``'s ``--region`` values, several in one
    field (separated by commas, semicolons or spaces)."""
    parts = [part for part in re.split(r"[,;\s]+", text or "") if part]
    if not parts:
        raise ValueError("inpaint needs regions to regenerate: START:END in seconds, e.g. 2.0:3.5")
    return [parse_region(part) for part in parts]


@dataclass(frozen=True)
class Marking:
    """What a click on the input's picture needs, kept in a ``gr.State`` by each preview for inpainting: the
    input it shows, where its seconds lie in the PNG, the clip a region must lie in (the length asked, else the
    input's), the preview's note, and the start of a region clicked but not yet ended."""

    input_audio: str
    axis: TimeAxis
    clip: float
    note: str
    start: float | None = None

    def shown(self, extra: str = "") -> str:
        """The note under the picture: the preview's line, then the pending start and ``extra``, if any."""
        lines = [self.note]
        if self.start is not None:
            lines.append(f"**start {self.start:g} s: click the end** (or the start again to drop it)")
        return "\n\n".join([*lines, extra] if extra else lines)


# A click marks a second to this many decimals: finer than a pixel of a long clip, what a typed region would say.
CLICK_DECIMALS = 2


class InputPanel:
    """The input panel's event handlers, for one pipeline (its sample rate and channels); previews are drawn into
    a temporary folder removed when the server stops."""

    def __init__(self, pipe):
        self.pipe = pipe
        self._previews = tempfile.TemporaryDirectory(prefix="sak-ui-previews-")

    def preview(self, input_audio, mode, regions, length, marking: Marking | None = None):
        """The input's waveform with what the request regenerates shaded, and a line saying so (or what is
        wrong with it, before Generate refuses it); for inpainting, the :class:`Marking` clicks on it read, which
        keeps ``marking``'s pending start while it is the same input and the start is in the clip."""
        if not input_audio or mode == MODES[0]:
            return gr.update(value=None, visible=False), "", None
        name = Path(input_audio).name
        try:
            length = parse_seconds(length, "length") if (length or "").strip() else None
            rate = self.pipe.sample_rate
            audio = load_input_audio(input_audio, rate, self.pipe.audio_channels, "input audio", None)
            seconds = audio.shape[-1] / rate
            clip = length if length is not None else seconds
            shaded, axis = [], None
            if mode == "inpaint" and (regions or "").strip():
                shaded = check_regions(split_regions(regions), clip)
            elif mode == "continue" and length is not None and length > seconds:
                shaded, axis = [(seconds, length)], length
            note = f"{name}: {seconds:.3f} s ({audio.shape[-1]} samples at {rate} Hz)"
            if shaded:
                note += "; regenerates " + ", ".join(f"{a:g}-{b:g} s" for a, b in shaded)
            pending = None
            if mode == "inpaint" and marking is not None and marking.input_audio == input_audio:
                pending = marking.start if marking.start is not None and marking.start <= clip else None
            key = (input_audio, mode, regions, length, pending)
            path = Path(self._previews.name) / f"{abs(hash(key))}.png"
            time_axis = input_png(audio, rate, path, shaded, axis, pending=pending)
            if mode != "inpaint":
                return gr.update(value=str(path), visible=True), note, None
            marked = Marking(input_audio, time_axis, clip, f"{note}; click the waveform to mark a region", pending)
            return gr.update(value=str(path), visible=True), marked.shown(), marked
        except ValueError as err:
            return gr.update(value=None, visible=False), f"**{err}**", None

    def mark(self, input_audio, mode, regions, length, marking: Marking | None, evt: gr.SelectData):
        """A click on the input's picture, at pixel ``evt.index`` (``[x, y]`` of the PNG): in inpainting, the
        first marks a region's start, the second its end, and the region ``start:end`` is added to the regions
        field (whose change draws it). Clicks outside the time axis are ignored, saying so; in other modes, all.
        Values for ``[regions, input picture, input note, marking]``."""
        if mode != "inpaint" or marking is None or marking.input_audio != input_audio:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        x, y = evt.index
        second = marking.axis.seconds_at(x, y)
        if second is None:
            return gr.skip(), gr.skip(), marking.shown("**that click was outside the waveform: ignored**"), gr.skip()
        second = round(min(max(second, 0.0), marking.clip), CLICK_DECIMALS)
        if marking.start is None or marking.start == second:
            pending = replace(marking, start=None if marking.start == second else second)
            return gr.skip(), *self.preview(input_audio, mode, regions, length, pending)
        start, end = sorted((marking.start, second))
        typed = (regions or "").strip().rstrip(",;").strip()
        return (
            ", ".join(filter(None, (typed, f"{start:g}:{end:g}"))),
            gr.skip(),
            gr.skip(),
            replace(marking, start=None),
        )
