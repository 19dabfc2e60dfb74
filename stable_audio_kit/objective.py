"""The diffusion objective, in one place for both training and sampling.

v-prediction on a discrete DDPM noise schedule (diffusers' scheduler config is the single source
of the betas), the loss, and the CFG combination for sampling. What the unconditional half
of guidance (and CFG dropout in training) is given is the conditioning's rule,
:func:`stable_audio_kit.conditioning.unconditional`. Any diffusers scheduler that supports
``prediction_type="v_prediction"`` can sample a model trained with it; :mod:`stable_audio_kit.schedulers`
holds the ones the CLI offers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler


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


def cfg_combine(uncond: torch.Tensor, cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``."""
    return uncond + guidance_scale * (cond - uncond)
