"""Captions state what the metadata says, in varied wording."""

from __future__ import annotations

import re

import numpy as np

from stable_audio_kit.demo.captions import write_caption
from stable_audio_kit.demo.vocabulary import (
    DRUM_ALIASES,
    DYNAMICS_ADVERBS,
    DYNAMICS_WORDS,
    GROOVES,
    INSTRUMENTS,
    REGISTER_NOUNS,
    REGISTER_WORDS,
)

from .conftest import has_word


def test_captions_state_what_the_metadata_says(catalogue):
    _, rows = catalogue
    for row in rows:
        caption = row["caption"]
        assert re.search(rf"(?<!\d){row['bpm']}(?!\d)", caption), caption
        assert has_word(caption, ("bpm", "beats per minute")), caption
        for part in row["parts"]:
            aliases = DRUM_ALIASES + ("drum",) if part["is_drum"] else INSTRUMENTS[part["instrument"]].aliases
            assert has_word(caption, aliases), (part["instrument"], caption)
        if row["kind"] == "percussive":
            assert row["key"] is None and not has_word(caption, ("major", "minor")), caption
        else:
            assert row["key"] == f"{row['tonic']} {row['mode']}" and row["key"] in caption, caption
            register_words = REGISTER_WORDS[row["register"]] + REGISTER_NOUNS[row["register"]]
            assert has_word(caption, register_words), caption
        if row["groove"]:
            assert has_word(caption, GROOVES[row["groove"]].words), caption
        dynamics = DYNAMICS_WORDS[row["dynamics"]] + DYNAMICS_ADVERBS[row["dynamics"]]
        assert has_word(caption, dynamics), caption
        for mood in row["mood"]:
            assert has_word(caption, (mood,)), caption


def test_captions_vary_in_wording(catalogue):
    _, rows = catalogue
    captions = [r["caption"] for r in rows]
    assert len(set(captions)) == len(captions)
    openings = {" ".join(c.split()[:2]).lower() for c in captions}
    assert len(openings) >= 10


def test_a_caption_depends_only_on_its_row_and_random_stream():
    # No composing or rendering needed: a caption is written from the row's fields alone.
    row = {
        "kind": "tonal",
        "parts": [{"role": "melody", "instrument": "flute", "is_drum": False}],
        "bpm": 96,
        "tempo": "moderate",
        "key": "Bb minor",
        "mode": "minor",
        "register": "high",
        "dynamics": "soft",
        "groove": None,
    }
    captions = {seed: write_caption(np.random.default_rng(seed), row) for seed in range(8)}
    assert write_caption(np.random.default_rng(3), row) == captions[3]
    assert len({caption for caption, _ in captions.values()}) > 4
    for caption, moods in captions.values():
        assert "Bb minor" in caption and "96" in caption and has_word(caption, INSTRUMENTS["flute"].aliases)
        assert all(has_word(caption, (mood,)) for mood in moods)
