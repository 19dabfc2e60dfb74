"""The audio VAE: diffusers' ``AutoencoderOobleck`` with chunked encode/decode on by default.

Waveforms ``(batch, audio_channels, samples)`` map to latents ``(batch, latent_channels, frames)``
with ``frames = latent_length(samples)``, and latents map back to ``(batch, audio_channels, out)``.
For even downsampling ratios (all the usual ones) ``frames = samples // hop_length`` and
``out = frames * hop_length``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers import AutoencoderOobleck
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.autoencoder_oobleck import OobleckDecoderOutput

# diffusers finds a component's loading method by looking its base classes up in this module.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

from ..config import ModelConfig

if TYPE_CHECKING:
    from .spectral import SpectralAudioVAE


def _stage_length(length: int, stride: int) -> int:
    # Output length of an Oobleck encoder block's strided conv (kernel 2*stride, padding ceil(stride/2)).
    # Every other layer of the encoder is length-preserving, so these stages fix the latent length.
    return (length + 2 * math.ceil(stride / 2) - 2 * stride) // stride + 1


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_positive_ints(name: str, values: Any) -> list[int]:
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        _check_positive_int(f"every entry of {name}", v)
    return values


def _check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_chunking(chunk_seconds: Any, overlap_seconds: Any) -> tuple[float, float]:
    """Validate the chunking settings of a VAE; returns them as floats."""
    chunk_seconds = _check_positive_float("chunk_seconds", chunk_seconds)
    # Zero overlap is refused: every chunk edge would then see zero padding instead of audio (an audible
    # seam), and with odd ratios the decoder's chunks would not even add up to the right length.
    overlap_seconds = _check_positive_float("overlap_seconds", overlap_seconds)
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


class AudioVAE(ChunkedCodingMixin, AutoencoderOobleck):
    r"""Oobleck waveform autoencoder with a latent scale and length-independent peak memory.

    The network is diffusers' ``AutoencoderOobleck`` unchanged; this class adds the latent scaling
    factor, chunking settings in seconds that are saved with the model, length arithmetic, input
    validation, and frame-aligned tiled encode/decode (see :meth:`_tiled_encode`).

    Args:
        encoder_hidden_size: Encoder width; also its output channels, which hold the mean and scale
            of the posterior, so it must be ``2 * decoder_input_channels``.
        downsampling_ratios: Strides of the encoder blocks; their product is ``hop_length``.
        channel_multiples: Width multiple of each block, one per ratio.
        decoder_channels: Decoder width.
        decoder_input_channels: Latent channels.
        audio_channels: 1 (mono) or 2 (stereo).
        sampling_rate: Sample rate in Hz.
        scaling_factor: Latents are multiplied by this before diffusion and divided by it before
            :meth:`decode` (by the caller, as with ``AutoencoderKL``), to give them roughly unit variance.
        chunk_seconds: Longest audio, in seconds, run through the encoder or decoder at once. Longer
            inputs are processed in overlapping chunks, so peak memory stops growing with length.
        overlap_seconds: Context, in seconds, added on each side of a chunk and then discarded. It
            should cover the network's receptive field; beyond that, chunked and whole results agree.
    """

    @register_to_config
    def __init__(
        self,
        encoder_hidden_size: int = 128,
        downsampling_ratios: tuple[int, ...] = (2, 4, 4, 8, 8),
        channel_multiples: tuple[int, ...] = (1, 2, 4, 8, 16),
        decoder_channels: int = 128,
        decoder_input_channels: int = 64,
        audio_channels: int = 2,
        sampling_rate: int = 44100,
        scaling_factor: float = 1.0,
        chunk_seconds: float = 30.0,
        overlap_seconds: float = 2.0,
    ):
        encoder_hidden_size = _check_positive_int("encoder_hidden_size", encoder_hidden_size)
        decoder_input_channels = _check_positive_int("decoder_input_channels", decoder_input_channels)
        if encoder_hidden_size != 2 * decoder_input_channels:
            # The encoder's last conv has encoder_hidden_size outputs, split in half into mean and scale.
            raise ValueError(
                f"encoder_hidden_size ({encoder_hidden_size}) must be 2 * decoder_input_channels "
                f"({decoder_input_channels}): the encoder outputs the mean and scale of each latent channel"
            )
        downsampling_ratios = _check_positive_ints("downsampling_ratios", downsampling_ratios)
        channel_multiples = _check_positive_ints("channel_multiples", channel_multiples)
        if len(channel_multiples) != len(downsampling_ratios):
            raise ValueError(
                f"channel_multiples ({channel_multiples}) needs one entry per downsampling ratio "
                f"({downsampling_ratios})"
            )
        _check_positive_int("decoder_channels", decoder_channels)
        if audio_channels not in (1, 2) or isinstance(audio_channels, bool):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels!r}")
        _check_positive_int("sampling_rate", sampling_rate)
        _check_positive_float("scaling_factor", scaling_factor)
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)

        # The parent's own @register_to_config runs again inside; pass lists (what JSON gives back) so the
        # stored config is the same before and after save_pretrained/from_pretrained.
        super().__init__(
            encoder_hidden_size=encoder_hidden_size,
            downsampling_ratios=downsampling_ratios,
            channel_multiples=channel_multiples,
            decoder_channels=decoder_channels,
            decoder_input_channels=decoder_input_channels,
            audio_channels=audio_channels,
            sampling_rate=sampling_rate,
        )

        self._setup_chunking(chunk_seconds, overlap_seconds)

    @property
    def latent_channels(self) -> int:
        """Channels of the latents ``encode(x).latent_dist.sample()`` returns and ``decode`` takes."""
        return self.config.decoder_input_channels

    def latent_length(self, num_samples: int) -> int:
        """Number of latent frames ``encode`` returns for ``num_samples`` audio samples.

        Each encoder block's strided conv maps ``L`` to ``(L + 2 * ceil(s / 2) - 2 * s) // s + 1``, i.e.
        ``L // s`` for even ``s``; so for the usual even ratios this is ``num_samples // hop_length``.
        Raises ``ValueError`` if the input is too short to give one frame.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        length = num_samples
        for stride in self.config.downsampling_ratios:
            length = _stage_length(length, stride)
            if length < 1:
                raise ValueError(
                    f"{num_samples} samples are too few to encode with downsampling_ratios "
                    f"{list(self.config.downsampling_ratios)}; at least {self.min_samples} are needed"
                )
        return length

    @property
    def min_samples(self) -> int:
        """Shortest input ``encode`` accepts (one latent frame; ``hop_length`` for even ratios)."""
        length = 1
        # Invert the stages from the last: the smallest L giving at least `length` outputs.
        for stride in reversed(self.config.downsampling_ratios):
            length = max(1, (length - 1) * stride - 2 * math.ceil(stride / 2) + 2 * stride)
        return length


