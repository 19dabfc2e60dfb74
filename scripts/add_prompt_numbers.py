"""A copy of a trained pipeline whose projection also embeds the numbers of the prompt, for fine-tuning.

    python scripts/add_prompt_numbers.py MODEL_DIR OUT_DIR [--min 1 --max 1000]

The new projection holds every weight of the old one, plus a `PromptNumberEmbedding`
(stable_audio_kit.conditioning) whose last layer is zero: OUT_DIR generates exactly what MODEL_DIR
does until `sak train unet` fine-tunes it. `scripts/train_demo.sh` uses it for the demo model's last
stage (configs/demo/unet_numbers.yaml). A `clap/` folder in MODEL_DIR (what `sak evaluate` scores
with) is copied along.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--min", type=float, default=1.0, help="smallest number told apart (default 1)")
    parser.add_argument("--max", type=float, default=1000.0, help="largest number told apart (default 1000)")
    args = parser.parse_args()

    from stable_audio_kit import ConditioningProjection, StableAudioKitPipeline
    from stable_audio_kit.utils import atomic_dir

    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    old = pipe.projection
    if old.config.get("prompt_numbers", False):
        raise SystemExit(f"add_prompt_numbers: the projection of {str(args.model)!r} embeds prompt numbers already")
    config = {k: v for k, v in old.config.items() if not k.startswith("_")}
    config.update(prompt_numbers=True, prompt_number_min=args.min, prompt_number_max=args.max)
    new = ConditioningProjection(**config)  # refuses a bad --min/--max
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    if unexpected or any(not key.startswith("prompt_number_embedder.") for key in missing):
        raise SystemExit(f"add_prompt_numbers: projection weights do not line up: {missing=}, {unexpected=}")
    pipe.projection = new.to(torch.float32)
    pipe.register_modules(projection=pipe.projection)
    with atomic_dir(args.out) as tmp:
        pipe.save_pretrained(tmp)
        if (args.model / "clap").is_dir():
            shutil.copytree(args.model / "clap", tmp / "clap")
    print(f"wrote {args.out}: {args.model} with prompt-number embeddings in [{args.min:g}, {args.max:g}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
