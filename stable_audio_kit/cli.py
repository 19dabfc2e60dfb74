"""The ``sak`` command line.

Every command validates its arguments before it loads a model or writes a file; errors are
printed as one line naming the bad value, with exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("stable_audio_kit")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class CLIError(ValueError):
    """A user error; printed without a traceback."""


# --------------------------------------------------------------------------- new-model / info
def cmd_new_model(args: argparse.Namespace) -> int:
    from .config import ModelConfig, load_config, save_config
    from .pipeline import build_pipeline
    from .utils import atomic_dir

    cfg = load_config(ModelConfig, args.config, args.overrides)
    out = Path(args.out_dir)
    if out.exists() and not args.force:
        raise CLIError(f"output folder {str(out)!r} already exists; pass --force to replace it")
    pipe = build_pipeline(cfg)
    with atomic_dir(out, overwrite=args.force) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        save_config(cfg, tmp / "model_config.yaml")
    logger.info("wrote untrained model to %s", out)
    print(describe_pipeline(pipe, out))
    return 0


def conditioning_inputs(pipe) -> list[str]:
    """What the model is conditioned on, in words (``sak info``)."""
    projection, unet = pipe.projection.config, pipe.unet.config
    inputs = ["text", "seconds_start/seconds_total"]
    if projection.get("prompt_numbers", False):
        inputs.append("prompt numbers by value")
    if unet.get("timing_mask_channel", False):
        inputs.append("timing mask channel")
    if unet.get("beat_grid_channel", False):
        inputs.append("beat grid (the prompt's bpm, or --bpm)")
    if unet.get("key_conditioning", False):
        inputs.append("key (the prompt's key, or --key)")
    return inputs


def describe_pipeline(pipe, path: Path | str) -> str:
    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    vae = pipe.vae
    lines = [
        f"model:            {path}",
        f"sample rate:      {pipe.sample_rate} Hz",
        f"channels:         {pipe.audio_channels}",
        f"vae:              {type(vae).__name__}, {vae.latent_channels} latent channels",
        f"latent rate:      {pipe.sample_rate / vae.hop_length:.3f} frames/s (hop {vae.hop_length})",
        f"window:           {pipe.unet.config.sample_size} latent frames",
        f"maximum length:   {pipe.max_seconds:.3f} s",
        f"scheduler:        {type(pipe.scheduler).__name__}",
        f"conditioning:     {', '.join(conditioning_inputs(pipe))}",
        "parameters:",
    ]
    total = 0
    for name in ("vae", "text_encoder", "projection", "unet"):
        n = count(getattr(pipe, name))
        total += n
        lines.append(f"  {name:<14}{n:>14,}")
    lines.append(f"  {'total':<14}{total:>14,}")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    pipe = load_model(args.model)
    print(describe_pipeline(pipe, args.model or "(bundled default model)"))
    return 0


def load_model(path: str | None, device: str = "cpu", scheduler: str | None = None):
    from .pipeline import StableAudioKitPipeline

    pipe = StableAudioKitPipeline.from_pretrained(path)
    if scheduler:
        from .objective import swap_scheduler

        pipe.scheduler = swap_scheduler(pipe.scheduler, scheduler)
    return pipe.to(device)


# --------------------------------------------------------------------------- generate
@dataclass
class Job:
    index: int
    prompt: str
    seconds: float
    seed: int
    negative: str | None = None


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_").lower()
    return slug[:limit] or "audio"


def _parse_float(value, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CLIError(f"{what}: seconds must be a number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise CLIError(f"{what}: seconds must be a finite number > 0, got {value!r}")
    return out


def _parse_seed(value, what: str) -> int:
    try:
        out = int(str(value))
    except ValueError:
        raise CLIError(f"{what}: seed must be an integer, got {value!r}") from None
    if out < 0:
        raise CLIError(f"{what}: seed must be >= 0, got {out}")
    return out


def read_prompt_file(path: Path, default_seconds: float | None, base_seed: int) -> list[Job]:
    """Jobs from a prompt list: plain text (one prompt a line), CSV or JSONL with
    ``prompt`` and optional ``seconds``, ``seed`` and ``negative`` fields."""
    if not path.is_file():
        raise CLIError(f"prompt file {str(path)!r} does not exist")
    rows: list[dict] = []
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise CLIError(f"{path}:{n}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise CLIError(f"{path}:{n}: each line must be a JSON object, got {line.strip()!r}")
            rows.append({**row, "_where": f"{path}:{n}"})
    elif suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or "prompt" not in reader.fieldnames:
            raise CLIError(f"{path}: a CSV prompt file needs a 'prompt' column, got {reader.fieldnames}")
        for n, row in enumerate(reader, 2):
            rows.append({**row, "_where": f"{path}:{n}"})
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append({"prompt": line.strip(), "_where": f"{path}:{n}"})
    if not rows:
        raise CLIError(f"prompt file {str(path)!r} holds no prompts")
    jobs = []
    for i, row in enumerate(rows):
        where = row["_where"]
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise CLIError(f"{where}: prompt must be a non-empty string, got {prompt!r}")
        seconds = row.get("seconds")
        if seconds in (None, ""):
            if default_seconds is None:
                raise CLIError(f"{where}: no seconds given and no --seconds default")
            seconds = default_seconds
        seed = row.get("seed")
        seed = base_seed + i if seed in (None, "") else _parse_seed(seed, where)
        negative = row.get("negative") or None
        jobs.append(Job(i, prompt.strip(), _parse_float(seconds, where), seed, negative))
    return jobs


def _output_paths(job: Job, out: Path, batch: int, single: bool) -> list[Path]:
    if single:
        if batch == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{k}{out.suffix}") for k in range(batch)]
    stem = f"{job.index:04d}_{_slug(job.prompt)}"
    if batch == 1:
        return [out / f"{stem}.wav"]
    return [out / f"{stem}_{k}.wav" for k in range(batch)]


def cmd_generate(args: argparse.Namespace) -> int:
    import torch
    from accelerate import PartialState

    from .utils import check_writable

    # 1. Validate every argument and every prompt before loading anything.
    if (args.prompt is None) == (args.prompts is None):
        raise CLIError("give either a PROMPT or --prompts FILE")
    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    if args.batch < 1:
        raise CLIError(f"--batch must be >= 1, got {args.batch}")
    if not math.isfinite(args.cfg):
        raise CLIError(f"--cfg must be finite, got {args.cfg}")
    if args.bpm is not None and not (math.isfinite(args.bpm) and args.bpm > 0):
        raise CLIError(f"--bpm must be a finite number > 0, got {args.bpm}")
    if args.key is not None:
        from .conditioning import parse_key

        if parse_key(args.key) is None:
            raise CLIError(f'--key must name a major or minor key such as "F# minor" or "Bb major", got {args.key!r}')
    if args.scheduler is not None:
        from .objective import SCHEDULERS

        if args.scheduler not in SCHEDULERS:
            raise CLIError(f"unknown scheduler {args.scheduler!r}; valid names: {sorted(SCHEDULERS)}")
    base_seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
    if base_seed < 0:
        raise CLIError(f"--seed must be >= 0, got {base_seed}")
    if args.prompts is None:
        seconds = _parse_float(args.seconds, "--seconds") if args.seconds is not None else None
        jobs = [Job(0, args.prompt, seconds, base_seed, args.negative)]
        out = Path(args.output or "output.wav")
        if out.suffix.lower() not in AUDIO_SUFFIXES:
            raise CLIError(f"output file {str(out)!r} must end in one of {list(AUDIO_SUFFIXES)}")
        single = True
    else:
        default = _parse_float(args.seconds, "--seconds") if args.seconds is not None else None
        jobs = read_prompt_file(Path(args.prompts), default, base_seed)
        if args.negative:
            jobs = [Job(j.index, j.prompt, j.seconds, j.seed, j.negative or args.negative) for j in jobs]
        out = Path(args.output or "outputs")
        if out.exists() and not out.is_dir():
            raise CLIError(f"with --prompts, -o must be a folder; {str(out)!r} is a file")
        single = False
    for job in jobs:
        for path in _output_paths(job, out, args.batch, single):
            try:
                check_writable(path)
            except ValueError as err:
                raise CLIError(str(err)) from None

    # 2. Load the model and check the lengths against it.
    from .train.common import cpu_data_parallel

    # Without a GPU, a torchrun / `accelerate launch --multi_gpu` launch only shares the prompts if told to use the CPU.
    state = PartialState(cpu=args.device == "cpu" or (args.device is None and cpu_data_parallel()))
    device = args.device or str(state.device)
    pipe = load_model(args.model, device=device, scheduler=args.scheduler)
    if args.bpm is not None and not pipe.unet.config.get("beat_grid_channel", False):
        raise CLIError(
            "--bpm needs a model whose U-Net has a beat grid (beat_grid_channel); name the tempo in the prompt"
        )
    if args.key is not None and not pipe.unet.config.get("key_conditioning", False):
        raise CLIError("--key needs a model whose U-Net reads the key (key_conditioning); name the key in the prompt")
    if pipe.unet.config.get("beat_grid_channel", False):
        try:  # every row's tempo, before the first file is written
            pipe.check_tempo([text for job in jobs for text in (job.prompt, job.negative) if text], args.bpm)
        except ValueError as err:
            raise CLIError(str(err)) from None
    for job in jobs:
        if job.seconds is None:
            job.seconds = pipe.max_seconds
        if job.seconds > pipe.max_seconds:
            raise CLIError(
                f"seconds must be <= the model's maximum {pipe.max_seconds:.3f}, got {job.seconds} ({job.prompt!r})"
            )
    if not single:
        out.mkdir(parents=True, exist_ok=True)

    # 3. Generate; under `accelerate launch` each process takes its own share of the prompts.
    from tqdm.auto import tqdm

    from .audio import save_audio

    with state.split_between_processes(jobs) as my_jobs:
        show_inner = single
        pipe.set_progress_bar_config(disable=not show_inner or not state.is_local_main_process)
        bar = tqdm(my_jobs, desc=f"generating (rank {state.process_index})", disable=single, unit="prompt")
        for job in bar:
            generator = torch.Generator(device="cpu").manual_seed(job.seed)
            audio = pipe(
                job.prompt,
                negative_prompt=job.negative,
                seconds_total=job.seconds,
                num_inference_steps=args.steps,
                guidance_scale=args.cfg,
                num_waveforms_per_prompt=args.batch,
                generator=generator,
                bpm=args.bpm,
                key=args.key,
            ).audios
            for path, wav in zip(_output_paths(job, out, args.batch, single), audio):
                save_audio(path, wav, pipe.sample_rate)
                logger.info("wrote %s (%d samples, seed %d)", path, wav.shape[-1], job.seed)
                if single:
                    print(path)
    if not single:
        state.wait_for_everyone()
        if state.is_main_process:
            print(f"wrote {len(jobs) * args.batch} file(s) to {out}")
    return 0


# --------------------------------------------------------------------------- data, training, export
def _model_format(args: argparse.Namespace) -> tuple[int, int, float]:
    """(sample_rate, channels, window_seconds) from --model DIR or --config MODEL.yaml."""
    if args.model and args.config:
        raise CLIError("give --model or --config, not both")
    if args.config:
        from .config import ModelConfig, load_config

        cfg = load_config(ModelConfig, args.config)
        return cfg.sample_rate, cfg.audio_channels, cfg.window_seconds
    if args.model:
        pipe = load_model(args.model)
        return pipe.sample_rate, pipe.audio_channels, pipe.max_seconds
    return args.sample_rate, args.channels, args.window


def cmd_data_check(args: argparse.Namespace) -> int:
    from .data import data_check_main

    sample_rate, channels, window = _model_format(args)
    return data_check_main(args.catalogue, sample_rate, channels, window)


def cmd_encode(args: argparse.Namespace) -> int:
    from .data import encode_catalogue

    out = Path(args.output)
    if (out / "index.json").exists() and not args.force:
        raise CLIError(f"{str(out)!r} already holds encoded shards; pass --force to replace them")
    pipe = load_model(args.model, device=args.device or "cpu")
    text_fn = None
    if args.text:

        def text_fn(captions):
            return pipe.encode_prompt(list(captions))

    encode_catalogue(
        pipe.vae,
        args.catalogue,
        out,
        pipe.sample_rate,
        pipe.audio_channels,
        shard_size=args.shard_size,
        text_encode_fn=text_fn,
        skip_unreadable=args.skip_unreadable,
        overwrite=args.force,
        progress=True,
    )
    print(f"wrote latent shards to {out}")
    return 0


TRAINERS = {
    "clap": ("stable_audio_kit.train.clap", "ClapTrainConfig"),
    "vae": ("stable_audio_kit.train.vae", "VAETrainConfig"),
    "unet": ("stable_audio_kit.train.unet", "UNetTrainConfig"),
}


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    from .train import config as train_config
    from .train.common import load_run_config

    module_name, schema_name = TRAINERS[args.kind]
    cfg = load_run_config(getattr(train_config, schema_name), args.config, args.overrides)
    run_dir = importlib.import_module(module_name).train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run finished: {run_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train.common import export_run

    out = export_run(args.run_dir, args.out_dir, checkpoint=args.checkpoint, overwrite=args.force, base=args.base)
    print(f"wrote pipeline directory {out}")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    from .train.extend import extend_model

    out = extend_model(
        args.model,
        args.out_dir,
        prompt_numbers=args.prompt_numbers,
        prompt_number_min=args.number_min,
        prompt_number_max=args.number_max,
        beat_grid=args.beat_grid,
        overwrite=args.force,
        key=args.key,
    )
    wanted = (("prompt numbers", args.prompt_numbers), ("a beat grid", args.beat_grid), ("a key input", args.key))
    added = [name for name, on in wanted if on]
    print(f"wrote pipeline directory {out}: {args.model} with {' and '.join(added)} (zero at the start)")
    return 0


def cmd_catalogue_make(args: argparse.Namespace) -> int:
    from .demo import make_catalogue

    path = make_catalogue(
        args.out_dir,
        clips=args.clips,
        seed=args.seed,
        sample_rate=args.sample_rate,
        max_seconds=args.max_seconds,
        valid_fraction=args.valid_fraction,
        soundfont=args.soundfont,
        progress=True,
        transpositions=args.transpositions,
    )
    print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.report import evaluate

    if args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    report = evaluate(
        args.model,
        args.catalogue,
        args.output,
        n=args.n,
        clap=args.clap,
        steps=args.steps,
        guidance_scale=args.cfg,
        seed=args.seed,
        device=args.device,
        timing_floor=not args.no_timing_floor,
    )
    from .evaluation.report import render_markdown

    print(render_markdown(report))
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sak", description="stable-audio-kit: timing-conditioned text-to-audio")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("new-model", help="write an untrained pipeline directory from a model config")
    p.add_argument("config", help="model config YAML (e.g. configs/tiny.yaml)")
    p.add_argument("out_dir")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_new_model)

    p = sub.add_parser("generate", help="generate audio from a prompt or a prompt list")
    p.add_argument("prompt", nargs="?")
    p.add_argument(
        "--prompts", help="prompt list: .txt (one per line), .csv or .jsonl (prompt, seconds, seed, negative)"
    )
    p.add_argument("--seconds", type=str, default=None, help="length in seconds (default: the model's window)")
    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=7.0, help="classifier-free guidance scale (<= 1 switches it off)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--bpm", type=float, default=None, help="tempo for a beat-grid model (default: the one the prompt names)"
    )
    p.add_argument(
        "--key", default=None, help='key for a key-conditioned model, "F# minor" (default: the one the prompt names)'
    )
    p.add_argument("--batch", type=int, default=1, help="waveforms per prompt")
    p.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    p.add_argument("--scheduler", default=None, help="sampler name, e.g. dpmsolver++, ddim, euler, unipc")
    p.add_argument("--device", default=None, help="torch device (default: the accelerate process's device)")
    p.add_argument("-o", "--output", default=None, help="output .wav/.flac/.ogg, or a folder with --prompts")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("data", help="catalogue tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("check", help="dry-run report of a catalogue: durations, captions, unreadable files")
    q.add_argument("catalogue")
    q.add_argument("--model", default=None, help="pipeline directory whose format to check against")
    q.add_argument("--config", default=None, help="model config YAML whose format to check against")
    q.add_argument("--sample-rate", type=int, default=44100)
    q.add_argument("--channels", type=int, default=2)
    q.add_argument("--window", type=float, default=47.0, help="training window in seconds")
    q.set_defaults(func=cmd_data_check)

    p = sub.add_parser("encode", help="pre-encode a catalogue into latent shards with a model's VAE")
    p.add_argument("catalogue")
    p.add_argument("--model", required=True)
    p.add_argument("-o", "--output", required=True, help="folder for the shards")
    p.add_argument("--text", action="store_true", help="also cache the CLAP text states of the captions")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--skip-unreadable", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--force", action="store_true", help="replace existing shards")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("train", help="train a component: sak train {clap,vae,unet} RUN.yaml [key=value ...]")
    p.add_argument("kind", choices=sorted(TRAINERS))
    p.add_argument("config", help="run config YAML")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=1e-4")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in run.output_dir from its newest checkpoint"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a pipeline directory from a training run")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--checkpoint", default=None, help="a step_... folder (default: the newest)")
    p.add_argument(
        "--base", default=None, help="pipeline directory to put the trained components into (default: the run's model)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("catalogue", help="the demo catalogue")
    cat_sub = p.add_subparsers(dest="catalogue_command", required=True)
    q = cat_sub.add_parser("make", help="compose MIDI, render it with FluidSynth and caption it")
    q.add_argument("out_dir")
    q.add_argument("--clips", type=int, default=200)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--sample-rate", type=int, default=22050)
    q.add_argument("--max-seconds", type=float, default=10.0, help="longest clip (the model window)")
    q.add_argument("--valid-fraction", type=float, default=0.1)
    q.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: an installed one)")
    q.add_argument(
        "--transpositions",
        type=int,
        default=0,
        help="also render every tonal training clip in this many other keys (0-11), after the N clips",
    )
    q.set_defaults(func=cmd_catalogue_make)

    p = sub.add_parser("evaluate", help="generate from held-out captions and measure the audio")
    p.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    p.add_argument("--catalogue", required=True, help="a catalogue with metadata.jsonl (sak catalogue make)")
    p.add_argument("--n", type=int, default=None, help="number of held-out clips (default: all)")
    p.add_argument("--clap", default=None, help="CLAP model folder for CLAP score, recall and FAD")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-timing-floor",
        action="store_true",
        help="skip the wrong-lengths column of the duration rows (saves one generation per clip)",
    )
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("extend", help="add prompt-number embeddings or a beat grid to a trained model, for fine-tuning")
    p.add_argument("model")
    p.add_argument("out_dir")
    p.add_argument("--prompt-numbers", action="store_true", help="embed the numbers of the prompt by value")
    p.add_argument("--number-min", type=float, default=1.0, help="smallest prompt number told apart (default 1)")
    p.add_argument("--number-max", type=float, default=1000.0, help="largest prompt number told apart (default 1000)")
    p.add_argument("--beat-grid", action="store_true", help="beat and bar phase of the prompt's tempo as U-Net inputs")
    p.add_argument("--key", action="store_true", help="the prompt's key (scale, tonic) in the U-Net's FiLM embedding")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_extend)

    p = sub.add_parser("info", help="describe a pipeline directory")
    p.add_argument("model", nargs="?", default=None)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from .train.common import NonFiniteLossError

    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError) as err:
        if args.verbose:
            raise
        print(f"sak {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"sak {args.command}: training stopped: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
