"""Every check of a pipeline call, before any work: the arguments, the conditioning requests and the
workflow. :meth:`CallChecks.check_call` is what ``StableAudioKitPipeline.__call__`` runs first, and what
``sak generate`` runs on every row of a prompt list before the first file, so the two cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .conditioning import ConditioningRequest, ParsedPrompt, check_overrides
from .distillation import check_student_call, distilled_settings
from .precision import check_precision
from .sampling import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS, TAIL_SECONDS, check_tail_seconds  # noqa: F401
from .utils import check_finite_number
from .workflows import Workflow, is_schedule, prepare_workflow


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _number(value) -> float:
    return check_finite_number("seconds_total", value)


class CallChecks:
    """The checks of :class:`~stable_audio_kit.StableAudioKitPipeline`, a mixin of it."""

    def resolve_sampling(
        self, num_inference_steps: int | None = None, guidance_scale: float | None = None
    ) -> tuple[int, float]:
        """``(num_inference_steps, guidance_scale)`` a call samples with, each ``None`` the model's own: a distilled
        student's ``distilled_steps`` and baked-in guidance, else :data:`DEFAULT_STEPS` and
        :data:`DEFAULT_GUIDANCE_SCALE`. Given values are returned as given (:meth:`check_sampling` checks them)."""
        own = distilled_settings(self.unet) or (DEFAULT_STEPS, DEFAULT_GUIDANCE_SCALE)
        steps = own[0] if num_inference_steps is None else num_inference_steps
        return steps, own[1] if guidance_scale is None else guidance_scale

    def runs_unconditional(self, guidance_scale: float) -> bool:
        """Whether a call at ``guidance_scale`` runs an unconditional half beside the conditional one (the one place
        this is decided): above 1, unless the U-Net is a distilled student, whose guidance is baked into a single
        conditional forward."""
        return distilled_settings(self.unet) is None and guidance_scale > 1.0

    def check_sampling(
        self, num_inference_steps: int | None, guidance_scale: float | None, negative_prompt=None
    ) -> tuple[int, float]:
        """The checked ``(num_inference_steps, guidance_scale)`` of a call (:meth:`resolve_sampling`). A distilled
        student refuses other steps or guidance than its own, a negative prompt, and a scheduler other than
        :func:`~stable_audio_kit.distillation.student_scheduler`'s."""
        steps, guidance = self.resolve_sampling(num_inference_steps, guidance_scale)
        steps = _check_int("num_inference_steps", steps, 1)
        guidance = check_finite_number("guidance_scale", guidance)
        if distilled_settings(self.unet) is not None:
            check_student_call(self.unet, self.scheduler, steps, guidance, negative_prompt)
        return steps, guidance

    def check_inputs(
        self,
        prompt,
        negative_prompt,
        seconds_start,
        seconds_total,
        num_inference_steps,
        guidance_scale,
        num_waveforms_per_prompt,
        latents,
        output_type,
    ) -> tuple[list[str | ParsedPrompt], list[str | ParsedPrompt] | None, float, float]:
        """Validate everything before any work; returns normalised prompts and seconds. ``None`` steps or guidance
        are the model's own (:meth:`check_sampling`)."""
        prompts = [prompt] if isinstance(prompt, (str, ParsedPrompt)) else prompt
        if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        for p in prompts:
            if not isinstance(p, (str, ParsedPrompt)):
                raise ValueError(
                    f"prompt must be a string or a list of strings, got an item {p!r} of type {type(p).__name__}"
                )
        negatives = None
        if negative_prompt is not None:
            single = isinstance(negative_prompt, (str, ParsedPrompt))
            negatives = [negative_prompt] * len(prompts) if single else negative_prompt
            if not isinstance(negatives, (list, tuple)) or not all(
                isinstance(n, (str, ParsedPrompt)) for n in negatives
            ):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}")
            if len(negatives) != len(prompts):
                raise ValueError(f"negative_prompt has {len(negatives)} items for {len(prompts)} prompts")
        seconds_start = check_finite_number("seconds_start", seconds_start)
        if seconds_start < 0:
            raise ValueError(f"seconds_start must be >= 0, got {seconds_start}")
        seconds_total = check_finite_number("seconds_total", seconds_total)
        if not 0 < seconds_total <= self.max_seconds:
            raise ValueError(f"seconds_total must be in (0, {self.max_seconds:.3f}], got {seconds_total}")
        if round(seconds_total * self.sample_rate) < 1:
            raise ValueError(f"seconds_total={seconds_total} is shorter than one sample at {self.sample_rate} Hz")
        if seconds_start >= seconds_total:
            raise ValueError(
                f"seconds_start must be below seconds_total ({seconds_total:g}): the window starts inside the "
                f"sound, got {seconds_start:g}"
            )
        self.check_sampling(num_inference_steps, guidance_scale, negatives)
        _check_int("num_waveforms_per_prompt", num_waveforms_per_prompt, 1)
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        if latents is not None:
            rows, channels = len(prompts) * num_waveforms_per_prompt, self.unet.config.in_channels
            least, window = self.needed_frames(seconds_start, seconds_total), int(self.unet.config.sample_size)
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else None
            if shape is None or len(shape) != 3 or shape[:2] != (rows, channels) or not least <= shape[2] <= window:
                got = shape if shape is not None else type(latents).__name__
                raise ValueError(
                    f"latents must be a tensor of shape ({rows}, {channels}, frames) with frames from {least} "
                    f"(the requested audio) to {window} (the window), got {got}"
                )
            if not torch.isfinite(latents).all():
                raise ValueError(f"latents hold {int((~torch.isfinite(latents)).sum())} NaN or infinite values")
        return list(prompts), (list(negatives) if negatives is not None else None), seconds_start, seconds_total

    def needed_frames(self, seconds_start: float, seconds_total: float) -> int:
        """Latent frames the requested audio covers: a frame counts if any of its samples is sound."""
        samples = max(round((seconds_total - seconds_start) * self.sample_rate), 1)
        return min(-(-samples // int(self.vae.hop_length)), int(self.unet.config.sample_size))

    def sampled_frames(self, seconds_start: float, seconds_total: float, tail_seconds: float | None = None) -> int:
        """Latent frames a call denoises: the requested audio's plus ``tail_seconds`` (default
        :data:`TAIL_SECONDS`) after it, rounded up to the U-Net's multiple (its padding makes them free),
        at most the window. Time per second of audio then stays flat instead of every clip costing a window."""
        hop, window = int(self.vae.hop_length), int(self.unet.config.sample_size)
        tail = -(-round(check_tail_seconds(tail_seconds) * self.sample_rate) // hop)
        frames = self.needed_frames(seconds_start, seconds_total) + tail
        multiple = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return min(-(-frames // multiple) * multiple, window)

    def make_request(
        self,
        prompts: list[str | ParsedPrompt],
        seconds_start: float,
        seconds_total: float,
        overrides: dict[str, Any] | None = None,
    ) -> ConditioningRequest:
        """A request for the whole window, its overrides (``{"bpm": 120}``) validated."""
        return ConditioningRequest.make(
            prompts, seconds_start, seconds_total, int(self.unet.config.sample_size), check_overrides(overrides or {})
        )

    def check_request(self, request: ConditioningRequest) -> None:
        """Raise ``ValueError`` naming the value if a conditioning input of this model cannot give what the
        request asks (an override the model has no input for, a tempo beyond :attr:`max_bpm`, ...)."""
        self.projection.check(request, self.model_facts)

    def check_call(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        seconds_start: float = 0.0,
        seconds_total: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_waveforms_per_prompt: int = 1,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        bpm: float | None = None,
        key: str | None = None,
        overrides: dict[str, Any] | None = None,
        init_audio: str | Path | np.ndarray | torch.Tensor | None = None,
        strength: float | None = None,
        inpaint_audio: str | Path | np.ndarray | torch.Tensor | None = None,
        regions: list[tuple[float, float]] | None = None,
        input_sample_rate: int | None = None,
        loop: bool = False,
        overlap_seconds: float | None = None,
        tail_seconds: float | None = None,
        precision: str = "auto",
    ) -> tuple[ConditioningRequest, ConditioningRequest | None, Workflow]:
        """Every check a call makes before any work, with the same arguments; returns the conditioning
        requests of the prompts and the negative prompts, and the workflow (input audio loaded). The CLI
        runs it on every row of a prompt list before it generates the first file, so the two cannot
        disagree. A long-form call (``seconds_total`` beyond the window, or a prompt schedule) is checked
        window by window; its first window's requests are returned. ``None`` steps or guidance are the model's
        own (:meth:`resolve_sampling`)."""
        check_precision(precision)
        check_tail_seconds(tail_seconds)
        self.check_sampling(num_inference_steps, guidance_scale, negative_prompt)
        if is_schedule(prompt) or (seconds_total is not None and _number(seconds_total) > self.max_seconds):
            from .longform import plan_long

            plans = plan_long(
                self,
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
                unsupported={"init_audio": init_audio, "loop": loop or None},
                inpaint_audio=inpaint_audio,
                regions=regions,
                input_sample_rate=input_sample_rate,
            )[2]
            return plans[0][1], plans[0][2], Workflow(seconds_total=seconds_total)
        if overlap_seconds is not None:
            raise ValueError("overlap_seconds applies to long-form generation (seconds_total beyond the window)")
        workflow = prepare_workflow(
            self, init_audio, strength, inpaint_audio, regions, input_sample_rate, loop, seconds_total, latents
        )
        seconds_total = workflow.seconds_total
        if seconds_total is None:
            seconds_total = self.max_seconds
        prompts, negatives, seconds_start, seconds_total = self.check_inputs(
            prompt,
            negative_prompt,
            seconds_start,
            seconds_total,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            latents,
            output_type,
        )
        for name in callback_on_step_end_tensor_inputs:
            if name not in ("latents", "noise_pred"):
                raise ValueError(
                    f"callback_on_step_end_tensor_inputs may hold 'latents' and 'noise_pred', got {name!r}"
                )
        given = {**(overrides or {}), **{k: v for k, v in (("bpm", bpm), ("key", key)) if v is not None}}
        request = self.make_request(prompts, seconds_start, seconds_total, given)
        self.check_request(request)
        negative_request = request.negative(negatives) if negatives is not None else None
        if negative_request is not None:
            self.check_request(negative_request)
        # The frames to denoise: a loop's own, those of the latents given, or the audio's plus the tail.
        if workflow.frames is None:
            if latents is not None:
                workflow.frames = int(latents.shape[-1])
            else:
                workflow.frames = self.sampled_frames(seconds_start, seconds_total, tail_seconds)
        request.frames = workflow.frames
        if negative_request is not None:
            negative_request.frames = workflow.frames
        return request, negative_request, workflow
