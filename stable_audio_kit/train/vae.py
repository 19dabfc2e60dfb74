"""Train the pipeline's VAE: ``sak train vae RUN.yaml [key=value ...] [--resume]``.

One flat Accelerate loop. Each optimizer step accumulates ``run.grad_accum`` micro-batches of
random ``crop_seconds`` crops of the catalogue's training split; on each micro-batch::

    recon, kl = autoencode(audio)          posterior sample; its noise is a function of (seed, step)
    d_loss = D_loss(D(audio), D(recon))    only once `adversarial_start` steps are done
    g_loss = stft_weight * MR-STFT + kl_weight * KL (+ adversarial_weight * G_loss + feature_matching_weight * FM)
             (+ magnitude_weight * magnitude_loss(predicted log|X|, log|X|), spectral VAE only)

then both models are clipped and stepped with their own optimizer and LR schedule, losses are
logged, the held-out split is evaluated every ``run.valid_every`` steps, and a checkpoint is
written every ``run.checkpoint_every`` steps and at the end. ``--resume`` continues from the
newest checkpoint exactly: weights, optimizers, LR schedules, data position and noise match an
uninterrupted run.

At every checkpoint (so also after training) the exported VAE's ``scaling_factor`` is set to
``1 / std`` of its posterior-mode latents over ``scaling_batches`` training batches, so that
diffusion latents ``mode * scaling_factor`` have unit variance (``set_scaling_factor: false``
keeps the base model's factor, and so does `train_encoder: false`, which trains the decoder alone and
leaves the encoder and its latents exactly as they were).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..vae import AudioVAE, SpectralAudioVAE, load_vae_folder
from ..vae.scaling import fit_scaling_factor
from .common import (
    TrainerState,
    batches,
    check_loss,
    load_checkpoint,
    make_lr_scheduler,
    make_optimizer,
    save_checkpoint,
    setup_run,
    start_run,
)
from .config import VAETrainConfig
from ..data import AudioCropDataset, collate, scan_catalogue, split_catalogue
from ..data.check import check_splits
from .losses import (
    GAN_LOSSES,
    MelDistance,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    magnitude_loss,
    reconstruction_loss,
    si_sdr,
)

logger = logging.getLogger(__name__)

VAE = AudioVAE | SpectralAudioVAE


class Autoencode(nn.Module):
    """Encode, sample the posterior and decode in one ``forward``, so that a DDP wrapper sees (and
    synchronises the gradients of) a single call. ``audio`` ``(batch, channels, samples)`` ->
    ``(recon, kl, magnitude)``: the reconstruction ``(batch, channels, frames * hop_length)`` (``None``
    with ``waveform=False``), the KL term of the posterior and, with ``magnitude=True`` (spectral VAE
    only), :func:`~.losses.magnitude_loss` of the decoder's predicted log-magnitudes (else ``None``)."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(
        self,
        audio: torch.Tensor,
        generator: torch.Generator | None = None,
        magnitude: bool = False,
        waveform: bool = True,
    ):
        posterior = self.vae.encode(audio).latent_dist
        latents = posterior.sample(generator=generator)
        if not magnitude:
            return self.vae.decode(latents).sample, posterior.kl(), None
        out = self.vae.decoder.predict(latents)
        distance = magnitude_loss(out[:, :, 0], self.vae.log_magnitude(audio))
        recon = self.vae.decoder.synthesize(out) if waveform else None
        return recon, posterior.kl(), distance


def check_config(cfg: VAETrainConfig) -> None:
    """Refuse settings that cannot work, naming the key; runs before anything is written."""
    if cfg.data.window_seconds is not None:
        raise ValueError("data.window_seconds is not used by the VAE trainer; set crop_seconds instead")
    if not cfg.crop_seconds > 0:
        raise ValueError(f"crop_seconds must be > 0, got {cfg.crop_seconds}")
    for name in ("stft_weight", "magnitude_weight", "kl_weight", "adversarial_weight", "feature_matching_weight"):
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not cfg.stft_weight > 0 and not cfg.magnitude_weight > 0:
        raise ValueError("stft_weight and magnitude_weight are both 0; nothing would train the decoder")
    if cfg.adversarial_loss not in GAN_LOSSES:
        raise ValueError(f"adversarial_loss {cfg.adversarial_loss!r} is unknown; valid names: {sorted(GAN_LOSSES)}")
    for name in ("stft_fft_sizes", "disc_fft_sizes"):
        sizes = list(getattr(cfg, name))
        if not sizes or any(n < 16 for n in sizes):
            raise ValueError(f"{name} must be a non-empty list of FFT sizes >= 16, got {sizes}")
    if cfg.disc_channels < 1:
        raise ValueError(f"disc_channels must be >= 1, got {cfg.disc_channels}")
    if cfg.adversarial_start < 0:
        raise ValueError(f"adversarial_start must be >= 0, got {cfg.adversarial_start}")
    if not cfg.disc_lr > 0:
        raise ValueError(f"disc_lr must be > 0, got {cfg.disc_lr}")
    if cfg.scaling_batches < 1:
        raise ValueError(f"scaling_batches must be >= 1, got {cfg.scaling_batches}")
    if cfg.valid_audio_clips < 0:
        raise ValueError(f"valid_audio_clips must be >= 0, got {cfg.valid_audio_clips}")
    if cfg.run.valid_every < 0 or cfg.run.log_every < 1:
        raise ValueError(
            f"run.valid_every must be >= 0 and run.log_every >= 1, got {cfg.run.valid_every}, {cfg.run.log_every}"
        )


