"""The vocabulary's tables agree with each other and with what the composer asks of them."""

from __future__ import annotations

import pytest

from stable_audio_kit.demo.vocabulary import (
    GROOVES,
    INSTRUMENTS,
    REGISTER_ORDER,
    REGISTER_RANGES,
    ROLE_IDS,
    STEPS_PER_BAR,
    TEXTURE_WEIGHTS,
    TEXTURES,
    Groove,
    instrument_choices,
    tempo_word,
)


def test_every_texture_can_be_cast_in_every_register():
    # sample_rendition gives each part of a texture a different instrument of its role and register; a
    # part under the lead sits one register lower.
    assert set(TEXTURES) == set(TEXTURE_WEIGHTS)
    for texture, roles in TEXTURES.items():
        assert set(roles) <= set(ROLE_IDS), texture
        tonal = [r for r in roles if r not in ("drums", "bass")]
        for lead in REGISTER_ORDER[1:] if len(roles) > 1 and roles[0] == "melody" else REGISTER_ORDER:
            registers = [lead, REGISTER_ORDER[REGISTER_ORDER.index(lead) - 1]]
            choices = [instrument_choices(role, reg) for role, reg in zip(tonal, registers)]
            assert all(choices), (texture, lead)
            assert len({i.name for c in choices for i in c}) >= len(tonal), (texture, lead)
        if "bass" in roles:
            assert instrument_choices("bass", "low")


def test_instruments_and_grooves_are_general_midi():
    assert all(0 <= i.program < 128 and i.aliases[0] == i.name for i in INSTRUMENTS.values())
    assert len({i.program for i in INSTRUMENTS.values()}) == len(INSTRUMENTS)
    for groove in GROOVES.values():
        assert all(35 <= key <= 81 and len(lane) == STEPS_PER_BAR for key, lane in groove.lanes.items())
        assert groove.bpm[0] <= groove.bpm[1]
    with pytest.raises(ValueError, match="every lane must have 16 steps"):
        Groove("short", (), (90, 100), 0, {36: "X---"})


def test_registers_do_not_overlap():
    ranges = [REGISTER_RANGES[r] for r in REGISTER_ORDER]
    assert all(lo <= hi < next_lo for (lo, hi), (next_lo, _) in zip(ranges, ranges[1:]))


def test_tempo_words_split_at_80_and_120_bpm():
    words = [tempo_word(bpm) for bpm in (60, 79, 80, 119, 120, 160)]
    assert words == ["slow", "slow", "moderate", "moderate", "fast", "fast"]
