"""The 1D conditional U-Net denoiser."""

from stable_audio_kit.unet.unet_1d_condition import (
    UNet1DConditionModel,
    UNet1DConditionOutput,
)

__all__ = ["UNet1DConditionModel", "UNet1DConditionOutput"]
