"""Typed run and model configuration.

One YAML file describes a model (``configs/*.yaml``) or a training run. Files are merged into
the dataclass schemas below with :func:`load_config`, so a misspelt key is an error rather than
a silently ignored setting, and defaults live here and nowhere else.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")

CONDITION_NAMES = ("prompt", "seconds_start", "seconds_total")


@dataclass
class VAEConfig:
    """The audio VAE. ``architecture`` picks the class:

    * ``oobleck`` (default): :class:`stable_audio_kit.vae.AudioVAE`, diffusers ``AutoencoderOobleck``,
      the Stable Audio recipe. Uses ``encoder_hidden_size`` ... ``decoder_channels``.
    * ``spectral``: :class:`stable_audio_kit.vae.SpectralAudioVAE`, STFT-domain encoder and Vocos-style
      decoder, which learns pitch in CPU hours. Uses ``n_fft`` ... ``decoder_layers``.

    With ``pretrained`` set, the VAE loads from that local folder instead (a diffusers ``AutoencoderOobleck``
    folder such as Stable Audio Open's ``vae/``, or a VAE a toolkit model saved): the size fields are ignored,
    and the model's ``sample_rate``, ``audio_channels`` and ``vae.latent_channels`` must be the folder's.
    """

    architecture: str = "oobleck"
    # A local folder to load the VAE from; see stable_audio_kit.vae.load_pretrained_vae.
    pretrained: str | None = None
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
    """The noise schedule used in training and the default sampler of the pipeline. UniPC keeps the bundled
    model's quality at the default 15 steps, where DPM-Solver++ 2M loses duration adherence (README, "Speed")."""

    name: str = "unipc"
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


def check_model_config(cfg: ModelConfig) -> None:
    """The model config's own numbers, before anything is built; the component classes check their arguments."""
    from .utils import check_seed

    if isinstance(cfg.sample_rate, bool) or cfg.sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {cfg.sample_rate}")
    if cfg.audio_channels not in (1, 2):
        raise ValueError(f"audio_channels must be 1 or 2, got {cfg.audio_channels}")
    if not math.isfinite(cfg.window_seconds) or cfg.window_seconds <= 0:
        raise ValueError(f"window_seconds must be a finite number > 0, got {cfg.window_seconds}")
    check_seed(cfg.seed, "seed")
    text = cfg.text
    if text.pretrained is None:  # a pretrained tower brings its own sizes
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "projection_dim"):
            if getattr(text, name) < 1:
                raise ValueError(f"text.{name} must be >= 1, got {getattr(text, name)}")
        if text.hidden_size % text.num_attention_heads:
            raise ValueError(
                f"text.hidden_size ({text.hidden_size}) must be a multiple of text.num_attention_heads "
                f"({text.num_attention_heads})"
            )
        if text.max_length < 3:
            raise ValueError(
                f"text.max_length must be >= 3 (two special tokens and one of the prompt), got {text.max_length}"
            )
        states = text.num_hidden_layers + 1
        if not -states <= text.hidden_layer < states:
            raise ValueError(
                f"text.hidden_layer must be in [{-states}, {states - 1}] for {text.num_hidden_layers} layers, "
                f"got {text.hidden_layer}"
            )
    cond = cfg.conditioning
    routed = set(cond.cross_attention) | set(cond.global_cond) | set(cond.add_to_prompt)
    routed |= set(cond.input_channels) | set(cond.film)
    routed |= {"prompt_numbers"} if cond.prompt_numbers else set()
    flags = {"timing_mask_channel": "timing_mask", "beat_grid_channel": "beat_grid", "key_conditioning": "key"}
    routed |= {name for flag, name in flags.items() if cfg.unet.get(flag, False)}
    for name in cond.options or {}:
        if name not in routed:
            raise ValueError(
                f"conditioning.options names {name!r}, which is not one of the model's inputs {sorted(routed)}"
            )
    if cfg.scheduler.num_train_timesteps < 2:
        raise ValueError(f"scheduler.num_train_timesteps must be >= 2, got {cfg.scheduler.num_train_timesteps}")
    if cfg.scheduler.beta_schedule not in BETA_SCHEDULES:
        raise ValueError(
            f"scheduler.beta_schedule must be one of {list(BETA_SCHEDULES)}, got {cfg.scheduler.beta_schedule!r}"
        )


