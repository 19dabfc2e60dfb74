"""Does the U-Net use the caption's key? Held-out denoising loss with the key as written, moved, and no text.

    python tools/key_loss_check.py MODEL_DIR CATALOGUE_DIR LATENTS_DIR [--shift 5] [--draws 4] [--batch 16]

For every held-out crop of the latent shards (``sak encode``) whose caption names a key ("G# minor"),
the v-objective loss of MODEL_DIR's U-Net is computed three times on the same timesteps and noise: with
the caption as written, with the key's tonic moved up --shift semitones (same mode, the text re-encoded),
and with the text dropped as in classifier-free guidance. A U-Net that uses the key words has a lower
loss as written than with the key moved; one that ignores them has the same. ``--draws`` timestep and
noise draws per crop. Prints a table and the share of crops whose loss is lower as written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def move_key(caption: str, shift: int) -> str | None:
    """``caption`` with its first key (:func:`stable_audio_kit.music.find_key`) moved up ``shift`` semitones,
    spelt as the demo catalogue spells that mode's tonics; ``None`` if it names no key."""
    from stable_audio_kit.music import Key, find_key

    found = find_key(caption)
    if found is None:
        return None
    (tonic, mode), (start, end) = found
    return caption[:start] + Key((tonic + shift) % 12, mode).name + caption[end:]


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("latents", type=Path)
    parser.add_argument("--shift", type=int, default=5, help="semitones the key is moved up (default 5, a fourth)")
    parser.add_argument("--draws", type=int, default=4, help="timestep and noise draws per crop")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.shift % 12 == 0 or args.draws < 1 or args.batch < 1:
        raise SystemExit(
            "key_loss_check: --shift must not be a multiple of 12, --draws and --batch must be >= 1; "
            f"got {args.shift}, {args.draws}, {args.batch}"
        )

    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.objective import VObjective
    from stable_audio_kit.train.config import UNetTrainConfig
    from stable_audio_kit.data import collate
    from stable_audio_kit.train.unet import (
        ConditionedDenoiser,
        build_datasets,
        draw,
        encode_batch,
        predict_velocity,
        sample_generators,
    )

    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    model = ConditionedDenoiser(pipe.projection, pipe.unet).eval()
    objective = VObjective(pipe.scheduler.config)
    cfg = OmegaConf.structured(UNetTrainConfig)
    cfg.model, cfg.latents, cfg.data.catalogue = str(args.model), str(args.latents), str(args.catalogue)
    _, valid = build_datasets(cfg, pipe)
    loader = DataLoader(valid, batch_size=args.batch, shuffle=False, collate_fn=collate)

    losses = {"as written": [], "key moved": [], "no text": []}
    first = 0
    for batch in loader:
        moved = [move_key(c, args.shift) for c in batch["caption"]]
        keep = [i for i, m in enumerate(moved) if m is not None]
        if not keep:
            continue
        rows = {k: (v[keep] if torch.is_tensor(v) else [v[i] for i in keep]) for k, v in batch.items()}
        # Both captions go through the same text encoder (no cached text states).
        rows.pop("text_hidden", None)
        rows.pop("text_mask", None)
        written = encode_batch(pipe, rows, torch.device("cpu"))
        shifted = encode_batch(pipe, {**rows, "caption": [moved[i] for i in keep]}, torch.device("cpu"))
        count = len(keep)
        for d in range(args.draws):
            gens = sample_generators(0, 7, d, first, count)
            timesteps, noise, _ = draw(gens, tuple(written["latents"].shape[1:]), objective, 0.0, torch.device("cpu"))
            for name, inputs, dropped in (
                ("as written", written, False),
                ("key moved", shifted, False),
                ("no text", written, True),
            ):
                drop = torch.full((count,), dropped, dtype=torch.bool)
                prediction, target = predict_velocity(model, objective, inputs, timesteps, noise, drop)
                losses[name].append(((prediction - target) ** 2).mean(dim=(1, 2)).numpy())
        first += count
    if not first:
        raise SystemExit(f"key_loss_check: no held-out caption in {str(args.latents)!r} names a key")
    per = {name: np.concatenate(v) for name, v in losses.items()}
    print(f"{args.model}: {first} held-out crops with a key, {args.draws} draws each, key moved {args.shift} semitones")
    print("| caption | loss |\n|---|---:|")
    for name, values in per.items():
        print(f"| {name} | {values.mean():.4f} |")
    lower = float(np.mean(per["as written"] < per["key moved"]))
    print(f"lower as written than with the key moved: {lower:.1%} of {len(per['as written'])} (crop, draw) pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
