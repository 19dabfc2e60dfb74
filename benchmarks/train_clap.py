"""Training speed of the CLAP trainer (``sak train clap``) on the CPU.

Two configurations, each on a synthetic catalogue of sines, chords and noise bursts with captions:

- ``tiny``: ``configs/train/tiny_clap.yaml`` on ``configs/tiny.yaml`` (8 kHz, 1 s crops, batch 4,
  ~16k parameters), the configuration of the tests;
- ``small``: 22.05 kHz, 10 s crops, batch 16; HTSAT with 64 mel bins folded into a 128x128 image,
  3 Swin stages (2, 2, 2 blocks; widths 32/64/128) and a 4-layer text tower of width 256 (~4.1M
  parameters).

Steps per second come from two runs of the real ``train()`` that differ only in ``max_steps``:
``(t(warmup + n) - t(warmup)) / n`` cancels the setup, the tokenizer, the final checkpoint and the
first steps' allocations. ``collate`` is the data side of one batch (reading the crops, log-mel
features and tokens), which ``data.num_workers`` can move off the training process. Each
configuration runs with 1 and 2 torch threads: on a shared or small machine the second thread can
cost more in synchronisation than it gains.

    python benchmarks/train_clap.py            # both, a few minutes on 2 cores
    python benchmarks/train_clap.py --quick    # fewer steps

Prints a markdown table and writes it to ``benchmarks/results/train_clap.md`` (atomically).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmark runs from a checkout, installed or not

import numpy as np
import soundfile as sf
import torch

from stable_audio_kit.utils import atomic_write_text

TINY_MODEL = REPO / "configs" / "tiny.yaml"
TINY_CLAP = REPO / "configs" / "train" / "tiny_clap.yaml"
RESULTS = REPO / "benchmarks" / "results" / "train_clap.md"

SMALL_MODEL = [
    "sample_rate=22050",
    "window_seconds=10.0",
    "text.hidden_size=256",
    "text.num_hidden_layers=4",
    "text.num_attention_heads=4",
    "text.intermediate_size=1024",
    "text.max_length=32",
]
SMALL_CLAP = [
    "data.batch_size=16",
    "tokenizer_vocab_size=1024",
    "projection_dim=256",
    "optim.lr=1e-4",
    "optim.lr_schedule=constant_with_warmup",
    "text.hidden_size=256",
    "text.num_hidden_layers=4",
    "text.num_attention_heads=4",
    "text.intermediate_size=1024",
    "audio.num_mel_bins=64",
    "audio.spec_size=128",
    "audio.patch_size=4",
    "audio.patch_stride=[4,4]",
    "audio.window_size=8",
    "audio.depths=[2,2,2]",
    "audio.num_attention_heads=[2,4,8]",
    "audio.patch_embeds_hidden_size=32",
    "audio.hidden_size=128",
]
SETUPS = {
    # name: (model overrides, run overrides, sample rate, clip seconds, files, warm-up steps, timed steps)
    "tiny": ([], [], 8000, 1.0, 8, 5, 60),
    "small": (SMALL_MODEL, SMALL_CLAP, 22050, 10.0, 20, 2, 10),
}
SOUNDS = ("sine", "chord", "noise bursts", "clicks")
REGISTERS = {"low": 110.0, "middle": 440.0, "high": 1760.0}


def write_catalogue(root: Path, sample_rate: int, seconds: float, files: int) -> None:
    """``files`` clips a little longer than the crop, with captions naming sound and register."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    n = round(seconds * 1.2 * sample_rate)
    t = np.arange(n) / sample_rate
    rows = []
    for i in range(files):
        sound, register = SOUNDS[i % len(SOUNDS)], list(REGISTERS)[i // len(SOUNDS) % len(REGISTERS)]
        f0 = REGISTERS[register] * rng.uniform(0.9, 1.1)
        if sound == "sine":
            audio = 0.5 * np.sin(2 * np.pi * f0 * t)
        elif sound == "chord":
            audio = 0.2 * sum(np.sin(2 * np.pi * f0 * r * t) for r in (1.0, 1.26, 1.5))
        elif sound == "noise bursts":
            audio = 0.4 * rng.standard_normal(n) * (np.sin(2 * np.pi * 3 * t) > 0.6)
        else:
            audio = np.zeros(n)
            audio[:: sample_rate // 4] = 0.9
        path = f"clip_{i:03d}.wav"
        sf.write(root / path, audio.astype(np.float32), sample_rate)
        rows.append((path, f"{sound} in a {register} register", "train"))
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption", "split"])
        writer.writerows(rows)


def timed_run(base: Path, catalogue: Path, out: Path, overrides: list[str], steps: int) -> float:
    from stable_audio_kit.train import clap
    from stable_audio_kit.train.common import load_run_config
    from stable_audio_kit.train.config import ClapTrainConfig

    cfg = load_run_config(
        ClapTrainConfig,
        TINY_CLAP,
        [
            f"model={base}",
            f"data.catalogue={catalogue}",
            f"run.output_dir={out}",
            f"run.max_steps={steps}",
            f"run.checkpoint_every={steps}",
            "run.tensorboard=false",
            "data.valid_fraction=0.0",
            *overrides,
        ],
    )
    start = time.perf_counter()
    clap.train(cfg)
    return time.perf_counter() - start


def collate_seconds(base: Path, catalogue: Path, overrides: list[str]) -> tuple[float, float]:
    """(seconds to build one training batch, parameters in millions)."""
    from stable_audio_kit.conditioning import train_tokenizer
    from stable_audio_kit.train import clap
    from stable_audio_kit.train.common import load_run_config
    from stable_audio_kit.train.config import ClapTrainConfig

    cfg = load_run_config(
        ClapTrainConfig,
        TINY_CLAP,
        [f"model={base}", f"data.catalogue={catalogue}", "run.output_dir=unused", *overrides],
    )
    plan = clap.check_config(cfg)
    train_set, _ = clap.make_datasets(cfg, plan)
    tokenizer = train_tokenizer([item.caption for item in train_set.items], cfg.tokenizer_vocab_size)
    collator = clap.ClapCollator(plan.feature_extractor, tokenizer, plan.max_length)
    start = time.perf_counter()
    collator([train_set[i] for i in range(cfg.data.batch_size)])
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in clap.build_clap(cfg, plan, tokenizer).parameters()) / 1e6
    return elapsed, params


def measure(name: str, threads: int, work: Path, quick: bool) -> dict:
    from stable_audio_kit.cli import main

    model_overrides, run_overrides, sample_rate, seconds, files, warmup, steps = SETUPS[name]
    if quick:
        steps = max(2, steps // 4)
    torch.set_num_threads(threads)
    base, catalogue = work / f"{name}_base", work / f"{name}_catalogue"
    if not base.exists():
        assert main(["new-model", str(TINY_MODEL), str(base), *model_overrides]) == 0
        write_catalogue(catalogue, sample_rate, seconds, files)
    collate_s, params = collate_seconds(base, catalogue, run_overrides)
    short = timed_run(base, catalogue, work / f"{name}_{threads}_a", run_overrides, warmup)
    long = timed_run(base, catalogue, work / f"{name}_{threads}_b", run_overrides, warmup + steps)
    per_step = (long - short) / steps
    batch = 16 if name == "small" else 4
    return {
        "config": name,
        "params_m": params,
        "sample_rate": sample_rate,
        "clip_s": seconds,
        "batch": batch,
        "threads": threads,
        "steps": steps,
        "s_per_step": per_step,
        "steps_per_s": 1.0 / per_step,
        "collate_s": collate_s,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| config | params | audio | batch | threads | timed steps | steps/s | s/step | collate s/batch |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['config']} | {r['params_m']:.3f}M | {r['sample_rate'] / 1000:g} kHz x {r['clip_s']:g} s "
        f"| {r['batch']} | "
        f"{r['threads']} | {r['steps']} | {r['steps_per_s']:.2f} | {r['s_per_step']:.3f} | {r['collate_s']:.3f} |\n"
        for r in rows
    )
    return head + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the timed steps")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("stable_audio_kit", "accelerate", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")

    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_clap_"))
    try:
        rows = [
            measure("tiny", 1, work, args.quick),
            measure("tiny", 2, work, args.quick),
            measure("small", 1, work, args.quick),
            measure("small", 2, work, args.quick),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(rows)
    print(text)
    report = (
        "# CLAP trainer speed (CPU)\n\n"
        "`python benchmarks/train_clap.py`: steps/s of `stable_audio_kit.train.clap.train` from two runs that differ "
        "only in `max_steps`; `collate` is one batch's data side (crops, log-mels, tokens).\n\n"
        f"{text}\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, "
        f"load average {load:.1f} at the start (the machine is shared: lower load means faster steps).\n\n"
        "`tiny` = `configs/train/tiny_clap.yaml` (8 kHz, 1 s, batch 4). `small` = 22.05 kHz, 10 s crops, batch 16, "
        "HTSAT 64 mels / spec 128 / depths [2,2,2] / widths 32-64-128 / window 8, text 4 layers x 256, "
        "projection 256.\n"
    )
    atomic_write_text(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
