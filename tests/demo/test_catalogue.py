"""make_catalogue: determinism, splits, exact lengths, rebuilding, transposed copies, every bad input."""

from __future__ import annotations

import pytest
import soundfile as sf

from stable_audio_kit.demo import make_catalogue
from stable_audio_kit.demo.composition import MIN_SECONDS

from .conftest import MAX_SECONDS, SAMPLE_RATE, has_word, needs_fluidsynth, read_rows


@needs_fluidsynth
def test_same_seed_gives_identical_bytes(tmp_path):
    kwargs = {"clips": 6, "seed": 11, "max_seconds": MAX_SECONDS, "progress": False}
    first = make_catalogue(tmp_path / "a", **kwargs)
    second = make_catalogue(tmp_path / "b", **kwargs)
    assert first.read_bytes() == second.read_bytes()
    rows = read_rows(first)
    assert len(rows) == 6
    for row in rows:
        assert (first.parent / row["path"]).read_bytes() == (second.parent / row["path"]).read_bytes()
    other = make_catalogue(tmp_path / "c", **{**kwargs, "seed": 12})
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
        assert MIN_SECONDS <= row["seconds"] <= MAX_SECONDS


def test_splits_share_no_composition(catalogue):
    _, rows = catalogue
    groups = {split: {r["group"] for r in rows if r["split"] == split} for split in ("train", "valid")}
    assert groups["train"] and groups["valid"]
    assert not groups["train"] & groups["valid"]
    for row in rows:
        assert row["path"].startswith(f"{row['split']}/")


@needs_fluidsynth
def test_rebuilding_replaces_the_previous_catalogue(tmp_path):
    out = tmp_path / "demo"
    make_catalogue(out, clips=4, seed=1, max_seconds=1.0, progress=False)
    rows = read_rows(make_catalogue(out, clips=2, seed=2, max_seconds=1.0, valid_fraction=0.0, progress=False))
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*.wav")) == sorted(r["path"] for r in rows)
    assert {r["split"] for r in rows} == {"train"}


@needs_fluidsynth
def test_transposed_copies_move_only_the_key(tmp_path):
    # The originals stay byte-identical; each tonal training clip gets two copies in other keys of its mode,
    # with the same caption but for the key, the same note timings, and notes in the new key.
    from stable_audio_kit.demo import compose_midi
    from stable_audio_kit.music import key_from_name

    kwargs = {"clips": 12, "seed": 5, "max_seconds": MAX_SECONDS, "progress": False}
    plain = read_rows(make_catalogue(tmp_path / "plain", **kwargs))
    out = tmp_path / "moved"
    rows = read_rows(make_catalogue(out, transpositions=2, **kwargs))
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
        scale = set(key_from_name(copy["key"]).pitch_classes)
        for part, new, old in zip(
            copy["parts"], compose_midi(copy).instruments, compose_midi(original).instruments, strict=True
        ):
            assert [n.start for n in new.notes] == [n.start for n in old.notes]
            if not part["is_drum"]:
                assert {n.pitch % 12 for n in new.notes} <= scale
    tonics = [(r["tonic"], rows[r["transposed_from"]]["tonic"]) for r in copies]
    assert len({t for t, _ in tonics}) > 2
    with pytest.raises(ValueError, match="transpositions must be an integer in \\[0, 11\\].*got 12"):
        make_catalogue(tmp_path / "bad", transpositions=12, **kwargs)
    assert not (tmp_path / "bad").exists()


@needs_fluidsynth
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
        make_catalogue(out, **{"clips": 2, "progress": False, **kwargs})
    assert not out.exists()


@needs_fluidsynth
def test_unwritable_or_foreign_out_dir_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="a_file"):
        make_catalogue(blocker, clips=1, progress=False)
    with pytest.raises(ValueError, match="cannot be written"):
        make_catalogue(blocker / "demo", clips=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        make_catalogue(foreign, clips=1, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
