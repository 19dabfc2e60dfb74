"""What every trainer shares: run folders, checkpoints that resume exactly, the LR schedule and the
loss guard (export is ``export.py``). The training loops themselves stay flat in ``clap.py``, ``vae.py`` and
``unet.py``.

A run folder holds::

    config.yaml           the resolved run config
    run.json              {"kind": "unet" | "vae" | "clap"}
    logs/                 TensorBoard event files
    checkpoints/step_00000100/
        accelerate state  (models, optimizers, LR schedulers, EMA, every process's RNG); a LoRA run's
                          models hold their adapters alone (:func:`checkpoint_trainable_weights_only`)
        frozen_base.json  a LoRA run's: the sha256 of the base weights its checkpoints leave out
        trainer_state.json  step, epoch and position in the epoch
        export/<component>/  the trained components in diffusers/transformers format
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import SAFE_WEIGHTS_NAME, DataLoaderConfiguration, ProjectConfiguration, set_seed
from omegaconf import OmegaConf

from ..config import load_config, save_config
from ..utils import NonFiniteLossError, atomic_write_text, cpu_data_parallel, launcher_warning

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step_"
# In a checkpoint that leaves the frozen weights out: which base weights they were (checkpoint_trainable_weights_only).
FROZEN_BASE_NAME = "frozen_base.json"


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    # Batches of the current epoch already consumed, so that a resumed run continues mid-epoch.
    batch_in_epoch: int = 0
    # Losses of the logging window not yet logged: a resumed run's first logged loss averages the same whole
    # window an uninterrupted run's does.
    window_losses: list[float] = field(default_factory=list)


# Settings that change only what a run reports or keeps, not what it computes: a resume may change them freely.
# Any other change means the resumed run no longer continues the original exactly (``--allow-config-change``).
REPORTING_KEYS = (
    "run.output_dir",
    "run.log_every",
    "run.valid_every",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.tensorboard",
    "data.num_workers",
    "data.valid_batches",
    "valid_samples",
    "valid_steps",
    "valid_guidance_scale",
    "valid_audio_clips",
)


def load_run_config(schema: type, path: str | Path, overrides: list[str] | None = None):
    """The run's YAML merged into ``schema``; typos and wrong types raise ``ValueError``."""
    cfg = load_config(schema, path, overrides)
    if cfg.run.max_steps < 1:
        raise ValueError(f"run.max_steps must be >= 1, got {cfg.run.max_steps}")
    if cfg.run.grad_accum < 1:
        raise ValueError(f"run.grad_accum must be >= 1, got {cfg.run.grad_accum}")
    if cfg.run.checkpoint_every < 1:
        raise ValueError(f"run.checkpoint_every must be >= 1, got {cfg.run.checkpoint_every}")
    if cfg.run.mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"run.mixed_precision must be 'no', 'fp16' or 'bf16', got {cfg.run.mixed_precision!r}")
    if cfg.data.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1, got {cfg.data.batch_size}")
    if not cfg.optim.lr > 0:
        raise ValueError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    # accelerate's set_seed seeds numpy too, which takes 32 bits.
    if not 0 <= cfg.run.seed <= 2**32 - 1:
        raise ValueError(f"run.seed must be in [0, 2**32 - 1], got {cfg.run.seed}")
    betas = list(cfg.optim.betas)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"optim.betas must be two numbers in [0, 1), got {betas}")
    for key in (
        "optim.weight_decay",
        "optim.warmup_steps",
        "optim.grad_clip",
        "data.num_workers",
        "data.valid_batches",
    ):
        value = OmegaConf.select(cfg, key)
        if not value >= 0:  # also refuses NaN
            raise ValueError(f"{key} must be >= 0, got {value}")
    return cfg


