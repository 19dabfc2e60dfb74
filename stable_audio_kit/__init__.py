"""stable-audio-kit: latent-diffusion text-to-audio with timing conditioning (Stable Audio 1.0).

The folders tell the recipe: ``vae/``, ``conditioning/``, ``unet/``, the pipeline, ``data/``, ``train/``,
``evaluation/`` and ``demo/``. A saved pipeline's ``model_index.json`` names each component by the module
that defines its class (``["stable_audio_kit.unet.unet_1d_condition", "UNet1DConditionModel"]``); those
modules keep the diffusers base classes importable, which is how diffusers finds the loading method.
"""

from .conditioning import ConditioningProjection
from .pipeline import StableAudioKitPipeline, build_pipeline
from .unet import UNet1DConditionModel
from .vae import AudioVAE, SpectralAudioVAE

__version__ = "0.1.0"

__all__ = [
    "AudioVAE",
    "ConditioningProjection",
    "SpectralAudioVAE",
    "StableAudioKitPipeline",
    "UNet1DConditionModel",
    "build_pipeline",
]
