"""Train the U-Net and the conditioning projection of a pipeline: ``sak train unet RUN.yaml``.

One flat Accelerate loop, read it top to bottom in :func:`train`; every step it takes is a small
function above it. The VAE and the CLAP text tower are frozen; the U-Net (and, with
``train_projection``, the timing/text projection) learn the v-objective of
:class:`stable_audio_kit.objective.VObjective`, the same one the pipeline samples with.

With ``lora.rank > 0`` every one of those weights is frozen and low-rank adapters (:mod:`stable_audio_kit.lora`)
train instead; the EMA, the checkpoints' ``export/lora`` and the checkpoints themselves hold the adapter alone
(a resume reads the frozen base from ``model`` again and checks its hash).

Data comes either as raw audio (random window crops encoded by the frozen VAE every step) or as
latent shards from ``sak encode`` (``latents: DIR``); both draw the same crops with the same
``seconds_start``/``seconds_total``, because crop offsets are snapped to the VAE hop.

Randomness is layout-independent: each sample's timestep, noise and CFG-dropout draw come from its
own generator, seeded by ``(run.seed, step, position of the sample in the global batch)``
(:func:`sample_generators`). So a resumed run draws exactly what an uninterrupted one would, and
1 process with batch 8 trains the same model as 2 processes with batch 4 or 1 process with batch 4
and ``grad_accum: 2`` (up to floating-point summation order).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..conditioning import ConditioningRequest, unconditional
from ..lora import LoraAdapter, LoraSpec, add_adapters, weights_sha256
from ..objective import VObjective
from ..pipeline import StableAudioKitPipeline
from .common import (
    TrainerState,
    check_run_settings,
    batches,
    check_loss,
    checkpoint_trainable_weights_only,
    load_checkpoint,
    make_lr_scheduler,
    make_optimizer,
    save_checkpoint,
    setup_run,
    start_run,
)
from ..data.check import check_splits
from .config import UNetTrainConfig
from ..data import (
    AudioCropDataset,
    LatentCropDataset,
    collate,
    latent_catalogue,
    load_manifest,
    scan_catalogue,
    split_catalogue,
)

logger = logging.getLogger(__name__)

# Seed streams of sample_generators: training draws and the fixed validation draws never coincide.
TRAIN_STREAM, VALID_STREAM = 0, 1


class ConditionedDenoiser(nn.Module):
    """The trainable part of a pipeline: conditioning projection + U-Net in one module, so that
    Accelerate wraps (DDP, DeepSpeed) a single model and both get synchronised gradients."""

    def __init__(self, projection: nn.Module, unet: nn.Module) -> None:
        super().__init__()
        self.projection = projection
        self.unet = unet

    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, features: dict[str, Any], drop: torch.Tensor
    ) -> torch.Tensor:
        """v-prediction ``(B, C, T)`` for noisy latents ``(B, C, T)`` and timesteps ``(B,)``.

        ``features`` are the conditioning inputs' features for the batch
        (:meth:`~stable_audio_kit.conditioning.ConditioningProjection.features`). ``drop`` ``(B,)`` bool marks
        the rows that classifier-free-guidance dropout (decided in the training step) makes unconditional, by
        the rule the pipeline's unconditional half follows (:func:`stable_audio_kit.conditioning.unconditional`):
        the context is nulled, the timing kept, and inputs that belong to the prompt (tempo, key) get their
        null form.
        """
        cond = unconditional(self.projection(features), rows=drop)
        return self.unet(noisy, timesteps, **cond.unet_inputs()).sample


# --------------------------------------------------------------------------- setup
def check_config(cfg: UNetTrainConfig) -> None:
    """Refuse settings the trainer cannot use, before anything is loaded."""
    if not 0.0 <= cfg.cfg_dropout <= 1.0:
        raise ValueError(f"cfg_dropout must be in [0, 1], got {cfg.cfg_dropout}")
    if cfg.valid_steps < 1:
        raise ValueError(f"valid_steps must be >= 1, got {cfg.valid_steps}")
    if cfg.valid_samples < 0:
        raise ValueError(f"valid_samples must be >= 0, got {cfg.valid_samples}")
    check_run_settings(cfg)
    if cfg.data.window_seconds is not None and not cfg.data.window_seconds > 0:
        raise ValueError(f"data.window_seconds must be > 0, got {cfg.data.window_seconds}")
    if cfg.lora.rank < 0:
        raise ValueError(f"lora.rank must be >= 0 (0: full fine-tuning), got {cfg.lora.rank}")
    lora_spec(cfg)


def lora_spec(cfg: UNetTrainConfig) -> LoraSpec | None:
    """The run's adapter settings, checked; ``None`` for full fine-tuning (``lora.rank: 0``)."""
    if cfg.lora.rank == 0:
        return None
    lora = cfg.lora
    return LoraSpec(lora.rank, lora.alpha, lora.dropout, list(lora.targets), list(lora.projection_targets))