def load_vae(cfg: VAETrainConfig) -> VAE:
    """The VAE of the pipeline directory ``cfg.model``, checked against the crop length."""
    folder = Path(cfg.model) / "vae"
    if not folder.is_dir():
        raise ValueError(f"model {cfg.model!r} has no vae/ folder; give a pipeline directory (`sak new-model`)")
    vae = load_vae_folder(folder)
    if cfg.magnitude_weight > 0 and not isinstance(vae, SpectralAudioVAE):
        raise ValueError(
            f"magnitude_weight={cfg.magnitude_weight} needs a spectral VAE (vae.architecture: spectral); "
            f"{str(folder)!r} holds a {type(vae).__name__}"
        )
    crop = round(cfg.crop_seconds * vae.config.sampling_rate)
    if crop < vae.min_samples:
        raise ValueError(f"crop_seconds={cfg.crop_seconds} gives {crop} samples; the VAE needs >= {vae.min_samples}")
    # The decoder returns whole hops; the last partial hop of a crop is left out of the losses.
    usable = vae.latent_length(crop) * vae.hop_length
    for name in ("stft_fft_sizes", "disc_fft_sizes") if cfg.adversarial else ("stft_fft_sizes",):
        if max(getattr(cfg, name)) > usable:
            raise ValueError(
                f"{name} {list(getattr(cfg, name))} has FFTs longer than a crop ({usable} samples with "
                f"crop_seconds={cfg.crop_seconds}); use smaller FFTs or longer crops"
            )
    # Crops are far shorter than a chunk, and training wants gradients through one plain pass.
    vae.disable_tiling()
    return vae


def posterior_noise(seed: int, step: int, rank: int, micro: int) -> torch.Generator:
    """The generator of one micro-batch's posterior sample: a function of its position alone, so a
    resumed run draws the same noise as an uninterrupted one."""
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, step, rank, micro]).generate_state(1)[0]))
    return generator


def crop_loader(cfg: VAETrainConfig, items, sample_rate: int, channels: int, train: bool, shuffle: bool):
    dataset = AudioCropDataset(
        cfg.data.catalogue,
        sample_rate,
        channels,
        cfg.crop_seconds,
        items=items,
        train=train,
        seed=cfg.run.seed,
        skip_unreadable=cfg.data.skip_unreadable,
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        shuffle=shuffle,
        drop_last=train,
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
    )
    return dataset, loader


# --------------------------------------------------------------------------- one micro-batch
def train_micro_step(accelerator, cfg, model, disc, audio, generator, stft_loss, step: int, run_dir: Path):
    """Forward, losses and backward of one micro-batch; returns the detached losses by name.

    The discriminator learns from ``D(audio)`` vs ``D(recon.detach())``; the autoencoder's loss goes
    through an unwrapped ``D`` and is back-propagated into the autoencoder's parameters only.
    """
    magnitude = cfg.magnitude_weight > 0
    waveform = cfg.stft_weight > 0 or disc is not None
    recon, kl, distance = model(audio, generator=generator, magnitude=magnitude, waveform=waveform)
    losses = {"kl": kl}
    total = cfg.kl_weight * kl
    if magnitude:
        losses["magnitude"] = distance
        total = total + cfg.magnitude_weight * distance
    if waveform:
        target = audio[..., : recon.shape[-1]]
        losses["stft"] = stft_loss(recon.float(), target.float())
        total = total + cfg.stft_weight * losses["stft"]
    if disc is not None:
        logits, features = disc(torch.cat([target, recon.detach()]))
        real_logits, fake_logits = zip(*(x.chunk(2) for x in logits))
        losses["disc"] = discriminator_loss(real_logits, fake_logits, cfg.adversarial_loss)
        check_loss(losses["disc"], step, run_dir, "discriminator loss", accelerator)
        accelerator.backward(losses["disc"])
        real_features = [[f.chunk(2)[0] for f in scale] for scale in features]
        fake_logits, fake_features = accelerator.unwrap_model(disc)(recon)
        losses["adversarial"] = generator_loss(fake_logits, cfg.adversarial_loss)
        losses["feature_matching"] = feature_matching_loss(real_features, fake_features)
        total = total + cfg.adversarial_weight * losses["adversarial"]
        total = total + cfg.feature_matching_weight * losses["feature_matching"]
    losses["total"] = total
    for name, value in losses.items():
        check_loss(value, step, run_dir, f"{name} loss", accelerator)
    accelerator.backward(total, inputs=[p for p in model.parameters() if p.requires_grad])
    return {name: value.detach() for name, value in losses.items()}


