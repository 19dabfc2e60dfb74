"""stable-audio-kit: latent-diffusion text-to-audio with timing conditioning (Stable Audio 1.0).

The folders tell the recipe: ``vae/``, ``conditioning/``, ``unet/``, the pipeline, ``data/``, ``train/``,
``evaluation/`` and ``demo/``. A saved pipeline's ``model_index.json`` names each component by the module
that defines its class (``["stable_audio_kit.unet.unet_1d_condition", "UNet1DConditionModel"]``); those
modules keep the diffusers base classes importable, which is how diffusers finds the loading method.

Importing the package imports neither torch, diffusers nor transformers: each public name is imported from
its module on first use (PEP 562), so ``sak --help`` and argument errors answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assembly import load_pipeline
    from .conditioning import ConditioningProjection
    from .pipeline import StableAudioKitPipeline, build_pipeline
    from .unet import UNet1DConditionModel
    from .vae import AudioVAE, SpectralAudioVAE

__version__ = "0.1.0"

# Public name -> the module that hands it on.
_LAZY = {
    "AudioVAE": ".vae",
    "ConditioningProjection": ".conditioning",
    "SpectralAudioVAE": ".vae",
    "StableAudioKitPipeline": ".pipeline",
    "UNet1DConditionModel": ".unet",
    "build_pipeline": ".pipeline",
    "load_pipeline": ".assembly",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AudioVAE",
    "ConditioningProjection",
    "SpectralAudioVAE",
    "StableAudioKitPipeline",
    "UNet1DConditionModel",
    "build_pipeline",
    "load_pipeline",
]
