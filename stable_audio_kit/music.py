"""Music theory in one place: pitch classes, scales, key names and the words for keys and tempi.

The caption writer of the demo catalogue, the prompt reader of the conditioning and the key
estimator of the evaluation all import these tables and functions, so they cannot disagree on what
"Bb minor" or "120 BPM" means.

Two readers of keys, for two kinds of text:

* :func:`key_from_name` reads a key *label* ("A minor", "Am", "A:minor", "Gb") and refuses anything
  else; metadata columns and key estimators use it.
* :func:`find_key` finds the first key *named in a prompt* ("... in F sharp minor at 90 bpm"). The
  note letter must be upper case ("a major chord" names no key) unless it follows "in"
  ("in a minor").
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NATURALS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1, "sharp": 1, "flat": -1}
MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# How each key's tonic is usually spelled (the fewest accidentals in its signature).
TONIC_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
MODE_WORDS = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}
# Semitones from a major key's tonic up to its relative minor's.
RELATIVE_MINOR = 9


class _KeyFields(NamedTuple):
    tonic: int
    mode: str


class Key(_KeyFields):
    """A major or natural-minor key: ``tonic`` is a pitch class 0-11 (C = 0), ``mode`` "major" or "minor".

    A tuple, so ``Key(10, "major") == (10, "major")``.
    """

    __slots__ = ()

    def __new__(cls, tonic: int, mode: str) -> Key:
        if isinstance(tonic, bool) or not isinstance(tonic, int) or not 0 <= tonic < 12:
            raise ValueError(f"a key's tonic is a pitch class 0-11, got {tonic!r}")
        if mode not in SCALES:
            raise ValueError(f"a key's mode is 'major' or 'minor', got {mode!r}")
        return super().__new__(cls, tonic, mode)

    @property
    def name(self) -> str:
        """Conventionally spelled, e.g. ``"Bb major"``, ``"G# minor"``."""
        return f"{TONIC_NAMES[self.mode][self.tonic]} {self.mode}"

    @property
    def sharp_name(self) -> tuple[str, str]:
        """``(tonic spelled with sharps, mode)``, e.g. ``("A#", "major")``."""
        return PITCH_CLASSES[self.tonic], self.mode

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """The seven pitch classes of the scale, tonic first."""
        return tuple((self.tonic + step) % 12 for step in SCALES[self.mode])

    def transpose(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)


def pitch_class(letter: str, accidental: str = "") -> int:
    """``pitch_class("B", "b") == 10``; ``accidental`` is a symbol (#, ♯, b, ♭) or "sharp"/"flat"."""
    if letter.upper() not in NATURALS or accidental.lower() not in ACCIDENTALS:
        raise ValueError(f"not a note name: {letter + accidental!r}")
    return (NATURALS[letter.upper()] + ACCIDENTALS[accidental.lower()]) % 12


def key_from_name(label: str | tuple[str, str]) -> Key:
    """A key label: ``"A minor"``, ``"A min"``, ``"Am"``, ``"A:minor"``, ``"F# major"``, ``"Gb"`` (a bare
    tonic is major), or a ``(tonic, mode)`` pair. Raises ``ValueError`` naming anything else; "M" is refused
    because a lost case would turn it into minor."""
    if isinstance(label, tuple) and len(label) == 2 and all(isinstance(part, str) for part in label):
        tonic, mode = label[0].strip(), label[1].strip()
    elif isinstance(label, str):
        text = label.strip().replace(":", " ")
        tonic_len = 2 if len(text) > 1 and text[1] in "#♯b♭" else 1
        tonic, mode = text[:tonic_len], text[tonic_len:].strip()
    else:
        raise ValueError(f"a key must be a string like 'A minor' or a (tonic, mode) pair, got {label!r}")
    letter, accidental = tonic[:1].upper(), tonic[1:]
    mode_name = "minor" if mode == "m" else None if mode == "M" else {"": "major", **MODE_WORDS}.get(mode.lower())
    if letter not in NATURALS or accidental not in ("", "#", "♯", "b", "♭") or mode_name is None:
        raise ValueError(f"cannot read the key {label!r}: expected a tonic A-G with optional #/b and major/minor")
    return Key(pitch_class(letter, accidental), mode_name)


# A key named in free text: a note letter, an optional accidental (a symbol, or "sharp"/"flat" after a
# space), then a mode word, or "m" written straight after the note ("C#m").
_KEY_IN_TEXT = re.compile(
    r"(?<![\w#♯♭])(?P<letter>[A-Ga-g])"
    r"(?P<accidental>[#♯b♭]|\s+(?:sharp|flat)\b)?"
    r"(?:\s*(?P<mode>major|minor|maj|min)\b|(?P<m>m)\b)",
    re.IGNORECASE,
)
_IN_BEFORE = re.compile(r"\bin\s+$", re.IGNORECASE)


def find_key(text: str) -> tuple[Key, tuple[int, int]] | None:
    """The first key named in ``text`` and its character span, or ``None``.

    Reads "F# minor", "Bb major", "E♭ min", "B flat major", "F sharp minor", "C#m" and "in a minor". The
    note letter must be upper case unless it follows "in", so "a major chord" is no key; a short "m" must be
    lower case and written against the note ("Am", not "A m" or "AM").
    """
    for match in _KEY_IN_TEXT.finditer(text):
        letter = match.group("letter")
        if letter.islower() and not _IN_BEFORE.search(text[: match.start()]):
            continue
        if match.group("m") is not None and (match.group("m") != "m" or letter.islower()):
            continue
        accidental = (match.group("accidental") or "").strip()
        if accidental in ("B",):  # IGNORECASE also lets "B" through as a flat sign
            continue
        mode = "minor" if match.group("m") else MODE_WORDS[match.group("mode").lower()]
        return Key(pitch_class(letter, accidental), mode), match.span()
    return None


# A tempo named in free text: "120 bpm", "120BPM", "96.5 beats per minute", "at a tempo of 120".
_TEMPO_IN_TEXT = re.compile(
    r"(?P<value>\d+(?:\.\d+)?)\s*(?:bpm|beats\s+per\s+minute)\b|\btempo\s+of\s+(?P<value2>\d+(?:\.\d+)?)\b",
    re.IGNORECASE,
)


def find_tempo(text: str) -> tuple[float, tuple[int, int]] | None:
    """The first tempo named in ``text`` in beats per minute, and the span of its number, or ``None``."""
    match = _TEMPO_IN_TEXT.search(text)
    if match is None:
        return None
    group = "value" if match.group("value") is not None else "value2"
    return float(match.group(group)), match.span(group)


def check_bpm(value) -> float:
    """A tempo given by a user (``bpm=``, ``--bpm``): a finite number > 0; ``ValueError`` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"bpm must be a finite number > 0, got {value!r}")
    return float(value)


def key_override(value) -> Key:
    """A key given by a user (``key=``, ``--key``): text naming a major or minor key ("F# minor"), a key label
    pair ``("F#", "minor")`` or a ``Key``; ``ValueError`` naming it otherwise."""
    if isinstance(value, tuple):
        return key_from_name(value) if all(isinstance(v, str) for v in value) else Key(*value)
    found = find_key(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f'key must name a major or minor key such as "F# minor" or "Bb major", got {value!r}')
    return found[0]


__all__ = [
    "ACCIDENTALS",
    "MODES",
    "NATURALS",
    "PITCH_CLASSES",
    "RELATIVE_MINOR",
    "SCALES",
    "TONIC_NAMES",
    "Key",
    "check_bpm",
    "find_key",
    "find_tempo",
    "key_from_name",
    "key_override",
    "pitch_class",
]
