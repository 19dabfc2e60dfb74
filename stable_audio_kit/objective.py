"""The diffusion objective, in one place for both training and sampling.

v-prediction on a discrete DDPM noise schedule (diffusers' scheduler config is the single source
of the betas), classifier-free-guidance dropout for training and the CFG combination for
sampling. Any diffusers scheduler that supports ``prediction_type="v_prediction"`` can sample a
model trained with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "dpmsolver++": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "deis": DEISMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}


def make_scheduler(
    name: str = "dpmsolver++", num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2"
):
    """A v-prediction sampler from the registry, e.g. ``make_scheduler("dpmsolver++")``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid names: {sorted(SCHEDULERS)}")
    kwargs = dict(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        prediction_type="v_prediction",
        # Start sampling at the last training timestep: with the cosine schedule that is (almost)
        # pure noise, which the model was trained on, so there is no train/test gap at the start.
        timestep_spacing="trailing",
    )
    if name == "dpmsolver++":
        kwargs.update(algorithm_type="dpmsolver++", solver_order=2)
    return SCHEDULERS[name](**kwargs)


def swap_scheduler(scheduler: SchedulerMixin, name: str) -> SchedulerMixin:
    """Another registered scheduler with the same noise schedule (``from_config``)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid names: {sorted(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(scheduler.config)


class VObjective:
    """Noising and v-targets on the schedule of a pipeline's scheduler config."""

    def __init__(self, scheduler_config):
        self.schedule = DDPMScheduler.from_config(scheduler_config, prediction_type="v_prediction")
        self.num_train_timesteps = self.schedule.config.num_train_timesteps

    def sample_timesteps(
        self, batch: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform integer timesteps ``(B,)``."""
        t = torch.randint(
            0, self.num_train_timesteps, (batch,), generator=generator, device=generator.device if generator else "cpu"
        )
        return t.to(device)

    def noisy_and_target(
        self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noisy latents, v target)``, both ``(B, C, T)``."""
        self.schedule.alphas_cumprod = self.schedule.alphas_cumprod.to(latents.device)
        noisy = self.schedule.add_noise(latents, noise, timesteps)
        target = self.schedule.get_velocity(latents, noise, timesteps)
        return noisy, target

    @staticmethod
    def loss(prediction: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """MSE over ``(B, C, T)``; with ``frame_mask (B, T)`` only real (unpadded) frames count."""
        err = F.mse_loss(prediction.float(), target.float(), reduction="none")
        if frame_mask is None:
            return err.mean()
        weights = frame_mask.to(err.dtype).unsqueeze(1).expand_as(err)
        return (err * weights).sum() / weights.sum().clamp(min=1.0)


def null_context(context: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional context: zeros, all positions attended (an all-False mask would give NaN)."""
    return torch.zeros_like(context), torch.ones_like(mask, dtype=torch.bool)


def drop_context(context: torch.Tensor, mask: torch.Tensor, dropped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free-guidance dropout: the rows where ``dropped (B,)`` is True get :func:`null_context`.

    The training step decides ``dropped`` (per sample, from its own generator) so that the decision
    does not depend on how a global batch is split between processes.
    """
    null_ctx, null_mask = null_context(context, mask)
    dropped = dropped.to(context.device)
    context = torch.where(dropped[:, None, None], null_ctx, context)
    mask = torch.where(dropped[:, None], null_mask, mask.bool())
    return context, mask


def cfg_combine(uncond: torch.Tensor, cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``."""
    return uncond + guidance_scale * (cond - uncond)
