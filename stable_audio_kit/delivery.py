"""Delivery: the pipeline's float waveforms as files a sound designer can use.

The pipeline trims every waveform to exactly ``round(seconds_total * sample_rate)`` samples, so a
delivered file ends at ``seconds_total``: no tail after it, silent or not, is ever measured, amplified
or written. Each waveform ``(channels, samples)`` then goes through these steps, each of which keeps
the duration:

1. **Resample** to the delivery rate (soxr, high quality) to exactly ``round(seconds * rate)`` samples.
2. **Normalise loudness** by ITU-R BS.1770-4 (``pyloudnorm``) to an integrated target, by default
   -14 LUFS, under a true-peak ceiling, by default -1 dBTP. One gain for the whole waveform, so
   silence inside the clip stays silence and quiet passages stay as far below the rest as they were.
3. **Fade** in and out (quarter-sine).
4. **Write** atomically, in the format the suffix or ``format`` names (:data:`audio.AUDIO_FORMATS`).

Resampling comes first so that loudness and true peak are measured on the samples that are
delivered (a lower delivery rate removes the top octave and with it some loudness and peak); fades come
last so that the first and last delivered samples are exactly zero, which a resampler run after a
fade would not keep.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import AudioFormat, as_audio_array, audio_format, output_format, resample, save_audio

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_LOUDNESS = -14.0  # LUFS integrated: what streaming services play at
DEFAULT_TRUE_PEAK = -1.0  # dBTP: headroom for lossy encoders and consumer DACs
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: anything quieter counts as silence
MIN_MEASURED_SECONDS = 3.0  # a clip shorter than one 400 ms block is looped to this length to be measured
TRUE_PEAK_OVERSAMPLING = 4
# The gain stops this far under the true-peak ceiling, so that float32 rounding and 16- or 24-bit
# quantisation (at most 3e-4 dB at -1 dBFS) cannot cross it.
TRUE_PEAK_MARGIN_DB = 1e-3


def integrated_loudness(audio: np.ndarray | torch.Tensor, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness of ``(channels, samples)`` in LUFS; ``-inf`` if gated to nothing.

    BS.1770 measures in 400 ms blocks, so a shorter clip is measured looped, repeated to at least
    ``MIN_MEASURED_SECONDS``: the loudness it has when played again and again, which is its K-weighted
    mean square. Padding it with zeros instead would count the padding as part of the sound.
    """
    import pyloudnorm

    audio = as_audio_array(audio)
    meter = pyloudnorm.Meter(sample_rate)
    data = audio.T.astype(np.float64)
    if data.shape[0] < meter.block_size * sample_rate:
        data = np.tile(data, (math.ceil(MIN_MEASURED_SECONDS * sample_rate / data.shape[0]), 1))
    return float(meter.integrated_loudness(data))


