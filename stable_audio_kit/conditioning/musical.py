"""Musical inputs read from the prompt: the tempo as a beat grid, and the key.

Both come from what the prompt names (:mod:`stable_audio_kit.music` reads the words) or from an
override beside it (``bpm=``, ``key=``), and both belong to the prompt: the unconditional half of
guidance gets the negative prompt's tempo and key, or none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..music import Key, check_bpm, key_override
from .base import Conditioner, ConditioningRequest, ModelFacts, per_item, register_conditioner

BEAT_GRID_CHANNELS = 4
KEY_PROFILE_SIZE = 24


def beat_grid(
    bpm: torch.Tensor,
    seconds_start: torch.Tensor | float,
    frames: int,
    sample_rate: int,
    hop_length: int,
    beats_per_bar: int = 4,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The beat and bar phase of every latent frame: ``(B, 4, frames)`` float32.

    Channels are cos and sin of the beat phase, then of the bar phase (``beats_per_bar`` beats), with
    beat 1 at the start of the sound: frame ``f`` of a window starting ``seconds_start`` into the sound
    lies ``seconds_start + f * hop_length / sample_rate`` seconds in. A row whose ``bpm`` is NaN (no
    tempo asked for) is all zeros. ``bpm`` is ``(B,)``; ``seconds_start`` ``(B,)`` or one number.
    """
    bpm = torch.as_tensor(bpm, dtype=torch.float64, device=device)
    if bpm.ndim != 1:
        raise ValueError(f"bpm must be shaped (batch,), got {tuple(bpm.shape)}")
    known = torch.isfinite(bpm)
    if bool((bpm[known] <= 0).any()):
        raise ValueError(f"bpm must be > 0, got {bpm[known & (bpm <= 0)].tolist()}")
    if beats_per_bar < 1:
        raise ValueError(f"beats_per_bar must be >= 1, got {beats_per_bar}")
    start = per_item("seconds_start", seconds_start, bpm.shape[0], bpm.device, torch.float64)
    seconds = start[:, None] + torch.arange(frames, device=bpm.device, dtype=torch.float64) * hop_length / sample_rate
    beats = seconds * torch.where(known, bpm, 0.0)[:, None] / 60.0
    turns = torch.stack([beats % 1.0, (beats % beats_per_bar) / beats_per_bar], dim=1) * (2 * math.pi)
    grid = torch.cat([turns.cos(), turns.sin()], dim=1)[:, [0, 2, 1, 3]]
    return (grid * known[:, None, None]).to(torch.float32)


def max_bpm(model: ModelFacts) -> float:
    """The fastest tempo a beat grid can carry: two latent frames a beat (the frame rate's Nyquist limit)."""
    return 30.0 * model.sample_rate / model.hop_length


@register_conditioner
class BeatGrid(Conditioner):
    """Four input channels ``(B, 4, frames)``: the beat and bar phase at the prompt's tempo ("96 bpm"), or
    at ``bpm=``; zeros for a prompt that names no tempo. A convolution can place onsets on it, which a
    tempo given only as a text token does not allow. Beat 1 is at the start of the sound, four to a bar."""

    name = "beat_grid"
    placement = "channels"
    size = BEAT_GRID_CHANNELS
    override = "bpm"
    description = "beat grid (the prompt's bpm, or bpm=)"

    @classmethod
    def check_override(cls, value) -> float:
        return check_bpm(value)

    def tempi(self, request: ConditioningRequest) -> list[float | None]:
        bpm = request.overrides.get("bpm")
        return [bpm if bpm is not None else p.tempo for p in request.prompts]

    def check(self, request: ConditioningRequest, model: ModelFacts) -> None:
        limit = max_bpm(model)
        bpm = request.overrides.get("bpm")
        if bpm is not None and not 0 < bpm < limit:
            raise ValueError(f"bpm must be above 0 and below {limit:.0f} for this model's latent frame rate, got {bpm}")
        for prompt in request.prompts:
            if bpm is None and prompt.tempo is not None and not 0 < prompt.tempo < limit:
                raise ValueError(
                    f"the {request.role} {prompt.text!r} names a tempo of {prompt.tempo:g} bpm; this model's beat "
                    f"grid takes tempi above 0 and below {limit:.0f}"
                )

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        tempo = torch.tensor([float("nan") if t is None else t for t in self.tempi(request)], dtype=torch.float32)
        return beat_grid(tempo, request.seconds_start, request.frames, model.sample_rate, model.hop_length).to(device)


def key_profile(keys: Sequence[tuple[int, str] | None], device: torch.device | None = None) -> torch.Tensor:
    """``(B, 24)`` float32: the pitch classes of each key's scale (12 values, 1 on the seven notes of
    the major or natural minor scale), then its tonic one-hot (12 values). All zeros for ``None``. Relative
    keys (C major, A minor) share their notes and differ in the tonic."""
    out = torch.zeros(len(keys), KEY_PROFILE_SIZE)
    for row, key in enumerate(keys):
        if key is None:
            continue
        key = Key(*key)  # validates
        for pc in key.pitch_classes:
            out[row, pc] = 1.0
        out[row, 12 + key.tonic] = 1.0
    return out.to(device)


@register_conditioner
class KeyInput(Conditioner):
    """The key the prompt names ("F# minor"), or ``key=``, as 24 FiLM features (:func:`key_profile`);
    zeros for a prompt that names none."""

    name = "key"
    placement = "film"
    size = KEY_PROFILE_SIZE
    override = "key"
    description = "key (the prompt's key, or key=)"

    @classmethod
    def check_override(cls, value) -> Key:
        return key_override(value)

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        key = request.overrides.get("key")
        keys = [key if key is not None else p.key for p in request.prompts]
        return key_profile(keys, device)