def setup_run(cfg: Any, kind: str, resume: bool, allow_config_change: bool = False) -> tuple[Accelerator, Path]:
    """Check the run folder and create the Accelerator; nothing is written yet (:func:`start_run` does that
    once the trainer's own checks have passed, so a run that fails them leaves no folder behind).

    A new run refuses a folder that already holds checkpoints, so nothing is overwritten by accident. A resume
    needs a checkpoint and the same kind of run, and compares ``cfg`` with the run's ``config.yaml``: a change
    to anything but reporting settings (:data:`REPORTING_KEYS`) is refused unless ``allow_config_change``.
    """
    run_dir = Path(cfg.run.output_dir)
    if not resume and latest_checkpoint(run_dir) is not None:
        raise ValueError(f"run folder {str(run_dir)!r} already holds checkpoints; pass --resume to continue it")
    if resume:
        if latest_checkpoint(run_dir) is None:
            raise ValueError(f"--resume given but {str(run_dir)!r} holds no checkpoint")
        if (run_dir / "run.json").is_file():
            saved = json.loads((run_dir / "run.json").read_text())
            if saved.get("kind") != kind:
                raise ValueError(f"run folder {str(run_dir)!r} is a {saved.get('kind')!r} run, not {kind!r}")
        check_config_change(cfg, run_dir, allow_config_change)
    mixed = cfg.run.mixed_precision
    if mixed == "fp16" and not torch.cuda.is_available():
        raise ValueError("run.mixed_precision='fp16' needs a CUDA device; use 'bf16' or 'no' on this machine")
    accelerator = Accelerator(
        cpu=cpu_data_parallel(),
        gradient_accumulation_steps=cfg.run.grad_accum,
        mixed_precision=mixed,
        log_with="tensorboard" if cfg.run.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # Every process shuffles with the same seed, so the shards are disjoint and a resumed run
        # sees the same order (the seed must not come from the global RNG, which may differ per process).
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.run.seed),
        # One lr_scheduler.step() is one optimizer step, whatever the number of processes; by default
        # Accelerate steps the schedule num_processes times per optimizer step.
        step_scheduler_with_optimizer=False,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes != launched:
        raise ValueError(
            f"launched as {launched} processes but Accelerate runs this one alone (no device backend found); "
            "for data-parallel training on the CPU set ACCELERATE_USE_CPU=1"
        )
    shortfall = launcher_warning()
    if shortfall and accelerator.is_main_process:
        logger.warning(shortfall)
    set_seed(cfg.run.seed, device_specific=False)
    return accelerator, run_dir


def start_run(accelerator: Accelerator, cfg: Any, kind: str, run_dir: Path) -> None:
    """Write the run folder once the trainer's checks have passed, and open the TensorBoard log.

    A new run gets ``config.yaml`` and ``run.json``. A resumed run (one with a checkpoint, which
    :func:`load_checkpoint` continues) keeps its original ``config.yaml``; a config changed with
    ``--allow-config-change`` is saved beside it as ``config.resumed_at_<step>.yaml``. TensorBoard events after
    the checkpoint's step (logged by the run that was interrupted) are purged, so no step is logged twice.
    """
    last = latest_checkpoint(run_dir)
    resumed = last is not None
    step = int(last.name[len(CHECKPOINT_PREFIX) :]) if last is not None else 0
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = run_dir / "config.yaml"
        if not resumed or not saved.is_file():
            save_config(cfg, saved)
            atomic_write_text(run_dir / "run.json", json.dumps({"kind": kind}))
        elif config_changes(OmegaConf.load(saved), cfg):
            save_config(cfg, run_dir / f"config.resumed_at_{step:08d}.yaml")
        _remove_partial_checkpoints(run_dir)
    accelerator.wait_for_everyone()
    if cfg.run.tensorboard:
        flat = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in _flatten(cfg).items()}
        options = {"tensorboard": {"purge_step": step + 1}} if resumed else {}
        accelerator.init_trackers(kind, config=flat, init_kwargs=options)
        if accelerator.is_main_process:
            logs = run_dir / "logs"
            logger.info("TensorBoard logs: %s (view with: tensorboard --logdir %s)", logs, logs)


