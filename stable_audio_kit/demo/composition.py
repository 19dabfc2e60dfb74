"""Composing the demo catalogue's music: a composition's parameters drawn from a seed, and its notes as MIDI.

:func:`sample_composition` draws what the renditions of one composition share (texture, groove, tempo,
key, registers, progression, patterns), :func:`sample_rendition` what one clip adds (instruments,
dynamics, length), and :func:`compose_midi` writes the notes of a metadata row from the row alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..music import MODES, TONIC_NAMES, Key, key_from_name
from .extra import import_pretty_midi
from .vocabulary import (
    ARPEGGIO_PATTERNS,
    BASS_PATTERNS,
    BASS_RANGE,
    BPM_RANGE,
    CHORD_PATTERNS,
    CLAP,
    CRASH,
    DRUM_NAME,
    DYNAMICS_VELOCITY,
    GROOVES,
    HIT_OFFSET,
    MELODY_RHYTHMS,
    PROGRESSIONS,
    REGISTER_ORDER,
    REGISTER_RANGES,
    ROLE_IDS,
    ROMAN,
    SNARE,
    STEPS_PER_BAR,
    TEXTURE_WEIGHTS,
    TEXTURES,
    VELOCITY_SPREAD,
    Groove,
    Palette,
    instrument_choices,
    texture_registers,
    pick,
)

if TYPE_CHECKING:
    import pretty_midi

MIN_SECONDS = 1.0  # the shortest clip


def _scale_pitches(key: Key, lo: int, hi: int) -> list[int]:
    pcs = set(key.pitch_classes)
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _chord_pcs(key: Key, degree: int) -> tuple[int, int, int]:
    """Pitch classes (root, third, fifth) of the diatonic triad on ``degree``: stacked scale thirds."""
    scale = key.pitch_classes
    return tuple(scale[(degree + k) % 7] for k in (0, 2, 4))  # type: ignore[return-value]


def _place(pc: int, near: float, lo: int, hi: int) -> int:
    """The pitch of class ``pc`` within ``[lo, hi]`` closest to ``near``."""
    options = [p for p in range(lo, hi + 1) if p % 12 == pc]
    return min(options, key=lambda p: (abs(p - near), p))


def _voicings(pcs: Sequence[int], lo: int, hi: int) -> list[tuple[int, ...]]:
    """Closed triad voicings (any inversion) lying entirely within ``[lo, hi]``."""
    out = []
    for base in range(lo, hi + 1):
        if base % 12 not in pcs:
            continue
        chord, p = [base], base
        while len(chord) < len(pcs):
            p += 1
            if p % 12 in pcs and p % 12 not in {c % 12 for c in chord}:
                chord.append(p)
        if chord[-1] <= hi:
            out.append(tuple(chord))
    return out


class _Song:
    """Shared timing and harmony of one composition."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.bpm = row["bpm"]
        self.step = 60.0 / self.bpm / 4
        self.n_bars = max(1, math.ceil(row["samples"] / row["sample_rate"] / (self.step * STEPS_PER_BAR)))
        self.n_steps = self.n_bars * STEPS_PER_BAR
        self.key = key_from_name((row["tonic"], row["mode"])) if row["mode"] else None
        self.chord_steps = STEPS_PER_BAR if self.bpm >= 90 else STEPS_PER_BAR // 2  # slower tempo, faster harmony
        if self.key is not None:
            roman = ROMAN[self.key.mode]
            self.degrees = [roman.index(r) for r in row["progression"]]

    def chord_at(self, step: int) -> tuple[int, int, int]:
        degree = self.degrees[(step // self.chord_steps) % len(self.degrees)]
        return _chord_pcs(self.key, degree)

    def chord_spans(self) -> list[tuple[int, int, tuple[int, int, int]]]:
        return [(s, self.chord_steps, self.chord_at(s)) for s in range(0, self.n_steps, self.chord_steps)]


def _velocity(rng: np.random.Generator, base: int, strong: bool) -> int:
    accent = VELOCITY_SPREAD // 2 if strong else -VELOCITY_SPREAD // 2
    return int(np.clip(base + accent + rng.integers(-VELOCITY_SPREAD // 2, VELOCITY_SPREAD // 2 + 1), 1, 127))


def _note(
    inst: pretty_midi.Instrument, song: _Song, step: float, dur: float, pitch: int, vel: int, legato: float
) -> None:
    import pretty_midi  # there: compose_midi imported it

    start = step * song.step
    inst.notes.append(
        pretty_midi.Note(velocity=vel, pitch=int(pitch), start=start, end=start + dur * song.step * legato)
    )


def _compose_melody(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, lo: int, hi: int, vel: int, pattern: str
) -> None:
    pitches = _scale_pitches(song.key, lo, hi)
    cur = len(pitches) // 2
    for bar in range(song.n_bars):
        rhythm = MELODY_RHYTHMS[rng.integers(len(MELODY_RHYTHMS))]
        step = bar * STEPS_PER_BAR
        for dur in rhythm:
            move = int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]))
            if step % 8 == 0:  # strong beats land on a chord tone near the line
                chord = song.chord_at(step)
                tones = sorted((i for i, p in enumerate(pitches) if p % 12 in chord), key=lambda i: abs(i - cur))
                cur = tones[int(rng.integers(min(2, len(tones))))]
            else:
                cur += move
                if cur < 0 or cur >= len(pitches):  # reflect off the register edges
                    cur -= 2 * move
                cur = int(np.clip(cur, 0, len(pitches) - 1))
            _note(inst, song, step, dur, pitches[cur], _velocity(rng, vel, step % 4 == 0), 0.9)
            step += dur


def _chord_rhythm(pattern: str, span: int) -> list[tuple[int, int]]:
    """``(onset, duration)`` pairs in steps for one chord lasting ``span`` steps."""
    if pattern == "sustained":
        return [(0, span)]
    if pattern == "half notes":
        return [(s, 8) for s in range(0, span, 8)]
    if pattern == "quarters":
        return [(s, 4) for s in range(0, span, 4)]
    if pattern == "eighths":
        return [(s, 2) for s in range(0, span, 2)]
    return [(s + o, d) for s in range(0, span, 8) for o, d in ((0, 3), (3, 3), (6, 2))]  # syncopated


def _compose_chords(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, lo: int, hi: int, vel: int, pattern: str
) -> None:
    prev: tuple[int, ...] | None = None
    for start, span, pcs in song.chord_spans():
        options = _voicings(pcs, lo, hi)
        target = prev if prev is not None else ((lo + hi) / 2,) * 3
        # Smooth voice leading: the voicing closest to the previous chord.
        prev = min(options, key=lambda v: (sum(abs(a - b) for a, b in zip(v, target, strict=True)), v))
        legato = 0.98 if pattern == "sustained" else 0.8
        for onset, dur in _chord_rhythm(pattern, span):
            v = _velocity(rng, vel, (start + onset) % 8 == 0)
            for pitch in prev:
                _note(inst, song, start + onset, dur, pitch, v, legato)


def _compose_arpeggio(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, lo: int, hi: int, vel: int, pattern: str
) -> None:
    sub = 1 if song.bpm <= 100 else 2  # sixteenths at slow tempi, eighths when fast
    for start, span, pcs in song.chord_spans():
        tones = [p for p in range(lo, hi + 1) if p % 12 in pcs][:5]
        order = {
            "up": tones,
            "down": tones[::-1],
            "up-down": tones + tones[-2:0:-1],
            "alberti": [tones[0], tones[2], tones[1], tones[2]],
        }[pattern]
        for k, onset in enumerate(range(0, span, sub)):
            _note(inst, song, start + onset, sub, order[k % len(order)], _velocity(rng, vel, onset % 4 == 0), 0.95)


def _compose_bass(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, lo: int, hi: int, vel: int, pattern: str
) -> None:
    scale = _scale_pitches(song.key, lo, hi)
    for start, span, pcs in song.chord_spans():
        root = _place(pcs[0], 38, lo, hi)
        fifth = _place(pcs[2], root + 7, lo, hi)
        octave = root + 12 if root + 12 <= hi else root
        nxt = _place(song.chord_at(start + span)[0], 38, lo, hi)  # the next chord of the progression
        if pattern == "roots":
            notes = [(s, min(8, span), root) for s in range(0, span, 8)]
        elif pattern == "root-fifth":
            notes = [(s, 4, root if (s // 4) % 2 == 0 else fifth) for s in range(0, span, 4)]
        elif pattern == "eighths":
            notes = [(s, 2, root) for s in range(0, span, 2)]
        elif pattern == "octaves":
            notes = [(s, 2, root if (s // 2) % 2 == 0 else octave) for s in range(0, span, 2)]
        else:  # walking: quarters from the root, stepping through the scale towards the next root
            steps = list(range(0, span, 4))
            j = scale.index(root)
            direction = 1 if nxt >= root else -1
            line = [root]
            for _ in steps[1:]:
                j = int(np.clip(j + direction * int(rng.integers(1, 3)), 0, len(scale) - 1))
                line.append(scale[j])
            notes = [(s, 4, p) for s, p in zip(steps, line, strict=True)]
        for onset, dur, pitch in notes:
            _note(inst, song, start + onset, dur, pitch, _velocity(rng, vel, onset % 8 == 0), 0.9)


def _compose_drums(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, groove: Groove, vel: int, fills: bool
) -> None:
    for bar in range(song.n_bars):
        last_of_four = fills and bar % 4 == 3
        for key, lane in groove.lanes.items():
            for s, mark in enumerate(lane):
                if mark == "-" or (last_of_four and s >= 12 and key in (SNARE, CLAP)):
                    continue
                v = int(np.clip(vel + HIT_OFFSET[mark] + rng.integers(-2, 3), 1, 127))
                _note(inst, song, bar * STEPS_PER_BAR + s, 1, key, v, 1.0)
        if last_of_four:  # a snare run on the last beat, still on the sixteenth grid
            for s in range(12, 16):
                _note(inst, song, bar * STEPS_PER_BAR + s, 1, SNARE, int(np.clip(vel - 20 + 6 * (s - 12), 1, 127)), 1.0)
    if fills:
        _note(inst, song, 0, 4, CRASH, int(np.clip(vel, 1, 127)), 1.0)


def compose_midi(row: dict[str, Any]) -> pretty_midi.PrettyMIDI:
    """Rebuild the notes of a metadata row: one instrument per part, in ``row["parts"]`` order.

    Depends only on the row (``composition_seed``, ``bpm``, ``tonic``/``mode``, ``progression``,
    ``patterns``, ``groove`` and each part's role, program, register and velocity), and enough whole
    bars are composed to cover ``samples``. Each role draws from its own random stream bar by bar, so
    the renditions of one composition share their notes up to the shorter length.
    """
    pretty_midi = import_pretty_midi()
    song = _Song(row)
    midi = pretty_midi.PrettyMIDI(initial_tempo=float(row["bpm"]))
    for part in row["parts"]:
        role = part["role"]
        rng = np.random.default_rng([row["composition_seed"], ROLE_IDS[role]])
        inst = pretty_midi.Instrument(program=part["program"], is_drum=part["is_drum"], name=part["instrument"])
        if role == "drums":
            _compose_drums(inst, song, rng, GROOVES[row["groove"]], part["velocity"], row["patterns"]["fills"])
        else:
            lo, hi = BASS_RANGE if role == "bass" else REGISTER_RANGES[part["register"]]
            compose = {
                "melody": _compose_melody,
                "chords": _compose_chords,
                "arpeggio": _compose_arpeggio,
                "bass": _compose_bass,
            }[role]
            compose(inst, song, rng, lo, hi, part["velocity"], row["patterns"].get(role, ""))
        midi.instruments.append(inst)
    return midi


def sample_composition(rng: np.random.Generator, index: int, palette: Palette | None = None) -> dict[str, Any]:
    """Composition-level choices: everything the renditions of one group share. A restricted ``palette`` draws
    only the textures, registers and grooves its instruments and grooves can play; the default one draws
    exactly what a catalogue without a palette does."""
    restricted = palette is not None and palette.restricted
    names = palette.textures() if restricted else list(TEXTURE_WEIGHTS)
    weights = np.array([TEXTURE_WEIGHTS[n] for n in names], dtype=float)
    texture = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    roles = TEXTURES[texture]
    groove = pick(rng, palette.grooves if restricted else list(GROOVES)) if "drums" in roles else None
    bpm = (
        int(rng.integers(GROOVES[groove].bpm[0], GROOVES[groove].bpm[1] + 1))
        if groove
        else int(rng.integers(BPM_RANGE[0], BPM_RANGE[1] + 1))
    )
    tonal = roles != ("drums",)
    mode = pick(rng, MODES) if tonal else None
    tonic = pick(rng, TONIC_NAMES[mode]) if tonal else None
    # The lead's register; a chord part under a melody sits one register lower.
    lead = roles[0]
    if restricted:
        registers = pick(rng, [r for r in texture_registers(roles) if palette.castings(roles, r)])
        lead_register = registers[lead]
    elif lead == "bass":
        lead_register = "low"
    elif lead == "drums":
        lead_register = None
    elif lead == "melody" and len(roles) > 1:
        lead_register = pick(rng, ("mid", "high"))
    else:
        lead_register = pick(rng, REGISTER_ORDER)
    if not restricted:
        registers = texture_registers(roles, lead_register)[0]
    patterns: dict[str, Any] = {}
    if "chords" in roles:
        patterns["chords"] = pick(rng, CHORD_PATTERNS)
    if "bass" in roles:
        patterns["bass"] = pick(rng, BASS_PATTERNS)
    if "arpeggio" in roles:
        patterns["arpeggio"] = pick(rng, ARPEGGIO_PATTERNS)
    if "drums" in roles:
        patterns["fills"] = bool(rng.integers(2))
    progression = [ROMAN[mode][d] for d in pick(rng, PROGRESSIONS[mode])] if tonal else None
    return {
        "group": f"c{index:05d}",
        "texture": texture,
        "kind": "percussive" if not tonal else ("mixed" if "drums" in roles else "tonal"),
        "roles": roles,
        "registers": registers,
        "bpm": bpm,
        "tonic": tonic,
        "mode": mode,
        "groove": groove,
        "progression": progression,
        "patterns": patterns,
        "composition_seed": int(rng.integers(2**31)),
    }


def sample_rendition(
    rng: np.random.Generator,
    comp: dict[str, Any],
    rendition: int,
    sample_rate: int,
    max_seconds: float,
    palette: Palette | None = None,
) -> dict[str, Any]:
    """A rendition: instruments, dynamics and length of one clip of a composition (notes not yet composed).
    A restricted ``palette`` draws the instruments among the castings it can give the composition."""
    dynamics = pick(rng, tuple(DYNAMICS_VELOCITY))
    velocity = DYNAMICS_VELOCITY[dynamics]
    seconds = round(float(rng.uniform(min(MIN_SECONDS, max_seconds), max_seconds)), 2)
    parts = []
    used: set[str] = set()
    casting = None
    if palette is not None and palette.restricted:
        casting = list(pick(rng, palette.castings(comp["roles"], comp["registers"])))
    for k, role in enumerate(comp["roles"]):
        # Accompaniment sits a little under the lead, still within the same dynamics level.
        part_velocity = velocity if k == 0 or role == "drums" else velocity - VELOCITY_SPREAD // 2
        if role == "drums":
            kit = GROOVES[comp["groove"]].kit
            parts.append(
                {
                    "role": role,
                    "instrument": DRUM_NAME,
                    "program": kit,
                    "is_drum": True,
                    "register": None,
                    "velocity": part_velocity,
                }
            )
            continue
        if casting is not None:
            inst = casting.pop(0)
        else:
            inst = pick(rng, [i for i in instrument_choices(role, comp["registers"][role]) if i.name not in used])
        used.add(inst.name)
        parts.append(
            {
                "role": role,
                "instrument": inst.name,
                "program": inst.program,
                "is_drum": False,
                "register": comp["registers"][role],
                "velocity": part_velocity,
            }
        )
    samples = round(seconds * sample_rate)
    return {
        "dynamics": dynamics,
        "velocity": velocity,
        "seconds": seconds,
        "samples": samples,
        "parts": parts,
        "rendition": rendition,
    }
