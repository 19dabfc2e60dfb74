"""The U-Net trainer end to end on the tiny model: it learns, resumes exactly (also after a real
``kill -9``), stops on a non-finite loss, trains from pre-encoded shards with the timing of raw audio,
logs to TensorBoard and exports what ``sak generate`` loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from stable_audio_kit.cli import main
from stable_audio_kit.conditioning import prompt_numbers
from stable_audio_kit.objective import VObjective
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.train import unet as trainer
from stable_audio_kit.train.common import NonFiniteLossError, load_run_config
from stable_audio_kit.train.config import UNetTrainConfig
from stable_audio_kit.data import collate

from .tensorboard_logs import start_a_new_second

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = ROOT / "configs" / "train" / "tiny_unet.yaml"
SR = 8000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model is fastest on one thread; with two, a busy 2-core machine makes OpenMP spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_accelerate():
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def write_catalogue(root: Path, seconds: list[float], valid: int = 1) -> Path:
    """Tones of the given lengths at 8 kHz with captions; the last ``valid`` files are held out."""
    root.mkdir(parents=True)
    for i, length in enumerate(seconds):
        t = np.arange(round(length * SR)) / SR
        sf.write(root / f"tone{i}.wav", (0.4 * np.sin(2 * np.pi * (300 + 40 * i) * t)).astype(np.float32), SR)
        split = "valid" if i >= len(seconds) - valid else "train"
        (root / f"tone{i}.json").write_text(json.dumps({"caption": f"a tone of {300 + 40 * i} hertz", "split": split}))
    return root


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    # 5 training files (with the 0.25 s window: 2 batches of 2 per epoch) and 1 held out; one is
    # shorter than the window, so padding and its mask are exercised.
    return write_catalogue(tmp_path_factory.mktemp("unet") / "audio", [0.3, 0.55, 0.8, 0.2, 1.1, 0.6])


def make_cfg(model: Path, catalogue: Path, out: Path, *overrides: str):
    base = [
        f"model={model}",
        f"data.catalogue={catalogue}",
        f"run.output_dir={out}",
        "data.window_seconds=0.25",
        "run.max_steps=6",
        "run.checkpoint_every=3",
        "run.valid_every=3",
        "run.log_every=1",
        "run.grad_accum=2",
        "cfg_dropout=0.5",
        "valid_steps=2",
    ]
    return load_run_config(UNetTrainConfig, TINY_RUN, [*base, *overrides])


def reset_accelerate() -> None:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def checkpoint_state(ckpt: Path) -> dict:
    """Everything a checkpoint holds that training computed."""
    ema = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)
    optim = torch.load(ckpt / "optimizer.bin", weights_only=False)
    return {
        "model": load_file(ckpt / "model.safetensors"),
        "ema": ema["shadow_params"],
        "ema_step": ema["optimization_step"],
        "optim": [t for s in optim["state"].values() for t in s.values()],
        "scheduler": torch.load(ckpt / "scheduler.bin", weights_only=False),
        "trainer": json.loads((ckpt / "trainer_state.json").read_text()),
        "export": load_file(ckpt / "export" / "unet" / "diffusion_pytorch_model.safetensors"),
    }


def assert_same(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs by {(a.float() - b.float()).abs().max().item()}"
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir, catalogue, tmp_path_factory) -> Path:
    """6 uninterrupted steps with accumulation, CFG dropout, validation, samples and checkpoints at 3 and 6."""
    reset_accelerate()
    out = tmp_path_factory.mktemp("reference") / "run"
    trainer.train(make_cfg(tiny_model_dir, catalogue, out))
    reset_accelerate()
    return out


def test_loss_drops_when_overfitting_one_clip(tiny_model_dir, tmp_path, monkeypatch):
    """Four copies of one clip, a high learning rate: the training loss falls, and so does the loss at
    fixed timesteps and noise (the trainer's validation loss) on that clip."""
    audio = tmp_path / "one"
    audio.mkdir()
    t = np.arange(round(0.3 * SR)) / SR
    for k in range(4):
        sf.write(audio / f"copy{k}.wav", (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), SR)
        (audio / f"copy{k}.txt").write_text("a tone of 300 hertz")
    losses = []
    compute = trainer.diffusion_loss

    def recording(*args, **kwargs):
        loss = compute(*args, **kwargs)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(trainer, "diffusion_loss", recording)
    cfg = make_cfg(
        tiny_model_dir,
        audio,
        tmp_path / "run",
        "run.max_steps=40",
        "run.grad_accum=1",
        "data.batch_size=4",
        "data.valid_fraction=0",
        "cfg_dropout=0",
        "optim.lr=1e-2",
        "optim.lr_schedule=constant",
        "optim.warmup_steps=0",
        "run.valid_every=0",
        "run.checkpoint_every=1000",
        "run.tensorboard=false",
    )
    trainer.train(cfg)
    assert len(losses) == 40
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.75 * first, f"training loss went from {first:.4f} to {last:.4f}"

    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    clips, _ = trainer.build_datasets(cfg, pipe)
    loader = DataLoader(clips, batch_size=4, collate_fn=collate)
    model = trainer.ConditionedDenoiser(pipe.projection, pipe.unet)
    objective = VObjective(pipe.scheduler.config)
    before = trainer.validation_loss(model, pipe, objective, loader, cfg, torch.device("cpu"))
    model.load_state_dict(load_file(tmp_path / "run" / "checkpoints" / "step_00000040" / "model.safetensors"))
    after = trainer.validation_loss(model, pipe, objective, loader, cfg, torch.device("cpu"))
    assert after < 0.5 * before, f"fixed-draw loss went from {before:.4f} to {after:.4f}"


def test_resume_after_an_interruption_equals_an_uninterrupted_run(
    tiny_model_dir, catalogue, reference_run, tmp_path, monkeypatch
):
    class Interrupted(Exception):
        pass

    save = trainer.save_checkpoint

    def save_then_die(accelerator, run_dir, state, export, keep):
        path = save(accelerator, run_dir, state, export, keep)
        if state.step == 3:
            raise Interrupted
        return path

    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run")
    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        trainer.train(cfg)
    monkeypatch.setattr(trainer, "save_checkpoint", save)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_00000003"]
    reset_accelerate()
    trainer.train(cfg, resume=True)

    resumed = checkpoint_state(tmp_path / "run" / "checkpoints" / "step_00000006")
    reference = checkpoint_state(reference_run / "checkpoints" / "step_00000006")
    expected = {"step": 6, "epoch": 5, "batch_in_epoch": 2, "window_losses": [], "finite": True}
    assert resumed["trainer"] == expected, "6 steps x 2 micro-batches, 2 per epoch"
    assert_same(resumed, reference)


def logged_losses(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "unet"), size_guidance={"scalars": 0}).Reload()
    return [(event.step, event.value) for event in events.Scalars("train/loss")]


