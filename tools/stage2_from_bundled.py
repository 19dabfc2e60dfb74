"""A pipeline for retraining only the demo U-Net: the bundled model's CLAP and VAE, a fresh U-Net.

    python tools/stage2_from_bundled.py BASE_DIR OUT_DIR

BASE_DIR is a new pipeline from `sak new-model configs/demo/model.yaml BASE_DIR` (its U-Net and timing
projection are what gets trained); OUT_DIR receives it with the bundled demo model's VAE, CLAP text
tower, tokenizer and full CLAP model (`clap/`, which `sak evaluate` scores with) in float32. It is what
`tools/train_demo.sh` calls `stage2` when WORK_DIR has no CLAP and VAE runs of its own and
`REUSE_BUNDLED=1` is set: the CLAP and VAE runs take about 2 h 10 min on a 2-core CPU, the U-Net one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.clap_audio import ClapAudioEmbedder
    from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR
    from stable_audio_kit.utils import atomic_dir

    base = StableAudioKitPipeline.from_pretrained(args.base)
    bundled = StableAudioKitPipeline.from_pretrained(DEFAULT_MODEL_DIR)
    for name in ("sample_rate", "audio_channels"):
        if getattr(base, name) != getattr(bundled, name):
            raise SystemExit(
                f"stage2_from_bundled: {name} of {str(args.base)!r} is {getattr(base, name)}, "
                f"the bundled model's {getattr(bundled, name)}"
            )
    # The pipeline itself refuses a U-Net/VAE latent-channel or projection/text-width mismatch.
    pipe = StableAudioKitPipeline(
        vae=bundled.vae,
        text_encoder=bundled.text_encoder,
        tokenizer=bundled.tokenizer,
        projection=base.projection,
        unet=base.unet,
        scheduler=base.scheduler,
    ).to(torch.float32)
    with atomic_dir(args.out) as tmp:
        pipe.save_pretrained(tmp)
        embedder = ClapAudioEmbedder.from_pretrained(DEFAULT_MODEL_DIR / "clap")
        embedder.model.to(torch.float32)
        embedder.save_pretrained(tmp / "clap")
    print(f"wrote {args.out}: bundled VAE and CLAP, U-Net and projection from {args.base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
