"""Helpers shared by the data tests: tiny audio files, a fake VAE and a fake text encoder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

SR = 1000


def write_tone(path: Path, seconds: float, sr: int = SR, channels: int = 1, subtype: str | None = None, amp=0.5):
    """A sine of ``seconds`` (rounded to whole samples) at ``sr``; returns the written ``(samples, channels)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    data = np.stack([amp * np.sin(2 * np.pi * (7 + c) * t) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, sr, subtype=subtype)
    return data


def write_ramp(path: Path, n: int, sr: int = SR) -> np.ndarray:
    """A float WAV whose sample ``i`` is ``i / n``, so a crop's content identifies its offset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(n) / n).astype(np.float32)
    sf.write(str(path), data, sr, subtype="FLOAT")
    return data


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


class FakeDist:
    def __init__(self, mean: torch.Tensor) -> None:
        self.mean = mean

    def mode(self) -> torch.Tensor:
        return self.mean


class FakeVAE(torch.nn.Module):
    """Strided average pooling with the VAE interface: ``(B, C, N) -> (B, 2C, N / hop)``."""

    hop_length = 10

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=0.5)
        self.calls: list[tuple[int, ...]] = []
        self.offset = offset  # what silence encodes to (a real VAE's biases make it nonzero)

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        assert not torch.is_grad_enabled()
        self.calls.append(tuple(x.shape))
        pooled = F.avg_pool1d(x, self.hop_length) + self.offset
        return SimpleNamespace(latent_dist=FakeDist(torch.cat([pooled, -pooled], dim=1)))


def fake_text_encode(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token count = words + 1, hidden size 3; padded to the longest caption of the batch."""
    lengths = [len(c.split()) + 1 for c in captions]
    longest = max(lengths)
    hidden = torch.zeros(len(captions), longest, 3)
    mask = torch.zeros(len(captions), longest, dtype=torch.bool)
    for row, n in enumerate(lengths):
        hidden[row, :n] = float(n)
        mask[row, :n] = True
    return hidden, mask
