"""The audio VAEs: diffusers' ``AutoencoderOobleck`` with chunking and latent scaling (the Stable Audio
recipe), and an STFT-domain VAE with the same interface that trains in CPU hours."""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported from its module on first use (PEP 562); diffusers loads a saved VAE from the module
# its model_index.json names (stable_audio_kit.vae.spectral), which then imports only what it needs.
_LAZY = {
    "AudioVAE": "autoencoder",
    "SpectralAudioVAE": "spectral",
    "VAE_ARCHITECTURES": "factory",
    "build_vae": "factory",
    "load_vae_folder": "factory",
    "PRETRAINED_CLASSES": "factory",
    "load_pretrained_vae": "factory",
    "calibrate_scaling_factor": "scaling",
    "fit_scaling_factor": "scaling",
    "write_scaling_factor": "scaling",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "PRETRAINED_CLASSES",
    "VAE_ARCHITECTURES",
    "AudioVAE",
    "SpectralAudioVAE",
    "build_vae",
    "calibrate_scaling_factor",
    "fit_scaling_factor",
    "load_pretrained_vae",
    "load_vae_folder",
    "write_scaling_factor",
]
