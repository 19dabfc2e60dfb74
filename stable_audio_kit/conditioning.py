"""Text and timing conditioning.

The prompt goes through a frozen CLAP text tower (transformers' LAION CLAP port) and gives
token-level states from a chosen hidden layer. ``seconds_start`` and ``seconds_total`` go through
learned number embeddings (diffusers' Stable Audio number conditioner). :class:`ConditioningProjection`
routes the named conditions into the U-Net's cross-attention context and its global vector, as set
in its config, and every conditioner yields ``(embeddings (B, T, D), mask (B, T))``.

With ``prompt_numbers``, the numbers written in a prompt ("96 BPM", "a 2.5 second hit") also reach the
U-Net by value: each token of a number gets an embedding of that number added to its text state
(:func:`prompt_numbers`, :class:`PromptNumberEmbedding`). A text encoder learns a number token such as
``"107"`` as an arbitrary symbol, with nothing saying that it lies between 106 and 108.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioNumberConditioner
from diffusers.utils import BaseOutput
from torch import nn
from transformers import ClapTextConfig, ClapTextModelWithProjection, PreTrainedTokenizerBase, RobertaTokenizer

from .config import CONDITION_NAMES, TextConfig

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> RobertaTokenizer:
    """A byte-level BPE tokenizer in RoBERTa's format (CLAP's), trained on ``texts``.

    With no texts it holds only the 256 byte symbols and the special tokens, which still encodes
    any string: the starting point of a model trained from scratch before its captions are known.
    """
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

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


def build_text_encoder(cfg: TextConfig) -> tuple[ClapTextModelWithProjection, PreTrainedTokenizerBase]:
    """The CLAP text tower and its tokenizer: loaded from ``cfg.pretrained`` (a local directory in
    transformers' format, e.g. a copy of ``laion/clap-htsat-unfused``) or built with random weights."""
    if cfg.pretrained:
        path = Path(cfg.pretrained)
        if not path.is_dir():
            raise ValueError(f"text.pretrained {cfg.pretrained!r} is not a local directory")
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


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int, **kwargs):
    """The one tokenization of prompts (padded to ``max_length``) shared by the text states and the prompt numbers."""
    return tokenizer(
        list(prompts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt", **kwargs
    )


NUMBER_PATTERN = re.compile(r"\d+(?:\.\d+)?")


def prompt_numbers(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int) -> torch.Tensor:
    """The value of the number each token belongs to: ``(B, max_length)`` float32, NaN for other tokens.

    Numbers are runs of digits with an optional decimal part (``"96"``, ``"2.5"``). The tokens are those
    of :func:`encode_text` with the same ``max_length``, so the values line up with the text states. A
    token counts as part of a number if its characters overlap the number's (a number may span several
    tokens, a token may carry a leading space).
    """
    tokens = tokenize(tokenizer, prompts, max_length, return_offsets_mapping=True)
    values = torch.full(tokens.input_ids.shape, float("nan"), dtype=torch.float32)
    for row, (prompt, offsets) in enumerate(zip(prompts, tokens.offset_mapping.tolist())):
        spans = [(m.start(), m.end(), float(m.group())) for m in NUMBER_PATTERN.finditer(prompt)]
        if not spans:
            continue
        for col, (start, end) in enumerate(offsets):
            if end <= start:  # special and padding tokens
                continue
            for num_start, num_end, value in spans:
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


@torch.no_grad()
def encode_text(
    text_encoder: ClapTextModelWithProjection,
    tokenizer: PreTrainedTokenizerBase,
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


@dataclass
class ConditioningOutput(BaseOutput):
    """
    Args:
        encoder_hidden_states: cross-attention context ``(B, L, conditioning_dim)``.
        encoder_attention_mask: ``(B, L)`` bool, True where the context is real.
        global_hidden_states: ``(B, global_dim)``, added to the U-Net's timestep embedding.
    """

    encoder_hidden_states: torch.Tensor
    encoder_attention_mask: torch.Tensor
    global_hidden_states: torch.Tensor | None = None


def per_item(
    name: str, value: torch.Tensor | float, batch: int, device: torch.device | None, dtype: torch.dtype
) -> torch.Tensor:
    """A timing number as ``(batch,)``: one number is broadcast; anything else must have ``batch`` values."""
    value = torch.as_tensor(value, device=device, dtype=dtype).reshape(-1)
    if value.numel() == 1:
        value = value.expand(batch)
    if value.shape[0] != batch:
        raise ValueError(f"{name} has {value.shape[0]} values for a batch of {batch}")
    return value


class ConditioningProjection(ModelMixin, ConfigMixin):
    """Projects text states into the conditioning space, embeds the timing numbers, and routes them.

    ``cross_attention`` lists the conditions concatenated (in order, along the token axis) into the
    U-Net's cross-attention context; ``global_cond`` lists those pooled and concatenated along the
    feature axis into the global vector (a text condition is pooled by its masked mean).
    """

    @register_to_config
    def __init__(
        self,
        text_encoder_dim: int = 768,
        conditioning_dim: int = 768,
        min_seconds: float = 0.0,
        max_seconds: float = 512.0,
        cross_attention: tuple[str, ...] | list[str] = CONDITION_NAMES,
        global_cond: tuple[str, ...] | list[str] = ("seconds_start", "seconds_total"),
        text_hidden_layer: int = -2,
        number_internal_dim: int = 256,
        prompt_numbers: bool = False,
        prompt_number_min: float = 1.0,
        prompt_number_max: float = 1000.0,
    ):
        super().__init__()
        for group, names in (("cross_attention", cross_attention), ("global_cond", global_cond)):
            unknown = [n for n in names if n not in CONDITION_NAMES]
            if unknown:
                raise ValueError(f"unknown condition {unknown[0]!r} in {group}; valid names: {list(CONDITION_NAMES)}")
        if not cross_attention:
            raise ValueError("cross_attention must name at least one condition")
        if not max_seconds > min_seconds:
            raise ValueError(f"max_seconds must be greater than min_seconds ({min_seconds}), got {max_seconds}")
        self.text_projection = (
            nn.Identity() if text_encoder_dim == conditioning_dim else nn.Linear(text_encoder_dim, conditioning_dim)
        )
        self.number_embedders = nn.ModuleDict(
            {
                name: StableAudioNumberConditioner(conditioning_dim, min_seconds, max_seconds, number_internal_dim)
                for name in ("seconds_start", "seconds_total")
            }
        )
        self.prompt_number_embedder = (
            PromptNumberEmbedding(conditioning_dim, prompt_number_min, prompt_number_max) if prompt_numbers else None
        )

    @property
    def global_dim(self) -> int:
        return len(self.config.global_cond) * self.config.conditioning_dim

    def embed(
        self,
        text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        seconds_start: torch.Tensor,
        seconds_total: torch.Tensor,
        prompt_numbers: torch.Tensor | None = None,
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each named condition as ``(embeddings (B, T, D), mask (B, T))``."""
        batch = text_hidden_states.shape[0]
        text = self.text_projection(text_hidden_states)
        if self.prompt_number_embedder is not None:
            if prompt_numbers is None:
                raise ValueError(
                    "this projection embeds the numbers of the prompt (prompt_numbers=True): pass prompt_numbers, "
                    "from stable_audio_kit.conditioning.prompt_numbers"
                )
            if prompt_numbers.shape != text.shape[:2]:
                raise ValueError(
                    f"prompt_numbers has shape {tuple(prompt_numbers.shape)}, the text states {tuple(text.shape[:2])}"
                )
            text = text + self.prompt_number_embedder(prompt_numbers.to(text.device)).to(text.dtype)
        conds = {"prompt": (text, text_attention_mask.bool())}
        for name, value in (("seconds_start", seconds_start), ("seconds_total", seconds_total)):
            value = per_item(name, value, batch, text_hidden_states.device, torch.float32)
            emb = self.number_embedders[name](value).to(text_hidden_states.dtype)
            conds[name] = (emb, torch.ones(batch, 1, dtype=torch.bool, device=emb.device))
        return conds

    def forward(
        self,
        text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        seconds_start: torch.Tensor | float,
        seconds_total: torch.Tensor | float,
        prompt_numbers: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> ConditioningOutput | tuple:
        """
        Args:
            text_hidden_states: ``(B, L, text_encoder_dim)`` CLAP token states.
            text_attention_mask: ``(B, L)``, nonzero where a token is real.
            seconds_start, seconds_total: ``(B,)`` seconds, or one number for the whole batch.
            prompt_numbers: ``(B, L)`` value of the number each token is part of, NaN elsewhere
                (:func:`prompt_numbers`); required with ``prompt_numbers=True``, ignored otherwise.
        """
        conds = self.embed(text_hidden_states, text_attention_mask, seconds_start, seconds_total, prompt_numbers)
        context = torch.cat([conds[n][0] for n in self.config.cross_attention], dim=1)
        mask = torch.cat([conds[n][1] for n in self.config.cross_attention], dim=1)
        pooled = []
        for name in self.config.global_cond:
            emb, m = conds[name]
            weights = m.to(emb.dtype).unsqueeze(-1)
            pooled.append((emb * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        global_states = torch.cat(pooled, dim=-1) if pooled else None
        if not return_dict:
            return context, mask, global_states
        return ConditioningOutput(context, mask, global_states)


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


# "96 bpm", "96 BPM", "96.5 beats per minute": the tempo written in a prompt.
TEMPO_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats\s+per\s+minute)\b", re.IGNORECASE)
BEAT_GRID_CHANNELS = 4


def prompt_tempo(prompts: Sequence[str]) -> torch.Tensor:
    """The tempo each prompt names (``"... at 96 BPM"``, ``"96 beats per minute"``): ``(B,)`` float32 in
    beats per minute, NaN for a prompt that names none. The first tempo of a prompt wins."""
    values = []
    for prompt in prompts:
        match = TEMPO_PATTERN.search(prompt)
        values.append(float(match.group(1)) if match else float("nan"))
    return torch.tensor(values, dtype=torch.float32)


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


# "C major", "F# minor", "Bb min", "E♭ major": the key written in a prompt. The note letter is upper case,
# so "a major chord" is not read as A major.
KEY_PATTERN = re.compile(r"(?<![\w#♯♭])([A-G])([#♯b♭]?)\s*(major|minor|maj|min)\b", re.IGNORECASE)
KEY_PROFILE_SIZE = 24
_NOTE_PCS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def parse_key(text: str) -> tuple[int, str] | None:
    """``(tonic pitch class 0-11, "major" | "minor")`` of the first key named in ``text``, else ``None``."""
    for match in KEY_PATTERN.finditer(text):
        letter, accidental, mode = match.groups()
        if letter != letter.upper():  # IGNORECASE is for the mode word only
            continue
        shift = {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)
        return (_NOTE_PCS[letter] + shift) % 12, "major" if mode.lower().startswith("maj") else "minor"
    return None


def prompt_key(prompts: Sequence[str]) -> list[tuple[int, str] | None]:
    """The key each prompt names (see :func:`parse_key`); ``None`` for a prompt that names none."""
    return [parse_key(prompt) for prompt in prompts]


def key_profile(keys: Sequence[tuple[int, str] | None], device: torch.device | None = None) -> torch.Tensor:
    """``(B, 24)`` float32: the pitch classes of each key's scale (12 values, 1 on the seven notes of
    the major or natural minor scale), then its tonic one-hot (12 values). All zeros for ``None``. Relative
    keys (C major, A minor) share their notes and differ in the tonic."""
    out = torch.zeros(len(keys), KEY_PROFILE_SIZE)
    for row, key in enumerate(keys):
        if key is None:
            continue
        tonic, mode = key
        if not (isinstance(tonic, int) and 0 <= tonic < 12) or mode not in _SCALES:
            raise ValueError(f"a key is (tonic pitch class 0-11, 'major' or 'minor'), got {key!r}")
        for step in _SCALES[mode]:
            out[row, (tonic + step) % 12] = 1.0
        out[row, 12 + tonic] = 1.0
    return out.to(device)
