"""What every trainer relies on: run folders, exact resume (weights, optimizer, schedule, RNG, data
position), atomic checkpoints, the loss guard and the LR schedule."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from omegaconf import OmegaConf
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from stable_audio_kit.train.common import (
    FROZEN_BASE_NAME,
    NonFiniteLossError,
    TrainerState,
    batches,
    check_loss,
    checkpoint_dirs,
    checkpoint_trainable_weights_only,
    cpu_data_parallel,
    latest_checkpoint,
    load_checkpoint,
    load_run_config,
    make_lr_scheduler,
    make_optimizer,
    save_checkpoint,
    setup_run,
    start_run,
)
from stable_audio_kit.train.config import UNetTrainConfig
from stable_audio_kit.train.export import export_run

from .tensorboard_logs import start_a_new_second


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model is fastest on one thread; with two, a busy 2-core machine makes OpenMP spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_accelerate():
    """Accelerate keeps its state in process-wide singletons; every test builds its own."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def run_cfg(tmp_path: Path, **run):
    return OmegaConf.create(
        {
            "run": {
                "output_dir": str(tmp_path / "run"),
                "seed": 3,
                "grad_accum": 1,
                "mixed_precision": "no",
                "tensorboard": False,
                **run,
            },
            "optim": {
                "lr": 0.1,
                "weight_decay": 0.0,
                "betas": [0.9, 0.999],
                "warmup_steps": 2,
                "lr_schedule": "cosine",
                "grad_clip": 1.0,
            },
        }
    )


class EpochDataset(Dataset):
    """Item ``i`` of epoch ``e`` is ``100 * e + i``: a batch names its epoch, like a random crop does."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return 100 * self.epoch + index


def prepared_loader(accelerator, size=10, batch=3):
    dataset = EpochDataset(size)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    return dataset, accelerator.prepare(loader)


@pytest.mark.parametrize("stop", [2, 3, 4])  # mid-epoch, exactly at an epoch's end, just after it
def test_batches_resume_where_they_stopped(tmp_path, stop):
    cfg = run_cfg(tmp_path)
    accelerator, _ = setup_run(cfg, "test", resume=False)
    dataset, loader = prepared_loader(accelerator)
    state = TrainerState()
    data = batches(accelerator, loader, dataset, state)
    reference = [next(data).tolist() for _ in range(8)]  # 3 batches per epoch: crosses two epoch ends
    assert len({tuple(b) for b in reference}) == 8, "every batch differs (shuffled, epoch-dependent crops)"

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator, _ = setup_run(cfg, "test", resume=False)
    dataset, loader = prepared_loader(accelerator)
    state = TrainerState()
    data = batches(accelerator, loader, dataset, state)
    first = [next(data).tolist() for _ in range(stop)]
    saved = TrainerState(**asdict(state))  # what a checkpoint after `stop` batches holds

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator, _ = setup_run(cfg, "test", resume=False)
    dataset, loader = prepared_loader(accelerator)
    data = batches(accelerator, loader, dataset, saved)
    rest = [next(data).tolist() for _ in range(8 - stop)]
    assert first + rest == reference


def test_batches_refuse_a_loader_without_batches(tmp_path):
    accelerator, _ = setup_run(run_cfg(tmp_path), "test", resume=False)
    dataset, loader = prepared_loader(accelerator, size=2, batch=3)
    with pytest.raises(ValueError, match="yields no batches"):
        next(batches(accelerator, loader, dataset, TrainerState()))


class Exported:
    """Stands in for a diffusers model in ``export``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def save_pretrained(self, path: Path) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "value.json").write_text(json.dumps(self.value))


class Counter:
    """A custom checkpointed object, as the EMA is."""

    def __init__(self) -> None:
        self.count = 0

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = state["count"]


def prepared_training(cfg, resume):
    accelerator, run_dir = setup_run(cfg, "test", resume=resume)
    start_run(accelerator, cfg, "test", run_dir)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model.parameters(), cfg.optim)
    scheduler = make_lr_scheduler(optimizer, cfg.optim, max_steps=10)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    counter = Counter()
    accelerator.register_for_checkpointing(counter)
    return accelerator, run_dir, model, optimizer, scheduler, counter


