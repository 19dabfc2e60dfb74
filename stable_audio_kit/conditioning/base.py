"""The conditioning interface: a request, one class per input, a registry, and the CFG rule.

Every conditioning input of a model is one :class:`Conditioner` subclass, registered by name in
:data:`CONDITIONERS`. The model's :class:`~stable_audio_kit.conditioning.ConditioningProjection` lists
which inputs it has and where each goes, and the pipeline, the trainer, ``sak extend`` and ``sak info``
all drive the inputs through this one interface. An input:

* reads its value from a :class:`ConditioningRequest` (the parsed prompts, per-row ``seconds_start``
  and ``seconds_total``, the number of latent frames, and overrides such as ``bpm=``/``key=``);
* validates it (:meth:`Conditioner.check`), raising ``ValueError`` that names the value;
* builds its features (:meth:`Conditioner.features`), which the projection embeds (:meth:`Conditioner.embed`)
  with the module the input asks for (:meth:`Conditioner.make_embedder`);
* says where they go, its :attr:`Conditioner.placement`:

  - ``"tokens"``: ``(B, T, D)`` states with a mask ``(B, T)``, concatenated into the U-Net's
    cross-attention context and/or pooled into its global (FiLM) vector;
  - ``"prompt"``: ``(B, L, D)`` added to the prompt's token states, token by token;
  - ``"channels"``: ``(B, C, frames)`` extra input channels of the U-Net;
  - ``"film"``: ``(B, F)`` features added, through a linear layer that starts at zero, to the
    embedding that drives every residual block's FiLM;
* and gives its unconditional form (:meth:`Conditioner.null`).

The classifier-free-guidance rule is :func:`unconditional`, written once for the pipeline's
unconditional half and the trainer's CFG dropout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from .prompts import ParsedPrompt, parse_prompts

PLACEMENTS = ("tokens", "prompt", "channels", "film")


@dataclass
class ModelFacts:
    """What the conditioning inputs need to know of the model they feed.

    Args:
        sample_rate: audio samples per second.
        hop_length: audio samples per latent frame.
        text_encoder: the frozen CLAP text tower (``None`` if text states are always given).
        tokenizer: its tokenizer.
        text_hidden_layer: which hidden layer gives the token states.
    """

    sample_rate: int
    hop_length: int
    text_encoder: Any = None
    tokenizer: Any = None
    text_hidden_layer: int = -2

    @property
    def text_max_length(self) -> int:
        """Tokens of a prompt: RoBERTa positions start after the padding index, hence the -2."""
        return int(self.text_encoder.config.max_position_embeddings) - 2

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


@dataclass
class ConditioningRequest:
    """What a batch asks for, row by row.

    Args:
        prompts: one :class:`ParsedPrompt` a row.
        seconds_start: ``(B,)`` float64, where the window starts in the sound.
        seconds_total: ``(B,)`` float64, how long the sound is.
        frames: latent frames of the window the U-Net denoises.
        overrides: values given beside the prompt, by the name an input reads (``{"bpm": 120.0}``); they
            hold for every row.
        text_states: cached CLAP states ``((B, L, D), (B, L) bool)``, or ``None`` to encode the prompts.
        role: what the prompts are called in error messages ("prompt", "negative prompt", "caption").
    """

    prompts: list[ParsedPrompt]
    seconds_start: torch.Tensor
    seconds_total: torch.Tensor
    frames: int
    overrides: dict[str, Any] = field(default_factory=dict)
    text_states: tuple[torch.Tensor, torch.Tensor] | None = None
    role: str = "prompt"

    @classmethod
    def make(
        cls,
        prompts: Sequence[str | ParsedPrompt],
        seconds_start: float | torch.Tensor | Sequence[float],
        seconds_total: float | torch.Tensor | Sequence[float],
        frames: int,
        overrides: dict[str, Any] | None = None,
        text_states: tuple[torch.Tensor, torch.Tensor] | None = None,
        role: str = "prompt",
    ) -> ConditioningRequest:
        """A request; one number of seconds holds for every row."""
        parsed = parse_prompts(prompts)
        batch = len(parsed)
        return cls(
            parsed,
            per_item("seconds_start", seconds_start, batch, None, torch.float64),
            per_item("seconds_total", seconds_total, batch, None, torch.float64),
            int(frames),
            {k: v for k, v in (overrides or {}).items() if v is not None},
            text_states,
            role,
        )

    @property
    def batch(self) -> int:
        return len(self.prompts)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    def negative(self, prompts: Sequence[str | ParsedPrompt]) -> ConditioningRequest:
        """The request of the negative prompts: the same timing and frames, no overrides (they belong to the prompt)."""
        return replace(self, prompts=parse_prompts(prompts), overrides={}, text_states=None, role="negative prompt")


def per_item(
    name: str,
    value: torch.Tensor | float | Sequence[float],
    batch: int,
    device: torch.device | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A timing number as ``(batch,)``: one number is broadcast; anything else must have ``batch`` values."""
    value = torch.as_tensor(value, device=device, dtype=dtype).reshape(-1)
    if value.numel() == 1:
        value = value.expand(batch)
    if value.shape[0] != batch:
        raise ValueError(f"{name} has {value.shape[0]} values for a batch of {batch}")
    return value


