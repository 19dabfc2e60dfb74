"""Signal metrics on synthetic signals whose tempo, pitch, key, timbre and length are known by construction."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from stable_audio_kit.evaluation import metrics
from stable_audio_kit.music import Key, key_from_name

from .helpers import SR, burst_grid, harmonic_tone, note_sequence, rms, sustained_chord


# ------------------------------------------------------------------------------------------
# Duration adherence


def test_silence_onset_finds_end_of_tone_in_window():
    window = np.zeros(5 * SR, np.float32)
    tone = harmonic_tone(60, 2.3)
    window[: tone.size] = tone
    assert metrics.silence_onset(window, SR) == pytest.approx(2.3, abs=0.1)
    # Anti-phase stereo sums to zero but is not silent.
    assert metrics.silence_onset(np.stack([window, -window]), SR) == pytest.approx(2.3, abs=0.1)
    # A -80 dBFS noise floor (decoder hiss) is below the threshold.
    hiss = 1e-4 * np.random.default_rng(0).standard_normal(window.size)
    assert metrics.silence_onset(window + hiss, SR) == pytest.approx(2.3, abs=0.1)


def test_silence_onset_uses_absolute_dbfs_threshold():
    sine = np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)  # -3 dBFS RMS at amplitude 1
    assert metrics.SILENCE_THRESHOLD_DBFS == -45.0
    assert metrics.silence_onset(sine * 10 ** (-40 / 20), SR) == pytest.approx(2.0)  # -43 dBFS: sounding
    assert metrics.silence_onset(sine * 10 ** (-50 / 20), SR) == 0.0  # -53 dBFS: silent
    assert metrics.silence_onset(np.zeros(SR), SR) == 0.0
    assert metrics.silence_onset(sine * 10 ** (-50 / 20), SR, threshold_db=-60.0) == pytest.approx(2.0)


def test_duration_adherence_summary():
    summary = metrics.duration_adherence([10.2, 5.0, 31.0, 7.4], [10.0, 5.3, 30.0, 8.0], tolerance=0.5)
    assert summary["count"] == 4
    assert summary["within_tolerance"] == pytest.approx(0.5)
    assert summary["mean_abs_error"] == pytest.approx((0.2 + 0.3 + 1.0 + 0.6) / 4)
    assert summary["max_abs_error"] == pytest.approx(1.0)
    assert summary["mean_error"] == pytest.approx((0.2 - 0.3 + 1.0 - 0.6) / 4)
    with pytest.raises(ValueError, match="same length"):
        metrics.duration_adherence([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="onsets"):
        metrics.duration_adherence([math.nan], [1.0])


# ------------------------------------------------------------------------------------------
# Tempo


@pytest.mark.parametrize("bpm", [120, 90])
def test_estimate_tempo_on_click_track(bpm):
    pytest.importorskip("librosa")
    clicks = burst_grid(bpm, 8.0, burst_seconds=0.005, noise=False)
    estimated = metrics.estimate_tempo(clicks, SR)
    assert estimated == pytest.approx(bpm, rel=0.05)
    assert metrics.tempo_match(estimated, bpm)
    assert metrics.estimate_tempo(np.stack([clicks, clicks]), SR) == pytest.approx(estimated)


def test_estimate_tempo_of_silence_is_nan():
    pytest.importorskip("librosa")
    assert math.isnan(metrics.estimate_tempo(np.zeros(2 * SR), SR))


def test_tempo_match_is_strict_unless_octaves_allowed():
    assert metrics.tempo_match(123.0, 120.0)
    assert not metrics.tempo_match(127.0, 120.0)
    assert not metrics.tempo_match(60.0, 120.0)
    assert metrics.tempo_match(60.5, 120.0, allow_octave=True)
    assert metrics.tempo_match(238.0, 120.0, allow_octave=True)
    assert not metrics.tempo_match(90.0, 120.0, allow_octave=True)
    assert not metrics.tempo_match(math.nan, 120.0, allow_octave=True)
    with pytest.raises(ValueError, match="requested"):
        metrics.tempo_match(120.0, 0.0)


# ------------------------------------------------------------------------------------------
# Percussive / tonal


def test_percussive_ratio_separates_bursts_chords_and_mixtures():
    pytest.importorskip("librosa")
    bursts = burst_grid(120, 4.0)
    chord = sustained_chord(4.0)
    p_bursts = metrics.percussive_ratio(bursts, SR)
    p_chord = metrics.percussive_ratio(chord, SR)
    p_both = metrics.percussive_ratio(chord + bursts * (rms(chord) / rms(bursts)), SR)
    assert 0.0 <= p_chord < p_both < p_bursts <= 1.0
    assert metrics.classify_percussive_tonal(p_bursts) == "percussive"
    assert metrics.classify_percussive_tonal(p_chord) == "tonal"
    assert metrics.classify_percussive_tonal(p_both) == "mixed"
    assert math.isnan(metrics.percussive_ratio(np.zeros(SR), SR))


def test_percussive_ratio_leaves_out_the_kicks_low_sine():
    """An 808-style groove: a long 55 Hz kick on the beat and hi-hat bursts on the off-beats.

    Over every bin the kick's sine makes it read tonal; from PERCUSSIVE_MIN_HZ up it is drums.
    """
    pytest.importorskip("librosa")
    seconds, beat = 4.0, 0.5
    t = np.arange(int(beat * SR)) / SR
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.25)
    groove = np.zeros(int(seconds * SR), np.float32)
    for start in np.arange(0.0, seconds, beat):
        i = int(start * SR)
        groove[i : i + kick.size] += kick[: groove.size - i].astype(np.float32)
    groove += 0.3 * burst_grid(120, seconds, seed=1)[np.arange(groove.size) - int(beat / 2 * SR)]
    assert metrics.percussive_ratio(groove, SR, min_hz=0) < metrics.BINARY_THRESHOLD
    assert metrics.percussive_ratio(groove, SR) >= metrics.BINARY_THRESHOLD
    assert metrics.percussive_ratio(sustained_chord(), SR) < metrics.TONAL_MAX
    for bad in (-1.0, SR / 2, math.nan):
        with pytest.raises(ValueError, match="min_hz"):
            metrics.percussive_ratio(groove, SR, min_hz=bad)


def test_classify_percussive_tonal_thresholds():
    assert metrics.classify_percussive_tonal(metrics.TONAL_MAX - 1e-9) == "tonal"
    assert metrics.classify_percussive_tonal(metrics.TONAL_MAX) == "mixed"
    assert metrics.classify_percussive_tonal(metrics.PERCUSSIVE_MIN) == "percussive"
    binary = metrics.BINARY_THRESHOLD
    assert metrics.classify_percussive_tonal(0.49, binary, binary) == "tonal"
    assert metrics.classify_percussive_tonal(0.51, binary, binary) == "percussive"
    with pytest.raises(ValueError, match="ratio"):
        metrics.classify_percussive_tonal(1.5)
    with pytest.raises(ValueError, match="ratio"):
        metrics.classify_percussive_tonal(math.nan)
    with pytest.raises(ValueError, match="tonal_max"):
        metrics.classify_percussive_tonal(0.5, 0.9, 0.1)


# ------------------------------------------------------------------------------------------
# Pitch and register


@pytest.mark.parametrize(("midi", "register"), [(45, "low"), (60, "mid"), (80, "high")])
def test_median_f0_and_register_of_harmonic_tones(midi, register):
    pytest.importorskip("librosa")
    notes = note_sequence([midi] * 3, 0.7, decay=0.5)
    f0 = metrics.median_f0(notes, SR)
    assert metrics.hz_to_midi(f0) == pytest.approx(midi, abs=1.0)
    assert metrics.register_of(metrics.hz_to_midi(f0)) == register
    # Analysis resamples internally, so the rate of the input does not matter.
    at_44k = note_sequence([midi], 1.0, decay=0.5)
    at_44k = np.interp(np.arange(2 * at_44k.size) / 2, np.arange(at_44k.size), at_44k).astype(np.float32)
    assert metrics.hz_to_midi(metrics.median_f0(at_44k, 2 * SR)) == pytest.approx(midi, abs=1.0)


def test_median_f0_of_unvoiced_audio_is_nan():
    pytest.importorskip("librosa")
    assert math.isnan(metrics.median_f0(np.zeros(SR), SR))
    with pytest.raises(ValueError, match="fmin"):
        metrics.median_f0(np.ones(SR), SR, fmin=10.0)


def test_hz_to_midi_and_register_bounds():
    assert metrics.hz_to_midi(440.0) == pytest.approx(69.0)
    assert metrics.hz_to_midi(261.6256) == pytest.approx(60.0, abs=1e-4)
    assert math.isnan(metrics.hz_to_midi(math.nan))
    np.testing.assert_allclose(metrics.hz_to_midi(np.array([220.0, 880.0])), [57.0, 81.0])
    with pytest.raises(ValueError, match="> 0"):
        metrics.hz_to_midi(0.0)
    assert metrics.REGISTER_BOUNDS == (55, 74)
    assert metrics.register_of(54) == "low"
    assert metrics.register_of(54.6) == "mid"  # a slightly flat G3 rounds up to mid
    assert metrics.register_of(73) == "mid"
    assert metrics.register_of(74) == "high"
    with pytest.raises(ValueError, match="midi_pitch"):
        metrics.register_of(math.nan)


# ------------------------------------------------------------------------------------------
# Key


def test_estimate_key_major_vs_minor():
    pytest.importorskip("librosa")
    # Scale, then the tonic arpeggio, in decaying harmonic tones.
    c_major = note_sequence([60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67, 72, 67, 64, 60], 0.3, decay=0.25)
    a_minor = note_sequence([57, 59, 60, 62, 64, 65, 68, 69, 57, 60, 64, 69, 64, 60, 57], 0.3, decay=0.25)
    assert metrics.estimate_key(c_major, SR) == ("C", "major")
    assert metrics.estimate_key(a_minor, SR) == ("A", "minor")
    # Transposed down two semitones the tonic is spelled with a sharp: A# major.
    b_flat = note_sequence([58, 60, 62, 63, 65, 67, 69, 70, 58, 62, 65, 70, 65, 62, 58], 0.3, decay=0.25)
    assert metrics.key_match(metrics.estimate_key(b_flat, SR), "Bb major")["exact"]
    assert metrics.estimate_key(np.zeros(SR), SR) is None


def test_normalize_key_spellings():
    assert metrics.normalize_key("Bb") == ("A#", "major")
    assert metrics.normalize_key("Bbm") == ("A#", "minor")
    assert metrics.normalize_key("b♭ minor") == ("A#", "minor")
    assert metrics.normalize_key(("Gb", "Major")) == ("F#", "major")
    assert metrics.normalize_key("A:min") == ("A", "minor")
    assert metrics.normalize_key("Cb maj") == ("B", "major")
    assert metrics.normalize_key("E#") == ("F", "major")
    assert metrics.normalize_key("Db major") == ("C#", "major")  # the demo catalogue's spelling
    for bad in ("H minor", "C dorian", "CM", "", ("C",)):
        with pytest.raises(ValueError, match="key"):
            metrics.normalize_key(bad)


def test_normalize_key_reads_every_key_as_music_spells_it():
    for mode in ("major", "minor"):
        for tonic in range(12):
            key = Key(tonic, mode)
            assert metrics.normalize_key(key.name) == key.sharp_name == key_from_name(key.sharp_name).sharp_name


def test_key_match_relations():
    assert metrics.key_match(("A#", "major"), "Bb major") == {
        "exact": True,
        "relaxed": True,
        "relation": "exact",
        "score": 1.0,
    }
    assert metrics.key_match(("A", "minor"), "C major")["relation"] == "relative"
    assert metrics.key_match(("C", "major"), "A minor")["relation"] == "relative"
    assert metrics.key_match(("G", "major"), "C major")["relation"] == "fifth"
    assert metrics.key_match(("F", "major"), "C major")["relation"] == "fifth"
    assert metrics.key_match(("D", "minor"), "A minor")["relaxed"]
    parallel = metrics.key_match(("C", "minor"), "C major")
    assert parallel["relation"] == "parallel" and not parallel["relaxed"] and parallel["score"] == 0.2
    assert metrics.key_match(("D", "major"), "C major") == {
        "exact": False,
        "relaxed": False,
        "relation": "other",
        "score": 0.0,
    }
    assert metrics.key_match(None, "C major")["relation"] == "none"


def test_missing_librosa_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # makes `import librosa` raise ImportError
    for fn in (metrics.estimate_tempo, metrics.percussive_ratio, metrics.median_f0, metrics.estimate_key):
        with pytest.raises(ImportError, match=r"pip install 'stable-audio-kit\[eval\]'"):
            fn(np.zeros(SR), SR)
    # The numpy-only metrics keep working.
    assert metrics.silence_onset(np.zeros(SR), SR) == 0.0
