"""Generation speed: seconds of wall time per second of audio, split into sampling and decoding.

    python benchmarks/generate.py [--model DIR | --config MODEL.yaml] [--seconds 10] [--steps 50 25 15]

Without --model or --config it measures the bundled demo model, what `sak generate` runs. Speed does
not depend on the weights, so an untrained model built from a config measures what a trained one of
that shape would. A model directory with a step-distilled student (``unet_distilled/``) gets one more row: the
student at its own steps, which is what `sak generate` samples with by default (``--unet auto``).
Prints a markdown table and writes it to benchmarks/results/generate.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from stable_audio_kit.utils import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "generate.md"


def load(args):
    """``(pipeline, its name, the pipeline with its distilled student or None)``."""
    from stable_audio_kit import StableAudioKitPipeline, build_pipeline
    from stable_audio_kit.assembly import DEFAULT_MODEL_DIR, with_student
    from stable_audio_kit.config import ModelConfig, load_config
    from stable_audio_kit.sampling import holds_student

    if args.model and args.config:
        raise SystemExit("generate.py: give --model or --config, not both")
    if args.config:
        return build_pipeline(load_config(ModelConfig, args.config)), f"{args.config} (untrained weights)", None
    folder = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    pipe = StableAudioKitPipeline.from_pretrained(folder)
    student = with_student(pipe, folder) if holds_student(folder) else None
    return pipe, Path(args.model).name if args.model else "the bundled demo model", student


def best_call(pipe, prompt: str, seconds: float, steps: int | None, repeats: int) -> tuple[float, float, float]:
    """(total, sampling, decoding) seconds of the fastest of ``repeats`` calls."""
    best = None
    for _ in range(repeats):
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        latents = pipe(prompt, seconds_total=seconds, num_inference_steps=steps, generator=g, output_type="latent")
        t1 = time.perf_counter()
        audio = pipe.decode_latents(latents.audios)[..., : round(seconds * pipe.sample_rate)]
        t2 = time.perf_counter()
        assert audio.shape[-1] == round(seconds * pipe.sample_rate)
        if best is None or t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0, t2 - t1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 25, 15])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe, name, student = load(args)
    prompt = "a calm piano melody in C major at 80 bpm"
    for p in (pipe, student):
        if p is not None:
            p.set_progress_bar_config(disable=True)
            p(prompt, seconds_total=1.0, num_inference_steps=None if p is student else 2)  # first-call allocations

    own = pipe.resolve_sampling(None)[0]  # the base U-Net's own steps
    rows = []
    for steps in args.steps:
        label = f"{steps} (the model's own U-Net's default)" if steps == own else str(steps)
        rows.append((label, *best_call(pipe, prompt, args.seconds, steps, args.repeats)))
    if student is not None:
        label = f"distilled student, its {student.resolve_sampling(None)[0]} steps, no CFG batch (`sak generate`)"
        rows.append((label, *best_call(student, prompt, args.seconds, None, args.repeats)))

    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    lines = [
        "| steps (CFG 7) | sampling (s) | decoding (s) | total (s) | × real time |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {a:.2f} | {d:.2f} | {t:.2f} | {args.seconds / t:.2f} |" for s, t, a, d in rows]
    table = "\n".join(lines)
    print(table)
    load_avg = os.getloadavg()[0]
    text = (
        "# Generation speed\n\n"
        f"`python benchmarks/generate.py`: {args.seconds:g} s of audio from {name}; U-Net {params:.2f}M parameters, "
        f"{pipe.sample_rate} Hz, {pipe.unet.config.sample_size} latent frames in the window, default scheduler "
        f"({type(pipe.scheduler).__name__}), batch 1 with classifier-free guidance (one batched forward of 2). "
        f"Best of {args.repeats} runs; {args.threads} torch threads; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, load average {load_avg:.1f} at the end.\n\n"
        f"{table}\n\n× real time = seconds of audio per second of wall time (above 1 is faster than real time).\n"
    )
    atomic_write_text(RESULTS, text)


if __name__ == "__main__":
    main()
