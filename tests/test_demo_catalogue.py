"""The procedural demo catalogue: determinism, captions that match the metadata, splits, lengths, content."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.demo import catalogue as dc


def _fluidsynth_missing() -> str:
    """Why FluidSynth cannot be used here, or "" when it can."""
    try:
        importlib.import_module("fluidsynth")
    except ImportError as e:  # no pyfluidsynth, or pyfluidsynth without libfluidsynth
        return str(e)
    return ""


pytestmark = pytest.mark.skipif(
    bool(_fluidsynth_missing()),
    reason=f"FluidSynth is absent ({_fluidsynth_missing()}): `{dc.PIP_HINT}` and `{dc.INSTALL_HINT}`",
)

MAX_SECONDS = 2.0
SAMPLE_RATE = 16000


def read_rows(metadata: Path) -> list[dict]:
    return [json.loads(line) for line in metadata.read_text().splitlines()]


def has_word(text: str, words) -> bool:
    """Whole-word (or whole-phrase) match, so "low" is not found in "slow"."""
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text, flags=re.IGNORECASE) for w in words)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Enough short clips that every kind (percussive, tonal, mixed) and both splits occur."""
    out = tmp_path_factory.mktemp("catalogue") / "demo"
    metadata = dc.make_catalogue(
        out, clips=30, seed=7, sample_rate=SAMPLE_RATE, max_seconds=MAX_SECONDS, progress=False
    )
    assert metadata == out / "metadata.jsonl"
    rows = read_rows(metadata)
    assert {r["kind"] for r in rows} == {"percussive", "tonal", "mixed"}
    return out, rows


def test_same_seed_gives_identical_bytes(tmp_path):
    kwargs = {"clips": 6, "seed": 11, "max_seconds": MAX_SECONDS, "progress": False}
    first = dc.make_catalogue(tmp_path / "a", **kwargs)
    second = dc.make_catalogue(tmp_path / "b", **kwargs)
    assert first.read_bytes() == second.read_bytes()
    rows = read_rows(first)
    assert len(rows) == 6
    for row in rows:
        assert (first.parent / row["path"]).read_bytes() == (second.parent / row["path"]).read_bytes()
    other = dc.make_catalogue(tmp_path / "c", **{**kwargs, "seed": 12})
    assert other.read_bytes() != first.read_bytes()


def test_files_have_exactly_the_stated_length(catalogue):
    out, rows = catalogue
    listed = {row["path"] for row in rows}
    assert listed == {str(p.relative_to(out)) for p in out.glob("*/*.wav")}
    for row in rows:
        info = sf.info(str(out / row["path"]))
        assert info.samplerate == row["sample_rate"] == SAMPLE_RATE
        assert info.channels == row["channels"] == 1
        assert info.frames == row["samples"] == round(row["seconds"] * SAMPLE_RATE)
        assert dc.MIN_SECONDS <= row["seconds"] <= MAX_SECONDS


def test_splits_share_no_composition(catalogue):
    _, rows = catalogue
    groups = {split: {r["group"] for r in rows if r["split"] == split} for split in ("train", "valid")}
    assert groups["train"] and groups["valid"]
    assert not groups["train"] & groups["valid"]
    for row in rows:
        assert row["path"].startswith(f"{row['split']}/")


def test_captions_state_what_the_metadata_says(catalogue):
    _, rows = catalogue
    for row in rows:
        caption = row["caption"]
        assert re.search(rf"(?<!\d){row['bpm']}(?!\d)", caption), caption
        assert has_word(caption, ("bpm", "beats per minute")), caption
        for part in row["parts"]:
            aliases = dc.DRUM_ALIASES + ("drum",) if part["is_drum"] else dc.INSTRUMENTS[part["instrument"]].aliases
            assert has_word(caption, aliases), (part["instrument"], caption)
        if row["kind"] == "percussive":
            assert row["key"] is None and not has_word(caption, ("major", "minor")), caption
        else:
            assert row["key"] == f"{row['tonic']} {row['mode']}" and row["key"] in caption, caption
            register_words = dc.REGISTER_WORDS[row["register"]] + dc.REGISTER_NOUNS[row["register"]]
            assert has_word(caption, register_words), caption
        if row["groove"]:
            assert has_word(caption, dc.GROOVES[row["groove"]].words), caption
        dynamics = dc.DYNAMICS_WORDS[row["dynamics"]] + dc.DYNAMICS_ADVERBS[row["dynamics"]]
        assert has_word(caption, dynamics), caption
        for mood in row["mood"]:
            assert has_word(caption, (mood,)), caption


