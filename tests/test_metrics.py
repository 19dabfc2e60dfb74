"""Metrics on synthetic signals whose tempo, pitch, key, timbre and length are known by construction."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from stable_audio_kit.evaluation import metrics

SR = 22050
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def harmonic_tone(
    midi: float, seconds: float, sr: int = SR, decay: float | None = None, amp: float = 0.3
) -> np.ndarray:
    """A tone with four harmonics (amplitudes 0.6^k), optional exponential decay, 10 ms fades."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
    y = sum(0.6**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(4) if f0 * (k + 1) < sr / 2)
    envelope = np.exp(-t / decay) if decay else np.ones_like(t)
    fades = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return (amp * y * envelope * fades).astype(np.float32)


def note_sequence(notes: list[int | tuple[int, ...]], note_seconds: float, decay: float) -> np.ndarray:
    """Consecutive notes; a tuple is a chord."""
    parts = []
    for note in notes:
        chord = note if isinstance(note, tuple) else (note,)
        parts.append(sum(harmonic_tone(n, note_seconds, decay=decay) for n in chord))
    return np.concatenate(parts)


def burst_grid(
    bpm: float, seconds: float, burst_seconds: float = 0.03, noise: bool = True, seed: int = 0
) -> np.ndarray:
    """Decaying noise bursts (or 2 kHz clicks) on every beat."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), np.float32)
    n = int(burst_seconds * SR)
    envelope = np.exp(-np.arange(n) / (n / 5))
    for start in np.arange(0.0, seconds, 60.0 / bpm):
        source = rng.standard_normal(n) if noise else np.sin(2 * np.pi * 2000 * np.arange(n) / SR)
        i = int(start * SR)
        segment = (0.5 * source * envelope)[: y.size - i]
        y[i : i + segment.size] += segment
    return y


def sustained_chord(seconds: float = 4.0) -> np.ndarray:
    return sum(harmonic_tone(n, seconds) for n in (48, 60, 64, 67))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


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


# ------------------------------------------------------------------------------------------
# Embedding metrics


def test_frechet_distance_zero_for_same_set_and_grows_with_mean_shift():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((300, 16))
    assert metrics.frechet_distance(emb, emb) == pytest.approx(0.0, abs=1e-6)
    # Shifting every dimension by s adds exactly D * s^2 (covariances unchanged).
    distances = [metrics.frechet_distance(emb, emb + s) for s in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(distances, [16 * 0.25, 16 * 1.0, 16 * 4.0], rtol=1e-6)
    other = rng.standard_normal((300, 16))
    assert 0.0 < metrics.frechet_distance(emb, other) < distances[0]


def test_frechet_distance_with_singular_covariances_is_finite():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((8, 32)), rng.standard_normal((10, 32))  # fewer rows than dimensions
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    distance = metrics.frechet_distance(a, b)
    assert math.isfinite(distance) and distance > 0
    with pytest.raises(ValueError, match="dimension"):
        metrics.frechet_distance(a, rng.standard_normal((8, 31)))
    with pytest.raises(ValueError, match="emb_a"):
        metrics.frechet_distance(a[:1], b)


def test_clap_score_is_mean_matched_cosine():
    rng = np.random.default_rng(2)
    text = rng.standard_normal((20, 8))
    assert metrics.clap_score(3.0 * text, text) == pytest.approx(1.0)
    assert metrics.clap_score(-text, text) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.clap_score(text, text[:5])
    with pytest.raises(ValueError, match="zero"):
        metrics.clap_score(np.zeros((20, 8)), text)


def test_retrieval_recall_perfect_and_chance():
    rng = np.random.default_rng(3)
    n = 200
    text = rng.standard_normal((n, 32))
    assert metrics.retrieval_recall(text, text) == {"recall@1": 1.0, "recall@5": 1.0}
    random = metrics.retrieval_recall(text, rng.standard_normal((n, 32)), ks=(1, 5, 20))
    assert random["recall@1"] < 0.04
    assert random["recall@5"] < 0.08
    assert random["recall@20"] == pytest.approx(20 / n, abs=0.07)
    # Identical embeddings for everything must not look like perfect retrieval.
    constant = metrics.retrieval_recall(np.ones((10, 4)), np.ones((10, 4)), ks=(1, 5))
    assert constant == {"recall@1": pytest.approx(0.1), "recall@5": pytest.approx(0.5)}
    with pytest.raises(ValueError, match="ks"):
        metrics.retrieval_recall(text, text, ks=(0,))


# ------------------------------------------------------------------------------------------
# Plots


def test_spectrogram_grid_png(tmp_path):
    clips = [harmonic_tone(60, 1.0), np.stack([burst_grid(120, 1.5)] * 2), np.zeros(SR // 2, np.float32)]
    titles = ["a warm piano chord " * 6, "drums", "silence"]
    path = metrics.spectrogram_grid_png(clips, SR, titles, tmp_path / "grid.png", cols=2)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left behind
    with pytest.raises(ValueError, match="title"):
        metrics.spectrogram_grid_png(clips, SR, titles[:2], tmp_path / "x.png")
    with pytest.raises(ValueError, match=".png"):
        metrics.spectrogram_grid_png(clips, SR, titles, tmp_path / "grid.jpg")


def test_duration_plot_png(tmp_path):
    path = metrics.duration_plot_png([5.0, 10.0, 30.0], [5.1, 11.0, 29.8], tmp_path / "plots" / "durations.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="same length"):
        metrics.duration_plot_png([5.0, 10.0], [5.0], tmp_path / "d.png")


# ------------------------------------------------------------------------------------------
# Bad input and the optional dependency


@pytest.mark.parametrize(
    ("audio", "sample_rate", "message"),
    [
        (np.zeros(0, np.float32), SR, "empty"),
        (np.array([0.0, math.nan, 0.0]), SR, "NaN"),
        (np.zeros(SR), 0, "sample_rate"),
        (np.zeros(SR), -SR, "sample_rate"),
        (np.zeros(SR), math.nan, "sample_rate"),
        (np.zeros((SR, 2)), SR, r"\(channels, samples\)"),
        (np.zeros((1, 2, SR)), SR, "shape"),
    ],
)
def test_bad_audio_raises_value_error(audio, sample_rate, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        metrics.silence_onset(audio, sample_rate)
    with pytest.raises(ValueError, match=message):
        metrics.spectrogram_grid_png([audio], sample_rate, ["t"], tmp_path / "grid.png")
    # Validation runs before librosa is used, but the import comes first.
    if importlib.util.find_spec("librosa") is not None:
        for fn in (metrics.estimate_tempo, metrics.percussive_ratio, metrics.median_f0, metrics.estimate_key):
            with pytest.raises(ValueError, match=message):
                fn(audio, sample_rate)


def test_missing_librosa_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # makes `import librosa` raise ImportError
    for fn in (metrics.estimate_tempo, metrics.percussive_ratio, metrics.median_f0, metrics.estimate_key):
        with pytest.raises(ImportError, match=r"pip install 'stable-audio-kit\[eval\]'"):
            fn(np.zeros(SR), SR)
    # The numpy-only metrics keep working.
    assert metrics.silence_onset(np.zeros(SR), SR) == 0.0
