"""The ``sak`` commands that sample: ``generate`` (text-to-audio, audio-to-audio, loops, long-form and
schedules, prompt lists), ``inpaint`` and ``continue``, and loading a model for any command.

Every argument and every row is validated before the model loads (torch is imported only then), and
every row is checked against the model by the pipeline's own ``check_call`` before the first file.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from . import sampling
from .sampling import MAX_GROUP_ROWS, SamplingSettings, initial_noise, rows_sample_together

logger = logging.getLogger("stable_audio_kit")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class CLIError(ValueError):
    """A user error; printed without a traceback."""


# The pipelines `sak serve` keeps loaded between requests (keep_loaded), newest last: {(folder, its files' sizes
# and times, device, U-Net): (pipeline, its scheduler as loaded, its Griffin-Lim iterations as loaded)}. A one-shot
# run keeps nothing (None).
_kept: dict | None = None
MAX_KEPT = 2


def keep_loaded() -> None:
    """Keep the pipelines :func:`load_model` loads for the next commands of this process (``sak serve``). Each
    command gets its pipeline as loaded, whatever the command before changed: the scheduler, LoRA adapters and
    Griffin-Lim iterations are put back; a model folder whose files changed is loaded again."""
    global _kept
    if _kept is None:
        _kept = {}


def load_model(path: str | None, device: str = "cpu", unet: str = "base"):
    """The pipeline in ``path`` (default: the bundled model) on ``device``, with the U-Net ``unet`` names,
    ``"base"`` or ``"distilled"`` (:func:`~stable_audio_kit.assembly.load_pipeline`; a command resolves ``--unet
    auto`` first, :func:`resolve_unet`); under ``sak serve`` the kept one."""
    from .assembly import load_pipeline

    sampling.check_unet_name(unet, sampling.PIPELINE_UNETS)
    quiet_loading()
    if _kept is None:
        return load_pipeline(path, unet=unet).to(device)
    return _kept_pipeline(path, device, unet)


def _kept_pipeline(path: str | None, device: str, unet: str):
    """The kept pipeline of ``path`` on ``device`` with the U-Net ``unet`` (loaded now if need be), as it was
    loaded."""
    from .assembly import DEFAULT_MODEL_DIR, load_pipeline

    folder = Path(path if path is not None else DEFAULT_MODEL_DIR).resolve()
    # A model folder holds files and component folders of files: two levels say whether it changed since.
    files = sorted(f for f in [*folder.glob("*"), *folder.glob("*/*")] if f.is_file())
    key = (str(folder), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files), str(device), unet)
    if key in _kept:
        _kept[key] = _kept.pop(key)  # the newest
    else:
        pipe = load_pipeline(path, unet=unet).to(device)
        while len(_kept) >= MAX_KEPT:
            _kept.pop(next(iter(_kept)))
        _kept[key] = (pipe, pipe.scheduler, getattr(pipe.vae.config, "griffin_lim_iters", None))
    pipe, scheduler, iters = _kept[key]
    # Undo what the command before may have changed; a new scheduler also holds no step state of the last call.
    pipe.unload_lora_weights()
    pipe.scheduler = type(scheduler).from_config(scheduler.config)
    if iters is not None and pipe.vae.config.griffin_lim_iters != iters:
        pipe.vae.set_griffin_lim_iters(iters)
    return pipe


def resolve_unet(unet: str, model: str | None, **request) -> str:
    """The U-Net, ``"base"`` or ``"distilled"``, a command samples the model directory ``model`` (default: the
    bundled model) with: :func:`~stable_audio_kit.sampling.choose_unet` of ``--unet`` and the ``request``'s
    options (``steps``, ``scheduler``, ``guidance_scale``, ``negative_prompt``, ``lora``), decided before anything
    loads (torch is not imported). The student is checked whole and distilled from the U-Net in ``unet/``
    (``ValueError`` naming what is wrong); when ``auto`` picks it, one INFO line says so, and when ``auto`` would
    pick a student of other weights (:func:`~stable_audio_kit.students.auto_student`), one warning, and the base
    U-Net samples."""
    from .assembly import DEFAULT_MODEL_DIR, check_distilled_dir
    from .students import auto_student, distilled_config

    folder = Path(model) if model is not None else DEFAULT_MODEL_DIR
    chosen = sampling.choose_unet(unet, sampling.holds_student(folder), **request)
    if chosen == "distilled" and unet == "auto" and not auto_student(folder):
        return "base"
    if chosen == "distilled":
        check_distilled_dir(folder)
        if unet == "auto":
            config = distilled_config(folder)
            logger.info(
                "sampling with the distilled U-Net (%d steps, guidance %g baked in); --unet base for the model's own",
                config["distilled_steps"],
                float(config["distilled_guidance_scale"]),
            )
    return chosen


def quiet_loading() -> None:
    """Hide diffusers' component-loading and transformers' weight-loading progress bars unless ``--verbose``: the
    one bar a command shows is its own (sampling, encoding, training)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


