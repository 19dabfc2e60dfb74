"""Does the U-Net follow the prompt's tempo by value? Same words, the numbers (and beat grid) scaled.

    python scripts/number_swap_check.py MODEL_DIR CATALOGUE_DIR [--n 30] [--scale 1.25] [--steps 50]

For the first N held-out drum and mixed clips whose caption names its BPM, it generates twice with
the same seed: once as written, once with the values of the prompt's numbers multiplied by --scale
while the text (and so the CLAP token states) stays the same. A U-Net with a beat grid gets the grid
of the scaled tempo too (`bpm=`). Only clips whose scaled tempo lies in the training captions' range
are used. If the model reads the tempo from the numbers' values, the estimated tempo of the second
should be about --scale times the first. Needs a model with `prompt_numbers` or `beat_grid_channel`
and the `[eval]` extra (librosa).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.25)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    if args.n < 1 or not args.scale > 0:
        raise SystemExit(f"number_swap_check: --n must be >= 1 and --scale > 0, got {args.n} and {args.scale}")

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.evaluation import metrics

    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    numbers = pipe.projection.config.get("prompt_numbers", False)
    grid = pipe.unet.config.get("beat_grid_channel", False)
    if not numbers and not grid:
        raise SystemExit(f"number_swap_check: {str(args.model)!r} has neither prompt numbers nor a beat grid")
    pipe.set_progress_bar_config(disable=True)
    rows = [json.loads(line) for line in (args.catalogue / "metadata.jsonl").read_text().splitlines() if line]
    # Only tempi whose scaled value the model has seen in training.
    trained = [r["bpm"] for r in rows if r["split"] == "train" and r.get("bpm")]
    rows = [
        r
        for r in rows
        if r["split"] != "train"
        and r.get("kind") in ("percussive", "mixed")
        and f"{r['bpm']} bpm" in r["caption"].lower()
        and min(trained) <= r["bpm"] * args.scale <= max(trained)
    ][: args.n]
    if not rows:
        raise SystemExit(f"number_swap_check: no held-out drum clip of {str(args.catalogue)!r} names its BPM")

    written = pipe.encode_prompt_numbers
    scale = {"by": 1.0}
    if numbers:
        pipe.encode_prompt_numbers = lambda prompts, device=None: written(prompts, device) * scale["by"]
    ratios, lines = (
        [],
        ["| caption BPM | tempo as written | tempo with numbers scaled | ratio |", "|---:|---:|---:|---:|"],
    )
    for i, row in enumerate(rows):
        tempos = []
        for by in (1.0, args.scale):
            scale["by"] = by
            audio = pipe(
                row["caption"],
                seconds_total=row["seconds"],
                num_inference_steps=args.steps,
                bpm=row["bpm"] * by if grid else None,
                generator=torch.Generator().manual_seed(i),
            ).audios[0]
            tempos.append(metrics.estimate_tempo(audio.mean(axis=0), pipe.sample_rate))
        ratios.append(tempos[1] / tempos[0])
        lines.append(f"| {row['bpm']} | {tempos[0]:.1f} | {tempos[1]:.1f} | {ratios[-1]:.2f} |")
    ratios = np.array(ratios)
    near = np.abs(ratios / args.scale - 1) <= 0.05
    print("\n".join(lines))
    unchanged = np.abs(ratios - 1) <= 0.05
    print(
        f"\n{len(rows)} clips, numbers x{args.scale:g}: median tempo ratio {np.median(ratios):.3f}; "
        f"{near.mean():.0%} within 5 % of x{args.scale:g}, {unchanged.mean():.0%} unchanged (within 5 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
