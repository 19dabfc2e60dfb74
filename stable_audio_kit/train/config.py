"""Typed schemas of training runs: ``sak train {clap,vae,unet} RUN.yaml key=value ...``."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from ..lora import DEFAULT_TARGETS


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
class LoRAConfig:
    """Low-rank adapters (peft LoRA) instead of full fine-tuning: ``sak train unet RUN.yaml lora.rank=16``.

    Every base weight stays frozen; the EMA, checkpoints and ``sak export`` cover the adapter alone. See
    ``stable_audio_kit.lora``.
    """

    # 0 trains the weights themselves (full fine-tuning); > 0 trains adapters of this rank.
    rank: int = 0
    # The adapter's output is scaled by alpha / rank; null means alpha = rank (scale 1).
    alpha: float | None = None
    # Dropout on the adapters' input while training. Drawn from the global RNG (so a resume is still exact), but
    # not per sample: with dropout, 2 processes x batch 4 no longer train what 1 process x batch 8 does.
    dropout: float = 0.0
    # U-Net module-name patterns, matched as peft's target_modules (the full name, or its ending after a dot).
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    # The same for the conditioning projection, e.g. [time_positional_embedding.1]; empty leaves it as it is.
    projection_targets: list[str] = field(default_factory=list)


@dataclass
class UNetTrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # data.catalogue is the audio folder; with `latents` set it is not read (the shards carry the catalogue).
    data: DataConfig = field(default_factory=DataConfig)
    # Pipeline directory to start from (`sak new-model` output, or a trained model to fine-tune).
    model: str = MISSING
    # Pre-encoded latent shards from `sak encode`; null trains from raw audio through the frozen VAE.
    latents: str | None = None
    # Share of samples trained without their text context (timing is kept), for classifier-free guidance.
    cfg_dropout: float = 0.1
    # Count only latent frames of real audio in the loss (not the silence padding short clips).
    masked_loss: bool = False
    # EMA of the trainable weights; the EMA weights are what checkpoints export.
    ema_decay: float = 0.999
    gradient_checkpointing: bool = False
    # Also train the text projection and timing embeddings (the VAE and text encoder stay frozen). Full
    # fine-tuning only: with LoRA every base weight is frozen and lora.projection_targets adapts the projection.
    train_projection: bool = True
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    # Validation samples: how many clips (0: none), sampler steps and guidance scale.
    valid_samples: int = 2
    valid_steps: int = 25
    valid_guidance_scale: float = 7.0


@dataclass
class VAETrainConfig:
    """``sak train vae``: the pipeline's VAE (Oobleck or spectral) on short random crops.

    See ``stable_audio_kit.train.vae``.
    """

    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Pipeline directory whose vae/ is trained; the other components are copied unchanged on export.
    model: str = MISSING
    # Length of the random training crops (and of the fixed validation crops), seconds. The VAE is
    # convolutional, so short crops suffice; data.window_seconds is for the U-Net and must stay null.
    crop_seconds: float = 1.0
    # Multi-resolution STFT loss (auraloss; sum-and-difference for stereo): FFT sizes in samples,
    # hop = fft // 4, window = fft. The default is Stable Audio's; every size must fit in a crop.
    stft_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64, 32])
    stft_weight: float = 1.0
    # Spectral VAE only: train.losses.magnitude_loss (spectral convergence + L1 of log(|X| + 1e-2)) between
    # the decoder's predicted magnitudes and the input's STFT, at the VAE's own n_fft / stft_hop. It trains
    # the magnitudes directly, without going through Griffin-Lim, and is about 3x cheaper a step; with
    # stft_weight 0 and no discriminator the waveform is not synthesised during training at all.
    magnitude_weight: float = 0.0
    kl_weight: float = 1e-4
    # false trains the decoder alone: the encoder, its latents and the scaling factor stay exactly those of
    # `model`, so a U-Net trained on that model's latents (and its latent shards) works with the result.
    # The way to improve how a trained model sounds without retraining its U-Net.
    train_encoder: bool = True
    # Adversarial multi-scale STFT discriminator with feature matching, on after `adversarial_start` steps.
    adversarial: bool = False
    adversarial_start: int = 1000
    # "hinge" (EnCodec) or "lsgan" (least squares).
    adversarial_loss: str = "hinge"
    adversarial_weight: float = 0.1
    feature_matching_weight: float = 5.0
    disc_lr: float = 1e-4
    disc_channels: int = 32
    disc_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    # At every checkpoint (so also after training), set the exported VAE's scaling_factor to
    # 1 / std of the posterior-mode latents of `scaling_batches` training batches, so that the
    # diffusion model sees latents of about unit variance. Off keeps the base model's factor.
    set_scaling_factor: bool = True
    scaling_batches: int = 4
    # Reconstructed validation clips (audio + log-mel image) written to TensorBoard per validation.
    valid_audio_clips: int = 2


@dataclass
class ClapTrainConfig:
    """Contrastive text-audio training of a CLAP (transformers ``ClapModel``): ``sak train clap``.

    The audio crops are ``data.window_seconds`` long (null: the base model's window), mixed to mono
    at ``sample_rate``. On export the trained text tower and its tokenizer replace the base model's.
    """

    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Pipeline directory whose text tower is replaced by the trained one on export.
    model: str = MISSING
    # Local tokenizer directory; null trains a byte-level BPE tokenizer on the training captions.
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 4096
    tokenizer_min_frequency: int = 2
    # Tokens per caption; null means the base model's text encoder's (its max_position_embeddings - 2).
    max_length: int | None = None
    # CLAP's audio rate in Hz; null means the base model's rate.
    sample_rate: int | None = None
    # transformers ClapTextConfig / ClapAudioConfig fields (sizes, dropout). The text hidden_size
    # defaults to, and must equal, the base model's projection.text_encoder_dim; vocab_size,
    # max_position_embeddings and the special token ids come from the tokenizer and max_length.
    text: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)
    # ClapFeatureExtractor settings: hop_length, fft_window_size, frequency_min, frequency_max,
    # padding (repeatpad | repeat | pad); unset ones are derived from the window and the tower.
    features: dict = field(default_factory=dict)
    projection_dim: int = 512
    # Initial contrastive temperature as a logit scale (CLIP: 1/0.07); it is learned, kept <= max.
    logit_scale_init: float = 14.285714285714286
    logit_scale_max: float = 100.0


@dataclass
class DistillTrainConfig:
    """``sak train distill``: a student of a pipeline's U-Net that samples in ``steps`` DDIM steps with the
    guidance baked in (see ``stable_audio_kit.train.distill``).

    The teacher samples ``trajectories`` paths with its sampler, from noise and the conditioning of training crops
    (cached in the run folder); the student learns to take each ``teacher_steps / steps`` of the teacher's steps
    in one. The conditioning projection, VAE and text encoder stay the teacher's.
    """

    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Conditioning comes from the crops of data.catalogue (or of the `latents` shards), split as `sak train unet`
    # splits it: the held-out split gives the validation trajectories.
    data: DataConfig = field(default_factory=DataConfig)
    # The teacher: a pipeline directory whose `unet` is distilled; `sak export` writes it back with the student
    # in unet_distilled/.
    model: str = MISSING
    latents: str | None = None
    # The student's DDIM steps; they must divide the training timesteps (1000: 4, 5, 8, 10, 20 ...).
    steps: int = 8
    # The teacher's steps with `teacher_scheduler`; a multiple of `steps` whose timesteps include the student's.
    teacher_steps: int = 16
    teacher_scheduler: str = "unipc"
    # Classifier-free guidance of the teacher, baked into the student.
    guidance_scale: float = 7.0
    # The U-Net precision of the teacher's sampling (stable_audio_kit.precision): auto, bf16 or fp32.
    teacher_precision: str = "auto"
    # Teacher paths from training crops (each gives `steps` training pairs) and from held-out crops.
    trajectories: int = 2048
    valid_trajectories: int = 64
    # Paths sampled per teacher call (and per cached chunk file).
    trajectory_batch: int = 16
    # A U-Net folder the student starts from instead of the teacher's U-Net, e.g. the `unet_distilled/` of an
    # earlier run with twice the steps (progressive distillation: 8 -> 4 steps starts from the 8-step student). Its
    # architecture must be the teacher's; the targets are still the teacher's paths.
    student_init: str | None = None
    ema_decay: float = 0.999