def test_a_resumed_run_logs_each_step_once_and_whole_loss_windows(tiny_model_dir, catalogue, tmp_path, monkeypatch):
    """Killed after steps 4 and 5 were logged but before their checkpoint: the resumed run logs 4 and 5 once
    more, and the log holds each step once, with the values of an uninterrupted run (the loss at step 4 averages
    steps 3 and 4, the window the step-3 checkpoint carries over)."""
    options = ("run.max_steps=5", "run.log_every=2", "run.checkpoint_every=3", "run.valid_every=0")
    reference = tmp_path / "reference"
    trainer.train(make_cfg(tiny_model_dir, catalogue, reference, *options))
    reset_accelerate()

    class Interrupted(Exception):
        pass

    save = trainer.save_checkpoint

    def die_at_step_5(accelerator, run_dir, state, export, keep):
        if state.step == 5:
            raise Interrupted
        return save(accelerator, run_dir, state, export, keep)

    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", *options)
    monkeypatch.setattr(trainer, "save_checkpoint", die_at_step_5)
    with pytest.raises(Interrupted):
        trainer.train(cfg)
    monkeypatch.setattr(trainer, "save_checkpoint", save)
    assert [step for step, _ in logged_losses(tmp_path / "run")] == [2, 4, 5]
    reset_accelerate()
    start_a_new_second()
    trainer.train(cfg, resume=True)
    resumed, expected = logged_losses(tmp_path / "run"), logged_losses(reference)
    assert [step for step, _ in resumed] == [2, 4, 5]
    np.testing.assert_allclose([v for _, v in resumed], [v for _, v in expected], rtol=1e-6)


