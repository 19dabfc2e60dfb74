"""The VAE architectures by name: build one from a model config, or load a saved one as the class it was saved as.

``vae.architecture`` in a :class:`~stable_audio_kit.config.ModelConfig` picks the class from
:data:`VAE_ARCHITECTURES`; the other ``vae.*`` fields and the model's ``sample_rate`` and ``audio_channels`` become
its arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from .autoencoder import AudioVAE
from .spectral import SpectralAudioVAE

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
    ``cfg.vae``; ``cfg.vae.architecture`` picks the class). Raises ``ValueError`` naming the bad config key."""
    architecture = cfg.vae.architecture
    if architecture not in VAE_ARCHITECTURES:
        raise ValueError(f"vae.architecture must be one of {list(VAE_ARCHITECTURES)}, got {architecture!r}")
    return VAE_ARCHITECTURES[architecture](**_CONFIG_ARGUMENTS[architecture](cfg))


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
