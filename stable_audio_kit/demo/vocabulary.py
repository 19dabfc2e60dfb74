"""The demo catalogue's vocabulary: instruments, drum grooves, textures, patterns and the words of its captions.

Everything here is a table the composer, the renderer or the caption writer reads; pitch classes, scales
and key names live in :mod:`stable_audio_kit.music`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

STEPS_PER_BAR = 16  # 4/4 on a sixteenth-note grid

# ---------------------------------------------------------------------------------------------------
# Musical vocabulary
# ---------------------------------------------------------------------------------------------------

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
# General MIDI instruments the default catalogue never draws (the bundled model never heard them): a
# catalogue restricted to them (`sak catalogue make --instruments vibraphone,kalimba`) is a style new to it.
EXTRA_INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("harpsichord", 6, (), "melody chords arpeggio", "low mid high"),
        Instrument("vibraphone", 11, ("vibes",), "melody chords arpeggio", "mid high"),
        Instrument("accordion", 21, (), "melody chords", "low mid"),
        Instrument("clarinet", 71, (), "melody arpeggio", "low mid"),
        Instrument("sitar", 104, (), "melody", "mid"),
        Instrument("kalimba", 108, ("thumb piano",), "melody arpeggio", "mid high"),
        Instrument("steel drums", 114, ("steel pan", "steelpan"), "melody arpeggio", "mid high"),
        Instrument("fretless bass", 35, ("fretless electric bass",), "bass", "low"),
    )
}
ALL_INSTRUMENTS = {**INSTRUMENTS, **EXTRA_INSTRUMENTS}
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


def pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One of ``options``, drawn with a single ``rng.integers`` call."""
    return options[int(rng.integers(len(options)))]


def tempo_word(bpm: int) -> str:
    """``"slow"``, ``"moderate"`` or ``"fast"`` for a tempo in beats per minute."""
    return next(word for limit, word in TEMPO_WORD_LIMITS if bpm < limit)


def instrument_choices(role: str, register: str, palette: Palette | None = None) -> list[Instrument]:
    """The instruments (of ``palette``, default every one the default catalogue draws) that can play ``role`` in
    ``register``, in their table's order."""
    instruments = INSTRUMENTS if palette is None else palette.instruments
    return [i for i in instruments.values() if role in i.roles and register in i.registers]


class Palette:
    """The instruments and grooves a catalogue draws from: by default :data:`INSTRUMENTS` and :data:`GROOVES`.

    ``instruments`` / ``grooves`` name the only ones to use (instruments from :data:`ALL_INSTRUMENTS`, so the
    extra ones too; an empty groove list means no drums), ``exclude_*`` remove some. Raises ``ValueError``
    naming an unknown name and the valid ones, or a palette that leaves nothing to play.
    """

    def __init__(
        self,
        instruments: Sequence[str] | None = None,
        exclude_instruments: Sequence[str] = (),
        grooves: Sequence[str] | None = None,
        exclude_grooves: Sequence[str] = (),
    ) -> None:
        for names, table, what in (
            (instruments or (), ALL_INSTRUMENTS, "instrument"),
            (exclude_instruments, ALL_INSTRUMENTS, "instrument"),
            (grooves or (), GROOVES, "groove"),
            (exclude_grooves, GROOVES, "groove"),
        ):
            unknown = [n for n in names if n not in table]
            if unknown:
                raise ValueError(f"unknown {what}(s) {unknown}; valid: {sorted(table)}")
        chosen = INSTRUMENTS if instruments is None else {n: ALL_INSTRUMENTS[n] for n in instruments}
        self.instruments = {n: i for n, i in chosen.items() if n not in exclude_instruments}
        self.grooves = [g for g in (GROOVES if grooves is None else grooves) if g not in exclude_grooves]
        self.restricted = bool(instruments is not None or exclude_instruments or grooves is not None or exclude_grooves)
        self._textures = [
            name
            for name, roles in TEXTURES.items()
            if any(self.castings(roles, registers) for registers in texture_registers(roles))
        ]
        if not self._textures:
            raise ValueError(
                f"instruments {sorted(self.instruments)} and grooves {self.grooves} can play none of the textures "
                f"{list(TEXTURES)}"
            )

    def castings(self, roles: Sequence[str], registers: dict[str, str | None]) -> list[tuple[Instrument, ...]]:
        """Every way to give the melodic parts of ``roles`` (in order, drums left out) each its own instrument
        of the palette in its register; none if the roles need drums and the palette has no groove."""
        if "drums" in roles and not self.grooves:
            return []
        tonal = [r for r in roles if r != "drums"]
        choices = [instrument_choices(r, registers[r], self) for r in tonal]
        return [c for c in itertools.product(*choices) if len({i.name for i in c}) == len(c)]

    def textures(self) -> list[str]:
        """The textures some choice of registers can cast (a composition's registers follow its lead's)."""
        return list(self._textures)


def texture_registers(roles: Sequence[str], lead_register: str | None = None) -> list[dict[str, str | None]]:
    """Every register assignment a composition of ``roles`` can have (the one with ``lead_register`` if given):
    bass low, drums none, the lead in any register (mid or high for a melody over other parts), the other
    parts one register below it."""
    lead = roles[0]
    if lead_register is not None:
        leads = [lead_register]
    elif lead == "bass":
        leads = ["low"]
    elif lead == "drums":
        leads = [None]
    elif lead == "melody" and len(roles) > 1:
        leads = ["mid", "high"]
    else:
        leads = list(REGISTER_ORDER)
    out = []
    for lead_register in leads:
        registers: dict[str, str | None] = {}
        for role in roles:
            if role == "drums":
                registers[role] = None
            elif role == "bass":
                registers[role] = "low"
            elif role == lead:
                registers[role] = lead_register
            else:
                registers[role] = REGISTER_ORDER[REGISTER_ORDER.index(lead_register) - 1]
        out.append(registers)
    return out