def optimizer_step(accelerator, model, optimizer, lr_scheduler, grad_clip: float) -> None:
    """Clip, step and reset ``model`` on the micro-batch that completes an accumulation; one LR
    schedule step per optimizer step."""
    if not accelerator.sync_gradients:
        return
    if grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- validation and scale
@torch.no_grad()
def validate(vae: VAE, loader, max_batches: int, metrics: dict[str, nn.Module], device) -> tuple[dict, Any]:
    """Mean SI-SDR (dB), multi-resolution STFT and log-mel distances of posterior-mode reconstructions
    of the fixed validation crops; also returns ``(target, recon)`` of the first batch."""
    vae.eval()
    sums, count, first = {"si_sdr": 0.0, **{k: 0.0 for k in metrics}}, 0, None
    for index, batch in enumerate(loader):
        if index >= max_batches:
            break
        audio = batch["audio"].to(device)
        recon = vae.decode(vae.encode(audio).latent_dist.mode()).sample.float()
        target = audio[..., : recon.shape[-1]]
        n = audio.shape[0]
        sums["si_sdr"] += n * si_sdr(recon, target).item()
        for name, metric in metrics.items():
            sums[name] += n * metric(recon, target).item()
        count += n
        first = (target, recon) if first is None else first
    vae.train()
    return {name: value / max(count, 1) for name, value in sums.items()}, first


def log_examples(writer, target: torch.Tensor, recon: torch.Tensor, sample_rate: int, clips: int, step: int) -> None:
    """Reconstructed clips (mono mix: TensorBoard's audio is mono) and log-mel images, target above."""
    from ..evaluation.plots import log_mel_db

    for k in range(min(clips, target.shape[0])):
        pair = [target[k].float().cpu().numpy(), recon[k].float().cpu().numpy()]
        writer.add_audio(f"valid/recon_{k}", np.clip(pair[1].mean(0), -1, 1), step, sample_rate=sample_rate)
        writer.add_audio(f"valid/target_{k}", np.clip(pair[0].mean(0), -1, 1), step, sample_rate=sample_rate)
        db = np.concatenate([log_mel_db(x, sample_rate, 64)[0][::-1] for x in pair], axis=0)
        image = np.clip((db - db.max() + 80.0) / 80.0, 0.0, 1.0)  # an 80 dB range
        writer.add_image(f"valid/log_mel_{k}", image, step, dataformats="HW")


