"""A procedural demo catalogue: MIDI composed with pretty_midi, rendered with FluidSynth, captioned MidiCaps-style.

``make_catalogue(out_dir)`` writes a small, fully labelled text-to-audio data set without any download
beyond a General MIDI SoundFont, for smoke-testing training, timing conditioning and evaluation::

    OUT_DIR/
      metadata.jsonl            one JSON row per clip (see below), ordered by clip index
      train/00000_piano-melody.wav
      valid/00007_house-drums.wav

Every clip is a short piece composed from a seed: melodies, chord progressions, arpeggios and bass
lines on General MIDI instruments, drum grooves on the GM drum channel, and combinations of them.
A *composition* (key, mode, tempo, register, progression, notes) is rendered one to three times with
different instruments, dynamics and lengths; those renditions share a ``group`` and always land in
the same split, so train and valid share no music.

Each metadata row holds ``path`` (relative to OUT_DIR), ``caption``, ``split`` (train|valid),
``group``, ``seconds`` / ``samples`` / ``sample_rate`` (``samples == round(seconds * sample_rate)``
is the exact length of the file), ``kind`` (percussive|tonal|mixed), ``texture``, ``instruments``
and ``programs`` (GM programs; the drum kit's program for drums), ``parts`` (role, instrument,
program, is_drum, register, velocity, median MIDI pitch and note count of every part), ``bpm``,
``tempo`` (slow|moderate|fast), ``tonic`` / ``mode`` / ``key`` (null for drums only), ``register``
and ``median_midi_pitch`` of the lead part, ``dynamics`` and its ``velocity``, ``mood`` (the mood
words used in the caption, possibly none), ``groove`` (drum style or null), ``progression`` (roman
numerals), ``patterns``, ``seed`` (catalogue seed), ``composition_seed``, ``rendition``,
``transposed_from`` (the index of the clip this one is a transposed copy of, else null; see
``make_catalogue(transpositions=)``) and ``soundfont``. :func:`compose_midi` rebuilds a row's notes from the row alone.

Audio is mono 16-bit PCM WAV at ``sample_rate`` (FluidSynth's stereo output averaged), with a fixed
synthesiser gain and no normalisation so that the velocity behind ``dynamics`` stays audible as
loudness. Events sit on FluidSynth's 64-sample processing grid (within 1.5 ms at 22.05 kHz). Each
clip is rendered by a fresh synthesiser (sample data stays cached), so a clip's audio depends only
on its row and the SoundFont, not on rendering order; the same seed gives byte-identical files.

Needs ``libfluidsynth3`` and a GM SoundFont (``timgm6mb-soundfont``) from apt and ``pyfluidsynth``
from pip.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import soundfile as sf

from ..utils import atomic_path, atomic_write_text, check_writable

logger = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install -y --no-install-recommends libfluidsynth3 timgm6mb-soundfont"
PIP_HINT = "pip install pyfluidsynth"
SOUNDFONT_ENV = "SAK_SOUNDFONT"
SOUNDFONT_DIRS: tuple[Path, ...] = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
# Small and fast first: TimGM6mb is 6 MB, FluidR3 148 MB.
SOUNDFONT_NAMES: tuple[str, ...] = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2", "FluidR3_GS.sf2")

DEFAULT_SAMPLE_RATE = 22050
DEFAULT_MAX_SECONDS = 10.0
DEFAULT_CLIPS = 200
MIN_SECONDS = 1.0
FADE_SECONDS = 0.02
# Fixed FluidSynth gain: leaves loud four-part clips below full scale without per-clip normalisation,
# which would erase the difference between soft and loud.
SYNTH_GAIN = 0.5
FLUID_BLOCK = 64  # FluidSynth applies events at the start of its 64-sample blocks
DRUM_CHANNEL = 9
STEPS_PER_BAR = 16  # 4/4 on a sixteenth-note grid

# ---------------------------------------------------------------------------------------------------
# Musical vocabulary
# ---------------------------------------------------------------------------------------------------

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TONIC_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
ROMAN = {"major": ("I", "ii", "iii", "IV", "V", "vi", "viidim"), "minor": ("i", "iidim", "III", "iv", "v", "VI", "VII")}
# Diatonic progressions as scale degrees (0 = tonic); diminished triads left out so every chord is stable.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 5), (0, 3, 0, 4), (5, 3, 0, 4), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 5, 4), (0, 5, 3, 4), (0, 2, 6, 3), (0, 3, 6, 2)),
}

# Register note ranges with gaps between them, so the median pitch alone tells the register apart.
REGISTER_RANGES = {"low": (38, 53), "mid": (57, 72), "high": (76, 91)}
BASS_RANGE = (28, 52)  # bass lines; their register is "low" (median below the mid range)
REGISTER_ORDER = ("low", "mid", "high")

DYNAMICS_VELOCITY = {"soft": 48, "medium": 80, "loud": 112}
VELOCITY_SPREAD = 6  # accent and jitter each move a note by at most this much, keeping the levels apart
TEMPO_WORD_LIMITS = ((80, "slow"), (120, "moderate"), (10_000, "fast"))
BPM_RANGE = (60, 160)


class Instrument:
    """A General MIDI melodic instrument: caption aliases, roles it can play and registers it sounds good in."""

    def __init__(self, name: str, program: int, aliases: Sequence[str], roles: str, registers: str) -> None:
        self.name = name
        self.program = program
        self.aliases = (name, *aliases)
        self.roles = frozenset(roles.split())
        self.registers = tuple(registers.split())


INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("piano", 0, ("grand piano", "acoustic piano"), "melody chords arpeggio", "low mid high"),
        Instrument(
            "electric piano", 4, ("Rhodes-style electric piano", "e-piano"), "melody chords arpeggio", "low mid high"
        ),
        Instrument("marimba", 12, (), "melody arpeggio", "mid high"),
        Instrument("church organ", 19, ("pipe organ", "organ"), "melody chords", "low mid high"),
        Instrument(
            "acoustic guitar", 24, ("nylon-string guitar", "classical guitar"), "melody chords arpeggio", "low mid"
        ),
        Instrument("electric guitar", 27, ("clean electric guitar",), "melody chords arpeggio", "low mid"),
        Instrument("violin", 40, ("solo violin",), "melody", "mid high"),
        Instrument("cello", 42, ("solo cello",), "melody", "low mid"),
        Instrument("harp", 46, ("concert harp",), "melody chords arpeggio", "low mid high"),
        Instrument("strings", 48, ("string ensemble", "string section"), "melody chords", "low mid high"),
        Instrument("trumpet", 56, (), "melody", "mid high"),
        Instrument("brass section", 61, ("brass", "brass ensemble"), "melody chords", "low mid"),
        Instrument("saxophone", 65, ("alto sax", "alto saxophone"), "melody", "mid"),
        Instrument("flute", 73, (), "melody arpeggio", "mid high"),
        Instrument("synth lead", 80, ("square-wave synth lead", "lead synth"), "melody arpeggio", "mid high"),
        Instrument("synth pad", 89, ("warm pad", "pad synth"), "chords", "low mid high"),
        Instrument("electric bass", 33, ("bass guitar", "fingered electric bass"), "bass", "low"),
        Instrument("acoustic bass", 32, ("upright bass", "double bass"), "bass", "low"),
        Instrument("synth bass", 38, ("analog synth bass",), "bass", "low"),
    )
}
DRUM_NAME = "drums"
DRUM_ALIASES = ("drums", "drum kit", "percussion")
DRUM_ON = ("drums", "a drum kit", "the drum kit")  # "... played on X"
DRUM_KIT_NAMES = {
    0: "standard kit",
    8: "room kit",
    16: "power kit",
    24: "electronic kit",
    25: "TR-808 kit",
    32: "jazz kit",
}

# GM percussion keys.
KICK, RIM, SNARE, CLAP, CHAT, PHAT, OHAT, CRASH, RIDE, SHAKER = 36, 37, 38, 39, 42, 44, 46, 49, 51, 70


class Groove:
    """A one-bar drum pattern on the sixteenth grid: ``X`` accent, ``x`` hit, ``o`` softer, ``g`` ghost."""

    def __init__(self, name: str, words: Sequence[str], bpm: tuple[int, int], kit: int, lanes: dict[int, str]) -> None:
        if any(len(p) != STEPS_PER_BAR for p in lanes.values()):
            raise ValueError(f"groove {name!r}: every lane must have {STEPS_PER_BAR} steps")
        self.name, self.words, self.bpm, self.kit, self.lanes = name, (name, *words), bpm, kit, lanes


GROOVES: dict[str, Groove] = {
    g.name: g
    for g in (
        Groove(
            "rock",
            words=("straight rock", "rock-style"),
            bpm=(92, 140),
            kit=16,
            lanes={KICK: "X-------x-x-----", SNARE: "----X-------X---", CHAT: "x-o-x-o-x-o-x-o-"},
        ),
        Groove(
            "house",
            words=("four-on-the-floor house", "deep house"),
            bpm=(118, 128),
            kit=24,
            lanes={
                KICK: "X---X---X---X---",
                CLAP: "----x-------x---",
                OHAT: "--x---x---x---x-",
                SHAKER: "g-g-g-g-g-g-g-g-",
            },
        ),
        Groove(
            "techno",
            words=("minimal techno", "techno-style"),
            bpm=(125, 140),
            kit=24,
            lanes={
                KICK: "X---X---X---X---",
                CLAP: "----o-------o---",
                CHAT: "gxg-gxg-gxg-gxg-",
                OHAT: "---o------o-----",
            },
        ),
        Groove(
            "hip hop",
            words=("hip-hop", "boom-bap hip hop"),
            bpm=(80, 98),
            kit=0,
            lanes={KICK: "X------xx-x-----", SNARE: "----X-------X---", CHAT: "x-o-x-o-x-o-x-o-"},
        ),
        Groove(
            "trap",
            words=("trap-style",),
            bpm=(130, 150),
            kit=25,
            lanes={KICK: "X-----x---x-----", CLAP: "--------X-------", CHAT: "xoxoxoxoxoxoxoxo"},
        ),
        Groove(
            "breakbeat",
            words=("break-beat", "amen-style breakbeat"),
            bpm=(125, 140),
            kit=0,
            lanes={KICK: "X-x-------xx----", SNARE: "----X--g-g--X--g", RIDE: "x-o-x-o-x-o-x-o-"},
        ),
        Groove(
            "funk",
            words=("funky",),
            bpm=(95, 115),
            kit=0,
            lanes={KICK: "X--x---x--x-----", SNARE: "----X--g-g--X--g", CHAT: "xoxoxoxoxoxoxoxo"},
        ),
        Groove(
            "disco",
            words=("disco dance",),
            bpm=(110, 124),
            kit=8,
            lanes={
                KICK: "X---X---X---X---",
                SNARE: "----x-------x---",
                CHAT: "o---o---o---o---",
                OHAT: "--x---x---x---x-",
            },
        ),
        Groove(
            "reggae",
            words=("one-drop reggae",),
            bpm=(66, 80),
            kit=0,
            lanes={KICK: "--------X-------", RIM: "--------x-------", CHAT: "x-o-x-o-x-o-x-o-"},
        ),
        Groove(
            "bossa nova",
            words=("bossa-nova",),
            bpm=(118, 140),
            kit=32,
            lanes={KICK: "x--xx--xx--xx--x", RIM: "x--x--x---x--x--", CHAT: "o-g-o-g-o-g-o-g-"},
        ),
    )
}
HIT_OFFSET = {"X": 12, "x": 0, "o": -18, "g": -34}

# Roles of the parts of each texture, lead first (the lead carries the clip's register).
TEXTURES: dict[str, tuple[str, ...]] = {
    "melody": ("melody",),
    "chords": ("chords",),
    "arpeggio": ("arpeggio",),
    "bass line": ("bass",),
    "melody and chords": ("melody", "chords"),
    "drums": ("drums",),
    "chords and drums": ("chords", "drums"),
    "arpeggio and drums": ("arpeggio", "drums"),
    "bass and drums": ("bass", "drums"),
    "melody, bass and drums": ("melody", "bass", "drums"),
    "full band": ("melody", "chords", "bass", "drums"),
}
TEXTURE_WEIGHTS = {
    "melody": 3,
    "chords": 3,
    "arpeggio": 2,
    "bass line": 2,
    "melody and chords": 2,
    "drums": 4,
    "chords and drums": 1.5,
    "arpeggio and drums": 1,
    "bass and drums": 1.5,
    "melody, bass and drums": 1.5,
    "full band": 2,
}
ROLE_IDS = {"melody": 1, "chords": 2, "arpeggio": 3, "bass": 4, "drums": 5}

CHORD_PATTERNS = ("sustained", "half notes", "quarters", "eighths", "syncopated")
BASS_PATTERNS = ("roots", "root-fifth", "eighths", "octaves", "walking")
ARPEGGIO_PATTERNS = ("up", "down", "up-down", "alberti")
MELODY_RHYTHMS = (
    (4, 4, 4, 4),
    (4, 2, 2, 4, 4),
    (2, 2, 2, 2, 4, 4),
    (6, 2, 4, 4),
    (8, 4, 4),
    (4, 4, 8),
    (2, 2, 4, 2, 2, 4),
    (3, 3, 2, 4, 4),
    (4, 4, 2, 2, 2, 2),
)

# ---------------------------------------------------------------------------------------------------
# Caption vocabulary
# ---------------------------------------------------------------------------------------------------

REGISTER_WORDS = {
    "low": ("low", "low-register", "deep", "low-pitched"),
    "mid": ("mid-range", "mid-register", "middle-register"),
    "high": ("high", "high-register", "high-pitched"),
}
REGISTER_NOUNS = {"low": ("low",), "mid": ("middle", "mid"), "high": ("high", "upper")}  # "... in the X register"
DYNAMICS_WORDS = {
    "soft": ("soft", "quiet", "gentle", "delicate"),
    "medium": ("medium-volume", "moderately loud", "mezzo-forte"),
    "loud": ("loud", "powerful", "forceful", "strong"),
}
DYNAMICS_ADVERBS = {
    "soft": ("softly", "quietly", "gently"),
    "medium": ("at medium volume", "at a moderate volume", "mezzo-forte"),
    "loud": ("loudly", "forcefully", "with force"),
}
TEMPO_WORDS = {
    "slow": ("slow", "unhurried", "leisurely"),
    "moderate": ("mid-tempo", "moderate", "medium-tempo"),
    "fast": ("fast", "quick", "up-tempo", "brisk"),
}
TEXTURE_NOUNS = {
    "melody": ("melody", "tune", "melodic line", "lead melody"),
    "chords": ("chord progression", "chord sequence", "progression of chords"),
    "arpeggio": ("arpeggio", "arpeggiated pattern", "arpeggiated figure", "broken-chord arpeggio"),
    "bass": ("bass line", "bassline"),
    "drums": ("drum groove", "drum beat", "drum pattern", "drum loop", "beat"),
}
# Mood words by mode (or drums) and a feel derived from dynamics and tempo, so "quiet" never meets "energetic".
MOODS = {
    ("major", "calm"): ("calm", "peaceful", "warm", "relaxing", "tender", "dreamy"),
    ("major", "light"): ("light", "playful", "airy", "carefree"),
    ("major", "lively"): ("happy", "cheerful", "bright", "joyful", "upbeat", "energetic"),
    ("major", "grand"): ("majestic", "triumphant", "grand", "bold"),
    ("minor", "calm"): ("sad", "melancholic", "somber", "mournful", "wistful"),
    ("minor", "light"): ("mysterious", "restless", "anxious", "eerie"),
    ("minor", "lively"): ("tense", "urgent", "driving", "agitated"),
    ("minor", "grand"): ("dramatic", "dark", "heavy", "epic"),
    ("drums", "calm"): ("laid-back", "relaxed", "chilled", "steady"),
    ("drums", "light"): ("light", "crisp", "airy", "nimble"),
    ("drums", "lively"): ("energetic", "driving", "upbeat", "danceable"),
    ("drums", "grand"): ("heavy", "hard-hitting", "pounding", "booming"),
}


# ---------------------------------------------------------------------------------------------------
# SoundFont and FluidSynth
# ---------------------------------------------------------------------------------------------------


def find_soundfont() -> Path:
    """Path of a General MIDI SoundFont: ``$SAK_SOUNDFONT``, else the first of :data:`SOUNDFONT_NAMES`
    in :data:`SOUNDFONT_DIRS`, else the TimGM6mb copy bundled with pretty_midi.

    Raises ``ValueError`` if ``$SAK_SOUNDFONT`` names a missing file and ``FileNotFoundError`` naming
    the apt command if no SoundFont is found.
    """
    override = os.environ.get(SOUNDFONT_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ValueError(f"${SOUNDFONT_ENV}={override!r} is not a SoundFont file")
        return path
    for folder in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (folder / name).is_file():
                return folder / name
    # pretty_midi ships an older TimGM6mb; it renders differently from Debian's, hence last and logged.
    bundled = Path(pretty_midi.__file__).with_name("TimGM6mb.sf2")
    if bundled.is_file():
        logger.warning("no system SoundFont found; using pretty_midi's bundled %s (install: %s)", bundled, INSTALL_HINT)
        return bundled
    searched = ", ".join(str(d) for d in SOUNDFONT_DIRS)
    raise FileNotFoundError(
        f"no General MIDI SoundFont found in {searched} and ${SOUNDFONT_ENV} is not set; install one with "
        f"`{INSTALL_HINT}` or point ${SOUNDFONT_ENV} at a .sf2 file"
    )


def _import_fluidsynth() -> Any:
    try:
        import fluidsynth
    except ImportError as e:  # pyfluidsynth missing, or present but libfluidsynth is not
        raise ImportError(f"the demo catalogue renders with FluidSynth: `{PIP_HINT}` and `{INSTALL_HINT}` ({e})") from e
    return fluidsynth


def _write_float_fn(fluidsynth: Any) -> Callable[..., int]:
    # pyfluidsynth only wraps fluid_synth_write_s16, which dithers and quantises to 16 bit; the float
    # writer is exact and free of dither state, so it is declared here on pyfluidsynth's own library handle.
    fn = fluidsynth._fl.fluid_synth_write_float
    # (synth, frames, then buffer, offset, stride for the left and for the right channel)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, *[ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2]
    fn.restype = ctypes.c_int
    return fn


class _Renderer:
    """Renders PrettyMIDI objects to exact-length mono audio, one fresh FluidSynth synthesiser per clip.

    A fresh synthesiser per clip is what makes a clip independent of the clips rendered before it:
    a reused one keeps voice and effect state that changes the next clip audibly even after
    ``system_reset``. A keeper synthesiser holds the SoundFont so FluidSynth's sample cache makes each
    fresh load cost milliseconds instead of a full file read.
    """

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        self.fluidsynth = _import_fluidsynth()
        self.write_float = _write_float_fn(self.fluidsynth)
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        self._keeper, _ = self._new_synth()

    def _new_synth(self) -> tuple[Any, int]:
        synth = self.fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(self.sample_rate))
        sfid = synth.sfload(str(self.soundfont))
        if sfid < 0:
            synth.delete()
            raise ValueError(f"soundfont {str(self.soundfont)!r} could not be loaded by FluidSynth")
        return synth, sfid

    def close(self) -> None:
        self._keeper.delete()

    def render(self, midi: pretty_midi.PrettyMIDI, samples: int) -> np.ndarray:
        """Mono float32 ``(samples,)``: the MIDI from time 0, cut at ``samples``, last 20 ms faded out."""
        synth, sfid = self._new_synth()
        try:
            events = []  # (sample, order, fn, args); note-offs sort before note-ons at the same sample
            melodic_channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
            for inst in midi.instruments:
                channel = DRUM_CHANNEL if inst.is_drum else next(melodic_channels)
                if synth.program_select(channel, sfid, 128 if inst.is_drum else 0, inst.program) != 0:
                    raise ValueError(f"soundfont {self.soundfont.name} has no preset for {inst.name!r}")
                for note in inst.notes:
                    on = self._to_block(note.start)
                    if on >= samples:
                        continue
                    off = max(self._to_block(note.end), on + FLUID_BLOCK)
                    events.append((on, 1, synth.noteon, (channel, note.pitch, note.velocity)))
                    events.append((off, 0, synth.noteoff, (channel, note.pitch)))
            events.sort(key=lambda e: (e[0], e[1]))
            stereo = np.zeros((samples, 2), dtype=np.float32)
            ptr = stereo.ctypes.data
            cur = 0
            for at, _, fn, args in [*events, (samples, 0, None, ())]:
                at = min(at, samples)
                if at > cur:
                    self.write_float(synth.synth, at - cur, ptr, 2 * cur, 2, ptr, 2 * cur + 1, 2)
                    cur = at
                if fn is not None and at < samples:
                    fn(*args)
        finally:
            synth.delete()
        mono = stereo.mean(axis=1)
        fade = min(samples, round(FADE_SECONDS * self.sample_rate))
        mono[samples - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return mono

    def _to_block(self, seconds: float) -> int:
        # FluidSynth starts events at its next block; rounding to the nearest block keeps the error symmetric.
        return round(seconds * self.sample_rate / FLUID_BLOCK) * FLUID_BLOCK


# ---------------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------------


def _scale_pitches(tonic: int, mode: str, lo: int, hi: int) -> list[int]:
    pcs = {(tonic + s) % 12 for s in SCALES[mode]}
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _chord_pcs(tonic: int, mode: str, degree: int) -> tuple[int, int, int]:
    """Pitch classes (root, third, fifth) of the diatonic triad on ``degree``: stacked scale thirds."""
    scale = SCALES[mode]
    return tuple((tonic + scale[(degree + k) % 7]) % 12 for k in (0, 2, 4))  # type: ignore[return-value]


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
        self.tonic = TONIC_NAMES[row["mode"]].index(row["tonic"]) if row["mode"] else None
        self.mode = row["mode"]
        self.chord_steps = STEPS_PER_BAR if self.bpm >= 90 else STEPS_PER_BAR // 2  # slower tempo, faster harmony
        if self.mode is not None:
            roman = ROMAN[self.mode]
            self.degrees = [roman.index(r) for r in row["progression"]]

    def chord_at(self, step: int) -> tuple[int, int, int]:
        degree = self.degrees[(step // self.chord_steps) % len(self.degrees)]
        return _chord_pcs(self.tonic, self.mode, degree)

    def chord_spans(self) -> list[tuple[int, int, tuple[int, int, int]]]:
        return [(s, self.chord_steps, self.chord_at(s)) for s in range(0, self.n_steps, self.chord_steps)]


def _velocity(rng: np.random.Generator, base: int, strong: bool) -> int:
    accent = VELOCITY_SPREAD // 2 if strong else -VELOCITY_SPREAD // 2
    return int(np.clip(base + accent + rng.integers(-VELOCITY_SPREAD // 2, VELOCITY_SPREAD // 2 + 1), 1, 127))


def _note(
    inst: pretty_midi.Instrument, song: _Song, step: float, dur: float, pitch: int, vel: int, legato: float
) -> None:
    start = step * song.step
    inst.notes.append(
        pretty_midi.Note(velocity=vel, pitch=int(pitch), start=start, end=start + dur * song.step * legato)
    )


def _compose_melody(
    inst: pretty_midi.Instrument, song: _Song, rng: np.random.Generator, lo: int, hi: int, vel: int, pattern: str
) -> None:
    pitches = _scale_pitches(song.tonic, song.mode, lo, hi)
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
    scale = _scale_pitches(song.tonic, song.mode, lo, hi)
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


# ---------------------------------------------------------------------------------------------------
# Sampling compositions and renditions
# ---------------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _tempo_word(bpm: int) -> str:
    return next(word for limit, word in TEMPO_WORD_LIMITS if bpm < limit)


def _sample_composition(rng: np.random.Generator, index: int) -> dict[str, Any]:
    """Composition-level choices: everything the renditions of one group share."""
    names = list(TEXTURE_WEIGHTS)
    weights = np.array([TEXTURE_WEIGHTS[n] for n in names], dtype=float)
    texture = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    roles = TEXTURES[texture]
    groove = _pick(rng, list(GROOVES)) if "drums" in roles else None
    bpm = (
        int(rng.integers(GROOVES[groove].bpm[0], GROOVES[groove].bpm[1] + 1))
        if groove
        else int(rng.integers(BPM_RANGE[0], BPM_RANGE[1] + 1))
    )
    tonal = roles != ("drums",)
    mode = _pick(rng, ("major", "minor")) if tonal else None
    tonic = _pick(rng, TONIC_NAMES[mode]) if tonal else None
    # The lead's register; a chord part under a melody sits one register lower.
    lead = roles[0]
    if lead == "bass":
        lead_register = "low"
    elif lead == "drums":
        lead_register = None
    elif lead == "melody" and len(roles) > 1:
        lead_register = _pick(rng, ("mid", "high"))
    else:
        lead_register = _pick(rng, REGISTER_ORDER)
    registers = {}
    for role in roles:
        if role == "drums":
            registers[role] = None
        elif role == "bass":
            registers[role] = "low"
        elif role == lead:
            registers[role] = lead_register
        else:
            registers[role] = REGISTER_ORDER[REGISTER_ORDER.index(lead_register) - 1]
    patterns: dict[str, Any] = {}
    if "chords" in roles:
        patterns["chords"] = _pick(rng, CHORD_PATTERNS)
    if "bass" in roles:
        patterns["bass"] = _pick(rng, BASS_PATTERNS)
    if "arpeggio" in roles:
        patterns["arpeggio"] = _pick(rng, ARPEGGIO_PATTERNS)
    if "drums" in roles:
        patterns["fills"] = bool(rng.integers(2))
    progression = [ROMAN[mode][d] for d in _pick(rng, PROGRESSIONS[mode])] if tonal else None
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


def _instrument_choices(role: str, register: str) -> list[Instrument]:
    return [i for i in INSTRUMENTS.values() if role in i.roles and register in i.registers]


def _sample_rendition(
    rng: np.random.Generator, comp: dict[str, Any], rendition: int, sample_rate: int, max_seconds: float
) -> dict[str, Any]:
    """A rendition: instruments, dynamics and length of one clip of a composition (notes not yet composed)."""
    dynamics = _pick(rng, tuple(DYNAMICS_VELOCITY))
    velocity = DYNAMICS_VELOCITY[dynamics]
    seconds = round(float(rng.uniform(min(MIN_SECONDS, max_seconds), max_seconds)), 2)
    parts = []
    used: set[str] = set()
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
        choices = [i for i in _instrument_choices(role, comp["registers"][role]) if i.name not in used]
        inst = _pick(rng, choices)
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


# ---------------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------------


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
        style = _pick(rng, GROOVES[groove].words)
        return _pick(
            rng,
            (
                f"{style} drums",
                _a(f"{style} drum beat"),
                f"drums playing {_a(style + ' groove')}",
                _a(f"{style} beat on the drum kit"),
            ),
        )
    alias = _pick(rng, INSTRUMENTS[part["instrument"]].aliases)
    reg = f"{register_word} " if register_word else ""
    if role == "melody":
        return _pick(rng, (_a(f"{reg}{alias} melody"), _a(f"{reg}{alias} lead"), f"{_a(reg + 'melody')} on {alias}"))
    if role == "chords":
        return _pick(rng, (f"{reg}{alias} chords", f"{reg}chords on {alias}", _a(f"{reg}{alias} chord progression")))
    if role == "arpeggio":
        return _pick(rng, (f"{reg}{alias} arpeggios", _a(f"{reg}arpeggiated {alias}"), f"{reg}arpeggios on {alias}"))
    bass = alias if "bass" in alias else f"{alias} bass"
    return _pick(rng, (f"{reg}{bass}", _a(f"{reg}{bass} line")))


def _caption(rng: np.random.Generator, row: dict[str, Any]) -> tuple[str, list[str]]:
    """A MidiCaps-style caption for ``row`` and the mood words it uses. Always names every instrument,
    the bpm, the key and mode (tonal content), the groove (drums), the lead's register and the dynamics."""
    moods = _moods(rng, row)
    mood = _join(moods) if moods else ""
    mood_adj = ", ".join(moods)
    bpm = row["bpm"]
    bpm_text = _pick(rng, (f"{bpm} bpm", f"{bpm} BPM", f"{bpm} beats per minute"))
    tempo = _pick(rng, TEMPO_WORDS[row["tempo"]]) if rng.random() < 0.5 else ""
    dyn = _pick(rng, DYNAMICS_WORDS[row["dynamics"]])
    dyn_adv = _pick(rng, DYNAMICS_ADVERBS[row["dynamics"]])
    with_mood = f", {mood}" if mood else ""
    parts = row["parts"]

    if row["kind"] == "percussive":
        style = _pick(rng, GROOVES[row["groove"]].words)
        noun = _pick(rng, TEXTURE_NOUNS["drums"])
        kit = _pick(rng, DRUM_ALIASES)
        on_kit = _pick(rng, DRUM_ON)
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
        return _tidy(_pick(rng, templates)()), moods

    key = f"{row['tonic']} {row['mode']}"
    key_text = _pick(rng, (f"in {key}", f"in the key of {key}", f"in {key}"))
    reg = _pick(rng, REGISTER_WORDS[row["register"]])
    reg_noun = _pick(rng, REGISTER_NOUNS[row["register"]])
    if len(parts) == 1:
        part = parts[0]
        alias = _pick(rng, INSTRUMENTS[part["instrument"]].aliases)
        noun = _pick(rng, TEXTURE_NOUNS[part["role"]])
        if part["role"] == "bass" and "bass" in alias:
            noun = _pick(rng, ("groove", "riff"))  # not "electric bass bass line"
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
        return _tidy(_pick(rng, templates)()), moods

    lead = _part_phrase(rng, parts[0], row["groove"], reg)
    rest = [_part_phrase(rng, p, row["groove"], "") for p in parts[1:]]
    everything = _join([lead, *rest])
    style = f"{_pick(rng, GROOVES[row['groove']].words)} " if row["groove"] else ""
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
    return _tidy(_pick(rng, templates)()), moods