def test_resume_after_kill_9_equals_an_uninterrupted_run(tiny_model_dir, catalogue, reference_run, tmp_path):
    """A real SIGKILL of `sak train unet` right after its step-3 checkpoint, then `--resume` to step 6."""
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
        # Validating every step slows the victim down (so the kill lands before step 6) and must not
        # change what it trains: the reference validates every 3 steps.
        "run.valid_every=1",
        "valid_steps=20",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stable_audio_kit.cli", "train", "unet", str(TINY_RUN), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
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
    resumed = checkpoint_state(out / "checkpoints" / "step_00000006")
    assert_same(resumed, checkpoint_state(reference_run / "checkpoints" / "step_00000006"))


def test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tiny_model_dir, catalogue, tmp_path, monkeypatch):
    compute = trainer.diffusion_loss
    calls = []

    def blows_up_in_step_3(*args, **kwargs):
        calls.append(1)
        loss = compute(*args, **kwargs)
        return loss * float("nan") if len(calls) > 4 else loss  # 2 micro-batches per step

    monkeypatch.setattr(trainer, "diffusion_loss", blows_up_in_step_3)
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", "run.checkpoint_every=2", "run.valid_every=0")
    expected = r"non-finite loss \(nan\) at step 3 \(this process's batch: .*\.wav\); stopping\. .*step_00000002"
    with pytest.raises(NonFiniteLossError, match=expected):
        trainer.train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000002"]
    assert json.loads((ckpts / "step_00000002" / "trainer_state.json").read_text())["step"] == 2
    assert all(torch.isfinite(t).all() for t in load_file(ckpts / "step_00000002" / "model.safetensors").values())


