"""Typed run and model configuration.

One YAML file describes a model (``configs/*.yaml``) or a training run. Files are merged into
the dataclass schemas below with :func:`load_config`, so a misspelt key is an error rather than
a silently ignored setting, and defaults live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

T = TypeVar("T")

CONDITION_NAMES = ("prompt", "seconds_start", "seconds_total")


@dataclass
class VAEConfig:
    """The audio VAE. ``architecture`` picks the class:

    * ``oobleck`` (default): :class:`stable_audio_kit.vae.AudioVAE`, diffusers ``AutoencoderOobleck``,
      the Stable Audio recipe. Uses ``encoder_hidden_size`` ... ``decoder_channels``.
    * ``spectral``: :class:`stable_audio_kit.vae.SpectralAudioVAE`, STFT-domain encoder and Vocos-style
      decoder, which learns pitch in CPU hours. Uses ``n_fft`` ... ``decoder_layers``.
    """

    architecture: str = "oobleck"
    encoder_hidden_size: int = 128
    downsampling_ratios: list[int] = field(default_factory=lambda: [2, 4, 4, 8, 8])
    channel_multiples: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    decoder_channels: int = 128
    n_fft: int = 1024
    stft_hop: int = 256
    latent_stride: int = 2
    hidden_channels: int = 256
    encoder_layers: int = 4
    decoder_layers: int = 8
    # Spectral VAE phase: Griffin-Lim iterations (0: the decoder predicts the phase, Vocos-style).
    griffin_lim_iters: int = 32
    # Spectral VAE: source-filter decoder with fixed harmonic combs per semitone (learns pitch much sooner).
    harmonic_templates: bool = False
    latent_channels: int = 64
    # Multiplies latents before diffusion so that they have roughly unit variance.
    scaling_factor: float = 1.0
    # Chunked encode/decode: chunk and overlap lengths in seconds of audio.
    chunk_seconds: float = 30.0
    overlap_seconds: float = 2.0


@dataclass
class TextConfig:
    """The CLAP text tower (transformers ``ClapTextModelWithProjection``) and its tokenizer.

    With ``pretrained`` set, the tower and tokenizer load from that local directory (the layout of
    ``laion/clap-htsat-unfused`` on disk) and the size fields below are ignored. Otherwise a
    randomly initialised tower of the given size is built, with a byte-level BPE tokenizer.
    """

    pretrained: str | None = None
    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    projection_dim: int = 512
    max_length: int = 77
    # Which hidden layer gives the token states; -2 is the next-to-last, as in Stable Audio.
    hidden_layer: int = -2


@dataclass
class ConditioningConfig:
    """Which conditioning inputs the model has and where each goes, routed by name (stable-audio-tools
    style). Every name is a registered input (``stable_audio_kit.conditioning.CONDITIONERS``); a new input is
    one class registered there and its name in one of these lists."""

    dim: int = 768
    # Upper end of the learned number embeddings for seconds_start / seconds_total (Stable Audio: 512).
    max_seconds: float = 512.0
    # Token inputs concatenated into the cross-attention context.
    cross_attention: list[str] = field(default_factory=lambda: list(CONDITION_NAMES))
    # Token inputs pooled into the global vector, added to the timestep embedding (FiLM).
    global_cond: list[str] = field(default_factory=lambda: ["seconds_start", "seconds_total"])
    # Inputs added to the prompt's token states, token by token (e.g. prompt_numbers).
    add_to_prompt: list[str] = field(default_factory=list)
    # Inputs given to the U-Net as extra input channels along the frames (e.g. timing_mask, beat_grid).
    input_channels: list[str] = field(default_factory=list)
    # Inputs whose features are added to the FiLM embedding through a zero-initialised layer (e.g. key).
    film: list[str] = field(default_factory=list)
    # Per-input settings: {name: {option: value}}, e.g. {prompt_numbers: {min_value: 1, max_value: 1000}}.
    options: dict[str, Any] = field(default_factory=dict)
    # Numbers written in the prompt ("96 BPM") also reach the U-Net by value, on a log scale from
    # prompt_number_min to prompt_number_max: the same as add_to_prompt: [prompt_numbers].
    prompt_numbers: bool = False
    prompt_number_min: float = 1.0
    prompt_number_max: float = 1000.0


@dataclass
class UNetConfig:
    """Arguments of :class:`stable_audio_kit.unet.UNet1DConditionModel` that are not derived."""

    block_out_channels: list[int] = field(default_factory=lambda: [256, 512, 768, 1024])
    layers_per_block: int = 2
    attention_levels: list[bool] = field(default_factory=lambda: [False, True, True, True])
    attention_head_dim: int = 64
    transformer_layers_per_block: int = 1
    norm_num_groups: int = 32
    dropout: float = 0.0
    # Sinusoidal frame-position features added after the input conv (0 = none); see the U-Net's docs.
    position_embedding_dim: int = 0
    # Shorthands for conditioning inputs, kept for older configs: the same as listing timing_mask (one input
    # channel, 1 where the requested audio is), beat_grid (four channels, the beat and bar phase of the
    # prompt's tempo) in conditioning.input_channels, and key (its scale and tonic) in conditioning.film.
    timing_mask_channel: bool = False
    beat_grid_channel: bool = False
    key_conditioning: bool = False


@dataclass
class SchedulerConfig:
    """The noise schedule used in training and the default sampler of the pipeline."""

    name: str = "dpmsolver++"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"


@dataclass
class ModelConfig:
    """Everything needed to build an untrained pipeline directory (``sak new-model``)."""

    sample_rate: int = 44100
    audio_channels: int = 2
    # The generation window; also the maximum ``seconds_total``.
    window_seconds: float = 47.0
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    seed: int = 0


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Merge a YAML file and ``key=value`` overrides into ``schema``.

    Unknown keys and values of the wrong type raise ``ValueError`` naming the key.
    Returns an OmegaConf object typed as ``schema`` (attribute access, ``OmegaConf.to_yaml``).
    """
    cfg = OmegaConf.structured(schema)
    try:
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ValueError(f"config file {str(path)!r} does not exist")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        if overrides:
            for item in overrides:
                if "=" not in item:
                    raise ValueError(f"override {item!r} is not of the form key=value")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except (ConfigKeyError, ValidationError) as err:
        source = f" in {str(path)!r}" if path is not None else ""
        raise ValueError(f"invalid config{source}: {err.msg if hasattr(err, 'msg') else err}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"config is missing required keys: {', '.join(missing)}")
    return cfg  # type: ignore[return-value]


def to_container(cfg: Any) -> dict:
    """Plain ``dict`` of a config, for JSON and for keyword arguments."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a resolved config as YAML, atomically."""
    from .utils import atomic_write_text

    atomic_write_text(Path(path), OmegaConf.to_yaml(cfg, resolve=True))


__all__ = [
    "CONDITION_NAMES",
    "MISSING",
    "ConditioningConfig",
    "ModelConfig",
    "SchedulerConfig",
    "TextConfig",
    "UNetConfig",
    "VAEConfig",
    "load_config",
    "save_config",
    "to_container",
]