class Conditioner:
    """One conditioning input. Subclass it, set the class attributes, implement :meth:`features`, and
    register it with :func:`register_conditioner`; then list its name in a model config.

    Class attributes:
        name: the registry name, used in configs.
        placement: where its features go, one of :data:`PLACEMENTS`.
        size: channels (``"channels"``) or features (``"film"``) it gives.
        follows_prompt: True if it belongs to the prompt, so the unconditional half of guidance (and CFG
            dropout in training) replaces it with the negative prompt's value or its null form; False
            if it is kept in both halves (the timing). Cross-attention tokens are always replaced.
        override: the request override it reads (the pipeline keyword, e.g. ``"bpm"``), or None.
        description: a few words for ``sak info``.

    ``options`` are the input's settings from the model config (``conditioning.options.<name>``).
    """

    name: ClassVar[str] = ""
    placement: ClassVar[str] = "tokens"
    size: ClassVar[int] = 0
    follows_prompt: ClassVar[bool] = True
    override: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(f"conditioning input {self.name!r} takes no options, got {sorted(options)}")

    # -- reading and validating
    @classmethod
    def check_override(cls, value: Any) -> Any:
        """Validate the override a user gave (before any model loads) and return it normalised."""
        return value

    def check(self, request: ConditioningRequest, model: ModelFacts) -> None:
        """Raise ``ValueError`` naming the value if the request asks for something this input cannot give."""

    # -- tensors
    def features(self, request: ConditioningRequest, model: ModelFacts, device: torch.device | None) -> Any:
        """The input's features for the batch, before any learned layer (no gradient)."""
        raise NotImplementedError(f"{type(self).__name__} must implement features(), the input's tensors")

    def null(self, features: torch.Tensor) -> torch.Tensor:
        """The unconditional form of ``features``: zeros."""
        return torch.zeros_like(features)

    def make_embedder(self, conditioning_dim: int, text_dim: int) -> nn.Module | None:
        """The learned module the projection holds for this input, or None."""
        return None

    def embed(self, embedder: nn.Module | None, features: Any) -> Any:
        """Features through the embedder: ``(states (B, T, D), mask (B, T))`` for tokens, ``(B, L, D)`` for
        prompt additions; channels and FiLM features pass through as they are."""
        return features


CONDITIONERS: dict[str, type[Conditioner]] = {}


def register_conditioner(cls: type[Conditioner]) -> type[Conditioner]:
    """Class decorator: add a :class:`Conditioner` to :data:`CONDITIONERS` under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.placement not in PLACEMENTS:
        raise ValueError(f"{cls.__name__}.placement must be one of {list(PLACEMENTS)}, got {cls.placement!r}")
    if cls.placement in ("channels", "film") and cls.size < 1:
        raise ValueError(f"{cls.__name__} goes to {cls.placement} and must give a size >= 1, got {cls.size}")
    CONDITIONERS[cls.name] = cls
    return cls


def load_builtin_conditioners() -> None:
    """Register this package's own inputs: their modules register them when imported, and importing
    :mod:`stable_audio_kit.conditioning` imports no module until one of its names is used."""
    from . import musical, text, timing  # noqa: F401


ENTRY_POINT_GROUP = "stable_audio_kit.conditioners"


def load_plugin_conditioners() -> None:
    """Register the inputs other installed packages declare under the ``stable_audio_kit.conditioners`` entry
    point group (``brightness = my_package.inputs:Brightness``), so ``sak`` and saved models find them."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in CONDITIONERS:
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, Conditioner)) or cls.name != entry.name:
                raise ValueError(
                    f"entry point {entry.value!r} in {ENTRY_POINT_GROUP} is not a Conditioner named {entry.name!r}"
                )
            register_conditioner(cls)


def make_conditioner(name: str, options: dict[str, Any] | None = None) -> Conditioner:
    """An instance of the registered input ``name`` (looking in installed packages' entry points if it is not
    registered yet); an unknown name raises ``ValueError`` listing the valid ones."""
    load_builtin_conditioners()
    if name not in CONDITIONERS:
        load_plugin_conditioners()
    if name not in CONDITIONERS:
        raise ValueError(f"unknown conditioning input {name!r}; valid names: {sorted(CONDITIONERS)}")
    return CONDITIONERS[name](**dict(options or {}))


