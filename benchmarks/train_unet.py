"""Training speed (optimizer steps per second) of ``sak train unet``, from raw audio and from latents.

Two sizes, random initial weights, synthetic chord catalogues:

- ``tiny``: ``configs/tiny.yaml`` (8 kHz mono, 32x VAE, a ~45k-parameter U-Net + projection) with
  ``configs/train/tiny_unet.yaml`` (batch 2 of the model's 1 s window).
- ``small``: 22.05 kHz mono, the 512x / 32-latent VAE of ``benchmarks/train_vae.py``'s small size, a
  10 s window (431 latent frames), a 128-wide text tower, 256-dim conditioning and a ~5.1M-parameter
  U-Net (channels 128, 128, 128; attention on the two coarser levels and in the middle); batch 8.

Each size trains once from raw audio (the frozen VAE and text encoder run every step) and once from
shards written by ``sak encode --text`` (latents and text states cached). Every run is ``sak train unet``
called in this process (torch on ``--threads`` threads) with a log entry every step; steps/s comes from
the wall times of the TensorBoard events after ``--warmup`` steps, so loading, the first iterations
and the final checkpoint are not counted (validation is off). ``--threads 1 2`` measures each run at both
thread counts: on a shared machine, small models can run faster on one thread than on two.

    python benchmarks/train_unet.py              # both sizes
    python benchmarks/train_unet.py --only tiny  # a quick run

Prints a markdown table and writes it to ``benchmarks/results/train_unet.md``.
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

SIZES = {
    # name: (model overrides on configs/tiny.yaml, run overrides on configs/train/tiny_unet.yaml, files, seconds)
    "tiny": ([], [], 8, 3.0),
    "small": (
        [
            "sample_rate=22050",
            "window_seconds=10.0",
            "vae.encoder_hidden_size=64",
            "vae.downsampling_ratios=[2,4,8,8]",
            "vae.channel_multiples=[1,1,2,2]",
            "vae.decoder_channels=64",
            "vae.latent_channels=32",
            "vae.chunk_seconds=30.0",
            "vae.overlap_seconds=1.0",
            "text.hidden_size=128",
            "text.num_attention_heads=4",
            "text.intermediate_size=256",
            "text.projection_dim=128",
            "text.max_length=32",
            "conditioning.dim=256",
            "unet.block_out_channels=[128,128,128]",
            "unet.layers_per_block=1",
            "unet.attention_levels=[false,true,true]",
            "unet.attention_head_dim=64",
            "unet.norm_num_groups=32",
        ],
        ["data.batch_size=8"],
        16,
        12.0,
    ),
}


def write_catalogue(root: Path, sample_rate: int, files: int, seconds: float) -> Path:
    import numpy as np
    import soundfile as sf

    root.mkdir(parents=True)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    for i in range(files):
        base = 110.0 * 2 ** (i / 12)
        chord = sum(0.2 * np.sin(2 * np.pi * base * ratio * t) for ratio in (1.0, 1.25, 1.5, 2.0))
        sf.write(root / f"clip{i}.wav", chord.astype(np.float32), sample_rate)
        (root / f"clip{i}.txt").write_text(f"a chord on note {i}")
    return root


def steps_per_second(run_dir: Path, warmup: int) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = next((run_dir / "logs" / "unet").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    times = {e.step: e.wall_time for e in events.Scalars("train/loss")}
    last = max(times)
    return (last - warmup) / (times[last] - times[warmup])


def measure(size: str, latents: bool, steps: int, warmup: int, threads: int, work: Path) -> dict:
    import torch

    from stable_audio_kit.cli import main
    from stable_audio_kit.pipeline import StableAudioKitPipeline

    torch.set_num_threads(threads)
    model_overrides, run_overrides, files, seconds = SIZES[size]
    model_dir, audio, shards = work / f"{size}-model", work / f"{size}-audio", work / f"{size}-latents"
    if not model_dir.exists():
        assert main(["new-model", str(REPO / "configs" / "tiny.yaml"), str(model_dir), *model_overrides]) == 0
        write_catalogue(audio, StableAudioKitPipeline.from_pretrained(model_dir).sample_rate, files, seconds)
    if latents and not shards.exists():
        assert main(["encode", str(audio), "--model", str(model_dir), "-o", str(shards), "--text"]) == 0
    run_dir = work / f"{size}-{'latents' if latents else 'audio'}-{threads}"
    args = [
        f"model={model_dir}",
        f"data.catalogue={audio}",
        f"run.output_dir={run_dir}",
        f"run.max_steps={warmup + steps}",
        "run.log_every=1",
        "run.valid_every=0",
        f"run.checkpoint_every={warmup + steps}",
        "data.valid_fraction=0.0",
        "valid_samples=0",
        *run_overrides,
    ]
    if latents:
        args.append(f"latents={shards}")
    assert main(["train", "unet", str(REPO / "configs" / "train" / "tiny_unet.yaml"), *args]) == 0
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    pipe = StableAudioKitPipeline.from_pretrained(model_dir)
    unet = pipe.unet.config
    batch = int(next(a for a in [*run_overrides, "data.batch_size=2"] if a.startswith("data.batch_size")).split("=")[1])
    return {
        "size": size,
        "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
        "format": f"{pipe.sample_rate / 1000:g} kHz, {unet.sample_size} frames x {unet.in_channels}",
        "batch": f"{batch} x {pipe.max_seconds:.3g} s",
        "data": "latent shards" if latents else "raw audio",
        "threads": threads,
        "steps_per_s": steps_per_second(run_dir, warmup),
    }


def table(rows: list[dict], steps, warmup: int) -> str:
    lines = [
        "# U-Net trainer speed",
        "",
        (
            f"`python benchmarks/train_unet.py`: {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, fp32; {steps} steps timed after {warmup} warm-up steps (a log entry every "
            "step, no validation or checkpoint in the timed span). Random weights, synthetic chords. Load average when "
            f"done: {os.getloadavg()[0]:.1f} (other jobs share the cores when it exceeds the core count)."
        ),
        "",
        "| size | U-Net parameters | format (window) | batch | data | threads | steps/s | s/step |",
        "|---|---:|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['unet_params']:,} | {r['format']} | {r['batch']} | {r['data']} | {r['threads']} "
            f"| {r['steps_per_s']:.2f} | {1 / r['steps_per_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SIZES), default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 tiny, 5 small)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch threads, one or more counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [args.only] if args.only else list(SIZES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-unet-") as tmp:
        for size in sizes:
            steps = args.steps or (20 if size == "tiny" else 5)
            for latents in (False, True):
                for threads in args.threads:
                    rows.append(measure(size, latents, steps, args.warmup, threads, Path(tmp)))
                    print(
                        f"{size} from {rows[-1]['data']}, {threads} thread(s): {rows[-1]['steps_per_s']:.2f} steps/s",
                        flush=True,
                    )
    text = table(rows, args.steps if args.steps else "20 (tiny) / 5 (small)", args.warmup)
    print(text)
    atomic_write_text(REPO / "benchmarks" / "results" / "train_unet.md", text)


if __name__ == "__main__":
    main()
