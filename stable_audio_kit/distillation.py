"""Step distillation: the facts a distilled student and its sampler share, in one place.

A student U-Net (``sak train distill``, :mod:`stable_audio_kit.train.distill`) learns to take, in one DDIM step,
the path its teacher's best sampler takes over several steps with classifier-free guidance: its config records
``distilled_steps`` (the one step count it samples with) and ``distilled_guidance_scale`` (the guidance baked
into its single conditional forward). It samples with :func:`student_scheduler`, DDIM on the teacher's noise
schedule with ``trailing`` spacing, deterministic (eta 0) and ending on the clean latents.

A pipeline directory may hold a student of its ``unet/`` in :data:`DISTILLED_SUBFOLDER`; it loads in diffusers'
way, as a component override: ``from_pretrained(dir, unet=UNet1DConditionModel.from_pretrained(dir,
subfolder="unet_distilled"))`` with ``pipe.scheduler = student_scheduler(pipe.scheduler.config)``
(:func:`stable_audio_kit.assembly.load_pipeline` does both). Its ``teacher.json`` names the ``unet/`` it was
distilled from (:func:`~stable_audio_kit.students.write_teacher_record`); beside other weights it is stale
(:func:`~stable_audio_kit.students.student_is_stale`): ``--unet auto`` passes it over, an explicit request is refused.

The DDIM step of a v-prediction on the schedule ``alpha_t = sqrt(alphas_cumprod[t])``, ``sigma_t = sqrt(1 -
alphas_cumprod[t])`` is linear in the sample and the prediction::

    x0 = alpha_t x - sigma_t v,   eps = sigma_t x + alpha_t v
    x_prev = alpha_p x0 + sigma_p eps = (alpha_p alpha_t + sigma_p sigma_t) x + (sigma_p alpha_t - alpha_p sigma_t) v

so the velocity that lands a step exactly on the teacher's sample is :func:`velocity_target`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# Where a pipeline directory keeps a distilled student of its U-Net (in sampling.py, which imports no torch: the
# CLI looks for a student before it loads anything).
from .sampling import DISTILLED_SUBFOLDER  # noqa: F401


def check_distilled_fields(steps: Any, guidance_scale: Any) -> None:
    """The U-Net config's ``distilled_steps`` / ``distilled_guidance_scale``: both ``None`` (not a student) or an
    integer >= 1 and a finite number >= 1; ``ValueError`` naming the bad value."""
    if (steps is None) != (guidance_scale is None):
        raise ValueError(
            "distilled_steps and distilled_guidance_scale are set together (a distilled student) or not at all, "
            f"got {steps!r} and {guidance_scale!r}"
        )
    if steps is None:
        return
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"distilled_steps must be an int >= 1, got {steps!r}")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
        raise ValueError(f"distilled_guidance_scale must be a number, got {guidance_scale!r}")
    if not math.isfinite(guidance_scale) or guidance_scale < 1.0:
        raise ValueError(f"distilled_guidance_scale must be a finite number >= 1, got {guidance_scale!r}")


def distilled_settings(unet) -> tuple[int, float] | None:
    """``(steps, guidance_scale)`` of a distilled student; ``None`` for a U-Net trained on the v-objective."""
    steps = unet.config.get("distilled_steps")
    if steps is None:
        return None
    return int(steps), float(unet.config.get("distilled_guidance_scale"))


def student_scheduler(config: Any):
    """The sampler of a distilled student, on the noise schedule of a scheduler ``config``: DDIM, v-prediction,
    ``trailing`` spacing (the first step at the last training timestep), eta 0, no clipping, ending at
    ``alphas_cumprod = 1`` (the clean latents)."""
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    return DDIMScheduler.from_config(
        config,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        clip_sample=False,
        thresholding=False,
        set_alpha_to_one=True,
        steps_offset=0,
    )


def is_student_scheduler(scheduler) -> bool:
    """Whether ``scheduler`` samples as :func:`student_scheduler` does."""
    config = scheduler.config
    return (
        type(scheduler).__name__ == "DDIMScheduler"
        and config.get("timestep_spacing") == "trailing"
        and config.get("prediction_type") == "v_prediction"
        and not config.get("clip_sample", False)
        and not config.get("thresholding", False)
        and config.get("set_alpha_to_one", False)
        and config.get("steps_offset", 0) == 0
    )


def check_student_call(unet, scheduler, num_inference_steps: int, guidance_scale: float, negative_prompt=None) -> None:
    """Raise ``ValueError`` naming the value if a call asks of the distilled student ``unet`` what it cannot do:
    other steps than its ``distilled_steps``, other guidance than its baked-in scale, a negative prompt (it runs
    no unconditional half), or a ``scheduler`` other than :func:`student_scheduler`'s."""
    steps, guidance = distilled_settings(unet)
    if num_inference_steps != steps:
        raise ValueError(
            f"num_inference_steps={num_inference_steps} but this distilled U-Net samples in exactly {steps} steps; "
            "leave num_inference_steps (--steps) unset for its own"
        )
    if not math.isclose(guidance_scale, guidance, rel_tol=1e-6, abs_tol=1e-9):
        raise ValueError(
            f"guidance_scale={guidance_scale:g} but this distilled U-Net has guidance {guidance:g} baked in; leave "
            "guidance_scale (--cfg) unset, or load the pipeline's own U-Net to choose the guidance "
            '(unet="base", --unet base)'
        )
    if negative_prompt is not None:
        items = negative_prompt if isinstance(negative_prompt, (list, tuple)) else [negative_prompt]
        shown = ", ".join(repr(getattr(item, "text", item)) for item in items)  # a ParsedPrompt by its text
        raise ValueError(
            f"negative_prompt {shown}: a distilled U-Net runs no unconditional half, so it takes no negative "
            'prompt (--negative); load the pipeline\'s own U-Net for one (unet="base", --unet base)'
        )
    if not is_student_scheduler(scheduler):
        raise ValueError(
            f"a distilled U-Net samples only with its own DDIM sampler, not {type(scheduler).__name__} "
            f"(timestep_spacing={scheduler.config.get('timestep_spacing')!r}); set "
            "pipe.scheduler = student_scheduler(pipe.scheduler.config) (from stable_audio_kit.distillation)"
        )


