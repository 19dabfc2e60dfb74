"""The sound-design workflows on the same sampler: inputs, masks, windows and joins.

The pipeline (:class:`stable_audio_kit.StableAudioKitPipeline`) runs them; this module holds the parts that
are not sampling:

* **Input audio** (:func:`load_input_audio`): a waveform or a file, at any rate and channel count,
  resampled and mixed as the catalogue loader does, and refused if empty or non-finite.
* **Regions** (:func:`check_regions`, :func:`region_frame_mask`, :func:`assemble_inpainted`): which latent
  frames are regenerated, and the output that copies the input sample for sample outside the regions,
  but for a :data:`CROSSFADE_SECONDS` equal-power crossfade just outside each border.
* **Long-form** (:func:`plan_windows`, :func:`check_schedule`): windows that step by ``window - overlap``,
  each continuing the previous one through inpainting of the overlap, and a prompt schedule
  ("story mode") that picks each window's prompt.
* **Loops** (:func:`loop_frames`, :func:`circular_resample`): a whole number of latent frames denoised
  circularly, decoded circularly, then resampled as one period to the exact length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import load_audio, mix_channels, resample
from .conditioning.prompts import ParsedPrompt
from .utils import check_finite_number

# The crossfade inside each inpainted region, at each border (and at each long-form join).
CROSSFADE_SECONDS = 0.02
# How much of the window a long-form continuation keeps from the previous window, and the crossfade (at
# most half the overlap) in which the previous audio hands over to the new window's.
DEFAULT_OVERLAP_FRACTION = 0.25
LONGFORM_CROSSFADE_SECONDS = 0.25
# The crossfade at a loop's wrap point, where its decoded end hands over to the audio that runs on into its start.
LOOP_CROSSFADE_SECONDS = 0.05
# Audio-to-audio's strength when none is given: mostly new audio that keeps the input's shape.
DEFAULT_STRENGTH = 0.8


def load_input_audio(
    audio: str | Path | np.ndarray | torch.Tensor, sample_rate: int, channels: int, what: str, input_rate: int | None
) -> np.ndarray:
    """``(channels, samples)`` float32 at ``sample_rate`` from a file path or a waveform ``(samples,)`` or
    ``(channels, samples)`` at ``input_rate`` (default: ``sample_rate``). ``ValueError`` names ``what`` and
    the problem: an unreadable file, no samples, NaN or infinite samples."""
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.is_file():
            raise ValueError(f"{what} {str(path)!r} does not exist")
        try:
            out = load_audio(path, sample_rate, channels)
        except Exception as err:  # soundfile raises its own error types for unreadable files
            raise ValueError(f"{what} {str(path)!r} cannot be read as audio: {err}") from None
        where = repr(str(path))
    else:
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().float().cpu().numpy()
        if not isinstance(audio, np.ndarray):
            raise ValueError(f"{what} must be a file path or a waveform array, got {type(audio).__name__}")
        out = np.asarray(audio, dtype=np.float32)
        if out.ndim == 1:
            out = out[None]
        if out.ndim != 2:
            raise ValueError(f"{what} must be shaped (samples,) or (channels, samples), got {tuple(out.shape)}")
        rate = sample_rate if input_rate is None else int(input_rate)
        if rate <= 0:
            raise ValueError(f"the sample rate of {what} must be > 0, got {input_rate}")
        out = mix_channels(resample(out, rate, sample_rate), channels)
        where = "the waveform"
    if out.shape[-1] == 0:
        raise ValueError(f"{what} ({where}) holds no samples")
    if not np.isfinite(out).all():
        raise ValueError(f"{what} ({where}) holds NaN or infinite samples")
    return np.ascontiguousarray(out, dtype=np.float32)


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """``audio`` ``(..., n)`` cut or padded with silence to ``samples``."""
    if audio.shape[-1] >= samples:
        return audio[..., :samples]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, samples - audio.shape[-1])])


def check_strength(strength) -> float:
    strength = check_finite_number("strength", strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return strength


def check_regions(regions, seconds_total: float) -> list[tuple[float, float]]:
    """Regions ``[(start_s, end_s), ...]`` inside ``[0, seconds_total]``, non-empty and not overlapping;
    returned sorted. ``ValueError`` names the bad region."""
    if regions is None or isinstance(regions, (str, bytes)) or len(regions) == 0:
        raise ValueError(f"regions must be a non-empty list of (start_s, end_s) pairs, got {regions!r}")
    out = []
    for region in regions:
        if not isinstance(region, (tuple, list)) or len(region) != 2:
            raise ValueError(f"each region must be a (start_s, end_s) pair, got {region!r}")
        start = check_finite_number("a region's start", region[0])
        end = check_finite_number("a region's end", region[1])
        if not 0.0 <= start < end:
            raise ValueError(f"region ({start:g}, {end:g}) is empty or starts before 0: need 0 <= start < end")
        if end > seconds_total + 1e-9:
            raise ValueError(f"region ({start:g}, {end:g}) ends after the clip, which is {seconds_total:g} s long")
        out.append((start, end))
    out.sort()
    for (s0, e0), (s1, e1) in zip(out, out[1:]):
        if s1 < e0:
            raise ValueError(f"regions ({s0:g}, {e0:g}) and ({s1:g}, {e1:g}) overlap")
    return out


def region_frame_mask(regions: Sequence[tuple[float, float]], frames: int, sample_rate: int, hop: int) -> torch.Tensor:
    """``(frames,)`` bool, True on the latent frames to regenerate: every frame any of whose samples lies in
    a region."""
    mask = torch.zeros(frames, dtype=torch.bool)
    for start, end in regions:
        first = int(round(start * sample_rate)) // hop
        last = math.ceil(round(end * sample_rate) / hop)
        mask[first : min(last, frames)] = True
    return mask


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in gains of an ``n``-sample equal-power crossfade."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.cos(0.5 * np.pi * t).astype(np.float32), np.sin(0.5 * np.pi * t).astype(np.float32)


def assemble_inpainted(
    original: np.ndarray,
    generated: np.ndarray,
    regions: Sequence[tuple[float, float]],
    sample_rate: int,
    crossfade_seconds: float = CROSSFADE_SECONDS,
) -> np.ndarray:
    """The generated audio inside the regions and the input outside them, sample for sample, except for an
    equal-power crossfade of ``crossfade_seconds`` just outside each border (at most half the gap to the
    next region), where the input hands over to the generated audio (which there is the input through the
    VAE, so the two agree). ``original`` and ``generated`` are ``(..., channels, samples)`` of one shape."""
    out = original.copy()
    samples = original.shape[-1]
    bounds = [(int(round(a * sample_rate)), min(int(round(b * sample_rate)), samples)) for a, b in regions]
    fade = int(round(crossfade_seconds * sample_rate))
    for k, (s, e) in enumerate(bounds):
        out[..., s:e] = generated[..., s:e]
        before = s - (bounds[k - 1][1] if k else 0)
        after = (bounds[k + 1][0] if k + 1 < len(bounds) else samples) - e
        n = min(fade, before // 2 if k else before)
        if n > 0:
            fade_out, fade_in = equal_power(n)
            out[..., s - n : s] = original[..., s - n : s] * fade_out + generated[..., s - n : s] * fade_in
        n = min(fade, after // 2 if k + 1 < len(bounds) else after)
        if n > 0:
            fade_out, fade_in = equal_power(n)
            out[..., e : e + n] = generated[..., e : e + n] * fade_out + original[..., e : e + n] * fade_in
    return out


@dataclass
class Window:
    """One long-form window: where it starts in the sound and how much of it is kept from before."""

    start: int  # first sample of the window in the whole sound
    keep: int  # samples at its start kept from the audio so far: the previous window's, or a continued input's


def plan_windows(total: int, window: int, overlap: int, prefix: int = 0) -> list[Window]:
    """Windows of ``window`` samples covering ``total`` samples, each after the first keeping ``overlap``
    samples of the one before; the last one ends exactly at ``total``.

    With a ``prefix`` (its first ``prefix`` samples are given: a continuation, ``0 < prefix < total``), no
    window lies wholly inside it and the first window keeps all of the prefix it covers. That window starts
    ``window - overlap`` before the prefix's end (at 0 for a shorter prefix, and never after ``total -
    window``): it keeps as much of the input as the window holds while still generating ``overlap`` of new
    audio, which is what the next window keeps. The input is all a continuation learns its sound, tempo and
    phrasing from, so it gets the most context this allows, at least ``overlap`` (all of a shorter input);
    keeping only ``overlap`` of it would save at most one window of the whole. Every later window steps on
    as without a prefix.
    """
    if total <= window:
        return [Window(0, prefix)]
    hop = window - overlap
    first = min(total - window, max(0, prefix - hop)) if prefix else 0
    starts = list(range(first, total - window, hop)) + [total - window]
    windows = [Window(first, prefix - first)]
    for prev, start in zip(starts, starts[1:]):
        windows.append(Window(start, prev + window - start))
    return windows


def check_schedule(schedule, seconds_total: float | None) -> list[tuple[str, float]]:
    """A prompt schedule ``[(prompt, seconds), ...]``; its lengths must add up to ``seconds_total`` if given."""
    if not isinstance(schedule, (list, tuple)) or not schedule:
        raise ValueError(f"a prompt schedule is a non-empty list of (prompt, seconds) pairs, got {schedule!r}")
    out = []
    for item in schedule:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], (str, ParsedPrompt)):
            raise ValueError(f"each entry of a prompt schedule is a (prompt, seconds) pair, got {item!r}")
        seconds = check_finite_number("a schedule entry's seconds", item[1])
        if seconds <= 0:
            raise ValueError(
                f"schedule entry {getattr(item[0], 'text', item[0])!r} must last > 0 seconds, got {seconds:g}"
            )
        out.append((item[0], seconds))
    total = sum(s for _, s in out)
    if seconds_total is not None and abs(total - seconds_total) > 1e-6:
        raise ValueError(f"the prompt schedule lasts {total:g} s but seconds_total is {seconds_total:g}")
    return out


def schedule_prompt(schedule: Sequence[tuple[str | ParsedPrompt, float]], seconds: float) -> str | ParsedPrompt:
    """The prompt of the schedule entry playing at ``seconds``."""
    elapsed = 0.0
    for prompt, length in schedule:
        elapsed += length
        if seconds < elapsed:
            return prompt
    return schedule[-1][0]


def is_schedule(prompt) -> bool:
    return isinstance(prompt, (list, tuple)) and len(prompt) > 0 and all(isinstance(p, (list, tuple)) for p in prompt)


def loop_frames(samples: int, hop: int) -> int:
    """Latent frames of a loop ``samples`` long: the nearest whole number, at least one; a loop shorter
    than one frame (the latent stride) is refused."""
    if samples < hop:
        raise ValueError(f"a loop must last at least one latent frame ({hop} samples), got {samples} samples")
    return max(1, round(samples / hop))


def loop_period(decoded: np.ndarray, period: int, crossfade: int) -> np.ndarray:
    """One seamless period of a loop from the decoding of its latents three times over, ``(..., 3 * period)``.

    The middle copy is the loop; its end runs on into the third copy's start, not into its own start,
    because a decoder's phase (Griffin-Lim, or a predicted one) need not repeat exactly. So over its last
    ``crossfade`` samples it hands over, with an equal-power crossfade, to the same stretch of the first
    copy, whose continuation *is* the middle copy's start.
    """
    out = decoded[..., period : 2 * period].copy()
    crossfade = min(crossfade, period // 2)
    if crossfade > 0:
        fade_out, fade_in = equal_power(crossfade)
        tail = slice(period - crossfade, period)
        out[..., tail] = out[..., tail] * fade_out + decoded[..., tail] * fade_in
    return out


def circular_resample(audio: np.ndarray, samples: int) -> np.ndarray:
    """One period of a loop ``(..., n)`` resampled to ``samples`` by Fourier interpolation, which treats the
    signal as periodic, so the end still flows into the start."""
    if audio.shape[-1] == samples:
        return audio
    from scipy.signal import resample as fourier_resample

    return fourier_resample(audio, samples, axis=-1).astype(np.float32)


def bars_seconds(bars: int, bpm: float, beats_per_bar: int = 4) -> float:
    """The length of ``bars`` bars at ``bpm``."""
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise ValueError(f"bars must be a whole number >= 1, got {bars!r}")
    return bars * beats_per_bar * 60.0 / bpm


def bars_length(bars: int, bpm: float | None, prompt: str | ParsedPrompt) -> float:
    """The length of ``bars`` 4/4 bars at ``bpm``, or else at the tempo the prompt names; ``ValueError`` if
    neither gives one."""
    from .conditioning.prompts import parse_prompt

    tempo = bpm if bpm is not None else parse_prompt(prompt).tempo
    if tempo is None:
        raise ValueError('bars needs a tempo: a bpm, or one named in the prompt ("at 120 bpm")')
    return bars_seconds(bars, tempo)


@dataclass
class Workflow:
    """What a call asks of the sampler beyond text-to-audio (see :func:`prepare_workflow`)."""

    seconds_total: float | None = None
    audio: np.ndarray | None = None  # the input over the whole window, (channels, window samples)
    strength: float | None = None  # audio-to-audio
    inpaint: np.ndarray | None = None  # the input at the output's length, (channels, samples)
    regions: list[tuple[float, float]] | None = None
    regenerate: torch.Tensor | None = None  # (frames,) bool: the latent frames inpainting regenerates
    loop: bool = False
    frames: int | None = None  # latent frames to denoise, if not the whole window


def prepare_workflow(
    pipe, init_audio, strength, inpaint_audio, regions, input_sample_rate, loop, seconds_total, latents
) -> Workflow:
    """Validate and load what audio-to-audio, inpainting and loops need, before any sampling: the
    :class:`Workflow` of a call of ``pipe``."""
    if init_audio is not None and inpaint_audio is not None:
        raise ValueError("give init_audio (audio-to-audio) or inpaint_audio (inpainting), not both")
    if strength is not None and init_audio is None:
        raise ValueError(f"strength={strength!r} given without init_audio")
    if regions is not None and inpaint_audio is None:
        raise ValueError("regions given without inpaint_audio")
    if not isinstance(loop, bool):
        raise ValueError(f"loop must be True or False, got {loop!r}")
    if loop and (init_audio is not None or inpaint_audio is not None):
        raise ValueError("loop=True generates a loop from the prompt; it cannot be combined with input audio")
    if (init_audio is not None or inpaint_audio is not None or loop) and latents is not None:
        raise ValueError("latents= cannot be combined with init_audio, inpaint_audio or loop")
    if input_sample_rate is not None and init_audio is None and inpaint_audio is None:
        raise ValueError("input_sample_rate given without init_audio or inpaint_audio")
    workflow = Workflow(seconds_total=seconds_total)
    source = init_audio if init_audio is not None else inpaint_audio
    if source is None:
        if loop:
            total = pipe.max_seconds if seconds_total is None else check_finite_number("seconds_total", seconds_total)
            if not 0 < total <= pipe.max_seconds:
                raise ValueError(f"seconds_total must be in (0, {pipe.max_seconds:.3f}], got {total}")
            workflow.loop, workflow.seconds_total = True, total
            workflow.frames = loop_frames(round(total * pipe.sample_rate), int(pipe.vae.hop_length))
        return workflow
    what = "init_audio" if init_audio is not None else "inpaint_audio"
    audio = load_input_audio(source, pipe.sample_rate, pipe.audio_channels, what, input_sample_rate)
    if seconds_total is None:
        seconds_total = audio.shape[-1] / pipe.sample_rate
        if seconds_total > pipe.max_seconds:
            raise ValueError(
                f"{what} lasts {seconds_total:.3f} s, longer than this model's window of {pipe.max_seconds:.3f} s; "
                "give seconds_total to use its start"
            )
    workflow.seconds_total = seconds_total
    total = round(check_finite_number("seconds_total", seconds_total) * pipe.sample_rate)
    audio = fit_length(audio, max(total, 1))
    workflow.audio = fit_length(audio, pipe.window_samples)
    if init_audio is not None:
        workflow.strength = check_strength(DEFAULT_STRENGTH if strength is None else strength)
    else:
        workflow.regions = check_regions(regions, seconds_total)
        workflow.inpaint = audio
        frames = int(pipe.unet.config.sample_size)
        workflow.regenerate = region_frame_mask(workflow.regions, frames, pipe.sample_rate, pipe.vae.hop_length)
    return workflow


def roll_inputs(inputs: dict[str, Any], shift: int) -> dict[str, Any]:
    """The U-Net's inputs with the frame-wise ones (channel inputs) rolled along with the latents."""
    if inputs.get("channel_inputs") is None:
        return inputs
    return {**inputs, "channel_inputs": inputs["channel_inputs"].roll(shift, -1)}