def test_cli_exits_non_zero_naming_the_step_of_a_non_finite_loss(tiny_model_dir, catalogue, tmp_path):
    """The user's view: a learning rate that blows the weights up after the first step."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "stable_audio_kit.cli",
            "train",
            "unet",
            str(TINY_RUN),
            f"model={tiny_model_dir}",
            f"data.catalogue={catalogue}",
            f"run.output_dir={tmp_path / 'run'}",
            "data.window_seconds=0.25",
            "optim.lr=1e30",
            "optim.lr_schedule=constant",
            "optim.warmup_steps=0",
            "optim.grad_clip=0",
            "run.checkpoint_every=1",
            "run.max_steps=5",
            "run.valid_every=0",
            "run.tensorboard=false",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode != 0
    assert "non-finite loss" in r.stderr and "at step 2 (this process's batch: " in r.stderr, r.stderr[-2000:]
    # The step-1 checkpoint holds the weights (about 1e30) that gave the non-finite loss: not a good one.
    assert "step_00000001' holds the weights that gave it" in r.stderr, r.stderr[-2000:]
    assert "No good checkpoint was written before it" in r.stderr
    assert (tmp_path / "run" / "checkpoints" / "step_00000001").is_dir()


def test_train_from_shards_sees_the_timing_of_raw_audio(tiny_model_dir, catalogue, tmp_path, monkeypatch):
    latents = tmp_path / "latents"
    assert main(["encode", str(catalogue), "--model", str(tiny_model_dir), "-o", str(latents), "--text"]) == 0
    seen: dict[str, list] = {"raw": [], "shards": []}
    encode = trainer.encode_batch
    mode = "raw"

    def recording(pipe, batch, device):
        inputs = encode(pipe, batch, device)
        seen[mode].append(
            (
                batch["path"],
                inputs["features"]["seconds_start"].tolist(),
                inputs["features"]["seconds_total"].tolist(),
                inputs["frame_mask"].sum(-1).tolist(),
                inputs["features"]["prompt"][0],
            )
        )
        return inputs

    monkeypatch.setattr(trainer, "encode_batch", recording)
    common = ["run.max_steps=4", "run.grad_accum=1", "run.valid_every=1000", "run.tensorboard=false"]
    trainer.train(make_cfg(tiny_model_dir, catalogue, tmp_path / "raw", *common))
    reset_accelerate()
    mode = "shards"

    def no_text_encoder(*args, **kwargs):
        raise AssertionError("the cached text states should have been used")

    monkeypatch.setattr("stable_audio_kit.conditioning.text.encode_text", no_text_encoder)
    trainer.train(make_cfg(tiny_model_dir, catalogue, tmp_path / "shards", f"latents={latents}", *common))

    # 4 steps of 2 crops over 2 epochs (new crops in the second), the final validation batch last.
    assert len(seen["raw"]) == len(seen["shards"]) == 5
    for raw, shard in zip(seen["raw"], seen["shards"]):
        assert raw[:4] == shard[:4]
        assert torch.allclose(raw[4], shard[4], atol=1e-6)
    starts = [s for _, starts, *_ in seen["raw"][:4] for s in starts]
    assert len(set(starts)) > 2, "random crops start at different places"
    assert (tmp_path / "shards" / "checkpoints" / "step_00000004").is_dir()


def test_options_bf16_gradient_checkpointing_masked_loss_frozen_projection(tiny_model_dir, catalogue, tmp_path):
    cfg = make_cfg(
        tiny_model_dir,
        catalogue,
        tmp_path / "run",
        "run.max_steps=2",
        "run.checkpoint_every=2",
        "run.grad_accum=1",
        "run.mixed_precision=bf16",
        "gradient_checkpointing=true",
        "masked_loss=true",
        "train_projection=false",
        "run.valid_every=0",
        "run.tensorboard=false",
    )
    trainer.train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000002"
    weights = load_file(ckpt / "model.safetensors")
    base = {
        f"projection.{k}": v
        for k, v in load_file(tiny_model_dir / "projection" / "diffusion_pytorch_model.safetensors").items()
    }
    base_unet = load_file(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in base.items()), "a frozen projection does not move"
    assert any(not torch.equal(weights[f"unet.{k}"], v) for k, v in base_unet.items())
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_tensorboard_logs(reference_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((reference_run / "logs").rglob("events.out.tfevents*"))
    assert files
    tags: dict[str, list] = {}
    for file in files:
        events = EventAccumulator(str(file), size_guidance={"scalars": 0, "audio": 0, "images": 0})
        events.Reload()
        for kind, names in events.Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, []).extend(names)
    assert {"train/loss", "train/lr", "train/grad_norm", "valid/loss"} <= set(tags["scalars"])
    assert "samples/0" in tags["audio"] and "spectrograms/0" in tags["images"]


def test_export_gives_the_ema_model_and_generate_loads_it(reference_run, tmp_path):
    out = tmp_path / "model"
    assert main(["export", str(reference_run), str(out)]) == 0
    assert json.loads((out / "training.json").read_text())["step"] == 6
    ckpt = reference_run / "checkpoints" / "step_00000006"
    exported = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    online = {k.removeprefix("unet."): v for k, v in load_file(ckpt / "model.safetensors").items()}
    shadow = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    projection = load_file(out / "projection" / "diffusion_pytorch_model.safetensors")
    # The EMA covers the wrapper's parameters in order: the projection's, then the U-Net's.
    unet_shadow = shadow[len(projection) :]
    assert len(unet_shadow) == len(exported)
    from stable_audio_kit.unet import UNet1DConditionModel

    names = [n for n, _ in UNet1DConditionModel.from_pretrained(out / "unet").named_parameters()]
    for name, value in zip(names, unet_shadow):
        assert torch.equal(exported[name], value), name
    assert any(not torch.equal(exported[n], online[n]) for n in names), "the export is the EMA, not the online weights"

    wav = tmp_path / "x.wav"
    assert main(["generate", "a tone", "--model", str(out), "--seconds", "0.37", "--steps", "2", "-o", str(wav)]) == 0
    audio, sr = sf.read(wav)
    assert sr == SR and len(audio) == round(0.37 * SR)


def test_config_typos_are_rejected(tiny_model_dir, catalogue, tmp_path, capsys):
    args = [
        "train",
        "unet",
        str(TINY_RUN),
        f"model={tiny_model_dir}",
        f"data.catalogue={catalogue}",
        f"run.output_dir={tmp_path / 'run'}",
    ]
    assert main([*args, "optim.lrr=1"]) == 2
    assert "lrr" in capsys.readouterr().err
    assert main([*args, "cfg_dropuot=0.2"]) == 2
    assert "cfg_dropuot" in capsys.readouterr().err
    assert main([*args, "cfg_dropout=1.5"]) == 2
    assert "cfg_dropout must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is written before the config is valid"


def model_with_shards(tiny_config, catalogue: Path, tmp_path: Path, edit) -> tuple[Path, Path]:
    """The tiny model with ``edit(cfg)`` applied, saved, and the catalogue encoded into shards with text."""
    import copy

    from stable_audio_kit import build_pipeline

    cfg = copy.deepcopy(tiny_config)
    edit(cfg)
    model = tmp_path / "model"
    build_pipeline(cfg).save_pretrained(model)
    latents = tmp_path / "latents"
    assert main(["encode", str(catalogue), "--model", str(model), "-o", str(latents), "--text"]) == 0
    return model, latents


def test_timing_mask_model_sees_the_frames_its_data_pads(tiny_config, catalogue, tmp_path, monkeypatch):
    """A U-Net with timing_mask_channel trains from raw audio and from shards, and the mask it gets (from
    seconds_start/seconds_total, as the pipeline computes it) marks exactly the frames the data holds
    real audio in: what follows a short file's end is where the mask is 0."""
    model, latents = model_with_shards(
        tiny_config, catalogue, tmp_path, lambda cfg: setattr(cfg.unet, "timing_mask_channel", True)
    )
    encode = trainer.encode_batch
    masks = []

    def recording(pipe, batch, device):
        inputs = encode(pipe, batch, device)
        masks.append((inputs["features"]["timing_mask"][:, 0], inputs["frame_mask"]))
        return inputs

    monkeypatch.setattr(trainer, "encode_batch", recording)
    common = ["run.max_steps=4", "run.grad_accum=1", "run.valid_every=1000", "run.tensorboard=false"]
    trainer.train(make_cfg(model, catalogue, tmp_path / "raw", *common))
    reset_accelerate()
    trainer.train(make_cfg(model, catalogue, tmp_path / "shards", f"latents={latents}", *common))
    assert len(masks) == 10
    for timing, frames in masks:
        assert torch.equal(timing, frames.float())
    assert any((frames == 0).any() for _, frames in masks), "a crop past a file's end is exercised"
    assert (tmp_path / "shards" / "checkpoints" / "step_00000004").is_dir()


