"""Does the model follow the key of the prompt? The same captions with the key moved, same seeds.

    python scripts/key_swap_check.py MODEL_DIR CATALOGUE_DIR [--n 40] [--shift 5] [--steps 50]

For the first N held-out tonal and mixed clips whose caption names its key ("G# minor"), it generates
twice with the same seed: as written, and with the key's tonic moved up --shift semitones (same
mode). If the model follows the key, the estimated tonic (librosa chroma, Krumhansl-Schmuckler, the
`[eval]` extra) should be the requested one both times; chance is 1 in 12.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--shift", type=int, default=5, help="semitones the key is moved up (default 5, a fourth)")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    if args.n < 1 or args.shift % 12 == 0:
        raise SystemExit(
            f"key_swap_check: --n must be >= 1 and --shift not a multiple of 12, got {args.n} and {args.shift}"
        )

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.evaluation import metrics

    rows = [json.loads(line) for line in (args.catalogue / "metadata.jsonl").read_text().splitlines() if line]
    rows = [
        r
        for r in rows
        if r["split"] != "train" and r.get("tonic") and r.get("kind") in ("tonal", "mixed") and r["key"] in r["caption"]
    ][: args.n]
    if not rows:
        raise SystemExit(f"key_swap_check: no held-out tonal clip of {str(args.catalogue)!r} names its key")
    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)

    hits = {"as written": [], f"moved +{args.shift}": []}
    lines = ["| caption key | estimated | moved to | estimated |", "|---|---|---|---|"]
    for i, row in enumerate(rows):
        tonic, mode = metrics.normalize_key(row["key"])
        moved = NOTES[(NOTES.index(tonic) + args.shift) % 12]
        cells = []
        for name, key in zip(hits, (f"{tonic} {mode}", f"{moved} {mode}")):
            caption = row["caption"].replace(row["key"], key)
            audio = pipe(
                caption,
                seconds_total=row["seconds"],
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(i),
            ).audios[0]
            estimated = metrics.estimate_key(audio.mean(axis=0), pipe.sample_rate)
            hits[name].append(estimated is not None and estimated[0] == key.split()[0])
            cells += [key, " ".join(estimated) if estimated else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(
        f"\n{len(rows)} clips; estimated tonic = requested: "
        + ", ".join(f"{name} {np.mean(v):.0%}" for name, v in hits.items())
        + " (chance 8 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
