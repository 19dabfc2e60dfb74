"""A spectral audio VAE: STFT-magnitude encoder and a Vocos-style decoder that predicts an STFT.

Why it exists. The Oobleck autoencoder (:class:`~stable_audio_kit.vae.AudioVAE`) synthesises the
waveform sample by sample through strided transposed convolutions. It is the Stable Audio recipe and the
right choice with GPUs and 100k+ steps, but it learns pitch late: after 6000 steps on two CPU cores a
brass melody came back as a buzz at the latent frame rate. This VAE works on STFT frames instead:

* the encoder reads the log-magnitude STFT (``n_fft``, ``stft_hop``), where pitch is explicit, runs
  ConvNeXt blocks at the STFT frame rate and merges ``latent_stride`` frames into one latent frame;
* the decoder undoes the merge, runs ConvNeXt blocks and predicts a log-magnitude and a phase per bin,
  which an inverse STFT turns into audio (the Vocos head, Siuzdak 2023).

Everything runs at ~86 frames per second instead of 22 050 samples, so a training step is cheap and the
harmonic structure is right after a few hundred steps. The interface is :class:`AudioVAE`'s: the same
``encode``/``decode`` outputs, ``hop_length = stft_hop * latent_stride``, ``frames = samples //
hop_length``, ``decode`` returning ``frames * hop_length`` samples, ``scaling_factor`` and chunking.
"""

from __future__ import annotations

import math

import torch
from diffusers import AutoencoderOobleck
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin

