"""The ``sak`` commands that make data, train, export, extend, convert and evaluate models (the parser is in
:mod:`stable_audio_kit.cli`). Nothing heavy is imported at module level: each command imports what it needs
after checking its arguments.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

from . import sampling
from .cli_generate import CLIError, load_model, quiet_loading, resolve_unet

logger = logging.getLogger("stable_audio_kit")


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

    if args.output is None and not args.calibrate:
        raise CLIError("give -o/--output FOLDER for the shards, or --calibrate to measure the latent scale alone")
    if args.calibrate_clips < 1:
        raise CLIError(f"--calibrate-clips must be >= 1, got {args.calibrate_clips}")
    out = Path(args.output) if args.output is not None else None
    if out is not None and (out / "index.json").exists() and not args.force:
        raise CLIError(f"{str(out)!r} already holds encoded shards; pass --force to replace them")
    if not Path(args.catalogue).is_dir():
        raise CLIError(f"catalogue folder {args.catalogue!r} does not exist")
    if args.shard_size < 1:
        raise CLIError(f"--shard-size must be >= 1, got {args.shard_size}")
    from .utils import check_writable

    if out is not None:
        check_writable(out / "index.json")
    if args.calibrate:
        check_writable(Path(args.model) / "vae" / "config.json")
    from .utils import check_device

    pipe = load_model(args.model, device=check_device(args.device) or "cpu")
    if args.calibrate:
        from .vae import calibrate_scaling_factor, write_scaling_factor

        old = float(pipe.vae.config.scaling_factor)
        scale = calibrate_scaling_factor(
            pipe.vae,
            args.catalogue,
            pipe.sample_rate,
            pipe.audio_channels,
            pipe.max_seconds,
            clips=args.calibrate_clips,
            skip_unreadable=args.skip_unreadable,
        )
        pipe.vae.register_to_config(scaling_factor=scale)
        write_scaling_factor(args.model, scale)
        print(
            f"scaling_factor {old:.6g} -> {scale:.6g}, written to {args.model}; latent shards encoded with "
            "the old factor must be encoded again"
        )
        if out is None:
            return 0
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
    "distill": ("stable_audio_kit.train.distill", "DistillTrainConfig"),
}


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    from .train import config as train_config
    from .train.common import load_run_config

    if args.allow_config_change and not args.resume:
        raise CLIError("--allow-config-change applies to a resume; pass --resume too")
    module_name, schema_name = TRAINERS[args.kind]
    cfg = load_run_config(getattr(train_config, schema_name), args.config, args.overrides)
    quiet_loading()
    trainer = importlib.import_module(module_name)
    run_dir = trainer.train(cfg, resume=args.resume, allow_config_change=args.allow_config_change)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run finished: {run_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train.export import export_run
    from .utils import check_writable

    if not (Path(args.out_dir).exists() and args.force):
        check_writable(Path(args.out_dir) / "model_index.json")
    quiet_loading()
    out = export_run(
        args.run_dir,
        args.out_dir,
        checkpoint=args.checkpoint,
        overwrite=args.force,
        base=args.base,
        merge_lora=args.merge_lora,
    )
    from .lora import CONFIG_NAME

    print(f"wrote {'LoRA adapter folder' if (out / CONFIG_NAME).is_file() else 'pipeline directory'} {out}")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    from .train.extend import extend_model
    from .utils import check_writable

    if not (Path(args.out_dir).exists() and args.force):
        check_writable(Path(args.out_dir) / "model_index.json")
    quiet_loading()
    out = extend_model(
        args.model,
        args.out_dir,
        inputs=args.inputs,
        overwrite=args.force,
        prompt_numbers=args.prompt_numbers,
        prompt_number_min=args.number_min,
        prompt_number_max=args.number_max,
        beat_grid=args.beat_grid,
        key=args.key,
    )
    shorthands = {"prompt_numbers": args.prompt_numbers, "beat_grid": args.beat_grid, "key": args.key}
    added = list(dict.fromkeys(list(args.inputs) + [name for name, on in shorthands.items() if on]))
    print(f"wrote pipeline directory {out}: {args.model} with the input(s) {', '.join(added)} (zero at the start)")
    return 0


def cmd_catalogue_make(args: argparse.Namespace) -> int:
    from .demo import Palette, make_catalogue

    def names(text: str | None) -> list[str] | None:
        if text is None:
            return None
        return [] if text.strip() == "none" else [n.strip() for n in text.split(",") if n.strip()]

    palette = Palette(
        names(args.instruments),
        names(args.exclude_instruments) or (),
        names(args.grooves),
        names(args.exclude_grooves) or (),
    )
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
        palette=palette,
    )
    print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.probes import parse_probes

    from .utils import check_device, check_seed, check_writable

    settings = sampling.SamplingSettings.from_args(args)
    if args.cfg is not None and not math.isfinite(args.cfg):
        raise CLIError(f"--cfg must be finite, got {args.cfg}")
    if args.probe_n < 1:
        raise CLIError(f"--probe-n must be an integer >= 1, got {args.probe_n}")
    check_seed(args.seed, "--seed")
    check_device(args.device)
    check_writable(Path(args.output) / "report.json")
    probes = parse_probes(args.probes)  # an unknown probe is refused before torch or a model loads
    if args.memorisation is not None:
        from .evaluation.memorisation import check_options

        check_options(
            args.memorisation_top_k, args.memorisation_threshold, "--memorisation-top-k", "--memorisation-threshold"
        )
    from .evaluation.report import evaluate

    asked = settings.unet
    settings.unet = resolve_unet(
        asked, args.model, steps=settings.steps, scheduler=settings.scheduler, guidance_scale=args.cfg
    )
    quiet_loading()
    report = evaluate(
        args.model,
        args.catalogue,
        args.output,
        n=args.n,
        clap=args.clap,
        guidance_scale=args.cfg,
        seed=args.seed,
        device=args.device,
        timing_floor=not args.no_timing_floor,
        probes=probes,
        probe_n=args.probe_n,
        memorisation=args.memorisation,
        memorisation_top_k=args.memorisation_top_k,
        memorisation_threshold=args.memorisation_threshold,
        unet_asked=asked,
        **settings.as_dict(),
    )
    from .evaluation.report import render_markdown

    print(render_markdown(report))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_clap_checkpoint

    out = convert_clap_checkpoint(
        args.checkpoint,
        args.out_dir,
        tokenizer=args.tokenizer,
        config=args.config,
        trust_pickle=args.trust_pickle,
        overwrite=args.force,
    )
    use = "text.pretrained or --clap" if args.tokenizer else "--clap (text.pretrained also needs --tokenizer DIR)"
    print(f"wrote transformers ClapModel folder {out}; use it as {use}")
    return 0