VAE_ARCHITECTURES = ("oobleck", "spectral")


def build_vae(cfg: ModelConfig) -> AudioVAE | SpectralAudioVAE:
    """A randomly initialised VAE from a model config (``cfg.sample_rate``, ``cfg.audio_channels`` and
    ``cfg.vae``; ``cfg.vae.architecture`` picks the class). Raises ``ValueError`` naming the bad config key."""
    from .spectral import SpectralAudioVAE

    vae = cfg.vae
    if vae.architecture not in VAE_ARCHITECTURES:
        raise ValueError(f"vae.architecture must be one of {list(VAE_ARCHITECTURES)}, got {vae.architecture!r}")
    if vae.architecture == "spectral":
        return SpectralAudioVAE(
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
    if vae.encoder_hidden_size != 2 * vae.latent_channels:
        raise ValueError(
            f"vae.encoder_hidden_size ({vae.encoder_hidden_size}) must be 2 * vae.latent_channels "
            f"({vae.latent_channels}): the Oobleck encoder outputs the mean and scale of each latent channel"
        )
    return AudioVAE(
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


def load_vae_folder(folder: str | Path) -> AudioVAE | SpectralAudioVAE:
    """Load a saved VAE (``save_pretrained`` folder) as the class named in its ``config.json``."""
    from .spectral import SpectralAudioVAE

    folder = Path(folder)
    config = folder / "config.json"
    try:
        name = json.loads(config.read_text()).get("_class_name")
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(folder)!r} is not a saved VAE: cannot read config.json ({err})") from None
    classes = {cls.__name__: cls for cls in (AudioVAE, SpectralAudioVAE)}
    if name not in classes:
        raise ValueError(f"{str(config)!r} names VAE class {name!r}; expected one of {sorted(classes)}")
    return classes[name].from_pretrained(folder)
