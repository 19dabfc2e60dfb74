"""A copy of a trained pipeline whose U-Net also reads the beat grid of the requested tempo, for fine-tuning.

    python scripts/add_beat_grid.py MODEL_DIR OUT_DIR

The new U-Net (`beat_grid_channel`, stable_audio_kit.unet) holds every weight of the old one; the four
new input channels of its first convolution start at zero, so OUT_DIR generates exactly what MODEL_DIR
does until `sak train unet` fine-tunes it. `scripts/train_demo.sh` uses it for the demo model's last
stage (configs/demo/unet_beats.yaml). A `clap/` folder in MODEL_DIR (what `sak evaluate` scores with)
is copied along.
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
    args = parser.parse_args()

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.unet import UNet1DConditionModel
    from stable_audio_kit.utils import atomic_dir

    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    old = pipe.unet
    if old.config.get("beat_grid_channel", False):
        raise SystemExit(f"add_beat_grid: the U-Net of {str(args.model)!r} reads a beat grid already")
    config = {k: v for k, v in old.config.items() if not k.startswith("_")}
    config["beat_grid_channel"] = True
    new = UNet1DConditionModel(**config)
    state = old.state_dict()
    weight = state["conv_in.weight"]
    grid_inputs = new.conv_in.weight.shape[1] - weight.shape[1]
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], grid_inputs, weight.shape[2])], 1)
    new.load_state_dict(state)  # strict: every other weight lines up
    pipe.unet = new.to(torch.float32).eval()
    pipe.register_modules(unet=pipe.unet)
    with atomic_dir(args.out) as tmp:
        pipe.save_pretrained(tmp)
        if (args.model / "clap").is_dir():
            shutil.copytree(args.model / "clap", tmp / "clap")
    print(f"wrote {args.out}: {args.model} with a beat-grid input ({grid_inputs} channels, zero weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
