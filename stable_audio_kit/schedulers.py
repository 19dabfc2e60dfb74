"""The samplers the CLI accepts (``--scheduler``), by name, and how each is configured.

Every entry is a diffusers scheduler built for the objective the models are trained with
(:mod:`stable_audio_kit.objective`): ``prediction_type="v_prediction"`` on the DDPM noise schedule of the
model config, with ``timestep_spacing="trailing"`` so that sampling starts at the last training timestep.
The default of model configs and of the bundled model is ``unipc`` (UniPC, 2nd order, bh2): at the default
15 steps it keeps the bundled model's quality, where ``dpmsolver++`` (DPM-Solver++ 2M) needs 25.
:func:`swap_scheduler` turns a pipeline's scheduler into another one of the registry with the same noise
schedule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

# {name: (module of diffusers.schedulers, class)}. A name is checked without importing diffusers, so the CLI
# refuses an unknown one at once; the registry SCHEDULERS, {name: class}, imports the classes on first use.
_CLASSES = {
    "dpmsolver++": ("scheduling_dpmsolver_multistep", "DPMSolverMultistepScheduler"),
    "ddim": ("scheduling_ddim", "DDIMScheduler"),
    "ddpm": ("scheduling_ddpm", "DDPMScheduler"),
    "deis": ("scheduling_deis_multistep", "DEISMultistepScheduler"),
    "euler": ("scheduling_euler_discrete", "EulerDiscreteScheduler"),
    "heun": ("scheduling_heun_discrete", "HeunDiscreteScheduler"),
    "unipc": ("scheduling_unipc_multistep", "UniPCMultistepScheduler"),
}
SCHEDULER_NAMES = tuple(_CLASSES)


def check_scheduler_name(name: str) -> str:
    """``name`` if it is a registered sampler; else ``ValueError`` listing the valid names."""
    if name not in SCHEDULER_NAMES:
        raise ValueError(f"unknown scheduler {name!r}; valid names: {sorted(SCHEDULER_NAMES)}")
    return name


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The diffusers class of the registered sampler ``name``."""
    module, cls = _CLASSES[check_scheduler_name(name)]
    return getattr(importlib.import_module(f"diffusers.schedulers.{module}"), cls)


def __getattr__(name: str) -> Any:
    if name == "SCHEDULERS":
        value = {key: scheduler_class(key) for key in SCHEDULER_NAMES}
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_scheduler(
    name: str = "unipc", num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2"
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
    return scheduler_class(name)(**kwargs)


def swap_scheduler(scheduler: SchedulerMixin, name: str) -> SchedulerMixin:
    """Another registered scheduler with the same noise schedule (``from_config``)."""
    check_scheduler_name(name)
    # DPM-Solver++ and DEIS share a class family and an ``algorithm_type`` key: set it, or a DEIS config
    # would make a "DPM-Solver++" that runs DEIS (or refuses to build).
    extra = {"algorithm_type": "dpmsolver++", "solver_order": 2} if name == "dpmsolver++" else {}
    return scheduler_class(name).from_config(scheduler.config, **extra)


# The samplers whose step draws no noise as the pipeline calls it (scheduler.step(noise_pred, t, latents), plus the
# call's generator where the step takes one): DDIM's eta and Euler's s_churn are step arguments left at 0, and
# DPM-Solver draws only in its SDE variants. DDPM adds noise at every step, drawn from the call's generator, so rows
# sampled together would not draw what each draws alone.
_DETERMINISTIC_STEPS = {
    "DDIMScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepScheduler",
    "EulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "UniPCMultistepScheduler",
}


def deterministic_steps(scheduler: SchedulerMixin) -> bool:
    """Whether the pipeline's denoising steps with ``scheduler`` draw no noise, so a sample depends only on its
    initial noise: rows sampled in one call then come out as each does alone. False for DDPM, the SDE variants of
    DPM-Solver and any class not known here."""
    if type(scheduler).__name__ not in _DETERMINISTIC_STEPS:
        return False
    return not str(getattr(scheduler.config, "algorithm_type", "")).startswith("sde")