def student_timesteps(steps: int, num_train_timesteps: int) -> list[int]:
    """The student's timesteps, first to last, then ``-1`` for the clean end: ``[t_0, ..., t_{steps-1}, -1]``,
    exactly those of :func:`student_scheduler` with ``set_timesteps(steps)``."""
    if steps < 1 or num_train_timesteps % steps:
        raise ValueError(f"steps must be >= 1 and divide the {num_train_timesteps} training timesteps, got {steps}")
    stride = num_train_timesteps // steps
    return [num_train_timesteps - 1 - k * stride for k in range(steps)] + [-1]


def alpha_sigma(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, sigma)`` ``(B, 1, 1)`` at integer ``timesteps`` ``(B,)``; ``-1`` is the clean end (1, 0)."""
    cumprod = torch.where(timesteps >= 0, alphas_cumprod[timesteps.clamp(min=0)], torch.ones_like(alphas_cumprod[0]))
    cumprod = cumprod.double()[:, None, None]
    return cumprod.sqrt(), (1 - cumprod).sqrt()


def velocity_target(
    sample: torch.Tensor,
    target_sample: torch.Tensor,
    timesteps: torch.Tensor,
    prev_timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """The v-prediction ``(B, C, T)`` whose DDIM step from ``sample`` at ``timesteps`` lands on ``target_sample``
    at ``prev_timesteps`` (``-1``: the clean latents), in float32."""
    alpha, sigma = alpha_sigma(alphas_cumprod, timesteps)
    alpha_p, sigma_p = alpha_sigma(alphas_cumprod, prev_timesteps)
    c_sample = alpha_p * alpha + sigma_p * sigma
    c_velocity = sigma_p * alpha - alpha_p * sigma
    return ((target_sample.double() - c_sample * sample.double()) / c_velocity).float()


def ddim_step(
    sample: torch.Tensor,
    velocity: torch.Tensor,
    timesteps: torch.Tensor,
    prev_timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """One deterministic DDIM step of a v-prediction, per row (the inverse of :func:`velocity_target`)."""
    alpha, sigma = alpha_sigma(alphas_cumprod, timesteps)
    alpha_p, sigma_p = alpha_sigma(alphas_cumprod, prev_timesteps)
    out = (alpha_p * alpha + sigma_p * sigma) * sample.double() + (
        sigma_p * alpha - alpha_p * sigma
    ) * velocity.double()
    return out.to(sample.dtype)
