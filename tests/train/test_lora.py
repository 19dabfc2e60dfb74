"""``sak train unet ... lora.rank=N`` on the tiny model: only the adapter trains (the base weights stay
bit-identical), with the guarantees of full training (exact resume after ``kill -9``, the non-finite-loss stop,
EMA, two processes training what one does); its checkpoints hold the adapter and the training state alone and a
resume refuses a changed base; ``sak export`` writes the adapter alone or merged."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from stable_audio_kit.cli import main
from stable_audio_kit.lora import CONFIG_NAME, WEIGHTS_NAME, weights_sha256
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.train import unet as trainer
from stable_audio_kit.train.common import FROZEN_BASE_NAME, NonFiniteLossError, config_changes, load_run_config
from stable_audio_kit.train.config import UNetTrainConfig

from .test_distributed import DIST_CHECK, ENV, close, free_port, overrides
from .test_unet_trainer import (  # noqa: F401 (autouse fixtures)
    TINY_RUN,
    assert_same,
    fresh_accelerate,
    make_cfg,
    one_thread,
    reset_accelerate,
    write_catalogue,
)

LORA = ["lora.rank=4", "lora.projection_targets=[time_positional_embedding.1]"]


def lora_checkpoint_state(ckpt: Path) -> dict:
    """Everything a LoRA checkpoint holds that training computed."""
    ema = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)
    optim = torch.load(ckpt / "optimizer.bin", weights_only=False)
    return {
        "model": load_file(ckpt / "model.safetensors"),
        "ema": ema["shadow_params"],
        "ema_step": ema["optimization_step"],
        "optim": [t for s in optim["state"].values() for t in s.values()],
        "scheduler": torch.load(ckpt / "scheduler.bin", weights_only=False),
        "trainer": json.loads((ckpt / "trainer_state.json").read_text()),
        "export": load_file(ckpt / "export" / "lora" / WEIGHTS_NAME),
        "base": json.loads((ckpt / FROZEN_BASE_NAME).read_text()),
    }


def base_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The model's U-Net and projection weights, named as in a training checkpoint without adapters."""
    out = {}
    for component in ("unet", "projection"):
        weights = load_file(model_dir / component / "diffusion_pytorch_model.safetensors")
        out.update({f"{component}.{name}": value for name, value in weights.items()})
    return out


@contextmanager
def whole_models() -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """``{step: state dict}``: the whole trained model (base and adapters) at every checkpoint, as training held
    it; the checkpoints themselves leave the base out."""
    seen = {}
    save = trainer.save_checkpoint

    def recording(accelerator, run_dir, state, export, keep):
        model = accelerator.unwrap_model(accelerator._models[0])
        seen[state.step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return save(accelerator, run_dir, state, export, keep)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "save_checkpoint", recording)
        yield seen