def train_steps(model, optimizer, scheduler, n):
    for _ in range(n):
        model(torch.randn(4, 3)).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def test_checkpoint_restores_weights_optimizer_schedule_rng_and_custom_state(tmp_path):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, model, optimizer, scheduler, counter = prepared_training(cfg, resume=False)
    train_steps(model, optimizer, scheduler, 3)
    counter.count = 7
    state = TrainerState(step=3, epoch=1, batch_in_epoch=2)
    path = save_checkpoint(accelerator, run_dir, state, {"thing": Exported(1.5)}, keep=2)
    assert path == run_dir / "checkpoints" / "step_00000003"
    assert json.loads((path / "export" / "thing" / "value.json").read_text()) == 1.5
    assert (path / "model.safetensors").is_file(), "weights are saved as safetensors"
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    draws = (torch.rand(3), np.random.rand(3), random.random())
    train_steps(model, optimizer, scheduler, 2)  # then crash: what follows must be undone by a resume
    expected_lr = scheduler.get_last_lr()

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator, run_dir, model, optimizer, scheduler, counter = prepared_training(cfg, resume=True)
    restored = load_checkpoint(accelerator, run_dir)
    assert restored == state and counter.count == 7
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]
    train_steps(model, optimizer, scheduler, 2)
    assert scheduler.get_last_lr() == expected_lr, "the schedule continues from step 3"


def test_checkpoints_of_a_partly_frozen_model_hold_its_trainable_weights_alone(tmp_path):
    """A LoRA run's checkpoints (checkpoint_trainable_weights_only): the trainable weights, strictly restored;
    the frozen ones come from the base, whose hash must not have changed; a whole-model checkpoint loads whole."""
    cfg = run_cfg(tmp_path)

    def prepared(base_sha256: str | None):
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        accelerator, run_dir = setup_run(cfg, "test", resume=latest_checkpoint(tmp_path / "run") is not None)
        start_run(accelerator, cfg, "test", run_dir)
        torch.manual_seed(0)  # the base: the same frozen first layer every time
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        model[0].requires_grad_(False)
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
        model, optimizer = accelerator.prepare(model, optimizer)
        if base_sha256 is not None:
            checkpoint_trainable_weights_only(accelerator, {"model": base_sha256}, "base-dir")
        return accelerator, run_dir, model, optimizer

    accelerator, run_dir, model, optimizer = prepared("aaa")
    model(torch.randn(4, 3)).pow(2).mean().backward()
    optimizer.step()
    ckpt = save_checkpoint(accelerator, run_dir, TrainerState(step=1), {}, keep=3)
    assert load_file(ckpt / "model.safetensors").keys() == {"1.weight", "1.bias"}
    base = {"base_model": "base-dir", "base_sha256": {"model": "aaa"}}
    assert json.loads((ckpt / FROZEN_BASE_NAME).read_text()) == base
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    accelerator, run_dir, model, optimizer = prepared("aaa")
    load_checkpoint(accelerator, run_dir)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert len(optimizer.state_dict()["state"]) == 2, "the optimizer state is restored with them"

    accelerator, run_dir, *_ = prepared("bbb")
    with pytest.raises(ValueError, match=r"'base-dir' no longer has the weights .*bbb, the run started from aaa"):
        load_checkpoint(accelerator, run_dir)

    # A checkpoint with the whole model (written without the hooks) loads whole, frozen weights included.
    accelerator, run_dir, model, _ = prepared(None)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    whole = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(accelerator, run_dir, TrainerState(step=2), {}, keep=3)
    accelerator, run_dir, model, _ = prepared("aaa")
    load_checkpoint(accelerator, run_dir)
    for key, value in model.state_dict().items():
        assert torch.equal(value, whole[key]), key


def test_checkpoints_are_pruned_and_partial_ones_ignored_then_removed(tmp_path):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    for step in (1, 2, 3):
        save_checkpoint(accelerator, run_dir, TrainerState(step=step), {}, keep=2)
    assert [p.name for p in checkpoint_dirs(run_dir)] == ["step_00000002", "step_00000003"]

    # A kill while step 4 was being written leaves only a hidden temporary folder.
    partial = run_dir / "checkpoints" / ".tmp-step_00000004"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    assert latest_checkpoint(run_dir).name == "step_00000003"
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator, run_dir = setup_run(cfg, "test", resume=True)
    assert partial.exists(), "setup_run writes nothing"
    start_run(accelerator, cfg, "test", run_dir)
    assert not partial.exists()


