"""compose_midi: what each clip claims (kind, key, tempo grid, register, dynamics) is in its notes."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.demo import compose_midi
from stable_audio_kit.demo.extra import EXTRA_HINT
from stable_audio_kit.demo.rendering import FADE_SECONDS
from stable_audio_kit.demo.vocabulary import BASS_RANGE, DYNAMICS_VELOCITY, REGISTER_RANGES, VELOCITY_SPREAD
from stable_audio_kit.music import key_from_name

from .conftest import SAMPLE_RATE


def test_percussive_tonal_and_mixed_clips_hold_what_they_claim(catalogue):
    out, rows = catalogue
    for row in rows:
        drums = [p["is_drum"] for p in row["parts"]]
        expected = {"percussive": all(drums), "tonal": not any(drums), "mixed": any(drums) and not all(drums)}
        assert expected[row["kind"]], row
        assert (row["groove"] is not None) == any(drums)
        midi = compose_midi(row)
        assert [i.is_drum for i in midi.instruments] == drums
        assert all(i.notes for i in midi.instruments)
        audio, _ = sf.read(str(out / row["path"]), dtype="float32")
        assert np.sqrt(np.mean(audio**2)) > 1e-3, row["path"]
        # Music continues to the end: sound in the last quarter, before the 20 ms fade.
        tail = audio[int(0.75 * len(audio)) : len(audio) - int(FADE_SECONDS * SAMPLE_RATE)]
        assert np.abs(tail).max() > 1e-3, row["path"]
        assert np.abs(audio[-1]) < 1e-3  # faded out


def test_notes_follow_key_tempo_register_and_dynamics(catalogue):
    _, rows = catalogue
    for row in rows:
        midi = compose_midi(row)
        step = 60.0 / row["bpm"] / 4
        limit = row["samples"] / row["sample_rate"]  # the end of the file
        for part, inst in zip(row["parts"], midi.instruments, strict=True):
            notes = [n for n in inst.notes if n.start < limit]
            assert len(notes) == part["notes"]
            for note in notes:
                # Every onset on the sixteenth grid of the stated tempo.
                assert abs(note.start / step - round(note.start / step)) < 1e-6
            velocities = [n.velocity for n in notes]
            if part["is_drum"]:
                continue
            scale = set(key_from_name(row["key"]).pitch_classes)
            assert {n.pitch % 12 for n in notes} <= scale, (row["key"], part)
            lo, hi = BASS_RANGE if part["role"] == "bass" else REGISTER_RANGES[part["register"]]
            assert all(lo <= n.pitch <= hi for n in notes)
            assert part["median_midi_pitch"] == float(np.median([n.pitch for n in notes]))
            assert max(abs(v - part["velocity"]) for v in velocities) <= VELOCITY_SPREAD
        lead = row["parts"][0]
        assert row["median_midi_pitch"] == lead["median_midi_pitch"]
        if not lead["is_drum"]:
            # Registers are told apart by median pitch alone.
            median = row["median_midi_pitch"]
            assert {"low": median <= 53, "mid": 57 <= median <= 72, "high": median >= 76}[row["register"]]
        assert row["velocity"] == DYNAMICS_VELOCITY[row["dynamics"]]


def test_renditions_of_a_composition_share_their_notes(catalogue):
    _, rows = catalogue
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    shared = [g for g in by_group.values() if len(g) > 1]
    assert shared
    for group in shared:
        a, b = group[:2]
        assert (a["bpm"], a["key"], a["texture"], a["progression"]) == (
            b["bpm"],
            b["key"],
            b["texture"],
            b["progression"],
        )
        limit = min(a["samples"], b["samples"]) / a["sample_rate"]
        for ia, ib in zip(compose_midi(a).instruments, compose_midi(b).instruments, strict=True):
            notes_a = [(n.start, n.pitch) for n in ia.notes if n.start < limit]
            notes_b = [(n.start, n.pitch) for n in ib.notes if n.start < limit]
            assert notes_a == notes_b


def test_compose_midi_without_pretty_midi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pretty_midi", None)
    row = {"bpm": 120, "samples": 16000, "sample_rate": 16000, "tonic": "C", "mode": "major", "parts": []}
    with pytest.raises(ValueError, match=re.escape(EXTRA_HINT)):
        compose_midi(row)
