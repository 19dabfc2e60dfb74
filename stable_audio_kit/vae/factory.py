"""The VAE architectures by name: build one from a model config, or load a saved one as the class it was saved as.

``vae.architecture`` in a :class:`~stable_audio_kit.config.ModelConfig` picks the class from
:data:`VAE_ARCHITECTURES`; the other ``vae.*`` fields and the model's ``sample_rate`` and ``audio_channels`` become
its arguments. With ``vae.pretrained`` the VAE is loaded from that folder instead (:func:`load_pretrained_vae`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from .autoencoder import AudioVAE
from .spectral import SpectralAudioVAE

logger = logging.getLogger(__name__)

VAE_ARCHITECTURES: dict[str, type[AudioVAE | SpectralAudioVAE]] = {
    "oobleck": AudioVAE,
    "spectral": SpectralAudioVAE,
}


def _oobleck_arguments(cfg: ModelConfig) -> dict[str, Any]:
    vae = cfg.vae
    if vae.encoder_hidden_size != 2 * vae.latent_channels:
        raise ValueError(
            f"vae.encoder_hidden_size ({vae.encoder_hidden_size}) must be 2 * vae.latent_channels "
            f"({vae.latent_channels}): the Oobleck encoder outputs the mean and scale of each latent channel"
        )
    return dict(
        encoder_hidden_size=vae.encoder_hidden_size,
        downsampling_ratios=list(vae.downsampling_ratios),
        channel_multiples=list(vae.channel_multiples),
        decoder_channels=vae.decoder_channels,
        decoder_input_channels=vae.latent_channels,
        audio_channels=cfg.audio_channels,
        sampling_rate=cfg.sample_rate,
        scaling_factor=vae.scaling_factor,
        chunk_seconds=vae.chunk_seconds,
        overlap_seconds=vae.overlap_seconds,
    )


def _spectral_arguments(cfg: ModelConfig) -> dict[str, Any]:
    vae = cfg.vae
    return dict(
        audio_channels=cfg.audio_channels,
        sampling_rate=cfg.sample_rate,
        latent_channels=vae.latent_channels,
        n_fft=vae.n_fft,
        stft_hop=vae.stft_hop,
        latent_stride=vae.latent_stride,
        hidden_channels=vae.hidden_channels,
        encoder_layers=vae.encoder_layers,
        decoder_layers=vae.decoder_layers,
        griffin_lim_iters=vae.griffin_lim_iters,
        harmonic_templates=vae.harmonic_templates,
        scaling_factor=vae.scaling_factor,
        chunk_seconds=vae.chunk_seconds,
        overlap_seconds=vae.overlap_seconds,
    )


# The constructor arguments of each architecture, read from a model config (same keys as VAE_ARCHITECTURES).
_CONFIG_ARGUMENTS: dict[str, Callable[[ModelConfig], dict[str, Any]]] = {
    "oobleck": _oobleck_arguments,
    "spectral": _spectral_arguments,
}


def build_vae(cfg: ModelConfig) -> AudioVAE | SpectralAudioVAE:
    """A randomly initialised VAE from a model config (``cfg.sample_rate``, ``cfg.audio_channels`` and
    ``cfg.vae``; ``cfg.vae.architecture`` picks the class), or the one in ``cfg.vae.pretrained``
    (:func:`load_pretrained_vae`). Raises ``ValueError`` naming the bad config key."""
    architecture = cfg.vae.architecture
    if architecture not in VAE_ARCHITECTURES:
        raise ValueError(f"vae.architecture must be one of {list(VAE_ARCHITECTURES)}, got {architecture!r}")
    if getattr(cfg.vae, "pretrained", None):
        return load_pretrained_vae(cfg)
    return VAE_ARCHITECTURES[architecture](**_CONFIG_ARGUMENTS[architecture](cfg))


# The classes a ``vae.pretrained`` folder may hold (``_class_name`` in its config.json) and their architecture.
# A plain diffusers AutoencoderOobleck (e.g. Stable Audio Open's vae/) loads as an AudioVAE: the same network.
PRETRAINED_CLASSES = {"AutoencoderOobleck": "oobleck", "AudioVAE": "oobleck", "SpectralAudioVAE": "spectral"}


def load_pretrained_vae(cfg: ModelConfig) -> AudioVAE | SpectralAudioVAE:
    """The VAE in the local folder ``cfg.vae.pretrained``, checked against the model config before its weights load.

    The folder holds ``config.json`` and the weights of a diffusers ``AutoencoderOobleck`` (Stable Audio Open's
    ``vae/``) or of a VAE a toolkit model saved (``AudioVAE``, ``SpectralAudioVAE``). Its class must be of
    ``vae.architecture``, and its sample rate, channels and latent channels must be the model's
    ``sample_rate``, ``audio_channels`` and ``vae.latent_channels``; otherwise ``ValueError`` names the mismatch.
    The size fields of ``cfg.vae`` are not used. A plain ``AutoencoderOobleck`` has no latent scale: it takes
    ``vae.scaling_factor``, ``vae.chunk_seconds`` and ``vae.overlap_seconds`` from the config (measure the scale
    with ``sak encode CATALOGUE --model DIR --calibrate``); a toolkit VAE keeps the ones it was saved with.
    """
    folder = Path(cfg.vae.pretrained)
    name = f"vae.pretrained {cfg.vae.pretrained!r}"
    if not folder.is_dir():
        raise ValueError(f"{name} is not a local folder")
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{name} is not a saved VAE: cannot read config.json ({err})") from None
    cls_name = saved.get("_class_name")
    if cls_name not in PRETRAINED_CLASSES:
        raise ValueError(f"{name} holds a {cls_name!r}; expected one of {sorted(PRETRAINED_CLASSES)}")
    architecture = PRETRAINED_CLASSES[cls_name]
    if architecture != cfg.vae.architecture:
        raise ValueError(
            f"{name} holds a {cls_name} ({architecture!r} architecture) "
            f"but vae.architecture is {cfg.vae.architecture!r}"
        )
    latent_key = "decoder_input_channels" if architecture == "oobleck" else "latent_channels"
    for key, want, have in (
        ("sample_rate", cfg.sample_rate, saved.get("sampling_rate")),
        ("audio_channels", cfg.audio_channels, saved.get("audio_channels")),
        ("vae.latent_channels", cfg.vae.latent_channels, saved.get(latent_key)),
    ):
        if want != have:
            raise ValueError(f"{name} has {have} where the model config's {key} is {want}; set {key}={have}")
    options: dict[str, Any] = {}
    if cls_name == "AutoencoderOobleck":
        options = dict(
            scaling_factor=cfg.vae.scaling_factor,
            chunk_seconds=cfg.vae.chunk_seconds,
            overlap_seconds=cfg.vae.overlap_seconds,
        )
    try:
        vae = VAE_ARCHITECTURES[architecture].from_pretrained(folder, torch_dtype=torch.float32, **options)
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{name}: the weights cannot be loaded ({str(err).splitlines()[0]})") from None
    logger.info("loaded the VAE from %s (scaling_factor %g)", folder, vae.config.scaling_factor)
    return vae


def load_vae_folder(folder: str | Path) -> AudioVAE | SpectralAudioVAE:
    """Load a saved VAE (``save_pretrained`` folder) as the class named in its ``config.json``."""
    folder = Path(folder)
    config = folder / "config.json"
    try:
        name = json.loads(config.read_text()).get("_class_name")
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(folder)!r} is not a saved VAE: cannot read config.json ({err})") from None
    classes = {cls.__name__: cls for cls in VAE_ARCHITECTURES.values()}
    if name not in classes:
        raise ValueError(f"{str(config)!r} names VAE class {name!r}; expected one of {sorted(classes)}")
    return classes[name].from_pretrained(folder)