def test_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    good = save_checkpoint(accelerator, run_dir, TrainerState(step=1), {}, keep=2)
    before = {p.relative_to(good): p.read_bytes() for p in good.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(accelerator, "save_state", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(accelerator, run_dir, TrainerState(step=2), {}, keep=2)
    assert latest_checkpoint(run_dir) == good
    assert {p.relative_to(good): p.read_bytes() for p in good.rglob("*") if p.is_file()} == before


def test_setup_run_guards(tmp_path):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    save_checkpoint(accelerator, run_dir, TrainerState(step=1), {}, keep=2)
    assert OmegaConf.load(run_dir / "config.yaml").run.seed == 3, "the resolved config is saved"
    AcceleratorState._reset_state(True)
    with pytest.raises(ValueError, match="already holds checkpoints; pass --resume"):
        setup_run(cfg, "test", resume=False)
    with pytest.raises(ValueError, match="is a 'test' run, not 'unet'"):
        setup_run(cfg, "unet", resume=True)
    if not torch.cuda.is_available():
        fp16 = run_cfg(tmp_path / "other", mixed_precision="fp16")
        with pytest.raises(ValueError, match="fp16.*needs a CUDA device"):
            setup_run(fp16, "test", resume=False)


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no checkpoint"):
        setup_run(run_cfg(tmp_path), "test", resume=True)
    accelerator, run_dir = setup_run(run_cfg(tmp_path), "test", resume=False)
    with pytest.raises(ValueError, match="holds no checkpoint"):
        load_checkpoint(accelerator, run_dir)


def test_cpu_data_parallel_only_for_multi_process_launches(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert cpu_data_parallel() is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cpu_data_parallel() is (not torch.cuda.is_available())


def test_check_loss_names_the_step_and_the_last_good_checkpoint(tmp_path):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    check_loss(torch.tensor(0.5), 1, run_dir, accelerator=accelerator)
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss \(nan\) at step 1; .*No good checkpoint was written"
    ):
        check_loss(torch.tensor(float("nan")), 1, run_dir, accelerator=accelerator)
    good = save_checkpoint(accelerator, run_dir, TrainerState(step=3), {}, keep=2)
    last = save_checkpoint(accelerator, run_dir, TrainerState(step=4), {}, keep=2)
    # Step 5's loss came from the weights of step 4: that checkpoint would fail again at once.
    with pytest.raises(
        NonFiniteLossError,
        match=rf"disc loss \(inf\) at step 5 \(this process's batch: a.wav, b.wav\); .*{good.name}'.* remove the "
        rf"newer checkpoint folder\(s\) {last.name}, lower optim.lr and pass --resume --allow-config-change",
    ):
        check_loss(torch.tensor(float("inf")), 5, run_dir, name="disc loss", files=["a.wav", "b.wav"])
    assert not issubclass(NonFiniteLossError, ValueError)


def test_lr_schedule_steps_once_per_optimizer_step(tmp_path):
    cfg = run_cfg(tmp_path)
    _, _, _, optimizer, scheduler, _ = prepared_training(cfg, resume=False)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.1), "2 warm-up steps"
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12), "cosine reaches 0 at max_steps"
    cfg.optim.lr_schedule = "wobbly"
    with pytest.raises(ValueError, match="'wobbly' is unknown; valid names: .*cosine"):
        make_lr_scheduler(optimizer, cfg.optim, 10)


@pytest.mark.parametrize(
    "override, match",
    [
        ("run.max_steps=0", "run.max_steps must be >= 1"),
        ("run.grad_accum=0", "run.grad_accum must be >= 1"),
        ("run.mixed_precision=fp8", "run.mixed_precision must be"),
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("optim.lrr=1", "lrr"),
    ],
)
def test_load_run_config_rejects_bad_values(tmp_path, override, match):
    base = ["model=m", "data.catalogue=c", f"run.output_dir={tmp_path}"]
    with pytest.raises(ValueError, match=match):
        load_run_config(UNetTrainConfig, None, [*base, override])


