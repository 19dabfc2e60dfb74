"""Audio I/O: reading any file soundfile can open, resampling with soxr, channel mixing, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .utils import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
OUTPUT_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of an audio file, without reading its samples."""
    info = sf.info(str(path))
    return info.samplerate, info.channels, info.frames


def read_audio(path: str | Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Read ``frames`` samples from ``start`` as float32 ``(channels, samples)`` and the file's rate."""
    data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), sr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(channels, samples)`` with soxr's high-quality filter."""
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio
    out = soxr.resample(audio.T, orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


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


def save_audio(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write ``(channels, samples)`` audio atomically; the format follows the suffix (.wav, .flac, .ogg)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"output file {str(path)!r} must end in one of {sorted(OUTPUT_FORMATS)}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    fmt, subtype = OUTPUT_FORMATS[suffix]
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, sample_rate, format=fmt, subtype=subtype)
    return path
