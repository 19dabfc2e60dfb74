"""How well a VAE keeps pitch: reconstruct held-out tonal clips and compare them with the originals.

    python tools/vae_pitch_check.py CATALOGUE VAE_DIR [VAE_DIR ...] [--label NAME ...] [--n 30] [-o table.md]

For each VAE folder (a pipeline's ``vae/`` or a checkpoint's ``export/vae``) and the first ``--n``
held-out clips of kind ``tonal`` in the catalogue's ``metadata.jsonl``, every clip goes through
``encode`` (posterior mode) and ``decode``, and the script counts

* clips whose reconstruction's median f0 is within a semitone of the original's (pYIN, among the clips
  where the original has one);
* clips whose reconstruction's estimated key and mode equal the original's (Krumhansl-Schmuckler on chroma).

The first row is the ceiling of a Griffin-Lim spectral VAE: the clips' own STFT magnitudes (n_fft 1024,
hop 256) through 32 Griffin-Lim iterations. Each VAE's row is named by its ``--label`` (one per VAE, in
order), else by its folder; with labels the table names no local path and can go into a model card as
it is (``tools/train_demo.sh`` does that). Needs the ``[eval]`` extra (librosa).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stable_audio_kit.evaluation import metrics
from stable_audio_kit.utils import atomic_write_text
from stable_audio_kit.vae import load_vae_folder
from stable_audio_kit.vae.spectral import griffin_lim, stft_same


def tonal_clips(catalogue: Path, n: int) -> list[tuple[np.ndarray, int]]:
    rows = [json.loads(line) for line in (catalogue / "metadata.jsonl").read_text().splitlines() if line]
    picked = [r for r in rows if r["split"] == "valid" and r["kind"] == "tonal"][:n]
    if not picked:
        raise ValueError(f"catalogue {str(catalogue)!r} has no held-out tonal clips")
    clips = []
    for row in picked:
        audio, rate = sf.read(catalogue / row["path"], dtype="float32", always_2d=True)
        clips.append((audio.mean(axis=1), rate))
    return clips


def agreement(pairs: list[tuple[np.ndarray, np.ndarray, int]]) -> tuple[int, int, int, int]:
    """(f0 within a semitone, clips with an f0, same key and mode, clips)."""
    f0_ok = f0_count = key_ok = 0
    for real, recon, rate in pairs:
        f_real, f_recon = metrics.median_f0(real, rate), metrics.median_f0(recon, rate)
        if np.isfinite(f_real):
            f0_count += 1
            f0_ok += bool(np.isfinite(f_recon) and abs(np.log2(f_recon / f_real)) < 1 / 12)
        key_ok += metrics.estimate_key(real, rate) == metrics.estimate_key(recon, rate)
    return f0_ok, f0_count, key_ok, len(pairs)


@torch.no_grad()
def reconstruct(vae, audio: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(audio)[None, None]
    x = torch.nn.functional.pad(x, (0, (-x.shape[-1]) % vae.hop_length))
    return vae.decode(vae.encode(x).latent_dist.mode()).sample[0].mean(0)[: len(audio)].numpy()


def griffin_lim_ceiling(audio: np.ndarray) -> np.ndarray:
    window = torch.hann_window(1024)
    n = len(audio) // 512 * 512
    magnitude = stft_same(torch.from_numpy(audio[:n])[None], 1024, 256, window).abs()
    return np.pad(griffin_lim(magnitude, 1024, 256, window, 32)[0].numpy(), (0, len(audio) - n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("vaes", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=None, help="row name of each VAE, in order")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    labels = args.label if args.label is not None else [str(folder) for folder in args.vaes]
    if len(labels) != len(args.vaes):
        parser.error(f"give one --label per VAE folder: {len(args.vaes)} folders, {len(labels)} labels")
    for folder in args.vaes:
        if not (folder / "config.json").is_file():
            parser.error(f"{str(folder)!r} is not a VAE folder (no config.json)")
    clips = tonal_clips(args.catalogue, args.n)
    rows = [("true magnitudes + 32 Griffin-Lim iterations", [(a, griffin_lim_ceiling(a), r) for a, r in clips])]
    for folder, label in zip(args.vaes, labels):
        vae = load_vae_folder(folder).eval()
        rows.append((label, [(a, reconstruct(vae, a), r) for a, r in clips]))
    lines = [
        f"The first {len(clips)} held-out tonal clips of the catalogue (`tools/vae_pitch_check.py`).",
        "",
        "| reconstruction | median f0 within a semitone | same key and mode |",
        "|---|---:|---:|",
    ]
    for name, pairs in rows:
        f0_ok, f0_count, key_ok, count = agreement(pairs)
        lines.append(f"| {name} | {f0_ok}/{f0_count} | {key_ok}/{count} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output is not None:
        atomic_write_text(args.output, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