def test_prompt_numbers_reach_the_projection_and_train(tiny_config, catalogue, tmp_path, monkeypatch):
    """With prompt_numbers, the numbers of the captions ("a tone of 340 hertz") go to the projection, also
    when the text states come cached in shards, and the number embedding (zero at the start) learns."""
    model, latents = model_with_shards(
        tiny_config, catalogue, tmp_path, lambda cfg: setattr(cfg.conditioning, "prompt_numbers", True)
    )
    encode = trainer.encode_batch
    seen = []

    def recording(pipe, batch, device):
        inputs = encode(pipe, batch, device)
        seen.append((list(batch["caption"]), inputs["features"]["prompt_numbers"], pipe))
        return inputs

    monkeypatch.setattr(trainer, "encode_batch", recording)
    common = ["run.max_steps=4", "run.grad_accum=1", "run.valid_every=1000", "run.tensorboard=false", "optim.lr=1e-2"]
    trainer.train(make_cfg(model, catalogue, tmp_path / "run", f"latents={latents}", *common))
    assert seen
    for captions, numbers, pipe in seen:
        assert numbers.shape[0] == len(captions)
        for caption, row in zip(captions, numbers):
            assert set(row[~row.isnan()].tolist()) == {float(caption.split()[-2])}
        expected = prompt_numbers(pipe.tokenizer, captions, pipe.model_facts.text_max_length)
        torch.testing.assert_close(numbers, expected, equal_nan=True)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    trained = StableAudioKitPipeline.from_pretrained(tmp_path / "out").projection
    assert trained.routes["add_to_prompt"] == ["prompt_numbers"]
    assert trained.embedders["prompt_numbers"].mlp[-1].weight.abs().max() > 0


def record_conditioning(monkeypatch, name: str, unet_argument: str) -> tuple[list, list]:
    """Record ``(captions, seconds_start, the features of input name, pipe)`` for every batch
    :func:`trainer.encode_batch` makes, and ``(drop, the U-Net's keyword argument unet_argument)`` for every U-Net
    call inside ``ConditionedDenoiser``."""
    encode = trainer.encode_batch
    seen, at_unet = [], []

    def recording(pipe, batch, device):
        inputs = encode(pipe, batch, device)
        features = inputs["features"]
        seen.append((list(batch["caption"]), features["seconds_start"], features[name], pipe))
        return inputs

    monkeypatch.setattr(trainer, "encode_batch", recording)
    original_forward = trainer.ConditionedDenoiser.forward

    def forward(self, noisy, timesteps, features, drop):
        hook = self.unet.register_forward_pre_hook(
            lambda module, a, kw: at_unet.append((drop.clone(), kw[unet_argument])), with_kwargs=True
        )
        try:
            return original_forward(self, noisy, timesteps, features, drop)
        finally:
            hook.remove()

    monkeypatch.setattr(trainer.ConditionedDenoiser, "forward", forward)
    return seen, at_unet


