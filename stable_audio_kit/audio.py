"""Audio I/O: reading any file soundfile can open, resampling with soxr, channel mixing, atomic writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from .utils import atomic_path

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class AudioFormat:
    """How a file is written: its suffix, and soundfile's container and sample type."""

    suffix: str
    container: str
    subtype: str


# The formats files are written in, by the name ``sak generate --format`` takes.
AUDIO_FORMATS = {
    "wav16": AudioFormat(".wav", "WAV", "PCM_16"),
    "wav24": AudioFormat(".wav", "WAV", "PCM_24"),
    "wav32f": AudioFormat(".wav", "WAV", "FLOAT"),
    "flac": AudioFormat(".flac", "FLAC", "PCM_24"),
    "flac16": AudioFormat(".flac", "FLAC", "PCM_16"),
    "flac24": AudioFormat(".flac", "FLAC", "PCM_24"),
    "ogg": AudioFormat(".ogg", "OGG", "VORBIS"),
}
# What a suffix alone writes.
SUFFIX_FORMATS = {".wav": "wav32f", ".flac": "flac24", ".ogg": "ogg"}


def audio_format(name: str) -> AudioFormat:
    """The format called ``name``; ``ValueError`` listing the valid names for an unknown one."""
    if name not in AUDIO_FORMATS:
        raise ValueError(f"unknown audio format {name!r}; valid formats: {sorted(AUDIO_FORMATS)}")
    return AUDIO_FORMATS[name]


def output_format(path: str | Path, format: str | None = None) -> AudioFormat:
    """The format ``path`` is written in: ``format`` by name, else the default for its suffix.

    Raises ``ValueError`` naming the value for an unknown format, a suffix no format writes, or a
    format that writes another suffix than ``path``'s.
    """
    suffix = Path(path).suffix.lower()
    if format is not None:
        fmt = audio_format(format)
        if fmt.suffix != suffix:
            raise ValueError(f"format {format!r} writes {fmt.suffix} files, but the output is {str(path)!r}")
        return fmt
    if suffix not in SUFFIX_FORMATS:
        raise ValueError(f"output file {str(path)!r} must end in one of {sorted(SUFFIX_FORMATS)}")
    return AUDIO_FORMATS[SUFFIX_FORMATS[suffix]]


def as_audio_array(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    """A waveform as float32 numpy ``(channels, samples)``; a 1-D ``(samples,)`` one is mono."""
    import torch  # here: reading catalogues and checking arguments need no torch

    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples) or (samples,), got shape {tuple(audio.shape)}")
    return audio


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of an audio file, without reading its samples."""
    info = sf.info(str(path))
    return info.samplerate, info.channels, info.frames


def read_audio(path: str | Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Read ``frames`` samples from ``start`` as float32 ``(channels, samples)`` and the file's rate."""
    data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), sr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(channels, samples)`` with soxr's high-quality filter, keeping the duration exactly:
    ``n`` samples become ``round(n * target_sr / orig_sr)``."""
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio
    out = soxr.resample(audio.T, orig_sr, target_sr, quality="HQ")
    out = np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T
    # soxr's one-shot length is this already; the guarantee should not rest on that.
    length = round(audio.shape[-1] * target_sr / orig_sr)
    if out.shape[-1] != length:
        out = np.pad(out[:, :length], ((0, 0), (0, max(0, length - out.shape[-1]))))
    return np.ascontiguousarray(out)


def mix_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Down-mix (average) or up-mix (repeat a mono channel) ``(C, N)`` audio to ``channels``."""
    have = audio.shape[0]
    if have == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    raise ValueError(f"cannot map {have} channels to {channels}: only mono<->N mixing is defined")


def load_audio(path: str | Path, sample_rate: int, channels: int) -> np.ndarray:
    """Read a whole file, resampled to ``sample_rate`` and mixed to ``channels``: ``(channels, samples)``."""
    audio, sr = read_audio(path)
    return mix_channels(resample(audio, sr, sample_rate), channels)


def save_audio(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int, format: str | None = None) -> Path:
    """Write ``(channels, samples)`` audio atomically (a temporary file, then a rename).

    The format is ``format`` by name (:data:`AUDIO_FORMATS`: ``wav16``, ``wav24``, ``wav32f``, ``flac16``,
    ``flac24``, ``ogg``), else the suffix's default: ``.wav`` 32-bit float, ``.flac`` 24-bit, ``.ogg``
    Vorbis. Formats other than float clip at full scale, with a warning saying how many samples.
    """
    path = Path(path)
    fmt = output_format(path, format)
    audio = as_audio_array(audio)
    if fmt.subtype != "FLOAT":
        over = int(np.count_nonzero(np.abs(audio) > 1.0))
        if over:
            logger.warning("%s: %d samples beyond full scale clipped (%s)", path, over, fmt.subtype)
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, sample_rate, format=fmt.container, subtype=fmt.subtype)
    return path
