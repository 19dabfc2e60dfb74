"""Catalogues restricted to some instruments and grooves (``sak catalogue make --instruments ... --grooves ...``):
only those are drawn, in textures they can play; the default palette draws exactly the default catalogue."""

from __future__ import annotations

import hashlib
import json

import pytest

from stable_audio_kit.cli import main
from stable_audio_kit.demo import Palette
from stable_audio_kit.demo.catalogue import _plan
from stable_audio_kit.demo.vocabulary import ALL_INSTRUMENTS, EXTRA_INSTRUMENTS, INSTRUMENTS, TEXTURES

from .conftest import has_word, needs_fluidsynth, read_rows

NEW_STYLE = ["vibraphone", "kalimba", "steel drums", "fretless bass"]


def digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_the_default_palette_draws_the_default_catalogue():
    plain = _plan(400, 3, 22050, 10.0, 0.1, 1)
    assert digest(_plan(400, 3, 22050, 10.0, 0.1, 1, Palette())) == digest(plain)
    assert not Palette().restricted and Palette(grooves=["rock"]).restricted


def test_extra_instruments_are_general_midi_and_new():
    programs = {i.program for i in ALL_INSTRUMENTS.values()}
    assert len(programs) == len(ALL_INSTRUMENTS), "one GM program per instrument"
    assert not set(EXTRA_INSTRUMENTS) & set(INSTRUMENTS)


def test_a_restricted_palette_draws_only_its_instruments_in_textures_they_can_play():
    palette = Palette(instruments=NEW_STYLE, grooves=[])
    rows = _plan(300, 0, 22050, 10.0, 0.1, 0, palette)
    assert len(rows) == 300
    textures = {row["texture"] for row in rows}
    assert textures == set(palette.textures())
    assert not any("drums" in TEXTURES[t] for t in textures)
    assert {"melody", "chords", "arpeggio", "bass line", "melody and chords"} <= textures
    for row in rows:
        names = [part["instrument"] for part in row["parts"]]
        assert set(names) <= set(NEW_STYLE) and len(set(names)) == len(names), row["texture"]
        for part in row["parts"]:
            inst = ALL_INSTRUMENTS[part["instrument"]]
            assert part["role"] in inst.roles and part["register"] in inst.registers and part["program"] == inst.program
    assert {part["instrument"] for row in rows for part in row["parts"]} == set(NEW_STYLE)


def test_grooves_and_exclusions():
    rows = _plan(200, 1, 22050, 10.0, 0.1, 0, Palette(grooves=["house", "bossa nova"], exclude_instruments=["piano"]))
    assert {row["groove"] for row in rows} - {None} == {"house", "bossa nova"}
    assert not any(part["instrument"] == "piano" for row in rows for part in row["parts"])
    assert any(row["groove"] is None for row in rows), "tonal textures stay"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instruments": ["vibes"]}, r"unknown instrument\(s\) \['vibes'\]; valid: .*'vibraphone'"),
        ({"grooves": ["polka"]}, r"unknown groove\(s\) \['polka'\]; valid: .*'rock'"),
        ({"instruments": [], "grooves": []}, "can play none of the textures"),
        ({"instruments": ["sitar"], "grooves": []}, None),  # a melody alone is enough
    ],
)
def test_bad_palettes_are_refused(kwargs, match):
    if match is None:
        assert Palette(**kwargs).textures() == ["melody"]
        return
    with pytest.raises(ValueError, match=match):
        Palette(**kwargs)


@needs_fluidsynth
def test_catalogue_make_with_a_new_style(tmp_path, capsys):
    out = tmp_path / "style"
    args = ["catalogue", "make", str(out), "--clips", "6", "--max-seconds", "1.5", "--sample-rate", "16000"]
    assert main([*args, "--instruments", "vibraphone,kalimba,steel drums", "--grooves", "none"]) == 0
    rows = read_rows(out / "metadata.jsonl")
    assert len(rows) == 6
    words = [a for name in ("vibraphone", "kalimba", "steel drums") for a in ALL_INSTRUMENTS[name].aliases]
    for row in rows:
        assert set(row["instruments"]) <= {"vibraphone", "kalimba", "steel drums"}
        assert has_word(row["caption"], words), row["caption"]
        assert (out / row["path"]).is_file()
    capsys.readouterr()
    assert main([*args, "--instruments", "theremin"]) == 2
    assert "unknown instrument(s) ['theremin']" in capsys.readouterr().err
