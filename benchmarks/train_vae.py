"""Training speed (optimizer steps per second) of the VAE trainer, with and without the discriminator.

Two sizes, random initial weights, synthetic chord catalogues:

- ``tiny``: ``configs/tiny.yaml``'s VAE (8 kHz mono, 32x, 4 latent channels, ~8.5k parameters)
  with ``configs/train/tiny_vae.yaml`` (batch 2 of 0.5 s crops, 8-channel discriminator).
- ``small``: 22.05 kHz mono, 512x downsampling (2, 4, 8, 8), 32 latent channels, ~2.3M parameters,
  batch 4 of 1 s crops, Stable Audio's STFT loss sizes and the default discriminator (32 channels,
  FFTs 2048 ... 128).

Each run calls ``stable_audio_kit.train.vae.train`` in this process (torch on 2 threads) with a log
entry every step and the only checkpoint after the last; steps/s is read from the wall times of the
TensorBoard events, after ``--warmup`` steps, so model loading, the first iterations and the final
checkpoint are not counted. With ``adversarial_start: 0`` the discriminator trains from the first step.

    python benchmarks/train_vae.py              # both sizes
    python benchmarks/train_vae.py --only tiny  # a quick run

Prints a markdown table and writes it to ``benchmarks/results/train_vae.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmark runs from a checkout, installed or not

from stable_audio_kit.utils import atomic_write_text

NUM_THREADS = 2
SMALL_MODEL = [
    "sample_rate=22050",
    "vae.encoder_hidden_size=64",
    "vae.downsampling_ratios=[2,4,8,8]",
    "vae.channel_multiples=[1,1,2,2]",
    "vae.decoder_channels=64",
    "vae.latent_channels=32",
]
SIZES = {
    # name: (model overrides on configs/tiny.yaml, run overrides on configs/train/tiny_vae.yaml)
    "tiny": ([], []),
    "small": (
        SMALL_MODEL,
        [
            "crop_seconds=1.0",
            "data.batch_size=4",
            "stft_fft_sizes=[2048,1024,512,256,128,64,32]",
            "disc_channels=32",
            "disc_fft_sizes=[2048,1024,512,256,128]",
        ],
    ),
}


def write_catalogue(root: Path, sample_rate: int, files: int = 8, seconds: float = 3.0) -> Path:
    import numpy as np
    import soundfile as sf

    root.mkdir(parents=True)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    for i in range(files):
        base = 110.0 * 2 ** (i / 12)
        chord = sum(0.2 * np.sin(2 * np.pi * base * ratio * t) for ratio in (1.0, 1.25, 1.5, 2.0))
        sf.write(root / f"clip{i}.wav", chord.astype(np.float32), sample_rate)
    return root


def steps_per_second(run_dir: Path, warmup: int) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = next((run_dir / "logs" / "vae").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    times = {e.step: e.wall_time for e in events.Scalars("train/total")}
    last = max(times)
    return (last - warmup) / (times[last] - times[warmup])


def measure(size: str, adversarial: bool, steps: int, warmup: int, work: Path) -> dict:
    import torch

    from stable_audio_kit.config import ModelConfig, load_config
    from stable_audio_kit.pipeline import build_pipeline
    from stable_audio_kit.train.common import load_run_config
    from stable_audio_kit.train.config import VAETrainConfig
    from stable_audio_kit.train.vae import train

    torch.set_num_threads(NUM_THREADS)
    model_overrides, run_overrides = SIZES[size]
    model_dir = work / f"{size}-model"
    if not model_dir.exists():
        model_cfg = load_config(ModelConfig, REPO / "configs" / "tiny.yaml", model_overrides)
        build_pipeline(model_cfg).save_pretrained(model_dir)
        write_catalogue(work / f"{size}-catalogue", model_cfg.sample_rate)
    run_dir = work / f"{size}-{'gan' if adversarial else 'plain'}"
    cfg = load_run_config(
        VAETrainConfig,
        REPO / "configs" / "train" / "tiny_vae.yaml",
        [
            f"model={model_dir}",
            f"data.catalogue={work / f'{size}-catalogue'}",
            f"run.output_dir={run_dir}",
            f"run.max_steps={warmup + steps}",
            "run.log_every=1",
            "run.valid_every=0",
            f"run.checkpoint_every={warmup + steps}",
            "data.valid_fraction=0.0",
            f"adversarial={adversarial}",
            "adversarial_start=0",
            *run_overrides,
        ],
    )
    train(cfg)
    from stable_audio_kit.vae import AudioVAE

    vae = AudioVAE.from_pretrained(model_dir / "vae")
    return {
        "size": size,
        "vae_params": sum(p.numel() for p in vae.parameters()),
        "format": f"{vae.config.sampling_rate / 1000:g} kHz, {vae.hop_length}x, {vae.latent_channels} latents",
        "batch": f"{cfg.data.batch_size} x {cfg.crop_seconds:g} s",
        "discriminator": "on" if adversarial else "off",
        "steps_per_s": steps_per_second(run_dir, warmup),
    }


def table(rows: list[dict], steps: int, warmup: int) -> str:
    lines = [
        "# VAE trainer speed",
        "",
        (
            f"`python benchmarks/train_vae.py`: {platform.processor() or platform.machine()}, torch on "
            f"{NUM_THREADS} CPU threads, fp32; {steps} steps timed after {warmup} warm-up steps (a log entry "
            "every step, no validation or checkpoint in the timed span). Random weights, synthetic chords. "
            f"Load average when done: {os.getloadavg()[0]:.1f} (other jobs share the cores when it exceeds 2)."
        ),
        "",
        "| size | VAE parameters | format | batch | discriminator | steps/s | s/step |",
        "|---|---:|---|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['vae_params']:,} | {r['format']} | {r['batch']} | {r['discriminator']} "
            f"| {r['steps_per_s']:.2f} | {1 / r['steps_per_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SIZES), default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 tiny, 4 small)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [args.only] if args.only else list(SIZES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-vae-") as tmp:
        for size in sizes:
            steps = args.steps or (20 if size == "tiny" else 4)
            for adversarial in (False, True):
                rows.append(measure(size, adversarial, steps, args.warmup, Path(tmp)))
                print(f"{size} discriminator={'on' if adversarial else 'off'}: {rows[-1]['steps_per_s']:.2f} steps/s")
    steps_note = args.steps if args.steps else "20 (tiny) / 4 (small)"
    text = table(rows, steps_note, args.warmup)
    print(text)
    atomic_write_text(REPO / "benchmarks" / "results" / "train_vae.md", text)


if __name__ == "__main__":
    main()