def test_captions_vary_in_wording(catalogue):
    _, rows = catalogue
    captions = [r["caption"] for r in rows]
    assert len(set(captions)) == len(captions)
    openings = {" ".join(c.split()[:2]).lower() for c in captions}
    assert len(openings) >= 10


def test_percussive_tonal_and_mixed_clips_hold_what_they_claim(catalogue):
    out, rows = catalogue
    for row in rows:
        drums = [p["is_drum"] for p in row["parts"]]
        expected = {"percussive": all(drums), "tonal": not any(drums), "mixed": any(drums) and not all(drums)}
        assert expected[row["kind"]], row
        assert (row["groove"] is not None) == any(drums)
        midi = dc.compose_midi(row)
        assert [i.is_drum for i in midi.instruments] == drums
        assert all(i.notes for i in midi.instruments)
        audio, _ = sf.read(str(out / row["path"]), dtype="float32")
        assert np.sqrt(np.mean(audio**2)) > 1e-3, row["path"]
        # Music continues to the end: sound in the last quarter, before the 20 ms fade.
        tail = audio[int(0.75 * len(audio)) : len(audio) - int(dc.FADE_SECONDS * SAMPLE_RATE)]
        assert np.abs(tail).max() > 1e-3, row["path"]
        assert np.abs(audio[-1]) < 1e-3  # faded out


def test_notes_follow_key_tempo_register_and_dynamics(catalogue):
    _, rows = catalogue
    for row in rows:
        midi = dc.compose_midi(row)
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
            scale = {(dc.TONIC_NAMES[row["mode"]].index(row["tonic"]) + s) % 12 for s in dc.SCALES[row["mode"]]}
            assert {n.pitch % 12 for n in notes} <= scale, (row["key"], part)
            lo, hi = dc.BASS_RANGE if part["role"] == "bass" else dc.REGISTER_RANGES[part["register"]]
            assert all(lo <= n.pitch <= hi for n in notes)
            assert part["median_midi_pitch"] == float(np.median([n.pitch for n in notes]))
            assert max(abs(v - part["velocity"]) for v in velocities) <= dc.VELOCITY_SPREAD
        lead = row["parts"][0]
        assert row["median_midi_pitch"] == lead["median_midi_pitch"]
        if not lead["is_drum"]:
            # Registers are told apart by median pitch alone.
            median = row["median_midi_pitch"]
            assert {"low": median <= 53, "mid": 57 <= median <= 72, "high": median >= 76}[row["register"]]
        assert row["velocity"] == dc.DYNAMICS_VELOCITY[row["dynamics"]]


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
        for ia, ib in zip(dc.compose_midi(a).instruments, dc.compose_midi(b).instruments, strict=True):
            notes_a = [(n.start, n.pitch) for n in ia.notes if n.start < limit]
            notes_b = [(n.start, n.pitch) for n in ib.notes if n.start < limit]
            assert notes_a == notes_b


def test_rebuilding_replaces_the_previous_catalogue(tmp_path):
    out = tmp_path / "demo"
    dc.make_catalogue(out, clips=4, seed=1, max_seconds=1.0, progress=False)
    rows = read_rows(dc.make_catalogue(out, clips=2, seed=2, max_seconds=1.0, valid_fraction=0.0, progress=False))
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*.wav")) == sorted(r["path"] for r in rows)
    assert {r["split"] for r in rows} == {"train"}


