"""Long-form generation beyond the model's window, and prompt schedules (story mode).

Window after window: the first is plain text-to-audio; each next one starts ``overlap`` before the end of
the audio so far and continues it by inpainting (its first ``overlap`` seconds are the previous audio,
kept at every step; the rest is regenerated). Every window is told the truth about where it is:
``seconds_start`` is its start in the whole sound and ``seconds_total`` the whole sound's length. The
kept overlap stays what it was, but for a crossfade just before the join
(:data:`stable_audio_kit.workflows.LONGFORM_CROSSFADE_SECONDS`) where it hands over to the new window. The
result has exactly ``round(seconds_total * sample_rate)`` samples; the time per second of audio is that
of one window per ``window - overlap`` seconds, flat with length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput

from .conditioning import ConditioningRequest, ParsedPrompt, check_overrides
from .precision import check_precision
from .utils import check_finite_number
from .workflows import (
    DEFAULT_OVERLAP_FRACTION,
    LONGFORM_CROSSFADE_SECONDS,
    Workflow,
    assemble_inpainted,
    check_schedule,
    fit_length,
    is_schedule,
    plan_windows,
    region_frame_mask,
    schedule_prompt,
)


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
) -> tuple[float, int, list]:
    """Every check of a long-form call, before any work: ``(seconds_total, overlap in samples, [(window,
    request, negative request), ...])``, each window's request telling it where it is. ``None`` steps or
    guidance are the model's own."""
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
    for w in plan_windows(total, window, overlap):
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
    return seconds_total, overlap, plans


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
):
    """``pipe(...)`` for ``seconds_total`` beyond the window, or for a prompt schedule
    ``[(prompt, seconds), ...]``. Every window's request is validated before the first is sampled;
    ``callback_on_step_end`` is called at every step of every window."""
    # 1. Validate everything before any work.
    check_precision(precision)
    seconds_total, _, plans = plan_long(
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
    )
    sample_rate, hop, window = pipe.sample_rate, int(pipe.vae.hop_length), pipe.window_samples
    total = round(seconds_total * sample_rate)

    # 2. Window after window, each continuing the audio so far.
    batch = plans[0][1].batch * num_waveforms_per_prompt
    out = np.zeros((batch, pipe.audio_channels, total), dtype=np.float32)
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
            crossfade = min(LONGFORM_CROSSFADE_SECONDS, w.keep / 2 / sample_rate)
            audio = assemble_inpainted(workflow.audio, audio, workflow.regions, sample_rate, crossfade)
        end = min(w.start + window, total)
        out[..., w.start : end] = audio[..., : end - w.start]

    audio = torch.from_numpy(out) if output_type == "pt" else out
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return (audio,)
    return AudioPipelineOutput(audios=audio)
