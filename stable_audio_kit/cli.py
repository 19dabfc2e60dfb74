"""The ``sak`` command line.

Every command validates its arguments before it loads a model or writes a file; errors are
printed as one line naming the bad value, with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from . import sampling
from .cli_generate import (  # the sampling commands; nothing heavy is imported at module level
    CLIError,
    add_sampling_arguments,
    cmd_continue,
    cmd_generate,
    cmd_inpaint,
    load_model,
    quiet_loading,
)
from .cli_train import (  # the data, training and evaluation commands
    TRAINERS,
    cmd_data_check,
    cmd_encode,
    cmd_train,
    cmd_export,
    cmd_extend,
    cmd_catalogue_make,
    cmd_evaluate,
    cmd_convert,
)

logger = logging.getLogger("stable_audio_kit")


# --------------------------------------------------------------------------- new-model / info
def cmd_new_model(args: argparse.Namespace) -> int:
    from .config import ModelConfig, load_config, save_config
    from .pipeline import build_pipeline
    from .utils import atomic_dir, check_writable

    cfg = load_config(ModelConfig, args.config, args.overrides)
    out = Path(args.out_dir)
    if out.exists() and not args.force:
        raise CLIError(f"output folder {str(out)!r} already exists; pass --force to replace it")
    check_writable(out / "model_index.json")
    pipe = build_pipeline(cfg)
    with atomic_dir(out, overwrite=args.force) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        save_config(cfg, tmp / "model_config.yaml")
    logger.info("wrote untrained model to %s", out)
    from .assembly import describe_pipeline

    print(describe_pipeline(pipe, out))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report

    print("\n".join(report(load_model=not args.no_model, before_load=quiet_loading)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    pipe = load_model(args.model)
    from .assembly import describe_pipeline

    print(describe_pipeline(pipe, args.model or "(bundled default model)"))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web page (stable_audio_kit.ui) for a model, keeping results in --outputs."""
    import importlib.util

    from .utils import check_writable

    if importlib.util.find_spec("gradio") is None:
        raise CLIError('the page needs Gradio: pip install "stable-audio-kit[ui]" (a checkout: pip install -e ".[ui]")')
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be in 1-65535, got {args.port}")
    if not args.host.strip():
        raise CLIError("--host must name an address, e.g. 127.0.0.1")
    try:
        check_writable(Path(args.outputs) / ".sak-ui")
    except ValueError as err:
        raise CLIError(f"--outputs: {err}") from None
    from .assembly import DEFAULT_MODEL_DIR
    from .students import auto_student
    from .ui import serve

    # --unet auto: the model's own U-Net and, if the model has one, its student; the page picks one for each request
    # (sampling.choose_unet). base or distilled: that one for every request.
    folder = args.model if args.model is not None else DEFAULT_MODEL_DIR
    student = None
    pipe = load_model(args.model, unet="distilled" if args.unet == "distilled" else "base")
    if args.unet == "auto" and auto_student(folder):  # a student of other weights than unet/: a warning, no student
        from .assembly import with_student

        student = with_student(pipe, folder)  # the same VAE, text encoder and projection objects as pipe's
    serve(pipe, args.model, host=args.host, port=args.port, outputs=args.outputs, student=student)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Keep a model loaded and answer `sak generate` / `inpaint` / `continue` from the shell (see server.py)."""
    import signal
    import threading
    import time

    from . import server
    from .cli_generate import keep_loaded

    if not (math.isfinite(args.idle_minutes) and args.idle_minutes >= 0):
        raise CLIError(f"--idle-minutes must be a number >= 0 (0: never stop), got {args.idle_minutes}")
    path = Path(args.socket) if args.socket is not None else server.default_socket()
    sock = server.listen(path)  # refused at once if a server answers there, before the slow load
    stop = threading.Event()

    def interrupt(signum, frame):  # Ctrl-C or kill: the request under way ends as interrupted, then the server
        stop.set()
        raise KeyboardInterrupt

    handlers = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        start = time.monotonic()
        keep_loaded()
        from accelerate import PartialState

        from .assembly import DEFAULT_MODEL_DIR
        from .students import auto_student

        # What `sak generate` loads without --device and the options that make --unet auto the base U-Net (a
        # student of other weights than unet/: a warning, and the base U-Net).
        folder = args.model if args.model is not None else DEFAULT_MODEL_DIR
        unet = sampling.choose_unet(sampling.DEFAULT_UNET, auto_student(folder))
        load_model(args.model, device=str(PartialState().device), unet=unet)
        print(f"sak serve: ready on {path} (model loaded in {time.monotonic() - start:.1f} s)", flush=True)
        why = server.serve(sock, answer_request, idle_seconds=args.idle_minutes * 60 or None, stop=stop)
    except KeyboardInterrupt:
        why = "interrupted, stopping"
    finally:
        server.close(sock, path)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    print(f"sak serve: {why}", flush=True)
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
    add_sampling_arguments(p)
    p.add_argument("--init-audio", default=None, metavar="FILE", help="audio-to-audio: start from this audio")
    p.add_argument(
        "--strength",
        type=float,
        default=None,
        help="with --init-audio: 0 keeps the input (through the VAE), 1 ignores it (default 0.8)",
    )
    p.add_argument("--loop", action="store_true", help="a seamless loop: its end flows into its start")
    p.add_argument("--bars", type=int, default=None, help="length in 4/4 bars at the tempo (--bpm or the prompt's)")
    p.add_argument(
        "--schedule",
        default=None,
        metavar="FILE",
        help="a prompt schedule instead of PROMPT: CSV/JSONL (prompt, seconds) or 'SECONDS PROMPT' lines",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("inpaint", help="regenerate regions of an audio file and keep the rest")
    p.add_argument("input", help="the audio file")
    p.add_argument("prompt")
    p.add_argument(
        "--region", action="append", required=True, metavar="START:END", help="seconds to regenerate (repeatable)"
    )
    p.add_argument("--seconds", type=str, default=None, help="output length (default: the input's)")
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("continue", help="continue an audio file: the input followed by new audio")
    p.add_argument("input", help="the audio file")
    p.add_argument("prompt")
    p.add_argument("--seconds", type=str, required=True, help="length of the whole result, input included")
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_continue)

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
    p.add_argument("-o", "--output", default=None, help="folder for the shards (optional with --calibrate)")
    p.add_argument("--text", action="store_true", help="also cache the CLAP text states of the captions")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="first set the VAE's scaling_factor so latents have unit variance on a sample of the catalogue, "
        "and write it into the model folder",
    )
    p.add_argument("--calibrate-clips", type=int, default=64, help="training clips --calibrate encodes (default 64)")
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
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume, accept a config that changes what the run computes (the run no longer continues "
        "exactly; config.yaml keeps the original)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a pipeline directory from a training run")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--checkpoint", default=None, help="a step_... folder (default: the newest)")
    p.add_argument(
        "--base", default=None, help="pipeline directory to put the trained components into (default: the run's model)"
    )
    p.add_argument(
        "--merge-lora",
        action="store_true",
        help="for a LoRA run: a pipeline directory with the adapter merged into its weights (default: the adapter)",
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
    q.add_argument(
        "--instruments",
        default=None,
        metavar="NAMES",
        help="only these instruments, comma-separated; also extra ones the default never draws (vibraphone, "
        "kalimba, steel drums, sitar, accordion, clarinet, harpsichord, fretless bass)",
    )
    q.add_argument("--exclude-instruments", default=None, metavar="NAMES", help="leave these instruments out")
    q.add_argument("--grooves", default=None, metavar="NAMES", help="only these drum grooves ('none': no drums)")
    q.add_argument("--exclude-grooves", default=None, metavar="NAMES", help="leave these drum grooves out")
    q.set_defaults(func=cmd_catalogue_make)

    p = sub.add_parser("evaluate", help="generate from held-out captions and measure the audio")
    p.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    p.add_argument("--catalogue", required=True, help="a catalogue with metadata.jsonl (sak catalogue make)")
    p.add_argument("--n", type=int, default=None, help="number of held-out clips (default: all)")
    p.add_argument("--clap", default=None, help="CLAP model folder for CLAP score, recall and FAD")
    p.add_argument(
        "--cfg",
        type=float,
        default=None,
        help=f"guidance scale (default: the model's own, {sampling.DEFAULT_GUIDANCE_SCALE:g} for a base U-Net)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-timing-floor",
        action="store_true",
        help="skip the wrong-lengths column of the duration rows (saves one generation per clip)",
    )
    p.add_argument(
        "--probes",
        default="",
        help="comma-separated probes to add: key-swap, tempo-swap (same captions with the key or tempo "
        "rewritten, same seeds; default none)",
    )
    p.add_argument("--probe-n", type=int, default=40, help="held-out clips per probe (two generations each)")
    p.add_argument(
        "--memorisation",
        metavar="TRAIN_CATALOGUE",
        default=None,
        help="check the generated clips for near-copies of this training catalogue's clips (needs the CLAP)",
    )
    p.add_argument(
        "--memorisation-top-k",
        type=int,
        default=None,
        help="nearest training clips by CLAP aligned per clip (default: the calibrated number, in the report)",
    )
    p.add_argument(
        "--memorisation-threshold",
        type=float,
        default=None,
        help="alignment score from which a pair is a near-copy (default: the calibrated one, in the report)",
    )
    p.add_argument("-o", "--output", required=True, help="report folder")
    sampling.add_arguments(p, base_only=("--steps", "--scheduler", "--cfg"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("extend", help="add conditioning inputs to a trained model at zero weights, for fine-tuning")
    p.add_argument("model")
    p.add_argument("out_dir")
    p.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=[],
        help="a registered conditioning input to add (repeatable), e.g. beat_grid, key, prompt_numbers",
    )
    p.add_argument("--prompt-numbers", action="store_true", help="embed the numbers of the prompt by value")
    p.add_argument("--number-min", type=float, default=1.0, help="smallest prompt number told apart (default 1)")
    p.add_argument("--number-max", type=float, default=1000.0, help="largest prompt number told apart (default 1000)")
    p.add_argument("--beat-grid", action="store_true", help="beat and bar phase of the prompt's tempo as U-Net inputs")
    p.add_argument("--key", action="store_true", help="the prompt's key (scale, tonic) in the U-Net's FiLM embedding")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_extend)

    p = sub.add_parser("doctor", help="versions, device, threads, FluidSynth, bundled model: for bug reports")
    p.add_argument("--no-model", action="store_true", help="skip loading the bundled model")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("ui", help="serve a web page to generate, hear and keep audio (the [ui] extra)")
    p.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--outputs", default="sak-ui-outputs", help="folder the results are kept in")
    p.add_argument(
        "--unet",
        choices=sampling.UNETS,
        default=sampling.DEFAULT_UNET,
        help="base, the model's own U-Net; distilled, its step-distilled student (unet_distilled/) at its own steps "
        "and guidance; auto (default), the student for a request that leaves steps, CFG scale, scheduler and negative "
        "prompt as they start, else the model's own",
    )
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser(
        "serve", help="keep a model loaded and answer sak generate / inpaint / continue from the shell at once"
    )
    p.add_argument(
        "--socket",
        default=None,
        metavar="PATH",
        help="Unix socket to listen on (default: $SAK_SOCKET, else $XDG_RUNTIME_DIR/stable-audio-kit/serve.sock, "
        "else <tmp>/stable-audio-kit-<uid>/serve.sock)",
    )
    p.add_argument("--model", default=None, help="pipeline directory to load at start (default: the bundled model)")
    p.add_argument(
        "--idle-minutes", type=float, default=30.0, help="stop after this long without a request (0: never; default 30)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("info", help="describe a pipeline directory")
    p.add_argument("model", nargs="?", default=None)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert pretrained parts from outside into the formats the toolkit loads")
    convert_sub = p.add_subparsers(dest="convert_command", required=True)
    q = convert_sub.add_parser(
        "clap", help="an original LAION-CLAP checkpoint (.pt) to a transformers ClapModel folder"
    )
    q.add_argument("checkpoint", help="e.g. 630k-audioset-best.pt")
    q.add_argument("out_dir")
    q.add_argument(
        "--tokenizer", default=None, help="local RoBERTa tokenizer folder to include (needed for text.pretrained)"
    )
    q.add_argument("--config", default=None, help="transformers ClapConfig JSON (default: read off the shapes)")
    q.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle a checkpoint that holds Python objects besides tensors (runs its code: trusted files only)",
    )
    q.add_argument("--force", action="store_true", help="replace an existing output folder")
    q.set_defaults(func=cmd_convert)
    return parser


# The form of a log line on stderr, in-process and in a request `sak serve` answers.


# Commands after which the `sak` script ends its process at once (os._exit) instead of letting Python tear torch,
# diffusers and transformers down module by module, which took 1.0-1.5 s on two cores (benchmarks/startup.py):
# their files are written, renamed and closed before the command returns, and nothing of theirs runs at exit.
QUICK_EXIT_COMMANDS = ("generate", "inpaint", "continue")
_finished: list[str] = []  # the command main() ran, for entry()


def entry() -> None:
    """The `sak` script: :func:`main`, then the exit (at once after :data:`QUICK_EXIT_COMMANDS` that loaded torch;
    a command refused before that exits as usual)."""
    code = main()
    if _finished and _finished[-1] in QUICK_EXIT_COMMANDS and "torch" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    _finished.append(args.command)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a generate command hands `sak serve`
    from .utils import LOG_FORMAT

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    if not args.verbose:  # the libraries' step-by-step INFO lines (accelerate's checkpoint files) are --verbose
        for name in ("accelerate", "diffusers", "transformers"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return run(args, unknown)


def answer_request(message: dict) -> dict:
    """``sak serve``'s answer to a client's message: the command run by this parser and :func:`run`."""
    from .server import answer

    return answer(message, lambda argv: build_parser().parse_known_args(argv), run)


def run(args: argparse.Namespace, unknown: list[str] | tuple[str, ...] = ()) -> int:
    """Run a parsed command and return its exit code; a user error is printed as one line, ``sak COMMAND: error:
    ...``, with code 2 (``--verbose`` re-raises it). ``main`` and ``sak serve``'s requests both run here."""
    from .utils import NonFiniteLossError, describe_os_error

    # One prefix for every command's errors, the one argparse uses for bad arguments: "sak data check: error: ...".
    nested = [value for key, value in vars(args).items() if key.endswith("_command") and isinstance(value, str)]
    command = " ".join([args.command, *nested])
    if unknown:  # argparse would report these as "sak: error"; every other error names its command
        print(f"sak {command}: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError) as err:
        if args.verbose:
            raise
        print(f"sak {command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or folder the user named: missing, unreadable, not writable, disk full
        if args.verbose:
            raise
        print(f"sak {command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"sak {command}: error: training stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sak {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    entry()