# --------------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    from .server import run_on_server  # the standard library only: a warm `sak serve` answers at once

    if (code := run_on_server(args)) is not None:
        return code
    from .utils import check_writable

    # 1. Validate every argument and every prompt before loading anything; each prompt is read once. Only the
    # conditioning overrides import torch here, so every other bad argument is refused at once.
    from .conditioning import parse_prompt
    from .prompt_lists import Job, output_paths, parse_seconds, read_prompt_file

    schedule_file = getattr(args, "schedule", None)
    if sum(x is not None for x in (args.prompt, args.prompts, schedule_file)) != 1:
        raise CLIError("give one of a PROMPT, --prompts FILE or --schedule FILE")
    settings = SamplingSettings.from_args(args)
    if args.batch < 1:
        raise CLIError(f"--batch must be >= 1, got {args.batch}")
    if args.cfg is not None and not math.isfinite(args.cfg):
        raise CLIError(f"--cfg must be finite, got {args.cfg}")
    given = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"--set takes NAME=VALUE, got {item!r}")
        try:
            given[name] = float(value)
        except ValueError:
            given[name] = value
    given.update({name: value for name, value in (("bpm", args.bpm), ("key", args.key)) if value is not None})
    from .utils import check_device, check_seed, random_seed

    base_seed = random_seed() if args.seed is None else args.seed

    check_seed(base_seed, "--seed")
    check_device(args.device)
    default_seconds = parse_seconds(args.seconds, "--seconds") if args.seconds is not None else None
    options = workflow_options(args)
    if args.prompts is None:
        negative = parse_prompt(args.negative) if args.negative else None
        if schedule_file is not None:
            from .prompt_lists import read_schedule

            schedule = read_schedule(schedule_file)
            jobs = [Job(0, schedule[0][0], default_seconds, base_seed, negative, options, schedule)]
        else:
            jobs = [Job(0, parse_prompt(args.prompt), default_seconds, base_seed, negative, options)]
        if getattr(args, "bars", None) is not None:
            jobs[0].seconds = bars_length(args, jobs[0])
        out = Path(args.output or "output.wav")
        if out.suffix.lower() not in AUDIO_SUFFIXES:
            raise CLIError(f"output file {str(out)!r} must end in one of {list(AUDIO_SUFFIXES)}")
        single = True
    else:
        jobs = read_prompt_file(Path(args.prompts), default_seconds, base_seed)
        if args.negative:
            negative = parse_prompt(args.negative)
            jobs = [Job(j.index, j.prompt, j.seconds, j.seed, j.negative or negative, j.options) for j in jobs]
        if getattr(args, "bars", None) is not None:
            raise CLIError("--bars applies to a single PROMPT; give each row its seconds in the prompt list")
        for job in jobs:
            job.options = {**options, **job.options}
        out = Path(args.output or "outputs")
        if out.exists() and not out.is_dir():
            raise CLIError(f"with --prompts, -o must be a folder; {str(out)!r} is a file")
        single = False
    overrides = {}
    from .music import check_bpm, key_override

    shorthands = {"bpm": check_bpm, "key": key_override}  # what --bpm and --key check, without torch
    if set(given) <= set(shorthands):
        try:
            overrides = {name: shorthands[name](value) for name, value in given.items()}
        except ValueError as err:
            raise CLIError(f"--{err}") from None
    else:
        from .conditioning import check_overrides  # the inputs that read overrides import torch

        try:
            overrides = check_overrides(given)
        except ValueError as err:
            raise CLIError(f"--{err}" if str(err).startswith(("bpm", "key")) else str(err)) from None
    from .delivery import Delivery, delivery_loudness

    if args.no_normalize and args.loudness is not None:
        raise CLIError("give --loudness or --no-normalize, not both")
    try:
        delivery = Delivery(
            loudness=delivery_loudness(
                args.loudness, not args.no_normalize, getattr(args, "inpaint_audio", None) is not None
            ),
            fade_in_ms=args.fade_in,
            fade_out_ms=args.fade_out,
            delivery_rate=args.sample_rate,
            format=args.format,
            loop=bool(getattr(args, "loop", False)),
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    for job in jobs:
        for path in output_paths(job, out, args.batch, single):
            try:
                check_writable(path)
                # Names made from a prompt list take the format's suffix; a name the user gave must match it.
                delivery.check(path if single else delivery.output_path(path), job.seconds)
            except ValueError as err:
                raise CLIError(str(err)) from None

    loras = [parse_lora(text) for text in getattr(args, "lora", [])]
    # --unet auto: the student unless a row or an option asks what only the model's own U-Net does.
    settings.unet = resolve_unet(
        settings.unet,
        args.model,
        steps=settings.steps,
        scheduler=settings.scheduler,
        guidance_scale=args.cfg,
        negative_prompt=[job.negative for job in jobs if job.negative is not None],
        lora=loras,
    )

    # 2. Load the model (and its adapters) and check every row against it (the pipeline's own checks), before the
    # first file.
    import torch
    from accelerate import PartialState

    from .utils import cpu_data_parallel, launcher_warning

    # Without a GPU, a torchrun / `accelerate launch --multi_gpu` launch only shares the prompts if told to use the CPU.
    state = PartialState(cpu=args.device == "cpu" or (args.device is None and cpu_data_parallel()))
    device = args.device or str(state.device)
    shortfall = launcher_warning()
    if shortfall and state.is_main_process:
        logger.warning(shortfall)
    pipe = load_model(args.model, device=device, unet=settings.unet)
    settings.apply(pipe)  # --scheduler, --griffin-lim-iters
    for folder, scale in loras:
        name = pipe.load_lora_weights(folder, scale=scale)
        logger.info("LoRA adapter %s loaded as %s at scale %g", folder, name, scale)
    for job in jobs:
        if job.seconds is None and job.schedule is None and not {"init_audio", "inpaint_audio"} & set(job.options):
            job.seconds = pipe.max_seconds
        try:
            pipe.check_call(
                job.pipeline_prompt,
                job.negative,
                seconds_total=job.seconds,
                guidance_scale=args.cfg,
                num_waveforms_per_prompt=args.batch,
                overrides=overrides,
                **settings.call_options(),
                **job.options,
            )
        except ValueError as err:
            where = f"row {job.index} ({job.prompt.text!r}): " if not single else ""
            raise CLIError(f"{where}{err}") from None
    if not single:
        out.mkdir(parents=True, exist_ok=True)

    # 3. Generate; under `accelerate launch` each process takes its own share of the prompts.
    from tqdm.auto import tqdm

    # Rows of equal length are sampled together (group_jobs), each from the initial noise it gets alone.
    together = rows_sample_together(pipe, settings, args.cfg, device)
    with state.split_between_processes(jobs) as my_jobs:
        show_inner = single
        pipe.set_progress_bar_config(
            desc="sampling", unit="step", disable=not show_inner or not state.is_local_main_process
        )
        groups = group_jobs(my_jobs, pipe.max_seconds, together=together)
        bar = tqdm(total=len(my_jobs), desc=f"generating (rank {state.process_index})", disable=single, unit="prompt")
        for group in groups:
            job = group[0]
            if len(group) == 1:
                prompt, noise = job.pipeline_prompt, {"generator": torch.Generator(device="cpu").manual_seed(job.seed)}
            else:
                frames = pipe.sampled_frames(0.0, job.seconds, settings.tail_seconds)
                prompt = [row.prompt for row in group]
                noise = {"latents": torch.cat([initial_noise(pipe, row.seed, args.batch, frames) for row in group])}
            audio = pipe(
                prompt,
                negative_prompt=job.negative,
                seconds_total=job.seconds,
                guidance_scale=args.cfg,
                num_waveforms_per_prompt=args.batch,
                **noise,
                **settings.call_options(),
                overrides=overrides,
                **job.options,
            ).audios
            for k, row in enumerate(group):  # the call's waveforms: each row's args.batch in turn
                waveforms = audio[k * args.batch : (k + 1) * args.batch]
                for path, wav in zip(output_paths(row, out, args.batch, single), waveforms):
                    path = delivery.save(path if single else delivery.output_path(path), wav, pipe.sample_rate)
                    logger.info("wrote %s (%.3f s, seed %d)", path, wav.shape[-1] / pipe.sample_rate, row.seed)
                    if single:
                        print(path)
            bar.update(len(group))
        bar.close()
    if not single:
        state.wait_for_everyone()
        if state.is_main_process:
            print(f"wrote {len(jobs) * args.batch} file(s) to {out}")
    return 0


def group_jobs(jobs: list, max_seconds: float, together: bool = True) -> list[list]:
    """The pipeline calls that sample ``jobs`` (a process's share of a prompt list), each a list of rows, in the
    order of their first rows. Rows that can share a call go together, at most
    :data:`~stable_audio_kit.sampling.MAX_GROUP_ROWS` a call: the same ``seconds`` (up to ``max_seconds``, the
    window; a longer row is long-form) and negative prompt, no schedule and no workflow options. Every other row is a
    call of its own, as is every row unless ``together`` (:func:`~stable_audio_kit.sampling.rows_sample_together`)."""
    calls: list[list] = []
    filling: dict[tuple, list] = {}  # the group each length and negative prompt adds its next row to
    for job in jobs:
        if not together or job.schedule is not None or job.options or job.seconds is None or job.seconds > max_seconds:
            calls.append([job])
            continue
        key = (job.seconds, job.negative.text if job.negative is not None else None)
        group = filling.get(key)
        if group is None or len(group) >= MAX_GROUP_ROWS:
            group = filling[key] = []
            calls.append(group)
        group.append(job)
    return calls


def parse_lora(text: str) -> tuple[str, float]:
    """``--lora DIR[:SCALE]`` as ``(DIR, SCALE)``, the folder checked to be an adapter folder (this imports torch)."""
    folder, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            folder, scale = head, float(tail)
        except ValueError:  # a ':' that belongs to the path
            pass
    if not math.isfinite(scale):
        raise CLIError(f"--lora {text!r}: the scale must be finite")
    from .lora import read_config

    try:
        read_config(folder)
    except ValueError as err:
        raise CLIError(f"--lora: {err}") from None
    return folder, scale


def workflow_options(args: argparse.Namespace) -> dict:
    """The pipeline's workflow arguments from ``sak generate`` / ``inpaint`` / ``continue`` flags."""
    options = {}
    if getattr(args, "init_audio", None) is not None:
        options["init_audio"] = Path(args.init_audio)
    if getattr(args, "strength", None) is not None:
        options["strength"] = args.strength
    if getattr(args, "loop", False):
        options["loop"] = True
    if getattr(args, "inpaint_audio", None) is not None:
        options["inpaint_audio"], options["regions"] = Path(args.inpaint_audio), args.regions
    if getattr(args, "overlap", None) is not None:
        options["overlap_seconds"] = args.overlap
    if options.get("strength") is not None and "init_audio" not in options:
        raise CLIError("--strength applies to --init-audio")
    return options


def bars_length(args: argparse.Namespace, job) -> float:
    """Seconds of ``--bars`` 4/4 bars at ``--bpm`` or the prompt's tempo."""
    from .workflows import bars_length as length_of_bars

    if args.seconds is not None:
        raise CLIError("give --seconds or --bars, not both")
    try:
        return length_of_bars(args.bars, args.bpm, job.prompt)
    except ValueError as err:
        raise CLIError(f"--{err}" if str(err).startswith("bars") else str(err)) from None


def parse_region(text: str) -> tuple[float, float]:
    """``"2.0:3.5"`` -> ``(2.0, 3.5)``."""
    from .prompt_lists import parse_region as parse

    try:
        return parse(text)
    except ValueError as err:
        raise CLIError(f"--{err}") from None


def cmd_inpaint(args: argparse.Namespace) -> int:
    from .server import run_on_server

    if (code := run_on_server(args)) is not None:
        return code
    args.inpaint_audio, args.regions = args.input, [parse_region(r) for r in args.region]
    args.prompts = None
    return cmd_generate(args)


def cmd_continue(args: argparse.Namespace) -> int:
    from .server import run_on_server

    if (code := run_on_server(args)) is not None:
        return code
    from .prompt_lists import continuation_regions, parse_seconds

    total = parse_seconds(args.seconds, "--seconds")
    try:
        args.regions = continuation_regions(args.input, total)
    except ValueError as err:
        raise CLIError(f"--{err}" if str(err).startswith("seconds") else str(err)) from None
    args.inpaint_audio, args.prompts = args.input, None
    return cmd_generate(args)


# --------------------------------------------------------------------------- data, training, export


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every command that samples shares: guidance, seeds, conditioning values, model, delivery,
    and the speed settings (:func:`stable_audio_kit.sampling.add_arguments`)."""
    sampling.add_arguments(p)
    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument(
        "--cfg",
        type=float,
        default=None,
        help=f"classifier-free guidance scale, <= 1 switches it off (default: the model's own, "
        f"{sampling.DEFAULT_GUIDANCE_SCALE:g} for a base U-Net)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--bpm", type=float, default=None, help="tempo for a beat-grid model (default: the one the prompt names)"
    )
    p.add_argument(
        "--key", default=None, help='key for a key-conditioned model, "F# minor" (default: the one the prompt names)'
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the value of a conditioning input, by the name it reads (repeatable), e.g. --set bpm=96",
    )
    p.add_argument("--batch", type=int, default=1, help="waveforms per prompt")
    p.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="DIR[:SCALE]",
        help="a LoRA adapter folder (sak export of a LoRA run) to load, at SCALE (default 1); repeatable",
    )
    p.add_argument("--device", default=None, help="torch device (default: the accelerate process's device)")
    p.add_argument(
        "--no-server",
        action="store_true",
        help="run in this process even if a `sak serve` is running (also: SAK_NO_SERVER=1)",
    )
    p.add_argument("-o", "--output", default=None, help="output .wav/.flac/.ogg, or a folder with --prompts")
    p.add_argument(
        "--loudness",
        type=float,
        default=None,
        metavar="LUFS",
        help="integrated loudness (BS.1770) of each file, true peak <= -1 dBTP (default -14)",
    )
    p.add_argument("--no-normalize", action="store_true", help="keep the model's levels")
    p.add_argument("--fade-in", type=float, default=0.0, metavar="MS", help="fade-in in milliseconds")
    p.add_argument("--fade-out", type=float, default=0.0, metavar="MS", help="fade-out in milliseconds")
    p.add_argument(
        "--format",
        default=None,
        metavar="FMT",
        help="wav16, wav24, wav32f, flac16, flac24 (flac), ogg (default: .wav float, .flac 24-bit, .ogg vorbis)",
    )
    p.add_argument("--sample-rate", type=int, default=None, metavar="HZ", help="delivery rate (default: the model's)")
    p.add_argument(
        "--overlap",
        type=float,
        default=None,
        metavar="SECONDS",
        help="long-form (--seconds beyond the window): seconds each window keeps of the one before",
    )
