"""The samplers the CLI accepts (``--scheduler``), by name, and how each is configured.

Every entry is a diffusers scheduler built for the objective the models are trained with
(:mod:`stable_audio_kit.objective`): ``prediction_type="v_prediction"`` on the DDPM noise schedule of the
model config, with ``timestep_spacing="trailing"`` so that sampling starts at the last training timestep.
The default, ``dpmsolver++``, is DPM-Solver++ of 2nd order. :func:`swap_scheduler` turns a pipeline's
scheduler into another one of the registry with the same noise schedule.
"""

from __future__ import annotations

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


def check_scheduler_name(name: str) -> str:
    """``name`` if it is a registered sampler; else ``ValueError`` listing the valid names."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid names: {sorted(SCHEDULERS)}")
    return name


def make_scheduler(
    name: str = "dpmsolver++", num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2"
) -> SchedulerMixin:
    """A v-prediction sampler from the registry, e.g. ``make_scheduler("dpmsolver++")``."""
    check_scheduler_name(name)
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
    check_scheduler_name(name)
    return SCHEDULERS[name].from_config(scheduler.config)
