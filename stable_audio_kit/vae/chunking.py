"""What the VAEs of this package share: argument validators and frame-aligned chunked encode/decode.

:class:`ChunkedCodingMixin` gives a VAE input checks, ``latent_rate`` and tiled ``_encode``/``_decode`` that
cut chunks on the latent grid, so chunked and whole results have the same length (and, with enough
overlap, the same values). Waveforms are ``(batch, audio_channels, samples)``, latents
``(batch, latent_channels, frames)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_oobleck import OobleckDecoderOutput


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_positive_ints(name: str, values: Any) -> list[int]:
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        check_positive_int(f"every entry of {name}", v)
    return values


def check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_chunking(chunk_seconds: Any, overlap_seconds: Any) -> tuple[float, float]:
    """Validate the chunking settings of a VAE; returns them as floats."""
    chunk_seconds = check_positive_float("chunk_seconds", chunk_seconds)
    # Zero overlap is refused: every chunk edge would then see zero padding instead of audio (an audible
    # seam), and with odd ratios the decoder's chunks would not even add up to the right length.
    overlap_seconds = check_positive_float("overlap_seconds", overlap_seconds)
    if 2 * overlap_seconds >= chunk_seconds:
        raise ValueError(f"2 * overlap_seconds ({overlap_seconds}) must be less than chunk_seconds ({chunk_seconds})")
    return chunk_seconds, overlap_seconds


class ChunkedCodingMixin:
    """Input checks and frame-aligned chunked encode/decode shared by the VAEs of this package.

    The host class has ``encoder`` (audio to ``2 * latent_channels`` channels), ``decoder``, ``hop_length``,
    ``latent_channels``, ``latent_length()`` and a ``sampling_rate`` in its config, and calls
    :meth:`_setup_chunking` at the end of ``__init__``.
    """

    def _setup_chunking(self, chunk_seconds: float, overlap_seconds: float) -> None:
        """Set the tiling lengths, in whole latent frames, and turn tiling on (arguments already checked)."""
        # Chunks are whole numbers of latent frames so that every chunk starts on the latent grid of the
        # whole signal (see _tiled_encode). Round the chunk down (it bounds memory) and the overlap up
        # (it is the context a user asked for).
        # The 1e-9 keeps float noise (0.3 * 800 / 8 = 30.000000000000004) from adding or losing a frame.
        hop, sampling_rate = self.hop_length, self.config.sampling_rate
        self.tile_latent_min_length = math.floor(chunk_seconds * sampling_rate / hop + 1e-9)
        self.tile_latent_overlap = math.ceil(overlap_seconds * sampling_rate / hop - 1e-9)
        if self.tile_latent_min_length - 2 * self.tile_latent_overlap < 1:
            raise ValueError(
                f"chunk_seconds ({chunk_seconds}) and overlap_seconds ({overlap_seconds}) give chunks of "
                f"{self.tile_latent_min_length} latent frames with {self.tile_latent_overlap} frames of overlap on "
                f"each side at hop_length {hop} and sampling_rate {sampling_rate}; a chunk needs at least one "
                "frame of its own: increase chunk_seconds or decrease overlap_seconds"
            )
        self.tile_sample_min_length = self.tile_latent_min_length * hop
        self.tile_sample_overlap = self.tile_latent_overlap * hop
        self.enable_tiling()

    @property
    def latent_rate(self) -> float:
        """Latent frames per second of audio."""
        return self.config.sampling_rate / self.hop_length

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.config.audio_channels:
            raise ValueError(
                f"expected audio of shape (batch, {self.config.audio_channels}, samples), got {tuple(x.shape)}"
            )
        self.latent_length(x.shape[-1])  # raises a clear ValueError for too-short audio
        if self.use_tiling and x.shape[-1] > self.tile_sample_min_length:
            return self._tiled_encode(x)
        return self.encoder(x)

    def _decode(self, z: torch.Tensor, return_dict: bool = True) -> OobleckDecoderOutput | tuple[torch.Tensor]:
        if z.ndim != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents of shape (batch, {self.latent_channels}, frames), got {tuple(z.shape)}")
        if self.use_tiling and z.shape[-1] > self.tile_latent_min_length:
            dec = self._tiled_decode(z)
        else:
            dec = self.decoder(z)
        return OobleckDecoderOutput(sample=dec) if return_dict else (dec,)

    def _tiled_encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``(batch, audio_channels, samples)`` chunk by chunk to ``(batch, 2 * latent_channels, frames)``.

        Overrides diffusers' version, which cuts chunks at arbitrary sample positions and trims them by
        rounding with a hop measured as a float from the first chunk. When the chunk or overlap is not a
        multiple of ``hop_length`` (the 30 s / 2 s defaults at 44.1 kHz are not), chunks sit off the
        latent grid of the whole signal, and the right-hand trim ignores the partial frame the encoder
        floors away; the result has frames duplicated or dropped and is a frame longer or shorter than an
        unchunked encode. Here chunks are cut in latent frames: a window starting at sample ``k * hop``
        yields frames ``k, k + 1, ...`` of the whole signal (every stage is shift-equivariant for shifts
        that are multiples of its stride), so the core frames are kept by index and the output has exactly
        ``latent_length(samples)`` frames.
        """
        num_samples = x.shape[-1]
        num_frames = self.latent_length(num_samples)
        hop = self.hop_length
        overlap = self.tile_latent_overlap
        stride = self.tile_latent_min_length - 2 * overlap
        tiles = []
        for core_start in range(0, num_frames, stride):
            core_end = min(core_start + stride, num_frames)
            win_start = max(0, core_start - overlap)
            win_end = min(num_frames, core_end + overlap)
            # The last window runs to the real end so its final frame sees the same trailing samples
            # (the part of a hop the encoder floors away) as an unchunked encode.
            sample_end = num_samples if win_end == num_frames else win_end * hop
            tile = self.encoder(x[:, :, win_start * hop : sample_end])
            tiles.append(tile[:, :, core_start - win_start : core_end - win_start])
        return torch.cat(tiles, dim=-1)

    def _tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode ``(batch, latent_channels, frames)`` chunk by chunk to ``(batch, audio_channels, samples)``.

        Overrides diffusers' version only to use the exact integer hop: it estimates the upsampling
        factor from the first chunk's output length, which is not ``hop_length`` when a ratio is odd
        (the decoder then returns ``frames * hop_length - c`` samples). Window frame ``k`` starts at
        output sample ``k * hop`` of the whole signal, so cores are cut at multiples of the hop and the
        last one runs to the end; the total equals an unchunked decode.
        """
        num_frames = z.shape[-1]
        hop = self.hop_length
        overlap = self.tile_latent_overlap
        stride = self.tile_latent_min_length - 2 * overlap
        tiles = []
        for core_start in range(0, num_frames, stride):
            core_end = min(core_start + stride, num_frames)
            win_start = max(0, core_start - overlap)
            win_end = min(num_frames, core_end + overlap)
            tile = self.decoder(z[:, :, win_start:win_end])
            end = tile.shape[-1] if core_end == num_frames else (core_end - win_start) * hop
            tiles.append(tile[:, :, (core_start - win_start) * hop : end])
        return torch.cat(tiles, dim=-1)