# diffusers finds a component's loading method by looking its base classes up in this module.
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .autoencoder import ChunkedCodingMixin, _check_positive_float, _check_positive_int, check_chunking


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, pointwise MLP and a layer-scaled residual (ConvNeXt / Vocos), on ``(B, C, T)``."""

    def __init__(self, dim: int, mult: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, mult * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class _ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _blocks(dim: int, n: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(*[ConvNeXtBlock(dim, 3, kernel_size, 1.0 / max(n, 1)) for _ in range(n)])


class SpectralEncoder(nn.Module):
    """``(B, audio_channels, samples)`` to ``(B, 2 * latent_channels, samples // (stft_hop * latent_stride))``."""

    def __init__(
        self,
        audio_channels: int,
        n_fft: int,
        stft_hop: int,
        latent_stride: int,
        hidden: int,
        layers: int,
        latent_channels: int,
        kernel_size: int,
    ):
        super().__init__()
        self.n_fft, self.stft_hop, self.latent_stride = n_fft, stft_hop, latent_stride
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(audio_channels * bins, hidden, kernel_size, padding=kernel_size // 2)
        self.norm_in = _ChannelNorm(hidden, eps=1e-6)
        self.blocks = _blocks(hidden, layers, kernel_size)
        # Non-overlapping merge of latent_stride STFT frames: exactly frames // latent_stride outputs.
        self.down = nn.Conv1d(hidden, hidden, latent_stride, stride=latent_stride)
        self.norm_out = _ChannelNorm(hidden, eps=1e-6)
        self.proj = nn.Conv1d(hidden, 2 * latent_channels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-magnitude STFT ``(B, audio_channels * bins, samples // stft_hop)``, frames centred on hops."""
        b, c, n = x.shape
        hop = self.stft_hop * self.latent_stride
        x = x[..., : (n // hop) * hop].reshape(b * c, -1)
        pad = (self.n_fft - self.stft_hop) // 2
        x = nn.functional.pad(x, (pad, self.n_fft - self.stft_hop - pad))
        spec = torch.stft(x.float(), self.n_fft, self.stft_hop, window=self.window, center=False, return_complex=True)
        feats = torch.log(spec.abs().clamp(min=1e-5))
        return feats.reshape(b, c * feats.shape[1], feats.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).to(self.embed.weight.dtype)
        h = self.blocks(self.norm_in(self.embed(h)))
        return self.proj(self.norm_out(self.down(h)))


class SpectralDecoder(nn.Module):
    """``(B, latent_channels, frames)`` to ``(B, audio_channels, frames * stft_hop * latent_stride)``."""

    def __init__(
        self,
        audio_channels: int,
        n_fft: int,
        stft_hop: int,
        latent_stride: int,
        hidden: int,
        layers: int,
        latent_channels: int,
        kernel_size: int,
    ):
        super().__init__()
        self.audio_channels, self.n_fft, self.stft_hop = audio_channels, n_fft, stft_hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.embed = nn.Conv1d(latent_channels, hidden, kernel_size, padding=kernel_size // 2)
        self.up = nn.ConvTranspose1d(hidden, hidden, latent_stride, stride=latent_stride)
        self.norm_in = _ChannelNorm(hidden, eps=1e-6)
        self.blocks = _blocks(hidden, layers, kernel_size)
        self.norm_out = nn.LayerNorm(hidden, eps=1e-6)
        self.head = nn.Linear(hidden, audio_channels * (n_fft + 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.norm_in(self.up(self.embed(z))))
        out = self.head(self.norm_out(h.transpose(1, 2))).float()  # (B, T, channels * 2 * bins)
        b, t, _ = out.shape
        bins = self.n_fft // 2 + 1
        out = out.reshape(b, t, self.audio_channels, 2, bins).permute(0, 2, 3, 4, 1)  # (B, C, 2, bins, T)
        # Vocos: the magnitude is exp of the prediction (capped so that it cannot overflow), the phase raw.
        mag = torch.exp(out[:, :, 0].clamp(max=math.log(1e2)))
        phase = out[:, :, 1]
        spec = torch.polar(mag, phase).reshape(b * self.audio_channels, bins, t)
        return self.istft(spec).reshape(b, self.audio_channels, -1)

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        """Inverse STFT with "same" padding: ``T`` frames give exactly ``T * stft_hop`` samples.

        ``torch.istft`` with ``center=True`` returns ``(T - 1) * hop`` samples, and its window-envelope
        check fails at the edges of "same" framing; this overlap-adds with ``fold`` and trims
        ``(n_fft - hop) / 2`` samples from each side, mirroring the encoder's framing.
        """
        n_fft, hop = self.n_fft, self.stft_hop
        t = spec.shape[-1]
        frames = torch.fft.irfft(spec, n=n_fft, dim=1) * self.window[None, :, None]
        length = (t - 1) * hop + n_fft
        fold = dict(output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
        audio = nn.functional.fold(frames, **fold)[:, 0, 0]
        envelope = nn.functional.fold((self.window**2)[None, :, None].expand(1, n_fft, t), **fold)[0, 0, 0]
        pad = (n_fft - hop) // 2
        end = length - (n_fft - hop - pad)
        return audio[:, pad:end] / envelope[pad:end].clamp(min=1e-11)


class SpectralAudioVAE(ChunkedCodingMixin, ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""STFT-domain audio VAE with the interface of :class:`~stable_audio_kit.vae.AudioVAE`.

    Args:
        audio_channels: 1 (mono) or 2 (stereo).
        sampling_rate: Sample rate in Hz.
        latent_channels: Channels of the latents.
        n_fft: STFT size of the encoder's input and the decoder's output (even).
        stft_hop: STFT hop in samples; ``n_fft - stft_hop`` must be even.
        latent_stride: STFT frames merged into one latent frame; ``hop_length = stft_hop * latent_stride``.
        hidden_channels: Width of the ConvNeXt blocks.
        encoder_layers: ConvNeXt blocks in the encoder.
        decoder_layers: ConvNeXt blocks in the decoder.
        kernel_size: Odd kernel of the depthwise convolutions, in STFT frames.
        scaling_factor: As for :class:`AudioVAE`: latents are multiplied by it before diffusion.
        chunk_seconds: Longest audio encoded or decoded at once (see :class:`AudioVAE`).
        overlap_seconds: Context on each side of a chunk, discarded afterwards.
    """

    # Same encode / decode / forward as AutoencoderOobleck: posterior = OobleckDiagonalGaussianDistribution.
    encode = AutoencoderOobleck.encode
    decode = AutoencoderOobleck.decode
    forward = AutoencoderOobleck.forward

    @register_to_config
    def __init__(
        self,
        audio_channels: int = 1,
        sampling_rate: int = 22050,
        latent_channels: int = 16,
        n_fft: int = 1024,
        stft_hop: int = 256,
        latent_stride: int = 2,
        hidden_channels: int = 256,
        encoder_layers: int = 4,
        decoder_layers: int = 8,
        kernel_size: int = 7,
        scaling_factor: float = 1.0,
        chunk_seconds: float = 30.0,
        overlap_seconds: float = 2.0,
    ):
        super().__init__()
        if audio_channels not in (1, 2) or isinstance(audio_channels, bool):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels!r}")
        for name, value in (
            ("sampling_rate", sampling_rate),
            ("latent_channels", latent_channels),
            ("n_fft", n_fft),
            ("stft_hop", stft_hop),
            ("latent_stride", latent_stride),
            ("hidden_channels", hidden_channels),
            ("kernel_size", kernel_size),
        ):
            _check_positive_int(name, value)
        for name, value in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if n_fft % 2 or stft_hop > n_fft or (n_fft - stft_hop) % 2:
            raise ValueError(
                f"n_fft ({n_fft}) must be even and at least stft_hop ({stft_hop}), with n_fft - stft_hop even"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        _check_positive_float("scaling_factor", scaling_factor)
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        args = (audio_channels, n_fft, stft_hop, latent_stride, hidden_channels)
        self.encoder = SpectralEncoder(*args, encoder_layers, latent_channels, kernel_size)
        self.decoder = SpectralDecoder(*args, decoder_layers, latent_channels, kernel_size)
        self.hop_length = stft_hop * latent_stride
        self.sampling_rate = sampling_rate
        self.use_slicing = False
        self.use_tiling = False  # AutoencoderMixin.enable_tiling checks that the attribute exists
        self._setup_chunking(chunk_seconds, overlap_seconds)

    @property
    def latent_channels(self) -> int:
        """Channels of the latents ``encode(x).latent_dist.sample()`` returns and ``decode`` takes."""
        return self.config.latent_channels

    def latent_length(self, num_samples: int) -> int:
        """Latent frames ``encode`` returns for ``num_samples`` samples: ``num_samples // hop_length``."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if num_samples < self.hop_length:
            raise ValueError(
                f"{num_samples} samples are too few to encode; at least hop_length = {self.hop_length} are needed"
            )
        return num_samples // self.hop_length

    @property
    def min_samples(self) -> int:
        """Shortest input ``encode`` accepts: one latent frame."""
        return self.hop_length
