"""Timing inputs: ``seconds_start`` and ``seconds_total`` (Stable Audio's), and the timing mask.

``seconds_start`` is where the window starts in the sound and ``seconds_total`` how long the sound
is: a training crop's offset in its file and the file's duration, and at sampling time 0 and the
requested length. Each goes through a learned number embedding (diffusers' Stable Audio number
conditioner). The timing mask lays the same facts out along the latent frames, 1 where the sound is
and 0 where silence follows, which a small U-Net needs to fall silent where it should.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Conditioner, ConditioningRequest, ModelFacts, per_item, register_conditioner


class Seconds(Conditioner):
    """A timing number through a learned number embedding: one ``(B, 1, D)`` token. Kept under CFG in the
    global vector; as a cross-attention token it is nulled with the rest of the context."""

    placement = "tokens"
    follows_prompt = False

    def __init__(self, min_seconds: float = 0.0, max_seconds: float = 512.0, internal_dim: int = 256) -> None:
        if not max_seconds > min_seconds:
            raise ValueError(f"max_seconds must be greater than min_seconds ({min_seconds}), got {max_seconds}")
        self.min_seconds, self.max_seconds, self.internal_dim = (
            float(min_seconds),
            float(max_seconds),
            int(internal_dim),
        )

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        return getattr(request, self.name).to(device)

    def check(self, request: ConditioningRequest, model: ModelFacts) -> None:
        # Beyond max_seconds the embedding saturates (it clamps): a long-form window far into a long sound
        # is told the truth, as far as the embedding can say it.
        values = getattr(request, self.name)
        bad = values[~torch.isfinite(values) | (values < 0)]
        if bad.numel():
            raise ValueError(f"{self.name} must be a finite number >= 0, got {bad[0].item():g}")

    def make_embedder(self, conditioning_dim: int, text_dim: int) -> nn.Module:
        from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioNumberConditioner

        return StableAudioNumberConditioner(conditioning_dim, self.min_seconds, self.max_seconds, self.internal_dim)

    def embed(self, embedder: nn.Module, features: torch.Tensor):
        emb = embedder(features.to(torch.float32))
        return emb, torch.ones(emb.shape[0], 1, dtype=torch.bool, device=emb.device)


@register_conditioner
class SecondsStart(Seconds):
    name = "seconds_start"
    description = "seconds_start"


@register_conditioner
class SecondsTotal(Seconds):
    name = "seconds_total"
    description = "seconds_total"


def timing_mask(
    seconds_start: torch.Tensor | float,
    seconds_total: torch.Tensor | float,
    batch: int,
    frames: int,
    sample_rate: int,
    hop_length: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Which latent frames of a window the requested audio covers: ``(batch, frames)`` float, 1 then 0.

    A window starts ``seconds_start`` into a sound ``seconds_total`` long (the training crops' meaning of
    the two numbers), so the sound fills its first ``seconds_total - seconds_start`` seconds and
    silence follows. A frame counts if any of its ``hop_length`` samples is sound, the rule by which the
    training data marks a short file's real frames. ``seconds_start``/``seconds_total`` are ``(batch,)``
    or one number for the whole batch.
    """
    start = per_item("seconds_start", seconds_start, batch, device, torch.float64)
    total = per_item("seconds_total", seconds_total, batch, device, torch.float64)
    samples = torch.round((total - start) * sample_rate).clamp(min=0)
    covered = torch.ceil(samples / hop_length)
    frame = torch.arange(frames, device=covered.device, dtype=torch.float64)
    return (frame[None, :] < covered[:, None]).to(torch.float32)


@register_conditioner
class TimingMask(Conditioner):
    """One input channel ``(B, 1, frames)``: 1 on the frames the requested audio covers, 0 after. Timing,
    so it is kept in both halves of guidance."""

    name = "timing_mask"
    placement = "channels"
    size = 1
    follows_prompt = False
    description = "timing mask channel"

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        mask = timing_mask(
            request.seconds_start,
            request.seconds_total,
            request.batch,
            request.frames,
            model.sample_rate,
            model.hop_length,
            device,
        )
        return mask[:, None]
