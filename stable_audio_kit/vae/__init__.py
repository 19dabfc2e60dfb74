"""The audio VAEs: diffusers' ``AutoencoderOobleck`` with chunking and latent scaling (the Stable Audio
recipe), and an STFT-domain VAE with the same interface that trains in CPU hours."""

from .autoencoder import AudioVAE
from .factory import VAE_ARCHITECTURES, build_vae, load_vae_folder
from .spectral import SpectralAudioVAE

__all__ = ["VAE_ARCHITECTURES", "AudioVAE", "SpectralAudioVAE", "build_vae", "load_vae_folder"]