def ema_parameters(model: nn.Module, lora: bool) -> list[nn.Parameter]:
    """The weights the EMA averages: all of them in full training (a frozen one's average is itself), the
    adapter's alone with LoRA, so that the EMA and the checkpoints' copy of it stay adapter-sized."""
    return [p for p in model.parameters() if p.requires_grad] if lora else list(model.parameters())


def window_frames(cfg: UNetTrainConfig, pipe: StableAudioKitPipeline) -> int:
    """Latent frames of a training window: the model's window, or ``data.window_seconds`` rounded up to
    whole frames (so the audio window is a whole number of VAE hops and both data paths agree)."""
    if cfg.data.window_seconds is None:
        return int(pipe.unet.config.sample_size)
    return math.ceil(round(cfg.data.window_seconds * pipe.sample_rate) / pipe.vae.hop_length)


def build_datasets(cfg: UNetTrainConfig, pipe: StableAudioKitPipeline):
    """``(train, valid)`` crop datasets: raw audio from ``data.catalogue``, or the latent shards in
    ``latents``. Both split the catalogue with :func:`split_catalogue` and draw the same crops."""
    hop, sample_rate = pipe.vae.hop_length, pipe.sample_rate
    window_seconds = window_frames(cfg, pipe) * hop / sample_rate
    if cfg.latents is None:
        items = scan_catalogue(cfg.data.catalogue)
        train_items, valid_items = split_catalogue(items, cfg.data.valid_fraction)
        splits = {"train": train_items, "valid": valid_items}
        check_splits(cfg.data.catalogue, splits, pipe.audio_channels, cfg.data.skip_unreadable)

        def audio_crops(items, train):
            return AudioCropDataset(
                cfg.data.catalogue,
                sample_rate,
                pipe.audio_channels,
                window_seconds,
                items=items,
                train=train,
                seed=cfg.run.seed,
                offset_multiple=hop,
                skip_unreadable=cfg.data.skip_unreadable,
            )

        return audio_crops(train_items, True), audio_crops(valid_items, False)
    manifest = load_manifest(cfg.latents)
    expected = {
        "sample_rate": sample_rate,
        "channels": pipe.audio_channels,
        "hop_length": hop,
        "latent_channels": pipe.unet.config.in_channels,
        "scaling_factor": float(pipe.vae.config.scaling_factor),
    }
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ValueError(
                f"latent shards {cfg.latents!r} have {key}={manifest.get(key)!r} but the model {cfg.model!r} "
                f"needs {value!r}; re-encode them with `sak encode --model {cfg.model}`"
            )
    train_items, valid_items = split_catalogue(latent_catalogue(cfg.latents), cfg.data.valid_fraction)

    def latent_crops(items, train):
        paths = [item.path for item in items]
        return LatentCropDataset(cfg.latents, window_seconds, paths=paths, train=train, seed=cfg.run.seed)

    return latent_crops(train_items, True), latent_crops(valid_items, False)


# --------------------------------------------------------------------------- one step
def sample_generators(seed: int, stream: int, step: int, first: int, count: int) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by ``(seed, stream, step, index)`` for the global-batch
    indices ``first .. first + count - 1``: the draws of a sample do not depend on how the global batch
    is split over processes and accumulation micro-steps, nor on where a run was resumed."""
    gens = []
    for index in range(first, first + count):
        state = np.random.SeedSequence([seed, stream, step, index]).generate_state(1, np.uint64)[0]
        gens.append(torch.Generator().manual_seed(int(state)))
    return gens


def draw(
    generators: list[torch.Generator],
    shape: tuple[int, ...],
    objective: VObjective,
    cfg_dropout: float,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, in this order: timestep, noise of ``shape`` and CFG dropout.
    Returns ``(timesteps (B,), noise (B, *shape), drop (B,) bool)`` on ``device``."""
    timesteps, noise, drop = [], [], []
    for g in generators:
        timesteps.append(objective.sample_timesteps(1, torch.device("cpu"), generator=g))
        noise.append(torch.randn(shape, generator=g))
        drop.append(torch.rand(1, generator=g) < cfg_dropout)
    return torch.cat(timesteps).to(device), torch.stack(noise).to(device), torch.cat(drop).to(device)