def test_beat_grid_follows_the_captions_and_trains(tiny_config, tmp_path, monkeypatch):
    """A beat-grid U-Net gets the grid of each caption's tempo on its crop's frames (seconds_start
    included), none on the rows CFG dropout empties, and its grid weights (zero at the start) learn."""
    from stable_audio_kit.conditioning import beat_grid, prompt_tempo

    catalogue = write_catalogue(tmp_path / "audio", [0.3, 0.55, 0.8, 0.2, 1.1, 0.6])
    captions = ["a tone at 90 bpm", "a 150 BPM tone", "a tone", "120 bpm", "a tone at 75 bpm", "a tone"]
    for i, caption in enumerate(captions):
        meta = catalogue / f"tone{i}.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "caption": caption}))

    def edit(cfg):
        cfg.unet.beat_grid_channel = True

    model, latents = model_with_shards(tiny_config, catalogue, tmp_path, edit)
    pipe = StableAudioKitPipeline.from_pretrained(model)
    with torch.no_grad():
        pipe.unet.conv_in.weight[:, -4:] = 0
    pipe.save_pretrained(model)
    seen, unet_grids = record_conditioning(monkeypatch, "beat_grid", "channel_inputs")
    common = ["run.max_steps=4", "run.grad_accum=1", "run.valid_every=1000", "run.tensorboard=false", "optim.lr=1e-2"]
    trainer.train(make_cfg(model, catalogue, tmp_path / "run", f"latents={latents}", *common))
    assert seen and unet_grids
    frames = seen[0][2].shape[-1]
    assert any(start.gt(0).any() for _, start, _, _ in seen), "a crop inside a long file is exercised"
    for captions, start, grid, pipe in seen:
        expected = beat_grid(prompt_tempo(captions), start, frames, pipe.sample_rate, pipe.vae.hop_length)
        torch.testing.assert_close(grid, expected)
    for drop, grid in unet_grids:
        assert (grid[drop] == 0).all()
    assert any(drop.any() for drop, _ in unet_grids) and any((~drop).any() for drop, _ in unet_grids)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    trained = StableAudioKitPipeline.from_pretrained(tmp_path / "out").unet
    assert trained.extra_channels == 4
    assert trained.conv_in.weight[:, -4:].abs().max() > 0


def test_key_profile_follows_the_captions_and_trains(tiny_config, tmp_path, monkeypatch):
    """A key-conditioned U-Net gets the profile of each caption's key, none on the rows CFG dropout
    empties, and its key embedding (zero at the start) learns."""
    from stable_audio_kit.conditioning import key_profile, prompt_key

    catalogue = write_catalogue(tmp_path / "audio", [0.3, 0.55, 0.8, 0.2, 1.1, 0.6])
    captions = ["a tone in C major", "a tone in F# minor", "a tone", "Bb major", "a tone in E minor", "a tone"]
    for i, caption in enumerate(captions):
        meta = catalogue / f"tone{i}.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "caption": caption}))

    def edit(cfg):
        cfg.unet.key_conditioning = True

    model, latents = model_with_shards(tiny_config, catalogue, tmp_path, edit)
    seen, unet_keys = record_conditioning(monkeypatch, "key", "film_inputs")
    common = ["run.max_steps=4", "run.grad_accum=1", "run.valid_every=1000", "run.tensorboard=false", "optim.lr=1e-2"]
    trainer.train(make_cfg(model, catalogue, tmp_path / "run", f"latents={latents}", *common))
    assert seen and unet_keys
    for batch_captions, _, keys, _ in seen:
        torch.testing.assert_close(keys, key_profile(prompt_key(batch_captions)))
    assert any(keys.any() for _, _, keys, _ in seen)
    for drop, keys in unet_keys:
        assert (keys[drop] == 0).all()
    assert any(drop.any() for drop, _ in unet_keys) and any((~drop).any() for drop, _ in unet_keys)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    trained = StableAudioKitPipeline.from_pretrained(tmp_path / "out").unet
    assert trained.film_dim == 24
    assert trained.film_embedding.weight.abs().max() > 0