# ---------------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------------


def _plan(
    clips: int, seed: int, sample_rate: int, max_seconds: float, valid_fraction: float, transpositions: int = 0
) -> list[dict[str, Any]]:
    """All rows without the composed facts (median pitches, caption): cheap, so splits can see every group.

    ``clips`` rows, then ``transpositions`` copies of every tonal or mixed training row in other keys
    (same mode, tonics drawn without repeats), each with ``transposed_from`` set to its original's index.
    """
    root = np.random.SeedSequence(seed)
    comp_rng = np.random.default_rng(root.spawn(1)[0])
    rows: list[dict[str, Any]] = []
    group_sizes: list[int] = []
    g = 0
    while len(rows) < clips:
        comp = _sample_composition(comp_rng, g)
        n = min(int(comp_rng.integers(1, 4)), clips - len(rows))
        for r in range(n):
            rng = np.random.default_rng([seed, g, r, 1])
            rendition = _sample_rendition(rng, comp, r, sample_rate, max_seconds)
            rows.append({**comp, **rendition, "tempo": _tempo_word(comp["bpm"])})
        group_sizes.append(n)
        g += 1
    # Split by composition: walk the groups in a seeded order, filling valid up to its share.
    order = np.random.default_rng([seed, 2]).permutation(len(group_sizes))
    target = round(valid_fraction * clips)
    if valid_fraction > 0 and len(group_sizes) > 1:
        target = max(target, 1)
    valid_groups: set[int] = set()
    count = 0
    for gi in order:
        if count >= target or len(valid_groups) == len(group_sizes) - 1:  # keep at least one training group
            break
        valid_groups.add(int(gi))
        count += group_sizes[gi]
    for row in rows:
        row["split"] = "valid" if int(row["group"][1:]) in valid_groups else "train"
        row["transposed_from"] = None
    # Transposed copies go after every original clip, so the first `clips` rows (and the held-out set)
    # do not depend on `transpositions`.
    copies = []
    for index, row in enumerate(rows):
        if row["split"] != "train" or row["mode"] is None or transpositions == 0:
            continue
        others = [t for t in TONIC_NAMES[row["mode"]] if t != row["tonic"]]
        picks = np.random.default_rng([seed, int(row["group"][1:]), row["rendition"], 5]).permutation(len(others))
        for k in picks[:transpositions]:
            copies.append({**row, "tonic": others[int(k)], "transposed_from": index})
    return rows + copies


