"""Captions for the demo catalogue in the style of MidiCaps, stating what a clip's metadata row says.

"A melancholic, moderately loud, high lead synth arpeggio in the key of F minor at 61 bpm": every caption
names every instrument, the bpm, the key and mode (tonal clips), the groove (drums), the lead's register
and the dynamics, in varied wording; mood and tempo words are optional.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .vocabulary import (
    DRUM_ALIASES,
    DRUM_ON,
    DYNAMICS_ADVERBS,
    DYNAMICS_WORDS,
    GROOVES,
    ALL_INSTRUMENTS,
    MOODS,
    REGISTER_NOUNS,
    REGISTER_WORDS,
    TEMPO_WORDS,
    TEXTURE_NOUNS,
    pick,
)


def _a(phrase: str) -> str:
    """``phrase`` with its indefinite article (empty optional words may leave leading spaces)."""
    phrase = phrase.strip()
    vowel_sound = phrase[:1].lower() in "aeiou" and not phrase.lower().startswith(("one", "uni", "eu"))
    return ("an " if vowel_sound else "a ") + phrase


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:])", r"\1", text).replace(",,", ",")
    return text[0].upper() + text[1:]


def _feel(dynamics: str, bpm: int) -> str:
    """The mood family of a clip: soft or loud, slow or fast."""
    if dynamics == "soft":
        return "calm" if bpm < 110 else "light"
    if bpm >= 110:
        return "lively"
    return "grand" if dynamics == "loud" else "calm"


def _moods(rng: np.random.Generator, row: dict[str, Any]) -> list[str]:
    """Zero, one or two mood words consistent with mode, tempo and dynamics."""
    if rng.random() < 0.45:
        return []
    words = MOODS[(row["mode"] or "drums", _feel(row["dynamics"], row["bpm"]))]
    count = 1 if rng.random() < 0.7 else 2
    return [str(w) for w in rng.choice(words, size=count, replace=False)]


def _part_phrase(rng: np.random.Generator, part: dict[str, Any], groove: str | None, register_word: str) -> str:
    """A noun phrase naming one part, with article where it reads naturally; ``register_word`` may be empty."""
    role = part["role"]
    if role == "drums":
        style = pick(rng, GROOVES[groove].words)
        return pick(
            rng,
            (
                f"{style} drums",
                _a(f"{style} drum beat"),
                f"drums playing {_a(style + ' groove')}",
                _a(f"{style} beat on the drum kit"),
            ),
        )
    alias = pick(rng, ALL_INSTRUMENTS[part["instrument"]].aliases)
    reg = f"{register_word} " if register_word else ""
    if role == "melody":
        return pick(rng, (_a(f"{reg}{alias} melody"), _a(f"{reg}{alias} lead"), f"{_a(reg + 'melody')} on {alias}"))
    if role == "chords":
        return pick(rng, (f"{reg}{alias} chords", f"{reg}chords on {alias}", _a(f"{reg}{alias} chord progression")))
    if role == "arpeggio":
        return pick(rng, (f"{reg}{alias} arpeggios", _a(f"{reg}arpeggiated {alias}"), f"{reg}arpeggios on {alias}"))
    bass = alias if "bass" in alias else f"{alias} bass"
    return pick(rng, (f"{reg}{bass}", _a(f"{reg}{bass} line")))


def write_caption(rng: np.random.Generator, row: dict[str, Any]) -> tuple[str, list[str]]:
    """A MidiCaps-style caption for ``row`` and the mood words it uses. Always names every instrument,
    the bpm, the key and mode (tonal content), the groove (drums), the lead's register and the dynamics.

    Reads the row's ``kind``, ``parts``, ``bpm``, ``tempo``, ``key``, ``mode``, ``register``, ``dynamics``
    and ``groove``; the same ``rng`` state gives the same wording.
    """
    moods = _moods(rng, row)
    mood = _join(moods) if moods else ""
    mood_adj = ", ".join(moods)
    bpm = row["bpm"]
    bpm_text = pick(rng, (f"{bpm} bpm", f"{bpm} BPM", f"{bpm} beats per minute"))
    tempo = pick(rng, TEMPO_WORDS[row["tempo"]]) if rng.random() < 0.5 else ""
    dyn = pick(rng, DYNAMICS_WORDS[row["dynamics"]])
    dyn_adv = pick(rng, DYNAMICS_ADVERBS[row["dynamics"]])
    with_mood = f", {mood}" if mood else ""
    parts = row["parts"]

    if row["kind"] == "percussive":
        style = pick(rng, GROOVES[row["groove"]].words)
        noun = pick(rng, TEXTURE_NOUNS["drums"])
        kit = pick(rng, DRUM_ALIASES)
        on_kit = pick(rng, DRUM_ON)
        drum_noun = noun if "drum" in noun else f"{noun} on {on_kit}"
        templates = (
            lambda: f"{mood_adj} {style} {drum_noun}, {bpm_text}, {dyn}",
            lambda: f"{_a(f'{dyn} {tempo} {style} {drum_noun}')} at {bpm_text}{with_mood}",
            lambda: f"{_a(f'{mood_adj} {style} beat')} on {on_kit} at a tempo of {bpm_text}, played {dyn_adv}",
            lambda: f"{kit} only: {_a(f'{tempo} {style} pattern')} at {bpm_text}, {dyn}{with_mood}",
            lambda: f"{bpm_text} {style} {drum_noun}, {dyn}{' and ' + mood if mood else ''}",
            lambda: f"{_a(f'{mood_adj} {style} groove')} played {dyn_adv} on {on_kit}, tempo {bpm_text}",
            lambda: f"{kit}: {tempo} {style} rhythm, {dyn}, {bpm_text}{with_mood}",
        )
        return _tidy(pick(rng, templates)()), moods

    key = row["key"]
    key_text = pick(rng, (f"in {key}", f"in the key of {key}", f"in {key}"))
    reg = pick(rng, REGISTER_WORDS[row["register"]])
    reg_noun = pick(rng, REGISTER_NOUNS[row["register"]])
    if len(parts) == 1:
        part = parts[0]
        alias = pick(rng, ALL_INSTRUMENTS[part["instrument"]].aliases)
        noun = pick(rng, TEXTURE_NOUNS[part["role"]])
        if part["role"] == "bass" and "bass" in alias:
            noun = pick(rng, ("groove", "riff"))  # not "electric bass bass line"
        templates = (
            lambda: f"{_a(', '.join(w for w in (mood_adj, dyn, reg) if w))} {alias} {noun} {key_text} at {bpm_text}",
            lambda: (
                f"{reg} {alias} playing {_a(f'{tempo} {noun}')} {key_text}, {bpm_text}, {dyn}"
                f"{' and ' + mood if mood else ''}"
            ),
            lambda: (
                f"{_a(noun)} on {_a(f'{reg} {alias}')}. Key: {key}. Tempo: {bpm_text}. Dynamics: {dyn}."
                f"{' Mood: ' + mood + '.' if mood else ''}"
            ),
            lambda: f"{_a(f'{mood_adj} {tempo} {noun}')} played {dyn_adv} on {_a(f'{reg} {alias}')}, {key}, {bpm_text}",
            lambda: (
                f"{_a(f'{mood_adj} piece')} featuring {_a(alias)} playing {_a(f'{tempo} {noun}')} in the "
                f"{reg_noun} register. The piece is {key_text} with a tempo of {bpm_text} and is played {dyn_adv}."
            ),
            lambda: f"{bpm_text} {key} {alias} {noun}, {reg}, {dyn}{with_mood}",
            lambda: f"{alias} {noun} in the {reg_noun} register, {key}, {tempo} {bpm_text}, {dyn}{with_mood}",
            lambda: f"{', '.join(w for w in (dyn, mood_adj) if w)} {noun} for {reg} {alias} {key_text} at {bpm_text}",
        )
        return _tidy(pick(rng, templates)()), moods

    lead = _part_phrase(rng, parts[0], row["groove"], reg)
    rest = [_part_phrase(rng, p, row["groove"], "") for p in parts[1:]]
    everything = _join([lead, *rest])
    style = f"{pick(rng, GROOVES[row['groove']].words)} " if row["groove"] else ""
    templates = (
        lambda: f"{_a(f'{mood_adj} {tempo} {style}piece')} with {everything} {key_text} at {bpm_text}, {dyn}",
        lambda: f"{everything}; {key}, {bpm_text}, {dyn}{with_mood}",
        lambda: f"{lead} backed by {_join(rest)}, {key_text}, {bpm_text}, played {dyn_adv}{with_mood}",
        lambda: (
            f"{dyn} {tempo} {style}track: {everything}. Key: {key}. Tempo: {bpm_text}."
            f"{' Mood: ' + mood + '.' if mood else ''}"
        ),
        lambda: f"{bpm_text} {key} {style}arrangement featuring {everything}, {dyn}{with_mood}",
        lambda: f"{_a(f'{mood_adj} {tempo} arrangement')} for {everything} {key_text}, {bpm_text}, played {dyn_adv}",
    )
    return _tidy(pick(rng, templates)()), moods
