"""How a call samples, apart from what it asks for: U-Net, steps, guidance, sampler, frames, precision and decode.

The defaults are the fastest setting whose quality on the bundled model's held-out set stays within noise
of the 50-step baseline (``benchmarks/results/speed.md``, README "Speed"). :class:`SamplingSettings` carries
them from the CLI, the page and ``sak evaluate`` to a pipeline; each is checked before any model loads.
:func:`rows_sample_together` and :func:`initial_noise` say when and how rows (a prompt list's, a request's
variations) share one call. Imports nothing heavy.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .precision import PRECISIONS, check_precision
from .schedulers import SCHEDULER_NAMES, check_scheduler_name
from .utils import check_finite_number

logger = logging.getLogger("stable_audio_kit")

# The pipeline's and every command's default number of denoising steps: with UniPC, 15 keep the bundled model's
# `sak evaluate` metrics within noise of 50 DPM-Solver++ steps; 12 and 10 lose duration adherence
# (benchmarks/results/speed_quality.md).
DEFAULT_STEPS = 15

# The pipeline's and every command's classifier-free guidance scale for a U-Net trained on the v-objective (a
# distilled student has its own baked in).
DEFAULT_GUIDANCE_SCALE = 7.0

# Where a pipeline directory keeps a step-distilled student of its U-Net (`sak train distill`,
# stable_audio_kit.distillation).
DISTILLED_SUBFOLDER = "unet_distilled"

# The U-Nets a pipeline directory holds and loads (stable_audio_kit.assembly.load_pipeline): its own ("base", unet/)
# or the step-distilled student of it ("distilled", unet_distilled/).
PIPELINE_UNETS = ("base", "distilled")
# Which U-Net a command or the page samples with: one of those, or "auto", the student when the model directory
# has one and the request asks nothing only the model's own U-Net can do (choose_unet). The CLI's and the page's
# default: on the bundled model the student's 8 steps are within noise of the 50-step baseline at about half the
# time of the base U-Net's defaults (README, "Speed"). The Python API loads the base U-Net unless told.
UNETS = ("auto", *PIPELINE_UNETS)
DEFAULT_UNET = "auto"

# Seconds of latent frames sampled after the requested audio ends. The model learned to end a sound followed by
# silence that the timing mask marks, inside a 10 s window; cut right after the sound, the context is unlike
# anything it was trained on. Measured with `sak evaluate --tail` on the bundled model (README, "Speed"): with
# 1 s the FAD on 80 held-out clips rose from 0.080-0.090 (whole window, two seeds) to 0.100-0.109, with 3 s it
# is 0.082, and CLAP score and recall are back within the seeds' spread. A value at least the window's length
# samples the whole window, as Stable Audio does.
TAIL_SECONDS = 3.0


def check_tail_seconds(tail_seconds: Any) -> float:
    """``tail_seconds`` (``None``: :data:`TAIL_SECONDS`) as a finite number >= 0; else ``ValueError``."""
    if tail_seconds is None:
        return TAIL_SECONDS
    tail = check_finite_number("tail_seconds", tail_seconds)
    if tail < 0:
        raise ValueError(f"tail_seconds must be >= 0, got {tail_seconds!r}")
    return tail


def check_unet_name(unet: Any, names: tuple[str, ...] = UNETS) -> str:
    """``unet`` if it is one of ``names`` (:data:`UNETS`, or :data:`PIPELINE_UNETS` for a loader); else
    ``ValueError`` listing them."""
    if unet not in names:
        raise ValueError(f"unet must be one of {', '.join(names)}, got {unet!r}")
    return unet


def holds_student(model_dir: str | Path) -> bool:
    """Whether the pipeline directory ``model_dir`` holds a distilled student (``unet_distilled/config.json``); a
    look at the folder, nothing loaded (whether the student is whole is
    :func:`~stable_audio_kit.assembly.check_distilled_dir`'s to say)."""
    return (Path(model_dir) / DISTILLED_SUBFOLDER / "config.json").is_file()


def choose_unet(
    unet: str,
    has_student: bool,
    *,
    steps: Any = None,
    scheduler: Any = None,
    guidance_scale: Any = None,
    negative_prompt: Any = None,
    lora: Any = None,
) -> str:
    """The U-Net a request samples with, ``"base"`` or ``"distilled"``: ``unet`` itself unless it is ``"auto"``.
    ``"auto"`` is the distilled student when the model directory has one (``has_student``) and the request sets
    none of ``steps``, ``scheduler``, ``guidance_scale``, ``negative_prompt`` and ``lora`` (each ``None`` or
    empty when not set), else the model's own. A student samples only in its own steps, with its own sampler and
    baked-in guidance, runs no unconditional half for a negative prompt, and an adapter is trained on the base
    weights: a request for any of these gets the U-Net that does it, never a refusal. An explicit ``"distilled"``
    is returned as is, so the pipeline refuses what the student cannot do (:mod:`stable_audio_kit.distillation`)."""
    check_unet_name(unet)
    if unet != "auto":
        return unet
    asked = {
        "steps": steps,
        "scheduler": scheduler,
        "guidance_scale": guidance_scale,
        "negative_prompt": negative_prompt,
        "lora": lora,
    }
    given = [name for name, value in asked.items() if not _unset(value)]
    if has_student and not given:
        return "distilled"
    if has_student:
        logger.debug("--unet auto: the base U-Net, for %s", ", ".join(given))
    return "base"


def _unset(value: Any) -> bool:
    """``None``, or an empty string or collection (no negative prompt, no adapters); a number is set, 0 too."""
    return value is None or (isinstance(value, (str, list, tuple, dict, set)) and len(value) == 0)


# Rows sampled in one pipeline call, at most: the rows of a prompt list (`sak generate --prompts`) or the variations
# of one page request (rows_sample_together). Rows of one length share each U-Net forward and its fixed cost: with
# mixed lengths, one call per equal length gave 1.67x the audio-seconds per wall-second of whole-window calls, one
# call a row 1.31x (benchmarks/results/speed.md, section 4). Capped because a group's latents, activations (twice,
# with guidance) and decoded audio grow with each row, and none of its files is written before the whole group is
# sampled: a 1000-row list must not become one giant batch.
MAX_GROUP_ROWS = 8


@dataclass
class SamplingSettings:
    """``steps`` (``None``: the model's own, a distilled student's ``distilled_steps`` or :data:`DEFAULT_STEPS`);
    ``scheduler`` (a name of :data:`~stable_audio_kit.schedulers.SCHEDULER_NAMES`, ``None``: the model's own);
    ``tail_seconds`` sampled after the audio (``None``: the pipeline's default); ``precision`` of the U-Net
    (:mod:`stable_audio_kit.precision`); ``griffin_lim_iters`` of a spectral decoder (``None``: the model's own);
    ``unet``, which U-Net of the model directory loads (:data:`UNETS`; ``"auto"``, the CLI's default, is resolved by
    :func:`choose_unet` before a model loads; the dataclass's default is the model's own, as the Python API's)."""

    steps: int | None = None
    scheduler: str | None = None
    tail_seconds: float | None = None
    precision: str = "auto"
    griffin_lim_iters: int | None = None
    unet: str = "base"

    def check(self) -> SamplingSettings:
        """Raise ``ValueError`` naming the first bad value; returns ``self``."""
        steps = self.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        check_unet_name(self.unet)
        if self.scheduler is not None:
            check_scheduler_name(self.scheduler)
            if self.unet == "distilled":
                raise ValueError(
                    f"scheduler {self.scheduler!r} cannot sample the distilled U-Net: it samples only with its own "
                    "DDIM sampler, which loads with it"
                )
        check_tail_seconds(self.tail_seconds)
        check_precision(self.precision)
        iters = self.griffin_lim_iters
        if iters is not None and (isinstance(iters, bool) or not isinstance(iters, int) or iters < 0):
            raise ValueError(f"griffin_lim_iters must be an integer >= 0, got {iters!r}")
        return self

    def apply(self, pipe) -> None:
        """Set the sampler and the decoder's Griffin-Lim iterations on ``pipe``."""
        if self.scheduler is not None:
            from .schedulers import swap_scheduler

            pipe.scheduler = swap_scheduler(pipe.scheduler, self.scheduler)
        if self.griffin_lim_iters is not None:
            setter = getattr(pipe.vae, "set_griffin_lim_iters", None)
            if setter is None:
                raise ValueError(f"this model's VAE ({type(pipe.vae).__name__}) has no Griffin-Lim decoder")
            setter(self.griffin_lim_iters)

    def call_options(self) -> dict[str, Any]:
        """The pipeline call's arguments: ``num_inference_steps``, ``tail_seconds`` and ``precision``."""
        return {"num_inference_steps": self.steps, "tail_seconds": self.tail_seconds, "precision": self.precision}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SamplingSettings:
        """The settings of a command's :func:`add_arguments`, checked; a message names the option."""
        settings = cls(args.steps, args.scheduler, args.tail, args.precision, args.griffin_lim_iters, args.unet)
        try:
            return settings.check()
        except ValueError as err:
            message = str(err)
            for field, option in OPTIONS.items():
                if message.startswith(f"{field} "):
                    raise ValueError(option + message[len(field) :]) from None
            raise


# The command-line option of each setting, for messages.
OPTIONS = {
    "steps": "--steps",
    "tail_seconds": "--tail",
    "precision": "--precision",
    "griffin_lim_iters": "--griffin-lim-iters",
    "unet": "--unet",
    "scheduler": "--scheduler",
}


# The options of a sampling command that :func:`choose_unet` reads: any of them makes ``--unet auto`` the base U-Net.
BASE_ONLY_OPTIONS = ("--steps", "--scheduler", "--cfg", "--negative", "--lora")


def add_arguments(p: argparse.ArgumentParser, base_only: tuple[str, ...] = BASE_ONLY_OPTIONS) -> None:
    """``--unet``, ``--steps``, ``--scheduler``, ``--tail``, ``--precision`` and ``--griffin-lim-iters``;
    ``base_only`` are the command's options that make ``--unet auto`` the base U-Net, for the help."""
    g = p.add_argument_group("speed (README, Speed)")
    g.add_argument(
        "--unet",
        choices=UNETS,
        default=DEFAULT_UNET,
        help="which U-Net samples: base, the model's own; distilled, its step-distilled student (unet_distilled/, "
        "`sak train distill`) at its own steps and guidance; auto (default), the student if the model has one and "
        f"none of {', '.join(base_only)} is given, else the model's own",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"denoising steps (default: the model's own, {DEFAULT_STEPS} for a base U-Net)",
    )
    g.add_argument(
        "--scheduler", default=None, help=f"sampler: {', '.join(SCHEDULER_NAMES)} (default: the model's own)"
    )
    g.add_argument(
        "--tail",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds sampled after the requested audio (default: the pipeline's; the window's length or more "
        "samples the whole window)",
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="U-Net precision: auto (bf16 on CPUs that compute it natively), bf16 or fp32",
    )
    g.add_argument(
        "--griffin-lim-iters",
        type=int,
        default=None,
        metavar="N",
        help="phase iterations of a spectral decoder (default: the model's own)",
    )


def rows_sample_together(
    pipe, settings: SamplingSettings, guidance_scale: float | None, device: str, scheduler=None
) -> bool:
    """Whether rows sampled in one call of ``pipe`` with ``settings`` and ``guidance_scale`` on ``device`` come out
    as each does alone (to float tolerance), so they may share a call (the CLI's prompt lists, the page's
    variations): the sampler's steps draw no noise (:func:`~stable_audio_kit.schedulers.deterministic_steps` of
    ``scheduler``, default ``pipe``'s), and the U-Net runs in float32 or without guidance. In bfloat16 a batch of
    another size rounds a few values to the other neighbour, and guidance (its scale times the difference of two
    forwards) carries that into the audio: on the bundled model's base U-Net at the default 15 UniPC steps and
    guidance 7, a row sampled in a group of 3 differed from the row alone by 8-34% of its peak; in float32, or in
    bfloat16 without guidance (the student), by about 1e-4 of it. Whether the workflow draws noise of its own
    (inpainting, loops, long-form) is the caller's to rule out."""
    import torch

    from .precision import resolve_precision
    from .schedulers import deterministic_steps

    guidance = pipe.resolve_sampling(settings.steps, guidance_scale)[1]
    exact = resolve_precision(settings.precision, torch.device(device).type) == "fp32"
    steps_exact = deterministic_steps(scheduler if scheduler is not None else pipe.scheduler)
    return steps_exact and (exact or not pipe.runs_unconditional(guidance))


def initial_noise(pipe, seed: int, batch: int, frames: int):
    """The initial noise the pipeline draws for a row with ``seed`` alone (:meth:`initial_noise
    <stable_audio_kit.pipeline.StableAudioKitPipeline.initial_noise>`, in the conditioning's dtype), ``(batch, latent
    channels, frames)`` for its ``batch`` waveforms, drawn whole as the row's own call draws it. Rows stacked
    (``torch.cat``) and passed as ``latents=`` start a shared call where each starts alone."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    return pipe.initial_noise(batch, generator, frames, dtype=pipe.projection.dtype)
