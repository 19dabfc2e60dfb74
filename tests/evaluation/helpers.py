"""Synthetic signals whose tempo, pitch, key, timbre and length are known by construction."""

from __future__ import annotations

import numpy as np

SR = 22050
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def harmonic_tone(
    midi: float, seconds: float, sr: int = SR, decay: float | None = None, amp: float = 0.3
) -> np.ndarray:
    """A tone with four harmonics (amplitudes 0.6^k), optional exponential decay, 10 ms fades."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
    y = sum(0.6**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(4) if f0 * (k + 1) < sr / 2)
    envelope = np.exp(-t / decay) if decay else np.ones_like(t)
    fades = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return (amp * y * envelope * fades).astype(np.float32)


def note_sequence(notes: list[int | tuple[int, ...]], note_seconds: float, decay: float) -> np.ndarray:
    """Consecutive notes; a tuple is a chord."""
    parts = []
    for note in notes:
        chord = note if isinstance(note, tuple) else (note,)
        parts.append(sum(harmonic_tone(n, note_seconds, decay=decay) for n in chord))
    return np.concatenate(parts)


def burst_grid(
    bpm: float, seconds: float, burst_seconds: float = 0.03, noise: bool = True, seed: int = 0
) -> np.ndarray:
    """Decaying noise bursts (or 2 kHz clicks) on every beat."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), np.float32)
    n = int(burst_seconds * SR)
    envelope = np.exp(-np.arange(n) / (n / 5))
    for start in np.arange(0.0, seconds, 60.0 / bpm):
        source = rng.standard_normal(n) if noise else np.sin(2 * np.pi * 2000 * np.arange(n) / SR)
        i = int(start * SR)
        segment = (0.5 * source * envelope)[: y.size - i]
        y[i : i + segment.size] += segment
    return y


def sustained_chord(seconds: float = 4.0) -> np.ndarray:
    return sum(harmonic_tone(n, seconds) for n in (48, 60, 64, 67))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
