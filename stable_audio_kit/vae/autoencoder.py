"""The audio VAE: diffusers' ``AutoencoderOobleck`` with chunked encode/decode on by default.

Waveforms ``(batch, audio_channels, samples)`` map to latents ``(batch, latent_channels, frames)``
with ``frames = latent_length(samples)``, and latents map back to ``(batch, audio_channels, out)``.
For even downsampling ratios (all the usual ones) ``frames = samples // hop_length`` and
``out = frames * hop_length``.
"""

from __future__ import annotations

import math
import warnings

from diffusers.models.autoencoders.autoencoder_oobleck import AutoencoderOobleck
from diffusers.configuration_utils import register_to_config

# diffusers finds a component's loading method by looking its base classes up in this module.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

from .chunking import ChunkedCodingMixin, check_chunking, check_positive_float, check_positive_int, check_positive_ints


def _stage_length(length: int, stride: int) -> int:
    # Output length of an Oobleck encoder block's strided conv (kernel 2*stride, padding ceil(stride/2)).
    # Every other layer of the encoder is length-preserving, so these stages fix the latent length.
    return (length + 2 * math.ceil(stride / 2) - 2 * stride) // stride + 1


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
        encoder_hidden_size = check_positive_int("encoder_hidden_size", encoder_hidden_size)
        decoder_input_channels = check_positive_int("decoder_input_channels", decoder_input_channels)
        if encoder_hidden_size != 2 * decoder_input_channels:
            # The encoder's last conv has encoder_hidden_size outputs, split in half into mean and scale.
            raise ValueError(
                f"encoder_hidden_size ({encoder_hidden_size}) must be 2 * decoder_input_channels "
                f"({decoder_input_channels}): the encoder outputs the mean and scale of each latent channel"
            )
        downsampling_ratios = check_positive_ints("downsampling_ratios", downsampling_ratios)
        channel_multiples = check_positive_ints("channel_multiples", channel_multiples)
        if len(channel_multiples) != len(downsampling_ratios):
            raise ValueError(
                f"channel_multiples ({channel_multiples}) needs one entry per downsampling ratio "
                f"({downsampling_ratios})"
            )
        check_positive_int("decoder_channels", decoder_channels)
        if audio_channels not in (1, 2) or isinstance(audio_channels, bool):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels!r}")
        check_positive_int("sampling_rate", sampling_rate)
        check_positive_float("scaling_factor", scaling_factor)
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)

        # The parent's own @register_to_config runs again inside; pass lists (what JSON gives back) so the
        # stored config is the same before and after save_pretrained/from_pretrained. diffusers builds the
        # Oobleck convolutions with torch's deprecated weight_norm, whose FutureWarning is for diffusers, not for
        # a user of this class (the saved weight_g/weight_v names depend on it, so it stays).
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*torch\.nn\.utils\.weight_norm.* is deprecated", category=FutureWarning
            )
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
