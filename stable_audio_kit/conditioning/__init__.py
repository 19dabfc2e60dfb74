"""Conditioning: every input a model is conditioned on, as one interface.

* :mod:`.base`: :class:`ConditioningRequest`, the :class:`Conditioner` base class, the registry
  :data:`CONDITIONERS`, :class:`Conditioning` (what the U-Net gets) and :func:`unconditional`, the
  classifier-free-guidance rule.
* :mod:`.prompts`: :func:`parse_prompt`, the one reader of a prompt's tempo, key and numbers.
* :mod:`.text`: the CLAP text tower and the ``prompt`` and ``prompt_numbers`` inputs.
* :mod:`.timing`: the ``seconds_start``, ``seconds_total`` and ``timing_mask`` inputs.
* :mod:`.musical`: the ``beat_grid`` and ``key`` inputs.
* :mod:`.projection`: :class:`ConditioningProjection`, the saved component that routes the inputs.

A new input is one :class:`Conditioner` subclass registered with :func:`register_conditioner` and its
name in a model config (``docs/conditioning.md`` walks through one).
"""

from __future__ import annotations

import importlib
from typing import Any

# Importing this package imports none of its modules; each name is imported on first use (PEP 562). The
# prompt reader (.prompts) needs neither torch nor diffusers, so the CLI checks prompts before either loads.
# Every other name first imports the built-in inputs, which register themselves in CONDITIONERS.
_MODULES = {
    "base": (
        "CONDITIONERS",
        "PLACEMENTS",
        "Conditioner",
        "Conditioning",
        "ConditioningRequest",
        "ModelFacts",
        "check_overrides",
        "make_conditioner",
        "null_context",
        "per_item",
        "register_conditioner",
        "unconditional",
    ),
    "musical": (
        "BEAT_GRID_CHANNELS",
        "KEY_PROFILE_SIZE",
        "BeatGrid",
        "KeyInput",
        "beat_grid",
        "key_profile",
        "max_bpm",
    ),
    "projection": ("ConditioningProjection",),
    "prompts": (
        "NUMBER_PATTERN",
        "ParsedPrompt",
        "parse_key",
        "parse_prompt",
        "parse_prompts",
        "prompt_key",
        "prompt_tempo",
    ),
    "text": (
        "SPECIAL_TOKENS",
        "PromptNumberEmbedding",
        "PromptNumbers",
        "PromptText",
        "build_text_encoder",
        "encode_text",
        "prompt_numbers",
        "tokenize",
        "train_tokenizer",
    ),
    "timing": ("SecondsStart", "SecondsTotal", "TimingMask", "timing_mask"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "ModelMixin":
        # Saved pipelines name this package as the projection's library (["stable_audio_kit.conditioning",
        # "ConditioningProjection"]); diffusers looks the loading base class up on that module, so it must be here.
        from diffusers.models.modeling_utils import ModelMixin

        value = ModelMixin
    elif name in _LAZY:
        if _LAZY[name] != "prompts":
            from .base import load_builtin_conditioners

            load_builtin_conditioners()
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BEAT_GRID_CHANNELS",
    "CONDITIONERS",
    "KEY_PROFILE_SIZE",
    "NUMBER_PATTERN",
    "PLACEMENTS",
    "SPECIAL_TOKENS",
    "BeatGrid",
    "Conditioner",
    "Conditioning",
    "ConditioningProjection",
    "ConditioningRequest",
    "KeyInput",
    "ModelFacts",
    "ParsedPrompt",
    "PromptNumberEmbedding",
    "PromptNumbers",
    "PromptText",
    "SecondsStart",
    "SecondsTotal",
    "TimingMask",
    "beat_grid",
    "build_text_encoder",
    "check_overrides",
    "encode_text",
    "key_profile",
    "make_conditioner",
    "max_bpm",
    "null_context",
    "parse_key",
    "parse_prompt",
    "parse_prompts",
    "per_item",
    "prompt_key",
    "prompt_numbers",
    "prompt_tempo",
    "register_conditioner",
    "timing_mask",
    "tokenize",
    "train_tokenizer",
    "unconditional",
]
