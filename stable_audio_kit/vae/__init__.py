"""The waveform autoencoder (diffusers ``AutoencoderOobleck`` with chunking and latent scaling)."""

from .autoencoder import AudioVAE, build_vae

__all__ = ["AudioVAE", "build_vae"]