def overrides_by_name() -> dict[str, type[Conditioner]]:
    """``{override keyword: input class}`` of every registered input that reads one."""
    load_builtin_conditioners()
    return {cls.override: cls for cls in CONDITIONERS.values() if cls.override}


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate user overrides (``{"bpm": 120}``) before any model loads; ``None`` values are dropped."""
    known = overrides_by_name()
    out = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known:
            raise ValueError(f"unknown conditioning override {key!r}; valid names: {sorted(known)}")
        out[key] = known[key].check_override(value)
    return out


def check_positive_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass
class Conditioning:
    """Everything the U-Net is conditioned on, for a batch.

    Args:
        encoder_hidden_states: cross-attention context ``(B, L, D)``.
        encoder_attention_mask: ``(B, L)`` bool, True where the context is real.
        global_hidden_states: ``(B, G)`` pooled inputs, or None.
        channels: ``{name: (B, C, frames)}`` extra input channels, in the U-Net's order.
        film: ``{name: (B, F)}`` FiLM features, in the U-Net's order.
        nulls: ``{name: (B, ...)}`` the null form of each channel/FiLM input that follows the prompt.
    """

    encoder_hidden_states: torch.Tensor
    encoder_attention_mask: torch.Tensor
    global_hidden_states: torch.Tensor | None = None
    channels: dict[str, torch.Tensor] = field(default_factory=dict)
    film: dict[str, torch.Tensor] = field(default_factory=dict)
    nulls: dict[str, torch.Tensor] = field(default_factory=dict)

    def _map(self, fn) -> Conditioning:
        return Conditioning(
            fn(self.encoder_hidden_states),
            fn(self.encoder_attention_mask),
            None if self.global_hidden_states is None else fn(self.global_hidden_states),
            {k: fn(v) for k, v in self.channels.items()},
            {k: fn(v) for k, v in self.film.items()},
            {k: fn(v) for k, v in self.nulls.items()},
        )

    def repeat_interleave(self, repeats: int) -> Conditioning:
        """Each row ``repeats`` times in a row (``num_waveforms_per_prompt``)."""
        return self if repeats == 1 else self._map(lambda t: t.repeat_interleave(repeats, 0))

    @staticmethod
    def cat(parts: Sequence[Conditioning]) -> Conditioning:
        """Rows of several conditionings in one batch (the pipeline's ``[unconditional; conditional]``)."""
        first = parts[0]
        return Conditioning(
            torch.cat([p.encoder_hidden_states for p in parts]),
            torch.cat([p.encoder_attention_mask for p in parts]),
            None if first.global_hidden_states is None else torch.cat([p.global_hidden_states for p in parts]),
            {k: torch.cat([p.channels[k] for p in parts]) for k in first.channels},
            {k: torch.cat([p.film[k] for p in parts]) for k in first.film},
            {k: torch.cat([p.nulls[k] for p in parts]) for k in first.nulls},
        )

    def unet_inputs(self) -> dict[str, torch.Tensor | None]:
        """Keyword arguments of :class:`~stable_audio_kit.unet.UNet1DConditionModel`'s forward."""
        return {
            "encoder_hidden_states": self.encoder_hidden_states,
            "encoder_attention_mask": self.encoder_attention_mask,
            "global_hidden_states": self.global_hidden_states,
            "channel_inputs": torch.cat(list(self.channels.values()), dim=1) if self.channels else None,
            "film_inputs": torch.cat(list(self.film.values()), dim=1) if self.film else None,
        }


def null_context(context: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional cross-attention context: zeros, all positions attended (an all-False mask would
    give NaN). With bias-free key/value projections this attends to nothing."""
    return torch.zeros_like(context), torch.ones_like(mask, dtype=torch.bool)


def _rows(rows: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor | bool:
    if rows is None:
        return True
    return rows.to(target.device).reshape(-1, *([1] * (target.ndim - 1)))


def unconditional(
    cond: Conditioning, negative: Conditioning | None = None, rows: torch.Tensor | None = None
) -> Conditioning:
    """The classifier-free-guidance rule, the one place it is written.

    The unconditional form of ``cond``, for the rows where ``rows`` ``(B,)`` is True (all rows if None):

    * the cross-attention context is the negative prompt's, or else the null context (zeros, attended
      everywhere), for text and timing tokens alike;
    * the global vector is kept: the timing tells the length in both halves, so guidance pushes towards
      the text, not away from the requested length;
    * a channel or FiLM input that follows the prompt (tempo, key) takes the negative prompt's value, or
      else its null form; one that does not (the timing mask) is kept.

    The pipeline calls it for its unconditional half (``negative`` from the negative prompts, all rows);
    the trainer for CFG dropout (``rows`` the dropped samples, no negative).
    """
    if negative is not None:
        context, mask = negative.encoder_hidden_states, negative.encoder_attention_mask
    else:
        context, mask = null_context(cond.encoder_hidden_states, cond.encoder_attention_mask)
    if rows is not None:
        context = torch.where(_rows(rows, context), context, cond.encoder_hidden_states)
        mask = torch.where(_rows(rows, mask), mask, cond.encoder_attention_mask.bool())

    def swap(name: str, current: torch.Tensor, other: dict[str, torch.Tensor]) -> torch.Tensor:
        if name not in cond.nulls:  # kept in both halves
            return current
        value = other[name] if negative is not None else cond.nulls[name]
        return value if rows is None else torch.where(_rows(rows, current), value, current)

    return Conditioning(
        context,
        mask,
        cond.global_hidden_states,
        {k: swap(k, v, negative.channels if negative is not None else {}) for k, v in cond.channels.items()},
        {k: swap(k, v, negative.film if negative is not None else {}) for k, v in cond.film.items()},
        cond.nulls,
    )
