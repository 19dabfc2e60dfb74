"""Step distillation of a pipeline's U-Net: ``sak train distill RUN.yaml``.

The teacher is a pipeline sampled the way users sample it: its best sampler (``teacher_scheduler``, UniPC) over
``teacher_steps`` steps with classifier-free guidance at ``guidance_scale``. The student starts as a copy of the
teacher's U-Net and learns to take ``teacher_steps / steps`` of those steps in one deterministic DDIM step, with
a single conditional forward: guidance is baked in, so a student step costs half a teacher step on top of there
being fewer of them. It is the progressive-distillation target of Salimans & Ho (2022) with the guided teacher of
Meng et al. (2023), taken in one round: the teacher's paths are sampled once with its multistep solver, which has
no per-step target, and reused, rather than recomputing two DDIM teacher steps for every training sample.

1. **Teacher paths.** From the conditioning of training crops (caption, ``seconds_start``/``seconds_total``,
   beat grid and key, exactly as ``sak train unet`` sees them) and seeded noise over the window, the teacher
   samples ``trajectories`` paths and keeps the latents at the student's timesteps
   (:func:`stable_audio_kit.distillation.student_timesteps`) and the clean end. They are cached in the run folder
   chunk by chunk (written atomically), so an interrupted run resumes sampling where it stopped. Held-out crops
   give ``valid_trajectories`` paths for validation.
2. **The loop** (one flat Accelerate loop, read it in :func:`train`): each sample is one path and one student
   step ``k``; the target is the velocity whose DDIM step lands exactly on the teacher's latents at step ``k+1``
   (:func:`stable_audio_kit.distillation.velocity_target`), the loss its MSE. Draws are per sample, seeded by
   ``(run.seed, step, index in the global batch)``, so a resume and any split over processes draw the same.
3. **Validation**: the one-step loss on the held-out paths, and the student's whole ``steps``-step sample against
   the teacher's end (relative latent error), logged at step 0 too: that is the teacher's own U-Net taking
   ``steps`` DDIM steps, the baseline the distillation must beat.

Checkpoints export the EMA student (config ``distilled_steps``, ``distilled_guidance_scale``); ``sak export RUN
OUT`` writes the teacher's pipeline with the student in ``unet_distilled/``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..conditioning import ConditioningRequest
from ..distillation import ddim_step, student_timesteps, velocity_target
from ..pipeline import StableAudioKitPipeline
from ..precision import check_precision
from ..schedulers import check_scheduler_name, swap_scheduler
from ..utils import atomic_write_text, check_finite_number
from ..workflows import Workflow
from .common import (
    TrainerState,
    check_run_settings,
    check_loss,
    load_checkpoint,
    make_lr_scheduler,
    make_optimizer,
    save_checkpoint,
    setup_run,
    start_run,
)
from .config import DistillTrainConfig
from .unet import ConditionedDenoiser, build_datasets, encode_batch, sample_generators

logger = logging.getLogger(__name__)

# Seed streams: training draws, training paths' noise, held-out paths' noise.
TRAIN_STREAM, PATH_STREAM, VALID_PATH_STREAM = 0, 2, 3


# --------------------------------------------------------------------------- setup
def check_config(cfg: DistillTrainConfig, num_train_timesteps: int | None = None) -> None:
    """Refuse settings the trainer cannot use, before the teacher samples anything."""
    for name in ("steps", "teacher_steps", "trajectories", "trajectory_batch"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(cfg.valid_trajectories, bool) or cfg.valid_trajectories < 0:
        raise ValueError(f"valid_trajectories must be an integer >= 0, got {cfg.valid_trajectories!r}")
    if cfg.teacher_steps % cfg.steps:
        raise ValueError(
            f"teacher_steps={cfg.teacher_steps} must be a multiple of steps={cfg.steps}: each student step takes "
            "a whole number of teacher steps"
        )
    if check_finite_number("guidance_scale", cfg.guidance_scale) < 1.0:
        raise ValueError(f"guidance_scale must be >= 1 (1: no guidance), got {cfg.guidance_scale!r}")
    check_scheduler_name(cfg.teacher_scheduler)
    check_precision(cfg.teacher_precision)
    check_run_settings(cfg)
    if cfg.data.window_seconds is not None:
        raise ValueError("data.window_seconds must stay null: the teacher samples the model's whole window")
    if num_train_timesteps is not None:
        student_timesteps(cfg.steps, num_train_timesteps)


def teacher_grid(pipe: StableAudioKitPipeline, cfg: DistillTrainConfig) -> list[int]:
    """The student's timesteps (and ``-1``), checked to be every ``teacher_steps / steps``-th of the teacher's."""
    num_train = int(pipe.scheduler.config.num_train_timesteps)
    try:
        grid = student_timesteps(cfg.steps, num_train)
    except ValueError as err:
        raise ValueError(f"steps: {err}") from None
    pipe.scheduler.set_timesteps(cfg.teacher_steps)
    teacher = [int(t) for t in pipe.scheduler.timesteps]
    ratio = cfg.teacher_steps // cfg.steps
    if len(teacher) != cfg.teacher_steps or teacher[::ratio] != grid[:-1]:
        raise ValueError(
            f"the teacher's {cfg.teacher_steps} {cfg.teacher_scheduler} timesteps {teacher} do not pass through the "
            f"student's {grid[:-1]}; choose teacher_steps so that they do (e.g. 16 or 24 for 8 steps)"
        )
    return grid


# --------------------------------------------------------------------------- teacher paths
def path_items(dataset, count: int, seed: int, stream: int) -> list[tuple[int, int]]:
    """``(epoch, index)`` of the crop that conditions each of ``count`` paths: a seeded permutation of the
    dataset per epoch, so paths beyond one pass get other random crops of the same files."""
    out: list[tuple[int, int]] = []
    epoch = 0
    while len(out) < count:
        order = np.random.default_rng([seed, stream, epoch]).permutation(len(dataset))
        out.extend((epoch, int(i)) for i in order[: count - len(out)])
        epoch += 1
    return out


@torch.no_grad()
def sample_paths(
    pipe: StableAudioKitPipeline, cfg: DistillTrainConfig, items: list[dict[str, Any]], noise: torch.Tensor
) -> torch.Tensor:
    """The teacher's paths from ``noise`` ``(B, C, T)`` under the conditioning of ``items`` (dataset items): the
    latents at the student's timesteps and the clean end, ``(B, steps + 1, C, T)`` float32."""
    from ..data import collate

    batch = collate(items)
    inputs = encode_batch(pipe, batch, pipe.device)  # only for the frame count and cached text states
    text_states = None
    if "text_hidden" in batch:
        text_states = (batch["text_hidden"], batch["text_mask"].bool())
    frames = inputs["latents"].shape[-1]
    request = ConditioningRequest.make(
        list(batch["caption"]),
        batch["seconds_start"],
        batch["seconds_total"],
        frames,
        text_states=text_states,
        role="caption",
    )
    ratio = cfg.teacher_steps // cfg.steps
    kept = [noise.float().clone()]

    def keep(_pipe, i, _t, tensors):
        if (i + 1) % ratio == 0:
            kept.append(tensors["latents"].float().clone())
        return tensors

    pipe.sample(
        request,
        None,
        Workflow(),
        cfg.teacher_steps,
        cfg.guidance_scale,
        latents=noise,
        callback_on_step_end=keep,
        precision=cfg.teacher_precision,
    )
    return torch.stack(kept, dim=1)