# The noise schedules of diffusers' DDPM-family schedulers that every sampler of the registry accepts.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


# Checks a schema's values need beyond their types, run by load_config.
CONFIG_CHECKS: dict[type, Any] = {ModelConfig: check_model_config}


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Merge a YAML file and ``key=value`` overrides into ``schema``.

    Every problem raises ``ValueError`` naming the file or the override and the key: a missing or unreadable
    file, a YAML syntax error (with its line and column), a file that is empty or not a mapping of keys, an
    unknown key (with the closest valid one) and a value of the wrong type.
    Returns an OmegaConf object typed as ``schema`` (attribute access, ``OmegaConf.to_yaml``).
    """
    cfg = OmegaConf.structured(schema)
    if path is not None:
        path = Path(path)
        cfg = _merge(cfg, _read_yaml(path, schema), f"config file {str(path)!r}")
    for item in overrides or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            dotlist = OmegaConf.from_dotlist([item])
        except (yaml.YAMLError, OmegaConfBaseException) as err:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({_first_line(err)})") from None
        cfg = _merge(cfg, dotlist, f"override {item!r}")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        source = f"config file {str(path)!r}" if path is not None else "config"
        raise ValueError(f"{source} is missing required keys: {', '.join(missing)} (set them there or as key=value)")
    check = CONFIG_CHECKS.get(schema)
    if check is not None:
        check(cfg)
    return cfg  # type: ignore[return-value]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_yaml(path: Path, schema: type) -> DictConfig:
    """The YAML mapping in ``path``; ``ValueError`` naming the file for anything else."""
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {str(path)!r} cannot be read: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or _first_line(err)
        raise ValueError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        # An empty file is almost always a mistake (a failed write, the wrong file); building the schema's
        # defaults from it can be expensive: the default model config is Stable Audio 1.0's shape, 1.9 GB.
        hint = (
            " (it would build the default model, 44.1 kHz stereo Stable Audio 1.0, 1.9 GB); start from "
            "configs/tiny.yaml, or write {} to build the defaults on purpose"
            if schema is ModelConfig
            else "; write {} to use the defaults on purpose"
        )
        raise ValueError(f"config file {str(path)!r} is empty{hint}")
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {str(path)!r} must hold a mapping of keys (key: value lines), got a {type(data).__name__}"
        )
    try:
        return OmegaConf.load(path)  # type: ignore[return-value]
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ValueError(f"config file {str(path)!r}: {_first_line(err)}") from None


def _merge(cfg: DictConfig, other: DictConfig, source: str) -> DictConfig:
    """``cfg`` merged with ``other``; a ``ValueError`` naming ``source`` and the key, without OmegaConf's internals
    (its ``full_key``, ``reference_type`` and ``object_type`` lines)."""
    try:
        return OmegaConf.merge(cfg, other)  # type: ignore[return-value]
    except (OmegaConfBaseException, TypeError) as err:
        key = getattr(err, "full_key", None)
        if isinstance(err, ConfigKeyError) and key:
            parent, _, name = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ""
            listing = f" (valid keys{' of ' + parent if parent else ''}: {', '.join(valid)})" if valid else ""
            raise ValueError(f"{source}: unknown key {key!r}{hint}{listing}") from None
        message = _first_line(err).removeprefix("Merge error: ")
        section = re.fullmatch(r"(\w+) is not a subclass of (\w+)\. value: (.*)", message)
        if section:
            message = f"a {section[2]} section must be a mapping of keys, got {section[3]}"
        elif "is not a ListConfig" in message:
            message = f"expected a list, got {OmegaConf.select(other, key, default=None)!r}"
        raise ValueError(f"{source}: {key + ': ' if key else ''}{message}") from None


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