def split_base(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(adapter, base)`` of a whole LoRA model's state dict, the base named as in the model folder."""
    lora = {k: v for k, v in weights.items() if ".lora_" in k}
    base = {k.replace(".base_layer.", "."): v for k, v in weights.items() if ".lora_" not in k}
    return lora, base


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """test_unet_trainer's catalogue: 5 training tones (2 batches of 2 per epoch), one shorter than the window."""
    return write_catalogue(tmp_path_factory.mktemp("lora") / "audio", [0.3, 0.55, 0.8, 0.2, 1.1, 0.6])


@pytest.fixture(scope="module")
def shards(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """test_distributed's data: 8 training tones and 1 held out, encoded with their text states."""
    root = tmp_path_factory.mktemp("lora-dist")
    audio = write_catalogue(root / "audio", [0.3 + 0.1 * i for i in range(9)])
    assert main(["encode", str(audio), "--model", str(tiny_model_dir), "-o", str(root / "latents"), "--text"]) == 0
    return audio, root / "latents"


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, catalogue, tmp_path_factory) -> Path:
    """6 uninterrupted LoRA steps (U-Net and projection adapters) with accumulation, CFG dropout, validation
    and checkpoints at 3 and 6."""
    reset_accelerate()
    out = tmp_path_factory.mktemp("lora") / "run"
    with whole_models() as whole:
        trainer.train(make_cfg(tiny_model_dir, catalogue, out, *LORA))
    save_file(whole[6], str(out.parent / "whole-step6.safetensors"))
    reset_accelerate()
    return out


def test_only_the_adapter_trains_and_the_base_stays_bit_identical(lora_run, tiny_model_dir):
    ckpt = lora_run / "checkpoints" / "step_00000006"
    lora, base = split_base(load_file(lora_run.parent / "whole-step6.safetensors"))
    assert_same(base, base_weights(tiny_model_dir))
    weights = load_file(ckpt / "model.safetensors")
    assert_same(weights, lora)
    assert any(k.startswith("projection.") for k in lora) and any(k.startswith("unet.") for k in lora)
    assert all(v.abs().max() > 0 for k, v in lora.items() if ".lora_B." in k), "every adapter learned (B starts at 0)"

    # The optimizer and the EMA hold the adapter alone, and the export is the EMA of it, by name.
    optim = torch.load(ckpt / "optimizer.bin", weights_only=False)["state"]
    shadow = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    assert len(optim) == len(shadow) == len(lora)
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    model = trainer.ConditionedDenoiser(pipe.projection, pipe.unet)
    cfg = make_cfg(tiny_model_dir, lora_run.parent, lora_run.parent / "unused", *LORA)
    trainer.add_adapters({"unet": model.unet, "projection": model.projection}, trainer.lora_spec(cfg))
    assert all(p.requires_grad == (".lora_" in name) for name, p in model.named_parameters())
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    exported = load_file(ckpt / "export" / "lora" / WEIGHTS_NAME)
    assert len(exported) == len(trained)
    for name, value in zip(trained, shadow):
        assert torch.equal(exported[name.replace(".default.", ".")], value), name
    assert any(not torch.equal(exported[n.replace(".default.", ".")], weights[n]) for n in trained), "EMA, not online"


def test_a_lora_checkpoint_holds_the_adapter_and_the_training_state_alone(
    lora_run, tiny_model_dir, catalogue, tmp_path
):
    ckpt = lora_run / "checkpoints" / "step_00000006"
    adapter, _ = split_base(load_file(lora_run.parent / "whole-step6.safetensors"))
    assert load_file(ckpt / "model.safetensors").keys() == adapter.keys(), "the adapter, no frozen weight"
    base = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    assert json.loads((ckpt / FROZEN_BASE_NAME).read_text()) == {
        "base_model": str(tiny_model_dir),
        "base_sha256": {"unet": weights_sha256(base.unet), "projection": weights_sha256(base.projection)},
    }

    # Against a full fine-tune of the same model (measured: weights 54 kB against 199 kB, the checkpoint without
    # export/ 303 kB against 941 kB; with the whole model in, a LoRA checkpoint's weights were 254 kB).
    trainer.train(make_cfg(tiny_model_dir, catalogue, tmp_path / "full", "run.max_steps=3", "run.valid_every=0"))
    reset_accelerate()
    full = tmp_path / "full" / "checkpoints" / "step_00000003"

    def state_bytes(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "export" not in p.parts)

    assert (ckpt / "model.safetensors").stat().st_size < (full / "model.safetensors").stat().st_size / 3
    assert state_bytes(ckpt) < state_bytes(full) / 2.5


def test_resume_refuses_a_changed_base_and_a_checkpoint_that_does_not_fit(tiny_model_dir, catalogue, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    args = [
        f"model={model}",
        f"data.catalogue={catalogue}",
        f"run.output_dir={tmp_path / 'run'}",
        "data.window_seconds=0.25",
        "run.max_steps=2",
        "run.checkpoint_every=2",
        "run.valid_every=0",
        "lora.rank=2",  # U-Net adapters alone: the projection is frozen whole, and left out of the checkpoints too
    ]
    assert main(["train", "unet", str(TINY_RUN), *args]) == 0
    reset_accelerate()
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000002"
    capsys.readouterr()

    def resume() -> str:
        """stderr of ``--resume``, which must fail (the run is at its last step, so a resume only loads)."""
        code = main(["train", "unet", str(TINY_RUN), *args, "--resume"])
        reset_accelerate()
        err = capsys.readouterr().err
        assert code == 2, err[-2000:]
        return err

    for component in ("unet", "projection"):
        file = model / component / "diffusion_pytorch_model.safetensors"
        original = file.read_bytes()
        weights = load_file(file)
        first = sorted(weights)[0]
        save_file({**weights, first: weights[first] + 1e-3}, str(file), metadata={"format": "pt"})
        assert re.search(
            rf"the base model '{re.escape(str(model))}' no longer has the weights .* its {component} weights have "
            rf"sha256 {weights_sha256(getattr(StableAudioKitPipeline.from_pretrained(model), component))}",
            resume(),
        )
        file.write_bytes(original)

    file = ckpt / "model.safetensors"
    original = file.read_bytes()
    adapter = load_file(file)
    assert adapter and all(k.startswith("unet.") and ".lora_" in k for k in adapter)
    dropped = sorted(adapter)[0]
    save_file({k: v for k, v in adapter.items() if k != dropped}, str(file))
    assert f"1 missing ['{dropped}'], 0 unexpected []" in resume()
    save_file({**adapter, "unet.extra.lora_A.default.weight": torch.zeros(2, 2)}, str(file))
    assert "0 missing [], 1 unexpected ['unet.extra.lora_A.default.weight']" in resume()
    file.write_bytes(original)
    assert main(["train", "unet", str(TINY_RUN), *args, "--resume"]) == 0


def test_lora_run_resumes_after_kill_9_as_if_uninterrupted(tiny_model_dir, catalogue, lora_run, tmp_path):
    """A real SIGKILL of `sak train unet ... lora.rank=4` right after its step-3 checkpoint, then `--resume`."""
    out = tmp_path / "run"
    args = [
        f"model={tiny_model_dir}",
        f"data.catalogue={catalogue}",
        f"run.output_dir={out}",
        "data.window_seconds=0.25",
        "run.max_steps=6",
        "run.checkpoint_every=3",
        "run.log_every=1",
        "run.grad_accum=2",
        "cfg_dropout=0.5",
        "valid_steps=20",
        "run.valid_every=1",  # slows the victim down so the kill lands before step 6; changes nothing trained
        *LORA,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stable_audio_kit.cli", "train", "unet", str(TINY_RUN), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    target = out / "checkpoints" / "step_00000003"
    deadline = time.monotonic() + 300
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err[-2000:]}"
    assert target.is_dir() and not (out / "checkpoints" / "step_00000006").exists()

    assert main(["train", "unet", str(TINY_RUN), *args, "--resume"]) == 0
    resumed = lora_checkpoint_state(out / "checkpoints" / "step_00000006")
    assert_same(resumed, lora_checkpoint_state(lora_run / "checkpoints" / "step_00000006"))


def test_non_finite_loss_stops_a_lora_run(tiny_model_dir, catalogue, tmp_path, monkeypatch):
    compute = trainer.diffusion_loss
    calls = []

    def blows_up_in_step_3(*args, **kwargs):
        calls.append(1)
        loss = compute(*args, **kwargs)
        return loss * float("nan") if len(calls) > 4 else loss  # 2 micro-batches per step

    monkeypatch.setattr(trainer, "diffusion_loss", blows_up_in_step_3)
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", "run.checkpoint_every=2", "run.valid_every=0", *LORA)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 .*step_00000002"):
        trainer.train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000002"]
    assert all(torch.isfinite(t).all() for t in load_file(ckpts / "step_00000002" / "model.safetensors").values())


def test_export_writes_the_adapter_alone_or_merged(lora_run, tiny_model_dir, catalogue, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    assert main(["export", str(lora_run), str(adapter)]) == 0
    assert "wrote LoRA adapter folder" in capsys.readouterr().out
    assert sorted(p.name for p in adapter.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME, "training.json"]
    config = json.loads((adapter / CONFIG_NAME).read_text())
    assert (config["rank"], config["alpha"], config["base_model"]) == (4, 4.0, str(tiny_model_dir))
    assert config["targets"] == list(UNetTrainConfig().lora.targets)
    base = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    assert config["components"]["unet"]["base_sha256"] == weights_sha256(base.unet)
    assert config["components"]["projection"]["base_sha256"] == weights_sha256(base.projection)
    assert json.loads((adapter / "training.json").read_text())["step"] == 6
    ckpt_export = lora_run / "checkpoints" / "step_00000006" / "export" / "lora" / WEIGHTS_NAME
    assert_same(load_file(adapter / WEIGHTS_NAME), load_file(ckpt_export))
    unet_file = tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    # Rank 4 on an 8/16-channel U-Net is a third of it; on the bundled model rank 16 is 6 % (benchmarks/lora.py).
    assert (adapter / WEIGHTS_NAME).stat().st_size < unet_file.stat().st_size / 2

    merged = tmp_path / "merged"
    assert main(["export", str(lora_run), str(merged), "--merge-lora"]) == 0
    assert "wrote pipeline directory" in capsys.readouterr().out
    assert json.loads((merged / "training.json").read_text())["merged_lora"] is True
    plain = load_file(merged / "unet" / "diffusion_pytorch_model.safetensors")
    assert plain.keys() == load_file(unet_file).keys(), "a plain pipeline: no adapter layers"

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        gen = torch.Generator().manual_seed(0)
        return pipe("a tone", seconds_total=0.5, num_inference_steps=3, generator=gen, precision="fp32").audios

    base_audio = generate(base)
    base.load_lora_weights(adapter)
    loaded = generate(base)
    assert np.abs(loaded - base_audio).max() > 1e-4
    np.testing.assert_allclose(generate(StableAudioKitPipeline.from_pretrained(merged)), loaded, atol=1e-5)

    assert main(["export", str(lora_run), str(tmp_path / "x"), "--base", str(tiny_model_dir)]) == 2
    assert "--base applies with --merge-lora" in capsys.readouterr().err
    full = tmp_path / "full"
    trainer.train(make_cfg(tiny_model_dir, catalogue, full, "run.max_steps=1", "run.valid_every=0"))
    reset_accelerate()
    assert main(["export", str(full), str(tmp_path / "y"), "--merge-lora"]) == 2
    assert "is not a LoRA run" in capsys.readouterr().err


def test_gradient_checkpointing_and_bf16_reach_every_adapter(tiny_model_dir, catalogue, tmp_path):
    """The first adapted layers sit after frozen ones: their inputs need no gradient, and checkpointed blocks
    must still give their adapters one."""
    options = ["gradient_checkpointing=true", "run.mixed_precision=bf16", "run.max_steps=2", "run.checkpoint_every=2"]
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", *options, "run.valid_every=0", *LORA)
    with whole_models() as whole:
        trainer.train(cfg)
    lora, base = split_base(whole[2])
    lora_b = {k: v for k, v in lora.items() if ".lora_B." in k}
    assert lora_b and all(v.abs().max() > 0 for v in lora_b.values())
    assert_same(base, base_weights(tiny_model_dir))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.rank=-1", "lora.rank must be >= 0"),
        ("lora.alpha=0", "lora.alpha must be > 0"),
        ("lora.dropout=1.0", r"lora.dropout must be in \[0, 1\)"),
        ("lora.targets=[to_z]", r"LoRA target 'to_z' matches no module of the unet; .*'to_q'"),
        ("lora.targets=[norm1]", "LoRA target 'norm1' matches unet modules LoRA cannot adapt"),
        ("lora.projection_targets=[embedders]", "matches projection modules LoRA cannot adapt"),
    ],
)
def test_bad_lora_settings_are_refused_before_anything_is_written(
    tiny_model_dir,
    catalogue,
    tmp_path,
    capsys,
    override,
    message,
):
    args = [f"model={tiny_model_dir}", f"data.catalogue={catalogue}", f"run.output_dir={tmp_path / 'run'}"]
    assert main(["train", "unet", str(TINY_RUN), *args, "lora.rank=2", override]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_a_run_saved_before_the_lora_settings_resumes_unchanged(tiny_model_dir, catalogue, tmp_path):
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run")
    saved = OmegaConf.to_container(cfg)
    del saved["lora"]
    assert config_changes(OmegaConf.create(saved), cfg) == {}
    assert set(config_changes(OmegaConf.create(saved), make_cfg(tiny_model_dir, catalogue, tmp_path, *LORA))) == {
        "lora.rank",
        "lora.projection_targets",
    }


def test_two_processes_train_the_adapter_one_process_trains_with_the_whole_batch(
    tiny_model_dir,
    shards,
    tmp_path,
):
    audio, latents = shards
    one_process = [*overrides(tiny_model_dir, audio, latents, tmp_path / "one", 4), *LORA]
    trainer.train(load_run_config(UNetTrainConfig, TINY_RUN, one_process))
    reset_accelerate()

    record = tmp_path / "record"
    args = [*overrides(tiny_model_dir, audio, latents, tmp_path / "two", 2), *LORA]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            str(DIST_CHECK),
            str(record),
            "train",
            "unet",
            str(TINY_RUN),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "batch 2 per process x 2 processes" in r.stderr
    weights = [load_file(record / f"weights-rank{k}-step3.safetensors") for k in (0, 1)]
    close(weights[0], weights[1], atol=0)
    one, two = tmp_path / "one" / "checkpoints" / "step_00000003", tmp_path / "two" / "checkpoints" / "step_00000003"
    reference = load_file(one / "model.safetensors")
    close(load_file(two / "model.safetensors"), reference, atol=1e-5)
    adapter = Path("export") / "lora" / WEIGHTS_NAME
    close(load_file(two / adapter), load_file(one / adapter), atol=1e-5)
    assert reference.keys() == split_base(weights[0])[0].keys(), "the checkpoint holds the adapter alone"
    assert_same(split_base(weights[0])[1], base_weights(tiny_model_dir))