def chunk_path(run_dir: Path, split: str, index: int) -> Path:
    return run_dir / "trajectories" / split / f"chunk_{index:05d}.pt"


# The settings the cached paths depend on: a run folder's paths are reused only under the same ones.
PATH_SETTINGS = (
    "model",
    "latents",
    "data.catalogue",
    "data.valid_fraction",
    "run.seed",
    "steps",
    "teacher_steps",
    "teacher_scheduler",
    "guidance_scale",
    "teacher_precision",
    "trajectory_batch",
)


def check_cached_paths(cfg: DistillTrainConfig, run_dir: Path, main: bool) -> None:
    """Refuse paths cached in ``run_dir`` under other :data:`PATH_SETTINGS` (they would be wrong targets);
    record the settings when the folder has none yet."""
    from omegaconf import OmegaConf

    settings = {key: OmegaConf.select(cfg, key) for key in PATH_SETTINGS}
    record = run_dir / "trajectories" / "settings.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        if changed:
            listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(
                f"the teacher paths cached in {str(record.parent)!r} were sampled with other settings ({listing}); "
                "use another run folder, or delete that folder to sample them again"
            )
    elif main:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps(settings, indent=2))


def make_paths(
    pipe: StableAudioKitPipeline, cfg: DistillTrainConfig, dataset, split: str, count: int, accelerator
) -> None:
    """Sample the ``count`` paths of ``split`` that are not cached yet, chunk by chunk, spread over the processes;
    each chunk file is written under a temporary name and renamed, so a stopped run leaves no half chunk."""
    stream = PATH_STREAM if split == "train" else VALID_PATH_STREAM
    plan = path_items(dataset, count, cfg.run.seed, stream)
    size = cfg.trajectory_batch
    chunks = [plan[i : i + size] for i in range(0, count, size)]
    todo = [c for c in range(len(chunks)) if not chunk_path(Path(cfg.run.output_dir), split, c).is_file()]
    mine = todo[accelerator.process_index :: accelerator.num_processes]
    if accelerator.is_main_process and todo:
        logger.info(
            "teacher: sampling %d %s paths in %d chunks (%d cached)", count, split, len(todo), len(chunks) - len(todo)
        )
    shape = (pipe.unet.config.in_channels, int(pipe.unet.config.sample_size))
    progress = tqdm(total=len(mine), desc=f"teacher paths ({split})", disable=not accelerator.is_main_process)
    for c in mine:
        items, noises = [], []
        for n, (epoch, index) in enumerate(chunks[c]):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            items.append(dataset[index])
            state = np.random.SeedSequence([cfg.run.seed, stream, c * size + n]).generate_state(1, np.uint64)[0]
            noises.append(torch.randn(shape, generator=torch.Generator().manual_seed(int(state))))
        states = sample_paths(pipe, cfg, items, torch.stack(noises).to(pipe.device)).cpu()
        final = chunk_path(Path(cfg.run.output_dir), split, c)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
        torch.save({"states": states, "items": items}, tmp)
        os.replace(tmp, final)
        progress.update(1)
    progress.close()
    accelerator.wait_for_everyone()


