"""The prompt's text: the CLAP text tower, its tokenizer, and two inputs built on them.

The prompt goes through a frozen CLAP text tower (transformers' LAION CLAP port) and gives token-level
states from a chosen hidden layer (:class:`PromptText`, input ``prompt``). With ``prompt_numbers``
(:class:`PromptNumbers`), the numbers written in a prompt ("96 BPM", "a 2.5 second hit") also reach the
U-Net by value: each token of a number gets an embedding of that number added to its text state. A text
encoder learns a number token such as ``"107"`` as an arbitrary symbol, with nothing saying that it lies
between 106 and 108.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TextConfig
from .base import Conditioner, ConditioningRequest, ModelFacts, register_conditioner
from .prompts import parse_prompts

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2):
    """A byte-level BPE tokenizer in RoBERTa's format (CLAP's), trained on ``texts``.

    With no texts it holds only the 256 byte symbols and the special tokens, which still encodes
    any string: the starting point of a model trained from scratch before its captions are known.
    """
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    backend = bpe._tokenizer
    backend.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


def build_text_encoder(cfg: TextConfig):
    """The CLAP text tower and its tokenizer: loaded from ``cfg.pretrained`` (a local directory in
    transformers' format, e.g. a copy of ``laion/clap-htsat-unfused``) or built with random weights."""
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    if cfg.pretrained:
        path = Path(cfg.pretrained)
        if not path.is_dir():
            raise ValueError(f"text.pretrained {cfg.pretrained!r} is not a local directory")
        # Without its files AutoTokenizer builds an empty tokenizer (special tokens only) instead of failing.
        if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.json")):
            raise ValueError(
                f"text.pretrained {cfg.pretrained!r} has no tokenizer (tokenizer.json or vocab.json); copy RoBERTa's "
                "tokenizer files into it (sak convert clap ... --tokenizer DIR)"
            )
        encoder = ClapTextModelWithProjection.from_pretrained(path, local_files_only=True)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return encoder.eval().requires_grad_(False), tokenizer
    tokenizer = train_tokenizer([])
    if cfg.vocab_size < len(tokenizer):
        raise ValueError(
            f"text.vocab_size must be at least {len(tokenizer)} for the byte-level tokenizer, got {cfg.vocab_size}"
        )
    config = ClapTextConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        projection_dim=cfg.projection_dim,
        # RoBERTa positions start after the padding index, hence the +2.
        max_position_embeddings=cfg.max_length + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # Frozen: eval mode switches dropout off so the same prompt always gives the same states.
    return ClapTextModelWithProjection(config).eval().requires_grad_(False), tokenizer


def tokenize(tokenizer, prompts: Sequence[str], max_length: int, **kwargs):
    """The one tokenization of prompts (padded to ``max_length``) shared by the text states and the prompt numbers.

    A prompt longer than ``max_length`` tokens is truncated, as CLAP's tokenizer does, with a warning naming it
    and the limit (once per prompt)."""
    tokens = tokenizer(
        list(prompts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt", **kwargs
    )
    for text, used in zip(prompts, tokens.attention_mask.sum(-1).tolist()):
        if used >= max_length and text not in _WARNED_TRUNCATED:
            length = len(tokenizer(text, truncation=False).input_ids)
            if length > max_length:
                _warn_truncated(text, length, max_length)
    return tokens


# Prompts already warned about; the warnings stop after a few (a catalogue can hold many long captions).
_WARNED_TRUNCATED: set[str] = set()
_MAX_TRUNCATION_WARNINGS = 10


def _warn_truncated(text: str, length: int, max_length: int) -> None:
    _WARNED_TRUNCATED.add(text)
    if len(_WARNED_TRUNCATED) <= _MAX_TRUNCATION_WARNINGS:
        shown = text if len(text) <= 100 else text[:97] + "..."
        logger.warning(
            "prompt %r is %d tokens long, more than the text encoder's limit of %d: it reads only the first %d "
            "and ignores the rest",
            shown,
            length,
            max_length,
            max_length,
        )
    elif len(_WARNED_TRUNCATED) == _MAX_TRUNCATION_WARNINGS + 1:
        logger.warning("more prompts are longer than %d tokens and truncated; they are not reported", max_length)


@torch.no_grad()
def encode_text(
    text_encoder,
    tokenizer,
    prompts: Sequence[str],
    hidden_layer: int = -2,
    max_length: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states ``(B, L, hidden)`` from ``hidden_layer`` and the attention mask ``(B, L)`` (bool)."""
    num_states = text_encoder.config.num_hidden_layers + 1
    if not -num_states <= hidden_layer < num_states:
        raise ValueError(f"hidden_layer must be in [{-num_states}, {num_states - 1}], got {hidden_layer}")
    if max_length is None:
        max_length = text_encoder.config.max_position_embeddings - 2
    device = device if device is not None else text_encoder.device
    tokens = tokenize(tokenizer, prompts, max_length)
    input_ids = tokens.input_ids.to(device)
    mask = tokens.attention_mask.to(device)
    out = text_encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    return out.hidden_states[hidden_layer], mask.bool()


def prompt_numbers(tokenizer, prompts: Sequence[Any], max_length: int) -> torch.Tensor:
    """The value of the number each token belongs to: ``(B, max_length)`` float32, NaN for other tokens.

    Numbers are runs of digits with an optional decimal part (``"96"``, ``"2.5"``). The tokens are those
    of :func:`encode_text` with the same ``max_length``, so the values line up with the text states. A
    token counts as part of a number if its characters overlap the number's (a number may span several
    tokens, a token may carry a leading space).
    """
    parsed = parse_prompts(prompts)
    tokens = tokenize(tokenizer, [p.text for p in parsed], max_length, return_offsets_mapping=True)
    values = torch.full(tokens.input_ids.shape, float("nan"), dtype=torch.float32)
    for row, (prompt, offsets) in enumerate(zip(parsed, tokens.offset_mapping.tolist())):
        if not prompt.numbers:
            continue
        for col, (start, end) in enumerate(offsets):
            if end <= start:  # special and padding tokens
                continue
            for num_start, num_end, value in prompt.numbers:
                if start < num_end and num_start < end:
                    values[row, col] = value
                    break
    return values


class PromptNumberEmbedding(nn.Module):
    """Embeds numbers ``(B, L)`` (NaN: no number) as ``(B, L, dim)``, zero where there is no number.

    A number is clamped to ``[min_value, max_value]`` and placed on a log scale from 0 to 1, so equal
    ratios (a tempo 5 % faster) are equal steps anywhere in the range; sines and cosines of it at
    ``num_frequencies`` octaves go through a two-layer MLP. The last layer starts at zero, so adding
    the embedding to a trained model leaves its outputs unchanged until it is trained.
    """

    def __init__(self, dim: int, min_value: float, max_value: float, num_frequencies: int = 10) -> None:
        super().__init__()
        if not 0 < min_value < max_value:
            raise ValueError(f"prompt numbers need 0 < min < max, got min={min_value}, max={max_value}")
        self.log_min, self.log_range = math.log(min_value), math.log(max_value) - math.log(min_value)
        self.min_value, self.max_value = min_value, max_value
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(num_frequencies), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * num_frequencies + 1, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        present = ~torch.isnan(values)
        value = values.float().nan_to_num(self.min_value).clamp(self.min_value, self.max_value)
        x = ((value.log() - self.log_min) / self.log_range).unsqueeze(-1)
        angles = x * self.frequencies
        features = torch.cat([x, angles.sin(), angles.cos()], dim=-1)
        return self.mlp(features) * present.unsqueeze(-1).to(features.dtype)


@register_conditioner
class PromptText(Conditioner):
    """The prompt's CLAP token states, projected to the conditioning width: ``(B, L, D)`` tokens."""

    name = "prompt"
    placement = "tokens"
    description = "text"

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> tuple[torch.Tensor, torch.Tensor]:
        if request.text_states is not None:
            states, mask = request.text_states
            return states.to(device), mask.to(device).bool()
        return encode_text(
            model.text_encoder, model.tokenizer, request.texts, hidden_layer=model.text_hidden_layer, device=device
        )

    def null(self, features):
        raise TypeError("the prompt's tokens have no null form of their own: the context is nulled as a whole")

    def make_embedder(self, conditioning_dim: int, text_dim: int) -> nn.Module:
        return nn.Identity() if text_dim == conditioning_dim else nn.Linear(text_dim, conditioning_dim)

    def embed(self, embedder: nn.Module, features: tuple[torch.Tensor, torch.Tensor]):
        states, mask = features
        return embedder(states), mask.bool()


@register_conditioner
class PromptNumbers(Conditioner):
    """The numbers written in the prompt, by value, added to the states of their tokens.

    Options: ``min_value`` and ``max_value``, the log-scale range the numbers are told apart in.
    """

    name = "prompt_numbers"
    placement = "prompt"
    description = "prompt numbers by value"

    def __init__(self, min_value: float = 1.0, max_value: float = 1000.0) -> None:
        if not 0 < min_value < max_value:
            raise ValueError(f"prompt numbers need 0 < min < max, got min={min_value}, max={max_value}")
        self.min_value, self.max_value = float(min_value), float(max_value)

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        # From the prompts' text even when the text states are cached: shards encoded before the input existed work.
        values = prompt_numbers(model.tokenizer, request.prompts, model.text_max_length).to(device)
        if request.text_states is not None and values.shape != request.text_states[1].shape:
            raise ValueError(
                f"the {request.role}s give {values.shape[1]} tokens but the text states have "
                f"{request.text_states[1].shape[1]}: re-encode the latent shards with this model's text encoder "
                "(`sak encode --text`)"
            )
        return values

    def make_embedder(self, conditioning_dim: int, text_dim: int) -> nn.Module:
        return PromptNumberEmbedding(conditioning_dim, self.min_value, self.max_value)

    def embed(self, embedder: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return embedder(features)