def _median(values: Sequence[int]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _finish_row(
    index: int, plan: dict[str, Any], seed: int, sample_rate: int, soundfont: Path
) -> tuple[dict[str, Any], pretty_midi.PrettyMIDI]:
    """Compose the notes, measure what the caption states about them, caption, and order the row's fields."""
    row = {**plan, "sample_rate": sample_rate}
    midi = compose_midi(row)
    limit = row["samples"] / sample_rate
    parts = []
    for part, inst in zip(row["parts"], midi.instruments, strict=True):
        sounding = [n.pitch for n in inst.notes if n.start < limit]
        parts.append(
            {**part, "median_midi_pitch": None if part["is_drum"] else _median(sounding), "notes": len(sounding)}
        )
    row["parts"] = parts
    lead = parts[0]
    row["register"] = lead["register"]
    row["median_midi_pitch"] = lead["median_midi_pitch"]
    caption, moods = _caption(np.random.default_rng([seed, int(row["group"][1:]), row["rendition"], 3]), row)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{row['groove'] or lead['instrument']} {row['texture']}".lower()).strip("-")
    out = {
        "path": f"{row['split']}/{index:05d}_{slug}.wav",
        "caption": caption,
        "split": row["split"],
        "group": row["group"],
        "index": index,
        "seconds": row["seconds"],
        "samples": row["samples"],
        "sample_rate": sample_rate,
        "channels": 1,
        "kind": row["kind"],
        "texture": row["texture"],
        "instruments": [p["instrument"] for p in parts],
        "programs": [p["program"] for p in parts],
        "parts": parts,
        "bpm": row["bpm"],
        "tempo": row["tempo"],
        "tonic": row["tonic"],
        "mode": row["mode"],
        "key": f"{row['tonic']} {row['mode']}" if row["mode"] else None,
        "register": row["register"],
        "median_midi_pitch": row["median_midi_pitch"],
        "dynamics": row["dynamics"],
        "velocity": row["velocity"],
        "mood": moods,
        "groove": row["groove"],
        "drum_kit": DRUM_KIT_NAMES.get(GROOVES[row["groove"]].kit) if row["groove"] else None,
        "progression": row["progression"],
        "patterns": row["patterns"],
        "seed": seed,
        "composition_seed": row["composition_seed"],
        "rendition": row["rendition"],
        "transposed_from": row["transposed_from"],
        "soundfont": soundfont.name,
    }
    return out, midi


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono ``(samples,)`` audio as 16-bit PCM WAV, atomically.

    Not ``audio.save_audio``: its float WAVs carry libsndfile's PEAK chunk, which holds a timestamp, so
    the same audio written twice differs in bytes. PCM has no PEAK chunk; 16 bit is ample for these clips.
    """
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        logger.warning("%s peaks at %.3f and is clipped to full scale", path.name, peak)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")


def _check_inputs(
    out_dir: str | Path,
    clips: int,
    seed: int,
    sample_rate: int,
    max_seconds: float,
    valid_fraction: float,
    soundfont: str | Path | None,
) -> tuple[Path, Path]:
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise ValueError(f"clips must be an integer >= 1, got {clips!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be an integer in [8000, 96000] (FluidSynth's range), got {sample_rate!r}")
    if (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, (int, float))
        or not math.isfinite(max_seconds)
        or max_seconds < MIN_SECONDS
    ):
        raise ValueError(f"max_seconds must be a finite number >= {MIN_SECONDS}, got {max_seconds!r}")
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, (int, float))
        or not 0.0 <= valid_fraction < 1.0
    ):
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    check_writable(out / "metadata.jsonl")
    if out.is_dir() and any(out.iterdir()) and not (out / "metadata.jsonl").is_file():
        raise ValueError(f"out_dir {str(out)!r} is not empty and holds no catalogue to replace; use an empty folder")
    if soundfont is None:
        font = find_soundfont()
    else:
        font = Path(soundfont).expanduser()
        if not font.is_file():
            raise ValueError(f"soundfont {str(soundfont)!r} is not a file")
    return out, font


def _previous_paths(out: Path) -> set[str]:
    """Audio files listed by a catalogue already in ``out``: the only files a rebuild may delete."""
    meta = out / "metadata.jsonl"
    if not meta.is_file():
        return set()
    paths = set()
    for line in meta.read_text().splitlines():
        try:
            path = json.loads(line).get("path") if line.strip() else None
        except (json.JSONDecodeError, AttributeError):
            path = None
        if isinstance(path, str) and path.startswith(("train/", "valid/")) and ".." not in path:
            paths.add(path)
    return paths


def make_catalogue(
    out_dir: str | Path,
    clips: int = DEFAULT_CLIPS,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    valid_fraction: float = 0.1,
    soundfont: str | Path | None = None,
    progress: bool = True,
    transpositions: int = 0,
) -> Path:
    """Compose, render and caption ``clips`` clips into ``out_dir``; returns the ``metadata.jsonl`` path.

    Audio is mono 16-bit PCM WAV at ``sample_rate``, one file per clip in ``out_dir/train`` or
    ``out_dir/valid``; clip lengths are drawn uniformly from ``[1, max_seconds]`` seconds (2 decimals)
    and each file holds exactly ``round(seconds * sample_rate)`` samples. About ``valid_fraction`` of
    the clips go to the valid split, chosen by whole compositions (at least one group per split when
    ``valid_fraction > 0`` and there are two groups or more). The same ``seed``, arguments and
    SoundFont give byte-identical metadata and audio. ``soundfont`` defaults to
    :func:`find_soundfont`. An existing catalogue in ``out_dir`` is replaced (its listed audio files
    that the new one does not reuse are removed); any other non-empty ``out_dir`` is refused.

    ``transpositions`` (0-11) adds that many copies of every tonal or mixed *training* clip in other
    keys of the same mode: the same composition, instruments, dynamics, length and caption wording,
    only the key moved (its row's ``transposed_from`` is the original's index). They follow the
    ``clips`` originals, which stay exactly as without them, and the held-out split gets none. They
    show a model the same music in several keys, so the key words of a caption are what tells them apart.

    Raises ``ValueError`` naming the bad value before any work for ``clips < 1``, ``max_seconds < 1``,
    a sample rate outside FluidSynth's range, ``valid_fraction`` outside ``[0, 1)``, an unwritable or
    foreign non-empty ``out_dir`` and a missing or unloadable ``soundfont``.
    """
    from tqdm import tqdm

    if isinstance(transpositions, bool) or not isinstance(transpositions, int) or not 0 <= transpositions <= 11:
        raise ValueError(f"transpositions must be an integer in [0, 11] (other keys of a mode), got {transpositions!r}")
    out, font = _check_inputs(out_dir, clips, seed, sample_rate, max_seconds, valid_fraction, soundfont)
    renderer = _Renderer(font, sample_rate)  # loads the SoundFont: fails here, before any file is written
    previous = _previous_paths(out)
    try:
        plans = _plan(clips, seed, sample_rate, float(max_seconds), float(valid_fraction), transpositions)
        rows = []
        for index, plan in enumerate(tqdm(plans, desc="catalogue", unit="clip", disable=not progress)):
            row, midi = _finish_row(index, plan, seed, sample_rate, font)
            _write_wav(out / row["path"], renderer.render(midi, row["samples"]), sample_rate)
            rows.append(row)
    finally:
        renderer.close()
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write_text(out / "metadata.jsonl", text)
    for stale in sorted(previous - {row["path"] for row in rows}):
        (out / stale).unlink(missing_ok=True)
    n_valid = sum(row["split"] == "valid" for row in rows)
    n_copies = sum(row["transposed_from"] is not None for row in rows)
    hours = sum(row["seconds"] for row in rows) / 3600
    logger.info(
        "wrote %d clips (%d train including %d transposed copies, %d valid, %.2f h) to %s with %s",
        len(rows),
        len(rows) - n_valid,
        n_copies,
        n_valid,
        hours,
        out,
        font.name,
    )
    return out / "metadata.jsonl"
