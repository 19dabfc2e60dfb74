"""Is a join audible? Spectral flux and sample jumps at a point, against the clip's ordinary frames.

A click or a seam shows as a frame whose spectrum changes far more than its neighbours' (spectral flux)
or as a jump between two samples far larger than the clip's usual sample-to-sample steps. Each figure
is returned as a percentile rank among the same figure at every other place of the clip: a join at
the 99th percentile or above is an outlier, one in the body of the distribution is not. numpy only.
"""

from __future__ import annotations

import numpy as np

FLUX_FFT = 1024
FLUX_HOP = 256


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    return audio.reshape(-1, audio.shape[-1]).mean(0) if audio.ndim > 1 else audio


def spectral_flux(audio: np.ndarray, n_fft: int = FLUX_FFT, hop: int = FLUX_HOP) -> np.ndarray:
    """Half-wave-rectified spectral flux of each frame, normalised by the frame's magnitude: ``(frames - 1,)``.
    Entry ``i`` is the change into frame ``i + 1``, centred at sample ``(i + 1) * hop``."""
    x = np.pad(_mono(audio), n_fft // 2)
    if x.size < n_fft + hop:
        raise ValueError(f"need at least {n_fft + hop} samples to measure spectral flux, got {x.size}")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1))
    return np.maximum(0.0, np.diff(mag, axis=0)).sum(-1) / (mag[1:].sum(-1) + 1e-8)


def _local_max(values: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(values, radius, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).max(-1)


def flux_percentile(audio: np.ndarray, sample: int, radius: int = 1) -> float:
    """Percentile rank (0-1) of the largest flux within ``radius`` frames of ``sample`` among the same
    statistic at every frame of the clip."""
    local = _local_max(spectral_flux(audio), radius)
    index = min(max(int(round(sample / FLUX_HOP)) - 1, 0), local.size - 1)
    return float((local < local[index]).mean())


def jump_percentile(audio: np.ndarray, before: int, after: int) -> float:
    """Percentile rank (0-1) of the step from sample ``before`` to sample ``after`` (e.g. a loop's last
    sample to its first) among the clip's steps between neighbouring samples."""
    x = _mono(audio)
    steps = np.abs(np.diff(x))
    return float((steps < abs(x[after] - x[before])).mean())
