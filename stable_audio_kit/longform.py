"""Long-form generation beyond the model's window, and prompt schedules (story mode).

Window after window: the first is plain text-to-audio; each next one starts ``overlap`` before the end of
the audio so far and continues it by inpainting (its first ``overlap`` seconds are the previous audio,
kept at every step; the rest is regenerated). Every window is told the truth about where it is:
``seconds_start`` is its start in the whole sound and ``seconds_total`` the whole sound's length. The
kept overlap stays what it was, but for a crossfade just before the join
(:data:`stable_audio_kit.workflows.LONGFORM_CROSSFADE_SECONDS`) where it hands over to the new window. The
result has exactly ``round(seconds_total * sample_rate)`` samples; the time per second of audio is that
of one window per ``window - overlap`` seconds, flat with length.

Continuation beyond the window is long-form with a prefix: ``inpaint_audio`` with one region that runs to
the end, ``regions=[(input_seconds, seconds_total)]`` as within the window. The audio before the region is
the output's start, kept as a continuation within the window keeps it (sample for sample, but for the
:data:`~stable_audio_kit.workflows.CROSSFADE_SECONDS` crossfade before the join); no window is sampled
wholly inside it, and the first one keeps as much of it as :func:`~stable_audio_kit.workflows.plan_windows`
lets it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput

from .conditioning import ConditioningRequest, ParsedPrompt, check_overrides
from .precision import check_precision
from .utils import check_finite_number
from .workflows import (
    CROSSFADE_SECONDS,
    DEFAULT_OVERLAP_FRACTION,
    LONGFORM_CROSSFADE_SECONDS,
    Workflow,
    assemble_inpainted,
    check_regions,
    check_schedule,
    fit_length,
    is_schedule,
    load_input_audio,
    plan_windows,
    region_frame_mask,
    schedule_prompt,
)


class LongPlan(NamedTuple):
    """A checked long-form call (:func:`plan_long`)."""

    seconds_total: float
    overlap: int  # samples each window keeps of the one before
    windows: list  # [(Window, request, negative request or None), ...], one per window sampled
    prefix: np.ndarray | None  # a continuation's kept start, (channels, samples) at the model's rate


def continuation_prefix(pipe, inpaint_audio, regions, input_sample_rate, seconds_total: float) -> np.ndarray | None:
    """The start a continuation beyond the window keeps, ``(channels, samples)`` at the model's rate: the
    input up to its one region, which runs to the end (``regions=[(input_seconds, seconds_total)]``; as within
    the window, a region that starts after the input's end keeps silence up to it). ``None`` without
    ``inpaint_audio``. ``ValueError`` for an input at least ``seconds_total`` long, or any other region."""
    if inpaint_audio is None:
        if regions is not None:
            raise ValueError("regions given without inpaint_audio")
        if input_sample_rate is not None:
            raise ValueError("input_sample_rate given without init_audio or inpaint_audio")
        return None
    sample_rate = pipe.sample_rate
    audio = load_input_audio(inpaint_audio, sample_rate, pipe.audio_channels, "inpaint_audio", input_sample_rate)
    total = round(seconds_total * sample_rate)
    if audio.shape[-1] >= total:
        raise ValueError(
            f"seconds_total ({seconds_total:g}) must be longer than inpaint_audio "
            f"({audio.shape[-1] / sample_rate:.3f} s) to continue it"
        )
    checked = check_regions(regions, seconds_total)
    if len(checked) != 1 or round(checked[0][1] * sample_rate) != total:
        raise ValueError(
            "beyond the window, inpainting is continuation: regions must be one region that runs to the end, "
            f"[(start_s, {seconds_total:g})], got {regions!r}"
        )
    start = round(checked[0][0] * sample_rate)
    if start < 1:
        raise ValueError(
            f"region ({checked[0][0]:g}, {checked[0][1]:g}) keeps nothing of inpaint_audio: a continuation's region "
            "starts where the audio to keep ends"
        )
    return fit_length(audio, start)


def plan_long(
    pipe,
    prompt,
    negative_prompt=None,
    seconds_total: float | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    num_waveforms_per_prompt: int = 1,
    output_type: str = "np",
    bpm: float | None = None,
    key: str | None = None,
    overrides: dict[str, Any] | None = None,
    overlap_seconds: float | None = None,
    unsupported: dict[str, Any] | None = None,
    inpaint_audio=None,
    regions=None,
    input_sample_rate: int | None = None,
) -> LongPlan:
    """Every check of a long-form call, before any work: a :class:`LongPlan` of ``(seconds_total, overlap in
    samples, [(window, request, negative request), ...], prefix)``, each window's request telling it where it
    is. ``inpaint_audio`` with ``regions`` continues it (:func:`continuation_prefix`); only the windows that
    reach past it are planned. ``None`` steps or guidance are the model's own."""
    if inpaint_audio is not None and is_schedule(prompt):
        raise ValueError(
            "inpaint_audio cannot be combined with a prompt schedule: a continuation beyond the window takes a "
            "prompt, not a schedule"
        )
    for name, value in (unsupported or {}).items():
        if value is not None:
            why = (
                "a prompt schedule"
                if is_schedule(prompt)
                else f"seconds_total={seconds_total!r} is beyond the window of {pipe.max_seconds:.3f} s"
            )
            raise ValueError(f"{name} cannot be combined with long-form generation ({why})")
    if output_type not in ("np", "pt"):
        raise ValueError(f"long-form generation returns audio: output_type must be 'np' or 'pt', got {output_type!r}")
    if is_schedule(prompt):
        schedule = check_schedule(prompt, None if seconds_total is None else float(seconds_total))
        seconds_total = sum(seconds for _, seconds in schedule)
        prompts = None
    else:
        schedule = None
        prompts = [prompt] if isinstance(prompt, (str, ParsedPrompt)) else list(prompt)
        seconds_total = check_finite_number("seconds_total", seconds_total)
    prefix = continuation_prefix(pipe, inpaint_audio, regions, input_sample_rate, seconds_total)
    sample_rate, hop = pipe.sample_rate, int(pipe.vae.hop_length)
    window = pipe.window_samples
    total = round(seconds_total * sample_rate)
    if overlap_seconds is None:
        overlap = round(DEFAULT_OVERLAP_FRACTION * window / hop) * hop
    else:
        overlap = round(check_finite_number("overlap_seconds", overlap_seconds) * sample_rate)
        if not hop <= overlap <= window // 2:
            raise ValueError(
                f"overlap_seconds must be between one latent frame ({hop / sample_rate:.3f} s) and half the window "
                f"({window / 2 / sample_rate:.3f} s), got {overlap_seconds}"
            )
    given = check_overrides({**(overrides or {}), **{k: v for k, v in (("bpm", bpm), ("key", key)) if v is not None}})
    plans = []
    for w in plan_windows(total, window, overlap, 0 if prefix is None else prefix.shape[-1]):
        new_middle = (w.start + (w.keep + window) / 2) / sample_rate  # the middle of its new part
        window_prompts = [schedule_prompt(schedule, new_middle)] if schedule is not None else prompts
        # Checks every argument as a call would (a window of the model's own length), then tells it where it is.
        request, negative_request, _ = pipe.check_call(
            window_prompts,
            negative_prompt,
            seconds_start=0.0,
            seconds_total=pipe.max_seconds,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            num_waveforms_per_prompt=num_waveforms_per_prompt,
            overrides=given,
        )
        request = ConditioningRequest.make(
            request.prompts, w.start / sample_rate, seconds_total, request.frames, request.overrides
        )
        pipe.check_request(request)
        if negative_request is not None:
            negative_request = request.negative(negative_request.prompts)
        plans.append((w, request, negative_request))
    return LongPlan(seconds_total, overlap, plans, prefix)


def generate_long(
    pipe,
    prompt,
    negative_prompt=None,
    seconds_total: float | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    num_waveforms_per_prompt: int = 1,
    generator=None,
    output_type: str = "np",
    return_dict: bool = True,
    bpm: float | None = None,
    key: str | None = None,
    overrides: dict[str, Any] | None = None,
    overlap_seconds: float | None = None,
    unsupported: dict[str, Any] | None = None,
    callback_on_step_end=None,
    callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    precision: str = "auto",
    inpaint_audio=None,
    regions=None,
    input_sample_rate: int | None = None,
):
    """``pipe(...)`` for ``seconds_total`` beyond the window, or for a prompt schedule
    ``[(prompt, seconds), ...]``; with ``inpaint_audio`` and ``regions=[(input_seconds, seconds_total)]``, the
    continuation of the input. Every window's request is validated before the first is sampled;
    ``callback_on_step_end`` is called at every step of every window."""
    # 1. Validate everything before any work.
    check_precision(precision)
    seconds_total, _, plans, prefix = plan_long(
        pipe,
        prompt,
        negative_prompt,
        seconds_total,
        num_inference_steps,
        guidance_scale,
        num_waveforms_per_prompt,
        output_type,
        bpm,
        key,
        overrides,
        overlap_seconds,
        unsupported,
        inpaint_audio,
        regions,
        input_sample_rate,
    )
    sample_rate, hop, window = pipe.sample_rate, int(pipe.vae.hop_length), pipe.window_samples
    total = round(seconds_total * sample_rate)

    # 2. Window after window, each continuing the audio so far: a continuation's input first.
    batch = plans[0][1].batch * num_waveforms_per_prompt
    out = np.zeros((batch, pipe.audio_channels, total), dtype=np.float32)
    kept = 0 if prefix is None else prefix.shape[-1]
    if prefix is not None:
        out[..., :kept] = prefix
    frames = int(pipe.unet.config.sample_size)
    for w, request, negative_request in plans:
        workflow = Workflow(seconds_total=seconds_total)
        if w.keep:  # continue the audio so far: its last `keep` samples are kept, the rest regenerated
            previous = fit_length(out[..., w.start : w.start + w.keep], window)
            new_part = [(w.keep / sample_rate, window / sample_rate)]
            workflow.audio, workflow.regions = previous, new_part
            workflow.regenerate = region_frame_mask(new_part, frames, sample_rate, hop)
        latents = pipe.sample(
            request,
            negative_request,
            workflow,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            generator,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            precision=precision,
        )
        audio = pipe.decode_latents(latents).float().cpu().numpy()
        if w.keep:
            # The input's join is a continuation's (as within the window); a join of two windows is long-form's.
            if w.start + w.keep <= kept:
                crossfade = CROSSFADE_SECONDS
            else:
                crossfade = min(LONGFORM_CROSSFADE_SECONDS, w.keep / 2 / sample_rate)
            audio = assemble_inpainted(workflow.audio, audio, workflow.regions, sample_rate, crossfade)
        end = min(w.start + window, total)
        out[..., w.start : end] = audio[..., : end - w.start]

    audio = torch.from_numpy(out) if output_type == "pt" else out
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return (audio,)
    return AudioPipelineOutput(audios=audio)
