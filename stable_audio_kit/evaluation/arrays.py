"""Validation of the arrays the metrics and plots take: audio, sample rates and 1-D sequences.

Audio is a float array, mono ``(samples,)`` or ``(channels, samples)``, in full scale (a sample of 1.0
is 0 dBFS). Malformed input (empty, NaN/inf samples, a sample rate <= 0, the soundfile layout
``(samples, channels)``) raises ``ValueError`` naming the value. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

from ..utils import check_finite_number


def check_sample_rate(sample_rate: object) -> float:
    sr = check_finite_number("sample_rate", sample_rate)
    if sr <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    return sr


def as_channels(audio: object, name: str = "audio") -> np.ndarray:
    """Validate ``audio`` and return it as float64 ``(channels, samples)``."""
    arr = np.asarray(audio)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None]
    elif arr.ndim != 2:
        raise ValueError(f"{name} must have shape (samples,) or (channels, samples), got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty, shape {arr.shape}")
    if arr.shape[0] > arr.shape[1]:
        # (samples, channels) is the soundfile layout; averaging over the wrong axis would
        # silently produce nonsense, so refuse it.
        raise ValueError(f"{name} must be (channels, samples), got shape {arr.shape}; transpose it")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf samples")
    return arr


def as_mono(audio: object, name: str = "audio") -> np.ndarray:
    """Validate ``audio`` and down-mix it to float32 ``(samples,)`` (librosa's working type)."""
    return as_channels(audio, name).mean(axis=0).astype(np.float32)


def as_float_vector(values: object, name: str) -> np.ndarray:
    """Validate a non-empty, finite 1-D sequence and return it as float64 ``(N,)``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf: {arr.tolist()}")
    return arr


def frame_size(sample_rate: float) -> int:
    """FFT size of ~46 ms at any rate (1024 at 22.05 kHz, 2048 at 44.1/48 kHz), so that HPSS median
    filters and spectrogram frames span the same seconds and hertz whatever the rate."""
    return max(64, int(2 ** round(math.log2(sample_rate * 0.0464))))
