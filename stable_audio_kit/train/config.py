"""Typed schemas of training runs: ``sak train {clap,vae,unet} RUN.yaml key=value ...``."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class RunConfig:
    """Where a run writes and how long it goes; shared by every trainer."""

    output_dir: str = MISSING
    max_steps: int = 1000
    seed: int = 0
    grad_accum: int = 1
    # "no", "fp16" or "bf16"; fp16/bf16 need a device that supports them (not the CPU for fp16).
    mixed_precision: str = "no"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    valid_every: int = 500
    tensorboard: bool = True


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 100
    # A diffusers.optimization schedule name: constant_with_warmup, linear, cosine, ...
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0


@dataclass
class DataConfig:
    catalogue: str = MISSING
    batch_size: int = 8
    num_workers: int = 0
    valid_fraction: float = 0.1
    valid_batches: int = 4
    # Refuse a catalogue with unreadable files unless this is set; skipped files are listed.
    skip_unreadable: bool = False
    # Training window; null means the model's own window.
    window_seconds: float | None = None


@dataclass
class UNetTrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Pipeline directory to start from (`sak new-model` output, or a trained model to fine-tune).
    model: str = MISSING
    # Pre-encoded latent shards from `sak encode`; null trains from raw audio through the frozen VAE.
    latents: str | None = None
    cfg_dropout: float = 0.1
    masked_loss: bool = False
    ema_decay: float = 0.999
    gradient_checkpointing: bool = False
    train_projection: bool = True
    valid_steps: int = 25


@dataclass
class VAETrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: str = MISSING
    kl_weight: float = 1e-4
    stft_weight: float = 1.0
    # Adversarial multi-scale STFT discriminator with feature matching, on after `adversarial_start` steps.
    adversarial: bool = False
    adversarial_start: int = 1000
    adversarial_weight: float = 0.1
    feature_matching_weight: float = 5.0
    disc_lr: float = 1e-4
    disc_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])


@dataclass
class ClapTrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Pipeline directory whose text tower is replaced by the trained one on export.
    model: str = MISSING
    # Local tokenizer directory; null trains a byte-level BPE tokenizer on the catalogue's captions.
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 4096
    # transformers ClapAudioConfig / ClapTextConfig overrides (sizes); the text tower's width must
    # match the pipeline's projection.
    audio: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)
    projection_dim: int = 512
    # Clip length fed to the audio tower, seconds; null means the data window.
    clip_seconds: float | None = None