def config_changes(saved: Any, cfg: Any) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` for every setting that differs between two run configs."""
    old, new = _flatten(saved), _flatten(cfg)
    schema = OmegaConf.get_type(cfg)
    if is_dataclass(schema):  # a setting added to the schema after the run started ran at its default (e.g. lora.*)
        old = {**_flatten(OmegaConf.structured(schema)), **old}
    keys = sorted((set(old) | set(new)) - {"run.output_dir"})  # a run folder may move
    return {key: (old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)}


def check_run_settings(cfg: Any) -> None:
    """The settings the U-Net and distillation trainers share: ``run.log_every``, ``run.valid_every`` and
    ``ema_decay``; ``ValueError`` naming the first bad one."""
    if not 0.0 <= cfg.ema_decay <= 1.0:
        raise ValueError(f"ema_decay must be in [0, 1], got {cfg.ema_decay}")
    if cfg.run.log_every < 1 or cfg.run.valid_every < 0:
        raise ValueError(
            f"run.log_every must be >= 1 and run.valid_every >= 0 (0: never), got {cfg.run.log_every}, "
            f"{cfg.run.valid_every}"
        )


def check_config_change(cfg: Any, run_dir: Path, allow: bool) -> None:
    """Log what a resume changes in the run's config; raise ``ValueError`` for changes to what the run computes
    (all but :data:`REPORTING_KEYS`) unless ``allow``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    changes = config_changes(OmegaConf.load(saved_path), cfg)
    if not changes:
        return
    listing = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
    breaking = [key for key in changes if key not in REPORTING_KEYS]
    if breaking and not allow:
        raise ValueError(
            f"resuming {str(run_dir)!r} with a changed config ({listing}); {', '.join(breaking)} change(s) what "
            "the run computes, so it would not continue exactly. Pass --allow-config-change to resume anyway "
            "(config.yaml keeps the original), or start a new run"
        )
    logger.warning("resuming %s with a changed config: %s", run_dir, listing)


def _flatten(cfg: Any, prefix: str = "") -> dict:
    out = {}
    for key, value in OmegaConf.to_container(cfg, resolve=True).items() if prefix == "" else cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def make_lr_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any, max_steps: int):
    """Warm-up then decay over ``max_steps`` optimizer steps, from diffusers' schedule registry.

    Call ``lr_scheduler.step()`` once per optimizer step (under ``if accelerator.sync_gradients:``):
    :func:`setup_run` turns off Accelerate's stepping of the schedule once per process.
    """
    from diffusers.optimization import SchedulerType, get_scheduler

    valid = [s.value for s in SchedulerType]
    if optim_cfg.lr_schedule not in valid:
        raise ValueError(f"optim.lr_schedule {optim_cfg.lr_schedule!r} is unknown; valid names: {valid}")
    return get_scheduler(
        optim_cfg.lr_schedule, optimizer, num_warmup_steps=optim_cfg.warmup_steps, num_training_steps=max_steps
    )


def make_optimizer(params, optim_cfg: Any, lr: float | None = None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params,
        lr=lr if lr is not None else optim_cfg.lr,
        betas=tuple(optim_cfg.betas),
        weight_decay=optim_cfg.weight_decay,
    )


def check_loss(
    loss: torch.Tensor,
    step: int,
    run_dir: Path,
    name: str = "loss",
    accelerator: Accelerator | None = None,
    files: list[str] | None = None,
) -> None:
    """Stop the run on a NaN/inf loss, naming the step, the batch's ``files`` and the last good checkpoint
    (:func:`last_good_checkpoint`); checkpoints already written stay intact.

    With ``accelerator`` the loss is first averaged over the processes (a collective: call it on every
    process), so that all of them stop together instead of the others waiting forever in the next
    gradient all-reduce.
    """
    loss = loss.detach()
    if accelerator is not None and accelerator.num_processes > 1:
        loss = accelerator.reduce(loss.float().clone(), reduction="mean")
    if not torch.isfinite(loss).all():
        value = loss.item() if loss.numel() == 1 else "non-finite values"
        batch = f" (this process's batch: {', '.join(map(str, files))})" if files else ""
        raise NonFiniteLossError(
            f"non-finite {name} ({value}) at step {step}{batch}; stopping. {resume_advice(run_dir, step)}"
        )


def last_good_checkpoint(run_dir: Path, failed_step: int) -> Path | None:
    """The newest checkpoint a run that failed at ``failed_step`` can go back to: written before the step whose
    weights gave the failure (the checkpoint of step ``failed_step - 1`` holds exactly those weights, so resuming
    it fails again at once) and marked finite when it was written (:func:`save_checkpoint`)."""
    for path in reversed(checkpoint_dirs(run_dir)):
        if int(path.name[len(CHECKPOINT_PREFIX) :]) >= failed_step - 1:
            continue
        state_file = path / "trainer_state.json"
        if state_file.is_file() and json.loads(state_file.read_text()).get("finite", True):
            return path
    return None


def resume_advice(run_dir: Path, failed_step: int) -> str:
    """What a run stopped at ``failed_step`` can do next: which checkpoint gave the failure, the last good one
    (:func:`last_good_checkpoint`) and how to resume from it."""
    folder = Path(run_dir) / "checkpoints" / f"{CHECKPOINT_PREFIX}{failed_step - 1:08d}"
    culprit = (
        f"{str(folder)!r} holds the weights that gave it, so resuming from it repeats the failure unless the data "
        "or optim.lr change. "
        if folder.is_dir()
        else ""
    )
    good = last_good_checkpoint(run_dir, failed_step)
    if good is None:
        return f"{culprit}No good checkpoint was written before it; lower optim.lr (or check the data) and start again."
    newer = [p.name for p in checkpoint_dirs(run_dir) if p.name > good.name]
    remove = f" remove the newer checkpoint folder(s) {', '.join(newer)}," if newer else ""
    return (
        f"{culprit}The last good checkpoint is {str(good)!r}: to continue from it,{remove} lower optim.lr and pass "
        "--resume --allow-config-change."
    )


def nonfinite_state(accelerator: Accelerator) -> list[str]:
    """Names of the prepared models, optimizers and EMA copies holding a NaN or infinite value."""
    bad = []
    for i, model in enumerate(accelerator._models):
        if any(not torch.isfinite(p).all() for p in model.parameters()):
            bad.append(f"model {i} weights")
    for i, optimizer in enumerate(accelerator._optimizers):
        tensors = [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
        if any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors):
            bad.append(f"optimizer {i} state")
    for obj in accelerator._custom_objects:
        shadow = getattr(obj, "shadow_params", None)
        if shadow is not None and any(not torch.isfinite(p).all() for p in shadow):
            bad.append(f"{type(obj).__name__} weights")
    return bad


# --------------------------------------------------------------------------- data position
def batches(accelerator: Accelerator, loader, dataset, state: TrainerState) -> Iterator[Any]:
    """Endless batches that continue exactly where ``state`` says (epoch and position in it).

    Both the shuffling (accelerate's seedable sampler) and the random crops (the dataset's
    ``set_epoch``) are functions of the epoch, so skipping the consumed batches of the current
    epoch reproduces the same remaining batches after a resume.
    """
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(state.epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(state.epoch)
        epoch_loader = loader
        if state.batch_in_epoch:
            epoch_loader = accelerator.skip_first_batches(loader, state.batch_in_epoch)
        empty = True
        for batch in epoch_loader:
            empty = False
            state.batch_in_epoch += 1
            yield batch
        if empty and state.batch_in_epoch == 0:
            raise ValueError("the training data loader yields no batches (is the catalogue smaller than one batch?)")
        state.epoch += 1
        state.batch_in_epoch = 0


# --------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def _remove_partial_checkpoints(run_dir: Path) -> None:
    """Leftovers of a run killed while writing a checkpoint; complete ones were renamed into place."""
    folder = Path(run_dir) / "checkpoints"
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    state: TrainerState,
    export: dict[str, Any],
    keep: int,
) -> Path:
    """Write a checkpoint atomically: everything goes to a hidden folder that is renamed at the end.

    ``export`` maps a component name (``unet``, ``vae``, ``text_encoder`` ...) to an object with
    ``save_pretrained``; those folders are what ``sak export`` puts into a pipeline directory.
    """
    folder = Path(run_dir) / "checkpoints"
    final = folder / f"{CHECKPOINT_PREFIX}{state.step:08d}"
    tmp = folder / f".tmp-{final.name}"
    # A checkpoint is only written if every weight and optimizer moment is finite: it is what a stopped run goes
    # back to. Every process checks its own copy and all stop together.
    bad = nonfinite_state(accelerator)
    flag = torch.tensor(float(bool(bad)), device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    if flag.item() > 0:
        found = f" ({', '.join(bad)})" if bad else " (on another process)"
        raise NonFiniteLossError(
            f"non-finite values at step {state.step}{found}; no checkpoint written. "
            + resume_advice(run_dir, state.step)
        )
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    # Every process writes its own RNG state into tmp; none may still be writing when it is renamed.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, module in export.items():
            module.save_pretrained(tmp / "export" / name)
        (tmp / "trainer_state.json").write_text(json.dumps({**asdict(state), "finite": True}))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint written: %s", final)
    accelerator.wait_for_everyone()
    return final


def _fsync_tree(path: Path) -> None:
    # A rename is only atomic for data that reached the disk; kill -9 is safe without this, power loss is not.
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def checkpoint_trainable_weights_only(accelerator: Accelerator, base_sha256: dict[str, str], base_model: str) -> None:
    """Make ``accelerator``'s checkpoints hold only the trainable weights of its models (a LoRA run's adapters),
    with Accelerate's save/load-state hooks; the optimizers, schedules, RNG and registered objects (the EMA) are
    saved as before. For a large base model that is megabytes a checkpoint instead of gigabytes.

    The frozen rest is the base model ``base_model``, which the trainer reads again when the run resumes.
    ``base_sha256`` identifies it (per component, :func:`stable_audio_kit.lora.weights_sha256`): every checkpoint
    records it in ``frozen_base.json``, and loading refuses a checkpoint whose base had other weights. What a
    checkpoint holds loads strictly: exactly the trainable weights, none missing, none unexpected. A checkpoint
    without ``frozen_base.json`` (written with the whole model) loads whole, as Accelerate wrote it. Under DeepSpeed,
    which saves its engines itself, the checkpoints keep the whole model.
    """

    def leave_frozen_out(models: list[torch.nn.Module], weights: list[dict[str, torch.Tensor]], output_dir: str):
        for i, (model, state) in enumerate(zip(models, weights)):  # ``weights`` is empty under DeepSpeed
            trainable = _trainable_names(model)
            weights[i] = {name: value for name, value in state.items() if name in trainable}
        if accelerator.is_main_process:
            info = {"base_model": base_model, "base_sha256": base_sha256}
            (Path(output_dir) / FROZEN_BASE_NAME).write_text(json.dumps(info, indent=2) + "\n")

    def load_trainable(models: list[torch.nn.Module], input_dir: str) -> None:
        folder = Path(input_dir)
        if not (folder / FROZEN_BASE_NAME).is_file():
            logger.info("%s holds whole models (no %s): loading them whole", folder, FROZEN_BASE_NAME)
            return
        saved = json.loads((folder / FROZEN_BASE_NAME).read_text())
        before = saved.get("base_sha256", {})
        changed = [name for name in sorted({*before, *base_sha256}) if before.get(name) != base_sha256.get(name)]
        if changed:
            name = changed[0]
            raise ValueError(
                f"the base model {base_model!r} no longer has the weights the run was trained on: its {name} "
                f"weights have sha256 {base_sha256.get(name)}, the run started from {before.get(name)} "
                f"({saved.get('base_model')!r}). Checkpoint {str(folder)!r} holds the adapter alone; resume on the "
                "original base weights (a moved copy: pass its path as model= with --allow-config-change) or start "
                "a new run"
            )
        for i, model in enumerate(models):
            file = folder / (SAFE_WEIGHTS_NAME.replace(".", f"_{i}.") if i else SAFE_WEIGHTS_NAME)
            _load_trainable_weights(model, file)
        models.clear()  # loaded: Accelerate goes on with the optimizers, schedules, RNG and the EMA

    accelerator.register_save_state_pre_hook(leave_frozen_out)
    accelerator.register_load_state_pre_hook(load_trainable)


def _trainable_names(model: torch.nn.Module) -> set[str]:
    # Shared weights appear in the state dict under each name.
    return {name for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}


def _load_trainable_weights(model: torch.nn.Module, file: Path) -> None:
    """Load ``file`` into ``model``: it must hold exactly the model's trainable weights; the rest stays as loaded
    from the base model."""
    from safetensors.torch import load_file

    if not file.is_file():
        raise ValueError(f"checkpoint file {str(file)!r} is missing: the checkpoint is incomplete")
    saved = load_file(str(file))
    trainable = _trainable_names(model)
    missing, unexpected = sorted(trainable - saved.keys()), sorted(saved.keys() - trainable)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint file {str(file)!r} does not hold the trainable weights of this run's model: "
            f"{len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]} "
            "(was it written with other lora settings?)"
        )
    # Every key is checked above; the ones left out are the frozen base's, already in place.
    model.load_state_dict(saved, strict=False)


def load_checkpoint(accelerator: Accelerator, run_dir: Path) -> TrainerState:
    """Restore the newest checkpoint into the prepared objects; a fresh state if there is none."""
    last = latest_checkpoint(run_dir)
    if last is None:
        raise ValueError(f"--resume given but {str(run_dir)!r} holds no checkpoint")
    accelerator.load_state(str(last))
    saved = json.loads((last / "trainer_state.json").read_text())
    state = TrainerState(**{key: value for key, value in saved.items() if key in TrainerState.__dataclass_fields__})
    logger.info("resumed from %s at step %d", last, state.step)
    return state


def run_kind(run_dir: str | Path) -> str:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ValueError(f"{str(run_dir)!r} is not a training run folder (run.json is missing)")
    try:
        kind = json.loads(path.read_text()).get("kind")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON of a run ({err}); the run folder is damaged") from None
    return kind