def test_export_run_errors(tmp_path):
    with pytest.raises(ValueError, match="not a training run folder"):
        export_run(tmp_path, tmp_path / "out")
    cfg = run_cfg(tmp_path)
    start_run(setup_run(cfg, "unet", resume=False)[0], cfg, "unet", Path(cfg.run.output_dir))
    with pytest.raises(ValueError, match="no checkpoint"):
        export_run(tmp_path / "run", tmp_path / "out")


@pytest.mark.parametrize("where", ["weights", "optimizer"])
def test_a_checkpoint_is_only_written_with_finite_weights_and_optimizer_state(tmp_path, where):
    cfg = run_cfg(tmp_path)
    accelerator, run_dir, model, optimizer, scheduler, _ = prepared_training(cfg, resume=False)
    train_steps(model, optimizer, scheduler, 1)
    good = save_checkpoint(accelerator, run_dir, TrainerState(step=1), {}, keep=5)
    assert json.loads((good / "trainer_state.json").read_text())["finite"] is True
    train_steps(model, optimizer, scheduler, 1)
    save_checkpoint(accelerator, run_dir, TrainerState(step=2), {}, keep=5)
    with torch.no_grad():
        if where == "weights":
            next(model.parameters()).fill_(float("inf"))
        else:
            next(iter(optimizer.state.values()))["exp_avg_sq"].fill_(float("nan"))
    with pytest.raises(
        NonFiniteLossError, match=rf"non-finite values at step 3 \(.*{where}.*\); no checkpoint written"
    ):
        save_checkpoint(accelerator, run_dir, TrainerState(step=3), {}, keep=5)
    assert latest_checkpoint(run_dir).name == "step_00000002"
    assert not (run_dir / "checkpoints" / ".tmp-step_00000003").exists()


def test_setup_run_writes_nothing_until_start_run(tmp_path):
    """A trainer's checks run between the two: a run that fails them leaves no folder behind."""
    cfg = run_cfg(tmp_path)
    accelerator, run_dir = setup_run(cfg, "test", resume=False)
    assert not run_dir.exists()
    start_run(accelerator, cfg, "test", run_dir)
    assert (run_dir / "config.yaml").is_file() and json.loads((run_dir / "run.json").read_text()) == {"kind": "test"}


def test_resume_with_a_changed_config_says_what_changed_and_keeps_the_original(tmp_path):
    cfg = run_cfg(tmp_path, max_steps=10, log_every=5)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    save_checkpoint(accelerator, run_dir, TrainerState(step=2), {}, keep=2)
    original = (run_dir / "config.yaml").read_text()

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    reporting = run_cfg(tmp_path, max_steps=10, log_every=1)  # what is reported, not what is computed
    accelerator, _ = setup_run(reporting, "test", resume=True)
    start_run(accelerator, reporting, "test", run_dir)
    assert (run_dir / "config.yaml").read_text() == original

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    longer = run_cfg(tmp_path, max_steps=20, log_every=5)
    with pytest.raises(ValueError, match=r"run.max_steps: 10 -> 20\).*--allow-config-change"):
        setup_run(longer, "test", resume=True)
    accelerator, _ = setup_run(longer, "test", resume=True, allow_config_change=True)
    start_run(accelerator, longer, "test", run_dir)
    assert (run_dir / "config.yaml").read_text() == original
    assert OmegaConf.load(run_dir / "config.resumed_at_00000002.yaml").run.max_steps == 20


def test_resumed_tensorboard_log_holds_each_step_once(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = run_cfg(tmp_path, tensorboard=True)
    accelerator, run_dir, *_ = prepared_training(cfg, resume=False)
    for step in range(1, 6):
        accelerator.log({"train/loss": float(step)}, step=step)
        if step == 3:
            save_checkpoint(accelerator, run_dir, TrainerState(step=3), {}, keep=2)
    accelerator.end_training()  # killed after step 5: steps 4 and 5 are logged but not checkpointed

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    start_a_new_second()
    accelerator, run_dir, *_ = prepared_training(cfg, resume=True)
    for step in range(4, 7):
        accelerator.log({"train/loss": 10.0 + step}, step=step)
    accelerator.end_training()
    events = EventAccumulator(str(run_dir / "logs" / "test")).Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert logged == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 14.0), (5, 15.0), (6, 16.0)]