def load_paths(run_dir: Path, split: str, count: int, size: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """All cached paths of ``split``: states ``(N, steps + 1, C, T)`` and the items that condition them."""
    states, items = [], []
    for c in range((count + size - 1) // size):
        chunk = torch.load(chunk_path(run_dir, split, c), weights_only=False)
        states.append(chunk["states"])
        items.extend(chunk["items"])
    if not states:
        return torch.empty(0), []
    return torch.cat(states), items


# --------------------------------------------------------------------------- one step
def draw_pairs(generators: list[torch.Generator], paths: int, steps: int) -> tuple[list[int], list[int]]:
    """Per sample: which path and which student step."""
    chosen, step_index = [], []
    for g in generators:
        chosen.append(int(torch.randint(paths, (1,), generator=g)))
        step_index.append(int(torch.randint(steps, (1,), generator=g)))
    return chosen, step_index


def pair_batch(
    pipe: StableAudioKitPipeline,
    states: torch.Tensor,
    items: list[dict[str, Any]],
    grid: list[int],
    chosen: list[int],
    step_index: list[int],
    device: torch.device,
) -> dict[str, Any]:
    """Inputs of a batch of (path, student step) pairs: the sample, its timestep, the target velocity and the
    conditioning features."""
    from ..data import collate

    rows, k = torch.tensor(chosen), torch.tensor(step_index)
    sample = states[rows, k].to(device)
    target_sample = states[rows, k + 1].to(device)
    grid_t = torch.tensor(grid)
    timesteps, prev = grid_t[k].to(device), grid_t[k + 1].to(device)
    alphas = pipe.scheduler.alphas_cumprod.to(device)
    inputs = encode_batch(pipe, collate([items[i] for i in chosen]), device)
    return {
        "sample": sample,
        "timesteps": timesteps,
        "target": velocity_target(sample, target_sample, timesteps, prev, alphas),
        "features": inputs["features"],
    }


def pair_loss(model, batch: dict[str, Any]) -> torch.Tensor:
    drop = torch.zeros(batch["sample"].shape[0], dtype=torch.bool, device=batch["sample"].device)
    prediction = model(batch["sample"], batch["timesteps"], batch["features"], drop)
    return torch.nn.functional.mse_loss(prediction.float(), batch["target"])


# --------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(model, pipe, states: torch.Tensor, items: list[dict[str, Any]], grid: list[int], batch_size: int, device):
    """``(one-step loss, relative error of the whole sample)`` on held-out paths: the mean MSE of the student's
    velocity over every step of every path, and ``|x_student - x_teacher|^2 / |x_teacher|^2`` of the clean
    latents the student reaches from the paths' noise in its own steps."""
    from ..data import collate

    was_training = model.training
    model.eval()
    losses, errors = [], []
    alphas = pipe.scheduler.alphas_cumprod.to(device)
    steps = len(grid) - 1
    for first in range(0, len(items), batch_size):
        rows = list(range(first, min(first + batch_size, len(items))))
        features = encode_batch(pipe, collate([items[i] for i in rows]), device)["features"]
        drop = torch.zeros(len(rows), dtype=torch.bool, device=device)
        path = states[rows].to(device)
        x = path[:, 0]
        for k in range(steps):
            t = torch.full((len(rows),), grid[k], device=device)
            prev = torch.full((len(rows),), grid[k + 1], device=device)
            on_path = model(path[:, k], t, features, drop).float()
            target = velocity_target(path[:, k], path[:, k + 1], t, prev, alphas)
            losses.append(torch.nn.functional.mse_loss(on_path, target).item())
            x = ddim_step(x, model(x, t, features, drop).float(), t, prev, alphas)
        end = path[:, -1]
        errors.append(((x - end).pow(2).sum((1, 2)) / end.pow(2).sum((1, 2)).clamp(min=1e-12)).mean().item())
    model.train(was_training)
    return float(np.mean(losses)), float(np.mean(errors))


def initial_unet(teacher, cfg: DistillTrainConfig):
    """The weights the student starts from: the teacher's U-Net, or ``student_init``'s (same architecture)."""
    if cfg.student_init is None:
        return teacher
    from ..unet import UNet1DConditionModel

    if not (Path(cfg.student_init) / "config.json").is_file():
        raise ValueError(f"student_init={cfg.student_init!r} is not a U-Net folder (no config.json)")
    init = UNet1DConditionModel.from_pretrained(cfg.student_init)
    ours, theirs = teacher.state_dict(), init.state_dict()
    mismatched = [k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape]
    if mismatched or len(ours) != len(theirs):
        raise ValueError(
            f"student_init={cfg.student_init!r} is not a U-Net of the teacher's architecture (e.g. {mismatched[:3]})"
        )
    return init.to(teacher.device)


def student_unet(unet, cfg: DistillTrainConfig):
    """A copy of ``unet`` whose config records the distillation (the weights are the same)."""
    student = copy.deepcopy(unet)
    student.register_to_config(distilled_steps=int(cfg.steps), distilled_guidance_scale=float(cfg.guidance_scale))
    return student


# --------------------------------------------------------------------------- the loop
def train(cfg: DistillTrainConfig, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Distill (or with ``resume`` continue distilling) the run ``cfg`` describes; returns the run folder."""
    check_config(cfg)
    accelerator, run_dir = setup_run(cfg, "distill", resume, allow_config_change)
    try:
        device, main = accelerator.device, accelerator.is_main_process

        # 1. The teacher pipeline with its sampler; the student, a copy of its U-Net that records the distillation.
        pipe = StableAudioKitPipeline.from_pretrained(cfg.model)
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = swap_scheduler(pipe.scheduler, cfg.teacher_scheduler)
        grid = teacher_grid(pipe, cfg)
        initial_unet(pipe.unet, cfg)  # refuse a bad student_init before the teacher samples anything
        for module in (pipe.vae, pipe.text_encoder, pipe.projection, pipe.unet):
            module.eval().requires_grad_(False).to(device)
        check_cached_paths(cfg, run_dir, main)
        start_run(accelerator, cfg, "distill", run_dir)
        if main:  # which weights the student starts from and imitates (tools/bundle_distilled.py checks it)
            from ..lora import weights_sha256

            atomic_write_text(run_dir / "teacher.json", json.dumps({"unet_sha256": weights_sha256(pipe.unet)}))

        # 2. Teacher paths, cached in the run folder (a resumed run samples only the missing chunks).
        train_set, valid_set = build_datasets(cfg, pipe)
        if len(train_set) == 0:
            raise ValueError(f"the training split of {cfg.latents or cfg.data.catalogue!r} is empty")
        make_paths(pipe, cfg, train_set, "train", cfg.trajectories, accelerator)
        valid_count = min(cfg.valid_trajectories, len(valid_set))
        if valid_count:
            make_paths(pipe, cfg, valid_set, "valid", valid_count, accelerator)
        states, items = load_paths(run_dir, "train", cfg.trajectories, cfg.trajectory_batch)
        valid_states, valid_items = load_paths(run_dir, "valid", valid_count, cfg.trajectory_batch)

        model = ConditionedDenoiser(pipe.projection, student_unet(initial_unet(pipe.unet, cfg), cfg)).train()
        model.unet.requires_grad_(True)
        ema = EMAModel(list(model.unet.parameters()), decay=cfg.ema_decay)

        # 3. Optimiser and schedule; Accelerate wraps them and restores them on resume.
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
        lr_scheduler = make_lr_scheduler(optimizer, cfg.optim, cfg.run.max_steps)
        model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
        ema.to(device)
        accelerator.register_for_checkpointing(ema)
        state = TrainerState()
        if resume:
            state = load_checkpoint(accelerator, run_dir)
            ema.to(device)
        writer_logs = main and cfg.run.valid_every and valid_count
        if writer_logs and state.step == 0:
            loss, error = validate(
                accelerator.unwrap_model(model), pipe, valid_states, valid_items, grid, cfg.data.batch_size, device
            )
            accelerator.log({"valid/loss": loss, "valid/sample_error": error}, step=0)
            logger.info(
                "step 0 (%s in %d DDIM steps): valid loss %.5f, sample error %.4f",
                "the teacher's U-Net" if cfg.student_init is None else "student_init",
                cfg.steps,
                loss,
                error,
            )
        if main:
            logger.info(
                "distilling %d teacher steps into %d from %d paths (%d held out) from step %d to %d: batch %d per "
                "process x %d processes x %d accumulation",
                cfg.teacher_steps,
                cfg.steps,
                len(items),
                valid_count,
                state.step,
                cfg.run.max_steps,
                cfg.data.batch_size,
                accelerator.num_processes,
                cfg.run.grad_accum,
            )

        # 4. The loop: draw pairs, accumulate, backward, on a sync step clip, step, EMA, log, validate, checkpoint.
        progress = tqdm(total=cfg.run.max_steps, initial=state.step, desc="distilling", disable=not main, unit="step")
        micro, last_log, last_step = 0, time.perf_counter(), state.step
        while state.step < cfg.run.max_steps:
            with accelerator.accumulate(model):
                first = (micro * accelerator.num_processes + accelerator.process_index) * cfg.data.batch_size
                gens = sample_generators(cfg.run.seed, TRAIN_STREAM, state.step, first, cfg.data.batch_size)
                chosen, step_index = draw_pairs(gens, len(items), cfg.steps)
                batch = pair_batch(pipe, states, items, grid, chosen, step_index, device)
                loss = pair_loss(model, batch)
                mean_loss = accelerator.reduce(loss.detach().float(), reduction="mean")
                check_loss(mean_loss, state.step + 1, run_dir)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state.window_losses.append(mean_loss.item())
            if not accelerator.sync_gradients:
                micro += 1
                continue

            micro = 0
            step_lr = lr_scheduler.get_last_lr()[0]
            lr_scheduler.step()
            ema.step(list(accelerator.unwrap_model(model).unet.parameters()))
            state.step += 1
            progress.update(1)

            if state.step % cfg.run.log_every == 0 or state.step == cfg.run.max_steps:
                now = time.perf_counter()
                logs = {"train/loss": float(np.mean(state.window_losses)), "train/lr": step_lr}
                if grad_norm is not None:
                    logs["train/grad_norm"] = float(grad_norm)
                accelerator.log(logs, step=state.step)
                progress.set_postfix(loss=f"{logs['train/loss']:.4f}", lr=f"{step_lr:.2e}")
                if main:
                    speed = (state.step - last_step) / max(now - last_log, 1e-9)
                    logger.info(
                        "step %d: loss %.5f, lr %.3e, %.2f steps/s", state.step, logs["train/loss"], step_lr, speed
                    )
                state.window_losses, last_log, last_step = [], now, state.step

            if writer_logs and (state.step % cfg.run.valid_every == 0 or state.step == cfg.run.max_steps):
                averaged = ema_student(accelerator.unwrap_model(model), ema)
                loss_v, error = validate(averaged, pipe, valid_states, valid_items, grid, cfg.data.batch_size, device)
                accelerator.log({"valid/loss": loss_v, "valid/sample_error": error}, step=state.step)
                logger.info("step %d: valid loss %.5f, sample error %.4f (EMA)", state.step, loss_v, error)
            accelerator.wait_for_everyone()

            if state.step % cfg.run.checkpoint_every == 0 or state.step == cfg.run.max_steps:
                export = {"unet": ema_student(accelerator.unwrap_model(model), ema).unet} if main else {}
                save_checkpoint(accelerator, run_dir, state, export, cfg.run.keep_checkpoints)
        progress.close()
        if main:
            logger.info("finished at step %d: %s", state.step, run_dir)
    finally:
        accelerator.end_training()
    return run_dir


def ema_student(model: ConditionedDenoiser, ema: EMAModel) -> ConditionedDenoiser:
    """A fresh copy of the student holding the EMA weights; the training model is untouched."""
    out = ConditionedDenoiser(model.projection, copy.deepcopy(model.unet))
    ema.copy_to(list(out.unet.parameters()))
    return out.eval()
