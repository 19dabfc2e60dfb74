"""music.py, the one home of pitch classes, scales, key names and tempo words."""

import pytest

from stable_audio_kit.music import PITCH_CLASSES, SCALES, TONIC_NAMES, Key, find_key, find_tempo, key_from_name


@pytest.mark.parametrize(
    "text, key",
    [
        ("a calm piano melody in C major", (0, "major")),
        ("B flat major", (10, "major")),
        ("F sharp minor arpeggio", (6, "minor")),
        ("strings in E♭ min", (3, "minor")),
        ("a C#m chord loop", (1, "minor")),
        ("Am", (9, "minor")),
        ("in a minor", (9, "minor")),
        ("in the key of G# minor", (8, "minor")),
        ("F#minor", (6, "minor")),
        ("Bb MAJOR", (10, "major")),
        ("a major chord in C minor", (0, "minor")),  # the first key: "a major" is no key
        ("Cb major", (11, "major")),
    ],
)
def test_find_key_reads_the_ways_people_write_keys(text, key):
    found = find_key(text)
    assert found is not None and found[0] == key
    start, end = found[1]
    assert text[start:end].lower().endswith(("major", "minor", "min", "maj", "m"))  # the span covers the key


@pytest.mark.parametrize("text", ["a major chord on a piano", "Emotional pad", "A m", "AM", "cm", "drums at 120 bpm"])
def test_find_key_refuses_what_names_no_key(text):
    assert find_key(text) is None


@pytest.mark.parametrize(
    "text, tempo",
    [
        ("drums at 120 BPM", 120.0),
        ("120bpm techno", 120.0),
        ("96.5 beats per minute", 96.5),
        ("a groove at a tempo of 120", 120.0),
        ("tempo of 90 bpm", 90.0),
        ("124bpm techno, then 90 bpm", 124.0),
    ],
)
def test_find_tempo(text, tempo):
    found = find_tempo(text)
    assert found is not None and found[0] == tempo
    assert text[slice(*found[1])] == f"{tempo:g}"


def test_no_tempo():
    assert find_tempo("a tone of 440 hertz") is None and find_tempo("bpm unknown") is None


def test_keys_and_names():
    assert key_from_name("Bb minor") == Key(10, "minor") and key_from_name("A:minor").name == "A minor"
    assert key_from_name("Gb") == (6, "major") and key_from_name(("F#", "minor")).sharp_name == ("F#", "minor")
    assert Key(8, "minor").name == "G# minor" and Key(8, "major").name == "Ab major"
    assert Key(0, "major").pitch_classes == SCALES["major"] and Key(9, "minor").transpose(5) == (2, "minor")
    assert len(PITCH_CLASSES) == 12 and all(len(names) == 12 for names in TONIC_NAMES.values())
    for bad in ("H major", "C lydian", "CM", ""):
        with pytest.raises(ValueError, match="cannot read the key"):
            key_from_name(bad)
    with pytest.raises(ValueError, match="pitch class 0-11, got 12"):
        Key(12, "major")
