"""A prompt, read once: its text, the tempo and key it names, and the numbers written in it.

:func:`parse_prompt` is the one prompt reader. The pipeline reads each prompt of a request once and
hands the :class:`ParsedPrompt` to every conditioning input, the trainer reads each caption the same
way, and the CLI validates a whole prompt list with it before any model loads. The words for keys and
tempi are :mod:`stable_audio_kit.music`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..music import Key, find_key, find_tempo

if TYPE_CHECKING:
    import torch

# Runs of digits with an optional decimal part ("96", "2.5"): the numbers of a prompt.
NUMBER_PATTERN = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ParsedPrompt:
    """What one prompt asks for.

    Args:
        text: the prompt as written.
        tempo: beats per minute of the first tempo it names ("96 bpm", "at a tempo of 96"), else None.
        key: the first key it names ("F# minor", "B flat major", "in a minor"), else None.
        numbers: ``(start, end, value)`` of every number written in it, in character offsets.
    """

    text: str
    tempo: float | None = None
    key: Key | None = None
    numbers: tuple[tuple[int, int, float], ...] = ()


def parse_prompt(prompt: str | ParsedPrompt) -> ParsedPrompt:
    """Read a prompt (a :class:`ParsedPrompt` is returned as it is)."""
    if isinstance(prompt, ParsedPrompt):
        return prompt
    if not isinstance(prompt, str):
        raise ValueError(f"a prompt must be a string, got {prompt!r} of type {type(prompt).__name__}")
    tempo = find_tempo(prompt)
    key = find_key(prompt)
    numbers = tuple((m.start(), m.end(), float(m.group())) for m in NUMBER_PATTERN.finditer(prompt))
    return ParsedPrompt(prompt, tempo[0] if tempo else None, key[0] if key else None, numbers)


def parse_prompts(prompts: Sequence[str | ParsedPrompt]) -> list[ParsedPrompt]:
    return [parse_prompt(p) for p in prompts]


def parse_key(text: str) -> Key | None:
    """The first key named in ``text`` (``Key`` is a ``(tonic 0-11, mode)`` tuple), else ``None``."""
    found = find_key(text)
    return found[0] if found else None


def prompt_key(prompts: Sequence[str | ParsedPrompt]) -> list[Key | None]:
    """The key each prompt names; ``None`` for a prompt that names none."""
    return [parse_prompt(p).key for p in prompts]


def prompt_tempo(prompts: Sequence[str | ParsedPrompt]) -> torch.Tensor:
    """The tempo each prompt names: ``(B,)`` float32 beats per minute, NaN for a prompt that names none."""
    import torch  # here: the CLI reads prompts before torch is imported

    values = [parse_prompt(p).tempo for p in prompts]
    return torch.tensor([float("nan") if v is None else v for v in values], dtype=torch.float32)
