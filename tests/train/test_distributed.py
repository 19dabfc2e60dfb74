"""Data parallelism on this CPU machine, launched as users launch it: two processes (gloo) train the
same model as one process with the whole batch, and ``sak generate --prompts`` shares the prompts out."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from stable_audio_kit.cli import main
from stable_audio_kit.train import unet as trainer
from stable_audio_kit.train.common import load_run_config
from stable_audio_kit.train.config import UNetTrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = ROOT / "configs" / "train" / "tiny_unet.yaml"
DIST_CHECK = Path(__file__).with_name("dist_check.py")
SR = 8000
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def fresh_accelerate():
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def latents(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """8 training files and 1 held out, encoded with their text states."""
    root = tmp_path_factory.mktemp("dist")
    audio = root / "audio"
    audio.mkdir()
    for i in range(9):
        t = np.arange(round((0.3 + 0.1 * i) * SR)) / SR
        sf.write(audio / f"tone{i}.wav", (0.4 * np.sin(2 * np.pi * (300 + 40 * i) * t)).astype(np.float32), SR)
        split = "valid" if i == 8 else "train"
        (audio / f"tone{i}.json").write_text(json.dumps({"caption": f"a tone of {300 + 40 * i} hertz", "split": split}))
    assert main(["encode", str(audio), "--model", str(tiny_model_dir), "-o", str(root / "latents"), "--text"]) == 0
    return audio, root / "latents"


def overrides(model: Path, audio: Path, latents: Path, out: Path, batch: int) -> list[str]:
    return [
        f"model={model}",
        f"data.catalogue={audio}",
        f"latents={latents}",
        f"run.output_dir={out}",
        f"data.batch_size={batch}",
        "data.window_seconds=0.25",
        "run.max_steps=3",
        "run.checkpoint_every=3",
        "run.valid_every=1000",
        "run.log_every=1",
        "run.tensorboard=false",
        "valid_samples=0",
        "cfg_dropout=0.5",
        "optim.warmup_steps=1",
    ]


def close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.allclose(value, b[key], atol=atol, rtol=0), (key, (value - b[key]).abs().max().item())


def test_two_processes_train_the_model_one_process_trains_with_the_whole_batch(
    tiny_model_dir, latents, tmp_path, monkeypatch
):
    audio, shards = latents
    # Reference: one process, global batch 4.
    drawn = []
    original = trainer.batches

    def recording(accelerator, loader, dataset, state):
        for batch in original(accelerator, loader, dataset, state):
            drawn.append([state.step, list(batch["path"])])
            yield batch

    monkeypatch.setattr(trainer, "batches", recording)
    one_process = overrides(tiny_model_dir, audio, shards, tmp_path / "one", 4)
    trainer.train(load_run_config(UNetTrainConfig, TINY_RUN, one_process))

    # Two processes with batch 2 each, through the CLI under `accelerate launch` (gloo on the CPU).
    record = tmp_path / "record"
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]
    args = overrides(tiny_model_dir, audio, shards, tmp_path / "two", 2)
    r = subprocess.run(
        [*launch, str(DIST_CHECK), str(record), "train", "unet", str(TINY_RUN), *args],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "batch 2 per process x 2 processes" in r.stderr, "the run logs its layout"

    # Each process drew its own half of every global batch: together exactly the reference batch.
    ranks = [json.loads((record / f"batches-rank{k}.json").read_text()) for k in (0, 1)]
    assert len(drawn) == len(ranks[0]) == len(ranks[1]) == 3
    for (step, whole), (step0, half0), (step1, half1) in zip(drawn, *ranks):
        assert step == step0 == step1
        assert not set(half0) & set(half1)
        assert half0 + half1 == whole

    # Gradients were synchronised: both processes hold the same weights.
    weights = [load_file(record / f"weights-rank{k}-step3.safetensors") for k in (0, 1)]
    close(weights[0], weights[1], atol=0)

    # And they are the weights, EMA and optimizer state of the one-process run (up to summation order).
    one, two = tmp_path / "one" / "checkpoints" / "step_00000003", tmp_path / "two" / "checkpoints" / "step_00000003"
    reference = load_file(one / "model.safetensors")
    close(weights[0], reference, atol=1e-5)
    close(load_file(two / "model.safetensors"), reference, atol=1e-5)
    for name in ("unet", "projection"):
        path = Path("export") / name / "diffusion_pytorch_model.safetensors"
        close(load_file(two / path), load_file(one / path), atol=1e-5)
    optim = [torch.load(ckpt / "optimizer.bin", weights_only=False)["state"] for ckpt in (one, two)]
    for key in optim[0]:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(optim[0][key][name], optim[1][key][name], atol=1e-6, rtol=1e-4), (key, name)
    assert json.loads((one / "trainer_state.json").read_text()) == json.loads((two / "trainer_state.json").read_text())


def test_generate_shares_the_prompts_between_processes(tiny_model_dir, tmp_path):
    prompts = [f"prompt number {i}" for i in range(5)]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "stable_audio_kit.cli",
            "generate",
            "--prompts",
            str(tmp_path / "prompts.txt"),
            "--model",
            str(tiny_model_dir),
            "--seconds",
            "0.25",
            "--steps",
            "2",
            "--seed",
            "1",
            "--device",
            "cpu",
            "-o",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{i:04d}_prompt_number_{i}.wav" for i in range(5)]
    for name in files:
        audio, sr = sf.read(out / name)
        assert sr == SR and len(audio) == 2000
    written = re.findall(r"wrote (\S+\.wav)", r.stderr)
    assert sorted(Path(p).name for p in written) == files, "every prompt generated exactly once"
    assert "generating (rank 0)" in r.stderr and "generating (rank 1)" in r.stderr, "both processes took a share"