def true_peak(audio: np.ndarray | torch.Tensor) -> float:
    """The true peak of ``(channels, samples)`` in dBTP (``-inf`` for silence).

    Estimated as in BS.1770-4 Annex 2: the largest magnitude of the signal oversampled 4x (a
    polyphase low-pass, ``scipy.signal.resample_poly``), which catches the peaks between samples that
    a DAC or a lossy decoder reconstructs. On music and noise it reads within 0.01 dB of a 16x
    band-limited interpolation; like any 4x meter it can under-read content near the Nyquist frequency
    (a hard-edged burst at a quarter of the rate by 0.07 dB, a digital square wave by 0.7 dB), which
    the 1 dB of the default ceiling covers.
    """
    from scipy.signal import resample_poly

    audio = as_audio_array(audio).astype(np.float64)
    if audio.shape[-1] == 0:
        return -math.inf
    up = resample_poly(audio, TRUE_PEAK_OVERSAMPLING, 1, axis=-1)
    peak = max(float(np.abs(up).max()), float(np.abs(audio).max()))
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def normalize_loudness(
    audio: np.ndarray | torch.Tensor,
    sample_rate: int,
    loudness: float = DEFAULT_LOUDNESS,
    true_peak_ceiling: float = DEFAULT_TRUE_PEAK,
) -> np.ndarray:
    """Scale ``(channels, samples)`` to ``loudness`` LUFS integrated, with its true peak at most
    ``true_peak_ceiling`` dBTP; returns float32 ``(channels, samples)``.

    The ceiling wins: when the gain that reaches the target would push the true peak above the
    ceiling, the gain stops at the ceiling and the output is quieter than the target (a peaky sound,
    such as a drum hit, at -14 LUFS would need more than 0 dBTP). That is logged; nothing is limited or
    compressed. Silence stays silence: audio that measures below -70 LUFS, or that BS.1770's absolute
    gate leaves nothing of, is returned as it is, never amplified.
    """
    audio = as_audio_array(audio)
    measured = integrated_loudness(audio, sample_rate)
    if not math.isfinite(measured) or measured < SILENCE_LUFS:
        logger.info("loudness: %.1f LUFS is silence; left as it is", measured)
        return audio
    gain_db = loudness - measured
    headroom_db = true_peak_ceiling - TRUE_PEAK_MARGIN_DB - true_peak(audio)
    if gain_db > headroom_db:
        logger.info(
            "loudness: %.1f LUFS would put the true peak above %.1f dBTP; the ceiling wins at %.1f LUFS",
            loudness,
            true_peak_ceiling,
            measured + headroom_db,
        )
        gain_db = headroom_db
    return (audio.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def check_fades_fit(fade_in_ms: float, fade_out_ms: float, seconds: float) -> None:
    """``ValueError`` naming the values if the fades together are longer than a clip of ``seconds``."""
    if fade_in_ms + fade_out_ms > 1000.0 * seconds:
        raise ValueError(
            f"fade_in_ms + fade_out_ms ({fade_in_ms:g} + {fade_out_ms:g} ms) is longer than the clip "
            f"({1000.0 * seconds:g} ms)"
        )


def fade_lengths(samples: int, sample_rate: int, fade_in_ms: float, fade_out_ms: float) -> tuple[int, int]:
    """The fades in samples at ``sample_rate``; ``ValueError`` if together they are longer than the clip."""
    check_fades_fit(fade_in_ms, fade_out_ms, samples / sample_rate)
    n_in = round(fade_in_ms * sample_rate / 1000.0)
    return n_in, min(round(fade_out_ms * sample_rate / 1000.0), samples - n_in)


def apply_fades(
    audio: np.ndarray | torch.Tensor, sample_rate: int, fade_in_ms: float = 0.0, fade_out_ms: float = 0.0
) -> np.ndarray:
    """Fade ``(channels, samples)`` in and out over the given milliseconds; the length is unchanged.

    The curves are quarter-sines (equal-power): a fade-out and a fade-in overlapped keep the power
    constant, and each curve meets the unfaded audio with zero slope, so the fade's own edge is not
    heard. The first sample of a fade-in and the last of a fade-out are exactly zero.
    """
    audio = as_audio_array(audio).copy()
    n_in, n_out = fade_lengths(audio.shape[-1], sample_rate, fade_in_ms, fade_out_ms)
    if n_in:
        audio[:, :n_in] *= np.sin(0.5 * np.pi * np.arange(n_in) / n_in).astype(np.float32)
    if n_out:
        audio[:, audio.shape[-1] - n_out :] *= np.sin(0.5 * np.pi * np.arange(n_out)[::-1] / n_out).astype(np.float32)
    return audio


def _check_number(name: str, value: object, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number of {unit} in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def delivery_loudness(loudness: float | None, normalize: bool = True, inpainting: bool = False) -> float | None:
    """The loudness target of a request (``None``: keep the model's levels): ``loudness`` if given, else
    :data:`DEFAULT_LOUDNESS`, but none with ``normalize`` off, and none by default for inpainting and
    continuation, whose kept audio stays at the level it had. A target with ``normalize`` off is refused."""
    if not normalize:
        if loudness is not None:
            raise ValueError(f"a loudness target ({loudness!r} LUFS) was given with normalisation off")
        return None
    if loudness is None:
        return None if inpainting else DEFAULT_LOUDNESS
    return loudness


@dataclass(frozen=True)
class Delivery:
    """How waveforms are delivered; every value is checked here, before any work.

    ``loudness`` is the integrated target in LUFS, in [-70, 0], or ``None`` to keep the model's levels;
    ``true_peak_ceiling`` in dBTP, in [-70, 0]; ``fade_in_ms`` / ``fade_out_ms`` >= 0;
    ``delivery_rate`` in Hz (``None``: the rate the audio comes at); ``format`` a name from
    :data:`audio.AUDIO_FORMATS` (``None``: the suffix's default; otherwise it must match the suffix).
    """

    loudness: float | None = DEFAULT_LOUDNESS
    true_peak_ceiling: float = DEFAULT_TRUE_PEAK
    fade_in_ms: float = 0.0
    fade_out_ms: float = 0.0
    delivery_rate: int | None = None
    format: str | None = None
    # A seamless loop: resampled as one period (Fourier), and fades, which would break the wrap, refused.
    loop: bool = False

    def __post_init__(self):
        if self.loudness is not None:
            _check_number("loudness", self.loudness, SILENCE_LUFS, 0.0, "LUFS")
        _check_number("true_peak_ceiling", self.true_peak_ceiling, SILENCE_LUFS, 0.0, "dBTP")
        _check_number("fade_in_ms", self.fade_in_ms, 0.0, math.inf, "milliseconds")
        _check_number("fade_out_ms", self.fade_out_ms, 0.0, math.inf, "milliseconds")
        rate = self.delivery_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, numbers.Integral) or rate <= 0):
            raise ValueError(f"the delivery sample rate must be a whole number of Hz > 0, got {rate!r}")
        if self.format is not None:
            audio_format(self.format)  # the name alone; check() matches it against each output's suffix
        if self.loop and (self.fade_in_ms or self.fade_out_ms):
            raise ValueError("a loop has no start or end to fade: fades would break its wrap point")

    def output_path(self, path: str | Path) -> Path:
        """``path`` with the suffix of ``format`` (unchanged without one): for names the toolkit makes."""
        path = Path(path)
        return path if self.format is None else path.with_suffix(audio_format(self.format).suffix)

    def check(self, path: str | Path, seconds: float | None = None) -> AudioFormat:
        """Check that ``path`` can be written in this delivery's format and, given the clip's length
        in ``seconds``, that the fades fit in it; returns the format."""
        fmt = output_format(path, self.format)
        if seconds is not None:
            check_fades_fit(self.fade_in_ms, self.fade_out_ms, seconds)
        return fmt

    def process(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> tuple[np.ndarray, int]:
        """Resample, normalise and fade ``(channels, samples)``; returns the delivered float32
        ``(channels, round(samples * rate / sample_rate))`` and its rate."""
        audio = as_audio_array(audio)
        if audio.shape[-1] == 0:
            raise ValueError("audio is empty: there is nothing to deliver")
        if not np.isfinite(audio).all():
            raise ValueError("audio has NaN or infinite samples")
        rate = self.delivery_rate or sample_rate
        fade_lengths(round(audio.shape[-1] * rate / sample_rate), rate, self.fade_in_ms, self.fade_out_ms)
        if self.loop:
            from .workflows import circular_resample

            audio = circular_resample(audio, round(audio.shape[-1] * rate / sample_rate))
        else:
            audio = resample(audio, sample_rate, rate)
        if self.loudness is not None:
            audio = normalize_loudness(audio, rate, self.loudness, self.true_peak_ceiling)
        return apply_fades(audio, rate, self.fade_in_ms, self.fade_out_ms), rate

    def save(self, path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
        """Deliver ``(channels, samples)`` audio at ``sample_rate`` to ``path``, written atomically.

        Every value is checked before any work, and a refused call leaves no file behind.
        """
        self.check(path)
        audio, rate = self.process(audio, sample_rate)
        return save_audio(path, audio, rate, self.format)


def save_delivered(
    path: str | Path,
    audio: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    loudness: float | None = DEFAULT_LOUDNESS,
    true_peak_ceiling: float = DEFAULT_TRUE_PEAK,
    fade_in_ms: float = 0.0,
    fade_out_ms: float = 0.0,
    delivery_rate: int | None = None,
    format: str | None = None,
) -> Path:
    """Deliver one waveform ``(channels, samples)`` at ``sample_rate`` to ``path``: resampled to
    ``delivery_rate``, loudness-normalised (``loudness=None`` keeps the levels), faded and written
    atomically. See :class:`Delivery` for the values and the module docstring for the order."""
    delivery = Delivery(loudness, true_peak_ceiling, fade_in_ms, fade_out_ms, delivery_rate, format)
    return delivery.save(path, audio, sample_rate)