# --------------------------------------------------------------------------- the loop
def train(cfg: VAETrainConfig, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Train ``cfg.model``'s VAE as described in the module docstring; returns the run folder."""
    # 1. Check everything, then open the run folder.
    check_config(cfg)
    vae = load_vae(cfg)
    sample_rate, channels = vae.config.sampling_rate, vae.config.audio_channels
    train_items, valid_items = split_catalogue(scan_catalogue(cfg.data.catalogue), cfg.data.valid_fraction)
    if not train_items:
        raise ValueError(f"catalogue {cfg.data.catalogue!r} has no training items")
    splits = {"train": train_items, "valid": valid_items}
    check_splits(cfg.data.catalogue, splits, channels, cfg.data.skip_unreadable)
    accelerator, run_dir = setup_run(cfg, "vae", resume, allow_config_change)
    device = accelerator.device

    # 2. Data: shuffled random crops to train on, fixed crops to validate on and to fit the latent scale.
    train_set, loader = crop_loader(cfg, train_items, sample_rate, channels, train=True, shuffle=True)
    _, scale_loader = crop_loader(cfg, train_items, sample_rate, channels, train=True, shuffle=False)
    valid_loader = None
    if valid_items:
        valid_loader = crop_loader(cfg, valid_items, sample_rate, channels, train=False, shuffle=False)[1]
    elif cfg.run.valid_every:
        logger.warning("the catalogue's validation split is empty; validation is skipped")

    # 3. Models, optimizers and LR schedules; the discriminator's schedule starts when it does.
    model = Autoencode(vae)
    if not cfg.train_encoder:
        vae.encoder.requires_grad_(False)  # the latent space stays exactly that of the base model
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
    lr_scheduler = make_lr_scheduler(optimizer, cfg.optim, cfg.run.max_steps)
    disc = d_optimizer = d_lr_scheduler = None
    if cfg.adversarial:
        disc = MultiScaleSTFTDiscriminator(channels, cfg.disc_fft_sizes, cfg.disc_channels)
        d_optimizer = make_optimizer(disc.parameters(), cfg.optim, lr=cfg.disc_lr)
        d_lr_scheduler = make_lr_scheduler(d_optimizer, cfg.optim, max(1, cfg.run.max_steps - cfg.adversarial_start))
        model, disc, optimizer, d_optimizer, lr_scheduler, d_lr_scheduler, loader = accelerator.prepare(
            model, disc, optimizer, d_optimizer, lr_scheduler, d_lr_scheduler, loader
        )
    else:
        model, optimizer, lr_scheduler, loader = accelerator.prepare(model, optimizer, lr_scheduler, loader)
    vae = accelerator.unwrap_model(model).vae
    stft_loss = reconstruction_loss(channels, cfg.stft_fft_sizes).to(device)
    metrics = {"stft": stft_loss, "mel": MelDistance(sample_rate, max(cfg.stft_fft_sizes)).to(device)}

    # 4. Resume: weights, optimizers, schedules and RNG from the checkpoint; the data position from its state.
    state = load_checkpoint(accelerator, run_dir) if resume else TrainerState()
    start_run(accelerator, cfg, "vae", run_dir)
    data = batches(accelerator, loader, train_set, state)
    bar = tqdm(total=cfg.run.max_steps, initial=state.step, desc="train vae", disable=not accelerator.is_main_process)
    micro = 0
    try:
        while state.step < cfg.run.max_steps:
            # 5. One micro-batch; the models step when it completes an accumulation.
            step = state.step + 1  # the step being computed, as error messages and logs count
            adversarial = disc is not None and state.step >= cfg.adversarial_start
            audio = next(data)["audio"]
            generator = posterior_noise(cfg.run.seed, step, accelerator.process_index, micro)
            with accelerator.accumulate(model, *([disc] if adversarial else [])):
                losses = train_micro_step(
                    accelerator, cfg, model, disc if adversarial else None, audio, generator, stft_loss, step, run_dir
                )
                optimizer_step(accelerator, model, optimizer, lr_scheduler, cfg.optim.grad_clip)
                if adversarial:
                    optimizer_step(accelerator, disc, d_optimizer, d_lr_scheduler, cfg.optim.grad_clip)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            micro = 0
            state.step = step
            bar.update(1)
            bar.set_postfix(loss=f"{losses['total'].item():.4f}")

            # 6. Log, validate, checkpoint.
            if step % cfg.run.log_every == 0:
                logs = {f"train/{name}": value.item() for name, value in losses.items()}
                logs["train/lr"] = lr_scheduler.get_last_lr()[0]
                if adversarial:
                    logs["train/disc_lr"] = d_lr_scheduler.get_last_lr()[0]
                accelerator.log(logs, step=step)
            if valid_loader is not None and cfg.run.valid_every and step % cfg.run.valid_every == 0:
                if accelerator.is_main_process:
                    scores, (target, recon) = validate(vae, valid_loader, cfg.data.valid_batches, metrics, device)
                    accelerator.log({f"valid/{name}": value for name, value in scores.items()}, step=step)
                    logger.info("step %d validation: %s", step, {k: round(v, 4) for k, v in scores.items()})
                    if cfg.run.tensorboard and cfg.valid_audio_clips:
                        writer = accelerator.get_tracker("tensorboard", unwrap=True)
                        log_examples(writer, target, recon, sample_rate, cfg.valid_audio_clips, step)
                accelerator.wait_for_everyone()
            if step % cfg.run.checkpoint_every == 0 or step == cfg.run.max_steps:
                if cfg.set_scaling_factor and cfg.train_encoder and accelerator.is_main_process:
                    scale = fit_scaling_factor(vae, scale_loader, cfg.scaling_batches, device)
                    vae.register_to_config(scaling_factor=scale)
                    accelerator.log({"train/scaling_factor": scale}, step=step)
                save_checkpoint(accelerator, run_dir, state, export={"vae": vae}, keep=cfg.run.keep_checkpoints)
    finally:
        bar.close()
        accelerator.end_training()
    return run_dir


__all__ = ["Autoencode", "check_config", "posterior_noise", "train"]
