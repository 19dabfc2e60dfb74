"""stable-audio-kit: latent-diffusion text-to-audio with timing conditioning (Stable Audio 1.0).

Model classes are exported here because diffusers records a component's library as the top-level
package name (``["stable_audio_kit", "UNet1DConditionModel"]`` in ``model_index.json``) and looks the
class up on it when loading.
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