@torch.no_grad()
def encode_batch(pipe: StableAudioKitPipeline, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Latents ``(B, C, T)``, frame mask ``(B, T)`` and the conditioning inputs' features of a batch, through
    the frozen VAE and text encoder unless the batch holds latents and text states already (shards).

    The features come from the same request the pipeline builds at sampling time, with each crop's own
    ``seconds_start``/``seconds_total`` and frame count, so the timing mask, beat grid and key are laid out
    exactly as when sampling. Audio is encoded to ``posterior mode * scaling_factor``, exactly what
    ``sak encode`` stores.
    """
    if "latents" in batch:
        latents, frame_mask = batch["latents"].to(device), batch["padding_mask"].to(device)
    else:
        audio = batch["audio"].to(device)
        latents = pipe.vae.encode(audio).latent_dist.mode() * pipe.vae.config.scaling_factor
        hop = pipe.vae.hop_length
        # A frame is real if any of its samples is (LatentCropDataset's rule).
        frame_mask = batch["padding_mask"].to(device).unflatten(-1, (-1, hop)).any(-1)
        if latents.shape[-1] != frame_mask.shape[-1]:
            raise ValueError(
                f"the VAE gave {latents.shape[-1]} latent frames for {audio.shape[-1]} samples, expected "
                f"{frame_mask.shape[-1]} (hop {hop})"
            )
    text_states = None
    if "text_hidden" in batch:
        text_states = (batch["text_hidden"].to(device), batch["text_mask"].to(device).bool())
    request = ConditioningRequest.make(
        list(batch["caption"]),
        batch["seconds_start"],
        batch["seconds_total"],
        latents.shape[-1],
        text_states=text_states,
        role="caption",
    )
    return {
        "latents": latents.float(),
        "frame_mask": frame_mask,
        "features": pipe.projection.features(request, pipe.model_facts, device),
    }


def predict_velocity(
    model: nn.Module,
    objective: VObjective,
    inputs: dict[str, Any],
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    drop: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prediction, v target)``, both ``(B, C, T)``, for :func:`encode_batch`'s ``inputs`` noised with ``noise``."""
    noisy, target = objective.noisy_and_target(inputs["latents"], noise, timesteps)
    prediction = model(noisy, timesteps, inputs["features"], drop)
    return prediction, target


def diffusion_loss(
    model: nn.Module,
    objective: VObjective,
    inputs: dict[str, Any],
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    drop: torch.Tensor,
    masked: bool,
) -> torch.Tensor:
    """v-objective loss of one batch; with ``masked`` only frames of real audio count."""
    prediction, target = predict_velocity(model, objective, inputs, timesteps, noise, drop)
    return objective.loss(prediction, target, inputs["frame_mask"] if masked else None)


# --------------------------------------------------------------------------- validation and export
def ema_copy(model: ConditionedDenoiser, ema: EMAModel, lora: bool = False) -> ConditionedDenoiser:
    """A fresh (unwrapped) copy of ``model`` holding the EMA weights; the training model is untouched."""
    out = ConditionedDenoiser(copy.deepcopy(model.projection), copy.deepcopy(model.unet))
    ema.copy_to(ema_parameters(out, lora))
    return out.eval()


@torch.no_grad()
def validation_loss(
    model: nn.Module,
    pipe: StableAudioKitPipeline,
    objective: VObjective,
    loader: DataLoader,
    cfg: UNetTrainConfig,
    device: torch.device,
) -> float:
    """Mean loss over the first ``data.valid_batches`` batches of the held-out split: fixed crops (offset 0),
    fixed timesteps and noise, no CFG dropout, so successive validations are comparable."""
    was_training = model.training
    model.eval()
    losses, first = [], 0
    for i, batch in enumerate(loader):
        if i >= cfg.data.valid_batches:
            break
        inputs = encode_batch(pipe, batch, device)
        count = inputs["latents"].shape[0]
        gens = sample_generators(cfg.run.seed, VALID_STREAM, 0, first, count)
        timesteps, noise, _ = draw(gens, tuple(inputs["latents"].shape[1:]), objective, 0.0, device)
        drop = torch.zeros(count, dtype=torch.bool, device=device)
        losses.append(diffusion_loss(model, objective, inputs, timesteps, noise, drop, cfg.masked_loss).item())
        first += count
    model.train(was_training)
    return float(np.mean(losses))


def spectrogram_image(audio: torch.Tensor) -> torch.Tensor:
    """Log-magnitude spectrogram of ``(channels, samples)`` audio as a ``(1, freq, time)`` image in [0, 1],
    low frequencies at the bottom."""
    mono = audio.float().mean(0)
    n_fft = min(1024, 1 << max(2, (mono.shape[-1] // 2).bit_length() - 1))
    spec = torch.stft(mono, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-5)
    db = db.clamp(min=db.max() - 80.0)
    image = (db - db.min()) / (db.max() - db.min()).clamp(min=1e-8)
    return image.flip(0)[None]


@torch.no_grad()
def log_samples(
    writer,
    model: ConditionedDenoiser,
    pipe: StableAudioKitPipeline,
    examples: list[dict],
    cfg: UNetTrainConfig,
    step: int,
) -> None:
    """Generate one clip per example (its caption and length) with ``model`` and log audio + spectrogram."""
    sampler = StableAudioKitPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        projection=model.projection,
        unet=model.unet,
        scheduler=pipe.scheduler,
    )
    sampler.set_progress_bar_config(disable=True)
    for k, example in enumerate(examples):
        seconds = min(float(example["seconds_total"]), sampler.max_seconds)
        audio = (
            sampler(
                example["caption"],
                seconds_total=seconds,
                num_inference_steps=cfg.valid_steps,
                guidance_scale=cfg.valid_guidance_scale,
                generator=torch.Generator().manual_seed(cfg.run.seed + k),
                output_type="pt",
            )
            .audios[0]
            .cpu()
        )
        writer.add_audio(f"samples/{k}", audio.mean(0).clamp(-1, 1), step, sample_rate=pipe.sample_rate)
        writer.add_image(f"spectrograms/{k}", spectrogram_image(audio), step)
        writer.add_text(f"samples/{k}/prompt", f"{example['caption']!r}, {seconds:.2f} s", step)


# --------------------------------------------------------------------------- the loop
def train(cfg: UNetTrainConfig, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Train (or with ``resume`` continue) the run ``cfg`` describes; returns the run folder.

    Raises ``ValueError`` for bad settings or data and
    :class:`~stable_audio_kit.utils.NonFiniteLossError` for a NaN/inf loss (earlier checkpoints stay).
    """
    check_config(cfg)
    accelerator, run_dir = setup_run(cfg, "unet", resume, allow_config_change)
    try:
        device, main = accelerator.device, accelerator.is_main_process

        # 1. Models: the VAE and text encoder frozen, projection + U-Net trainable (or, with LoRA, frozen
        # under trainable adapters), an EMA of what trains.
        pipe = StableAudioKitPipeline.from_pretrained(cfg.model)
        for frozen in (pipe.vae, pipe.text_encoder):
            frozen.eval().requires_grad_(False).to(device)
        model = ConditionedDenoiser(pipe.projection, pipe.unet).train()
        model.projection.requires_grad_(cfg.train_projection)
        spec = lora_spec(cfg)
        if spec is not None:
            adapted = add_adapters({"unet": model.unet, "projection": model.projection}, spec)
            # The checkpoints leave the frozen base out; a resume reads it from cfg.model and checks these.
            base_sha256 = {
                name: adapted[name]["base_sha256"] if name in adapted else weights_sha256(module)
                for name, module in (("unet", model.unet), ("projection", model.projection))
            }
        if cfg.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        ema = EMAModel(ema_parameters(model, spec is not None), decay=cfg.ema_decay)
        objective = VObjective(pipe.scheduler.config)

        # 2. Data: window crops of the train split; the held-out split for validation.
        train_set, valid_set = build_datasets(cfg, pipe)
        global_batch = cfg.data.batch_size * accelerator.num_processes
        if len(train_set) < global_batch:
            raise ValueError(
                f"the training split of {cfg.latents or cfg.data.catalogue!r} has {len(train_set)} files, fewer than "
                f"one global batch of {global_batch} "
                f"(data.batch_size={cfg.data.batch_size} x {accelerator.num_processes} processes)"
            )
        loader = DataLoader(
            train_set,
            batch_size=cfg.data.batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=collate,
            num_workers=cfg.data.num_workers,
        )
        valid_loader = DataLoader(valid_set, batch_size=cfg.data.batch_size, shuffle=False, collate_fn=collate)
        if main and not len(valid_set):
            logger.warning("the validation split is empty: no validation loss (samples use training captions)")
        shown = valid_set if len(valid_set) else train_set
        examples = [shown[i] for i in range(min(cfg.valid_samples, len(shown)))] if main else []

        # 3. Optimiser and schedule; Accelerate wraps everything and restores it on resume.
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
        lr_scheduler = make_lr_scheduler(optimizer, cfg.optim, cfg.run.max_steps)
        model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
        ema.to(device)
        accelerator.register_for_checkpointing(ema)
        if spec is not None:
            checkpoint_trainable_weights_only(accelerator, base_sha256, str(cfg.model))
        state = TrainerState()
        if resume:
            state = load_checkpoint(accelerator, run_dir)
            ema.to(device)  # Accelerate loads custom state onto the CPU
        start_run(accelerator, cfg, "unet", run_dir)
        writer = accelerator.get_tracker("tensorboard", unwrap=True) if cfg.run.tensorboard and main else None
        if main:
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            logger.info(
                "training %s parameters on %d files (%d held out) from step %d to %d: batch %d per process x "
                "%d processes x %d accumulation",
                f"{trainable:,}",
                len(train_set),
                len(valid_set),
                state.step,
                cfg.run.max_steps,
                cfg.data.batch_size,
                accelerator.num_processes,
                cfg.run.grad_accum,
            )

        # 4. The loop: accumulate, backward, on a sync step clip, step, EMA, log, validate, checkpoint.
        data = batches(accelerator, loader, train_set, state)
        progress = tqdm(total=cfg.run.max_steps, initial=state.step, desc="training", disable=not main, unit="step")
        micro, last_log, last_step = 0, time.perf_counter(), state.step
        while state.step < cfg.run.max_steps:
            batch = next(data)
            with accelerator.accumulate(model):
                inputs = encode_batch(pipe, batch, device)
                count = inputs["latents"].shape[0]
                first = (micro * accelerator.num_processes + accelerator.process_index) * cfg.data.batch_size
                gens = sample_generators(cfg.run.seed, TRAIN_STREAM, state.step, first, count)
                shape = tuple(inputs["latents"].shape[1:])
                timesteps, noise, drop = draw(gens, shape, objective, cfg.cfg_dropout, device)
                loss = diffusion_loss(model, objective, inputs, timesteps, noise, drop, cfg.masked_loss)
                # Averaged over the processes, so that on a NaN anywhere every process stops.
                mean_loss = accelerator.reduce(loss.detach().float(), reduction="mean")
                check_loss(mean_loss, state.step + 1, run_dir, files=list(batch.get("path", [])))
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

            # One optimizer step is done.
            micro = 0
            step_lr = lr_scheduler.get_last_lr()[0]
            lr_scheduler.step()
            ema.step(ema_parameters(accelerator.unwrap_model(model), spec is not None))
            state.step += 1
            progress.update(1)

            if state.step % cfg.run.log_every == 0 or state.step == cfg.run.max_steps:
                now = time.perf_counter()
                logs = {"train/loss": float(np.mean(state.window_losses)), "train/lr": step_lr}
                if grad_norm is not None:
                    logs["train/grad_norm"] = float(grad_norm)
                accelerator.log(logs, step=state.step)
                progress.set_postfix(loss=f"{logs['train/loss']:.4f}", lr=f"{logs['train/lr']:.2e}")
                if main:
                    speed = (state.step - last_step) / max(now - last_log, 1e-9)
                    loss_value, lr = logs["train/loss"], logs["train/lr"]
                    logger.info("step %d: loss %.5f, lr %.3e, %.2f steps/s", state.step, loss_value, lr, speed)
                state.window_losses, last_log, last_step = [], now, state.step

            if cfg.run.valid_every and (state.step % cfg.run.valid_every == 0 or state.step == cfg.run.max_steps):
                if main:
                    unwrapped = accelerator.unwrap_model(model)
                    if len(valid_set):
                        valid = validation_loss(unwrapped, pipe, objective, valid_loader, cfg, device)
                        accelerator.log({"valid/loss": valid}, step=state.step)
                        logger.info("step %d: valid loss %.5f", state.step, valid)
                    if writer is not None and examples:
                        log_samples(writer, ema_copy(unwrapped, ema, spec is not None), pipe, examples, cfg, state.step)
                accelerator.wait_for_everyone()

            if state.step % cfg.run.checkpoint_every == 0 or state.step == cfg.run.max_steps:
                export = {}
                if main:
                    averaged = ema_copy(accelerator.unwrap_model(model), ema, spec is not None)
                    export = {"unet": averaged.unet, "projection": averaged.projection}
                    if spec is not None:  # the adapter alone, and the base model it fits
                        export = {"lora": LoraAdapter.from_modules(export, spec, adapted, base_model=str(cfg.model))}
                save_checkpoint(accelerator, run_dir, state, export, cfg.run.keep_checkpoints)
        progress.close()
        if main:
            logger.info("finished at step %d: %s", state.step, run_dir)
    finally:
        accelerator.end_training()
    return run_dir
