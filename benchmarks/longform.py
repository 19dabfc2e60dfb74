"""Long-form generation: wall time and peak memory per second of audio at 1x, 3x and 10x the window.

    python benchmarks/longform.py [--unet auto] [--steps N] [--threads 1] [--repeats 2] [--multiples 1 3 10]

Each length runs in a fresh process (so its peak resident memory is its own), with the bundled demo
model at the default settings: ``--unet auto`` samples with its distilled student, as `sak generate` does
(``base``: the model's own U-Net; ``--steps`` only with it, default its own). Long-form samples one window per
``window - overlap`` seconds of audio, so the time per second of audio should stay flat with length, and so should
peak memory (only the output grows). Prints a markdown table with the load average and writes it to
benchmarks/results/longform.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "longform.md"

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from stable_audio_kit.assembly import load_pipeline
pipe = load_pipeline(unet=sys.argv[5])
pipe.set_progress_bar_config(disable=True)
seconds, steps, repeats = float(sys.argv[1]), (int(sys.argv[2]) or None), int(sys.argv[4])
pipe("a rock drum groove at 100 bpm", seconds_total=1.0, num_inference_steps=steps)  # warm-up
best = None
for _ in range(repeats):
    t0 = time.perf_counter()
    audio = pipe("a rock drum groove at 100 bpm", seconds_total=seconds, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(0)).audios
    best = min(best or 1e9, time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "wall": best, "samples": int(audio.shape[-1]), "peak_mib": peak,
                  "window": pipe.max_seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unet", choices=["auto", "base", "distilled"], default="auto")
    parser.add_argument("--steps", type=int, default=None, help="the base U-Net's steps (default: the model's own)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--multiples", type=float, nargs="+", default=[1, 3, 10])
    args = parser.parse_args()
    from stable_audio_kit.assembly import DEFAULT_MODEL_DIR
    from stable_audio_kit.students import auto_student
    from stable_audio_kit.sampling import choose_unet

    unet = choose_unet(args.unet, auto_student(DEFAULT_MODEL_DIR), steps=args.steps)
    if unet == "distilled" and args.steps is not None:
        parser.error("--steps applies to the base U-Net (--unet base); the student samples in its own steps")
    load_before = os.getloadavg()[0]
    window = None
    rows = []
    for multiple in args.multiples:
        seconds = multiple * (window or 10.0)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(seconds),
                str(args.steps or 0),
                str(args.threads),
                str(args.repeats),
                unet,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        window = row["window"]
        rows.append((multiple, row))
    base = rows[0][1]["wall"] / rows[0][1]["seconds"]
    lines = [
        f"# Long-form generation ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch thread(s), {'the distilled U-Net' if unet == 'distilled' else 'the base U-Net'} at "
        f"{args.steps or 'its own'} steps, best of {args.repeats})",
        "",
        f"load average before: {load_before:.2f}",
        "",
        "| length | audio (s) | samples | wall (s) | wall per audio second | vs 1x | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for multiple, row in rows:
        per = row["wall"] / row["seconds"]
        lines.append(
            f"| {multiple:g}x window | {row['seconds']:.1f} | {row['samples']} | {row['wall']:.2f} | {per:.3f} | "
            f"{per / base:.2f} | {row['peak_mib']:.0f} |"
        )
    from stable_audio_kit.workflows import DEFAULT_OVERLAP_FRACTION

    overlap = DEFAULT_OVERLAP_FRACTION
    lines += [
        "",
        f"Each window after the first adds window - overlap = {(1 - overlap) * window:.1f} s of audio (the default "
        f"overlap, {overlap:.0%} of the window), so the cost per audio second tends to 1 / (1 - {overlap:g}) = "
        f"{1 / (1 - overlap):.2f}x that of one window, and stays there however long the audio.",
        "",
        f"load average after: {os.getloadavg()[0]:.2f}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    from stable_audio_kit.utils import atomic_write_text

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, text)


if __name__ == "__main__":
    main()