def test_transposed_copies_move_only_the_key(tmp_path):
    # The originals stay byte-identical; each tonal training clip gets two copies in other keys of its mode,
    # with the same caption but for the key, the same note timings, and notes in the new key.
    kwargs = {"clips": 12, "seed": 5, "max_seconds": MAX_SECONDS, "progress": False}
    plain = read_rows(dc.make_catalogue(tmp_path / "plain", **kwargs))
    out = tmp_path / "moved"
    rows = read_rows(dc.make_catalogue(out, transpositions=2, **kwargs))
    assert rows[:12] == plain
    for row in plain:
        assert (out / row["path"]).read_bytes() == (tmp_path / "plain" / row["path"]).read_bytes()
    copies = rows[12:]
    tonal_train = [r["index"] for r in plain if r["split"] == "train" and r["mode"]]
    assert tonal_train and sorted(r["transposed_from"] for r in copies) == sorted(2 * tonal_train)
    assert all(r["transposed_from"] is None for r in plain)
    for copy in copies:
        original = rows[copy["transposed_from"]]
        assert copy["split"] == "train" and copy["group"] == original["group"] and copy["mode"] == original["mode"]
        assert copy["tonic"] != original["tonic"]
        assert copy["caption"].replace(copy["key"], "?") == original["caption"].replace(original["key"], "?")
        assert has_word(copy["caption"], [copy["key"]])
        scale = {(dc.TONIC_NAMES[copy["mode"]].index(copy["tonic"]) + s) % 12 for s in dc.SCALES[copy["mode"]]}
        for part, new, old in zip(
            copy["parts"], dc.compose_midi(copy).instruments, dc.compose_midi(original).instruments, strict=True
        ):
            assert [n.start for n in new.notes] == [n.start for n in old.notes]
            if not part["is_drum"]:
                assert {n.pitch % 12 for n in new.notes} <= scale
    tonics = [(r["tonic"], rows[r["transposed_from"]]["tonic"]) for r in copies]
    assert len({t for t, _ in tonics}) > 2
    with pytest.raises(ValueError, match="transpositions must be an integer in \\[0, 11\\].*got 12"):
        dc.make_catalogue(tmp_path / "bad", transpositions=12, **kwargs)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clips": 0}, "clips must be an integer >= 1, got 0"),
        ({"clips": 2.5}, "got 2.5"),
        ({"max_seconds": 0.5}, "max_seconds must be a finite number >= 1.0, got 0.5"),
        ({"max_seconds": float("nan")}, "got nan"),
        ({"sample_rate": 100}, "sample_rate .* got 100"),
        ({"valid_fraction": 1.0}, r"valid_fraction must be in \[0, 1\), got 1.0"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"soundfont": "/nowhere/missing.sf2"}, "soundfont '/nowhere/missing.sf2' is not a file"),
    ],
)
def test_bad_inputs_raise_before_any_work(tmp_path, kwargs, match):
    out = tmp_path / "demo"
    with pytest.raises(ValueError, match=match):
        dc.make_catalogue(out, **{"clips": 2, "progress": False, **kwargs})
    assert not out.exists()


def test_unwritable_or_foreign_out_dir_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="a_file"):
        dc.make_catalogue(blocker, clips=1, progress=False)
    with pytest.raises(ValueError, match="cannot be written"):
        dc.make_catalogue(blocker / "demo", clips=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        dc.make_catalogue(foreign, clips=1, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_unloadable_soundfont_is_refused(tmp_path):
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"not a soundfont")
    with pytest.raises(ValueError, match="bogus.sf2"):
        dc.make_catalogue(tmp_path / "demo", clips=1, soundfont=bogus, progress=False)
    assert not (tmp_path / "demo" / "metadata.jsonl").exists()


def test_find_soundfont_prefers_env_then_system_folders(tmp_path, monkeypatch):
    font = tmp_path / "mine.sf2"
    font.write_bytes(b"")
    monkeypatch.setenv(dc.SOUNDFONT_ENV, str(font))
    assert dc.find_soundfont() == font
    monkeypatch.setenv(dc.SOUNDFONT_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(ValueError, match="gone.sf2"):
        dc.find_soundfont()
    monkeypatch.delenv(dc.SOUNDFONT_ENV)
    (tmp_path / "FluidR3_GM.sf2").write_bytes(b"")
    monkeypatch.setattr(dc, "SOUNDFONT_DIRS", (tmp_path,))
    assert dc.find_soundfont() == tmp_path / "FluidR3_GM.sf2"
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"")
    assert dc.find_soundfont() == tmp_path / "TimGM6mb.sf2"  # the small one first


def test_find_soundfont_names_the_install_command_when_none_exists(tmp_path, monkeypatch):
    monkeypatch.delenv(dc.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(dc, "SOUNDFONT_DIRS", (tmp_path,))
    monkeypatch.setattr(dc.pretty_midi, "__file__", str(tmp_path / "pretty_midi" / "__init__.py"))
    with pytest.raises(FileNotFoundError, match=re.escape(dc.INSTALL_HINT)):
        dc.find_soundfont()
