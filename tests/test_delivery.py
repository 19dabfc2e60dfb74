"""Loudness and delivery: what a delivered file measures, how long it is and what it is written as."""

import math

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import soundfile as sf

from stable_audio_kit.audio import AUDIO_FORMATS
from stable_audio_kit.cli import main
from stable_audio_kit.delivery import (
    Delivery,
    apply_fades,
    integrated_loudness,
    normalize_loudness,
    save_delivered,
    true_peak,
)

SR = 22050


def lufs(audio: np.ndarray, sample_rate: int) -> float:
    """pyloudnorm's own reading of ``(channels, samples)``, looped past its 400 ms block if shorter."""
    data = audio.T.astype(np.float64)
    if len(data) < 0.4 * sample_rate:
        data = np.tile(data, (math.ceil(4 * sample_rate / len(data)), 1))
    return pyloudnorm.Meter(sample_rate).integrated_loudness(data)


def ideal_true_peak(audio: np.ndarray) -> float:
    """dBTP by 16x band-limited (FFT) interpolation: a check independent of the 4x polyphase estimate."""
    up = scipy.signal.resample(audio.astype(np.float64), audio.shape[-1] * 16, axis=-1)
    return 20 * math.log10(np.abs(up).max())


def tone(seconds: float, amplitude: float = 0.01, freq: float = 440.0, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


def noise(seconds: float, amplitude: float = 0.01, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal((channels, round(seconds * SR)))).astype(np.float32)


def peaky(seconds: float = 2.0) -> np.ndarray:
    """Quiet noise with a short burst at a quarter of the rate, sampled 45 degrees off its crests: its
    true peak is 3 dB above its sample peak, and bringing it to -14 LUFS would need about +3 dBTP."""
    x = noise(seconds, amplitude=0.001, channels=1)
    burst = np.arange(SR // 2, SR // 2 + 200)
    x[0, burst] += 0.5 * np.sin(2 * np.pi * burst / 4 + np.pi / 4).astype(np.float32)
    return x


# --------------------------------------------------------------------------- loudness
@pytest.mark.parametrize("name, audio", [("tone", tone(3.0)), ("stereo noise", noise(3.0))])
@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_normalised_output_measures_the_target(name, audio, target):
    out = normalize_loudness(audio, SR, target)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert abs(lufs(out, SR) - target) <= 0.5, name
    assert true_peak(out) <= -1.0


def test_the_true_peak_ceiling_wins_on_a_peaky_signal():
    audio = peaky()
    out = normalize_loudness(audio, SR)
    assert true_peak(out) <= -1.0
    assert ideal_true_peak(out) <= -1.0 + 0.1, "the 4x estimate is close to a 16x band-limited one"
    assert 20 * math.log10(np.abs(out).max()) < -3.5, "the peak is between the samples, not on them"
    assert lufs(out, SR) < -14.0 - 1.0, "the ceiling, not the loudness target, set the gain"
    np.testing.assert_allclose(out / out[0, SR // 2], audio / audio[0, SR // 2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("level", [0.0, 1e-5])
def test_silence_stays_silence(level, tmp_path):
    """Exact zeros, and noise at -100 dBFS (below BS.1770's -70 LUFS absolute gate), are never amplified."""
    audio = noise(1.0, amplitude=level)
    assert integrated_loudness(audio, SR) < -70
    np.testing.assert_array_equal(normalize_loudness(audio, SR), audio)
    path = save_delivered(tmp_path / "quiet.wav", audio, SR, fade_in_ms=10, fade_out_ms=10, delivery_rate=48000)
    written, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 48000 and written.shape == (48000, 2)
    if level == 0.0:
        assert not written.any(), "silence is written as exact zeros"
    else:
        assert np.abs(written).max() < 1e-4


def test_a_clip_shorter_than_one_loudness_block():
    """0.2 s is half of BS.1770's 400 ms block: it is measured looped, as it sounds when repeated."""
    audio = tone(0.2)
    out = normalize_loudness(audio, SR)
    assert out.shape == audio.shape
    assert abs(lufs(out, SR) - -14.0) <= 0.5
    assert abs(integrated_loudness(out, SR) - -14.0) <= 0.01
    out, rate = Delivery(fade_in_ms=20, fade_out_ms=20, delivery_rate=48000).process(noise(0.2), SR)
    assert rate == 48000 and out.shape == (2, round(0.2 * 48000))


def test_normalisation_is_one_gain():
    """Quiet passages stay as far below the rest as they were; zeros inside the clip stay zeros."""
    audio = np.concatenate([tone(1.0, 0.1), np.zeros((1, SR), np.float32), tone(1.0, 0.001)], axis=-1)
    out = normalize_loudness(audio, SR)
    gain = out[0, 100] / audio[0, 100]
    np.testing.assert_allclose(out, audio * gain, rtol=1e-5, atol=1e-9)
    assert not out[0, SR : 2 * SR].any()


# --------------------------------------------------------------------------- fades, resampling
@pytest.mark.parametrize("rate", [None, 48000])
def test_fades_start_and_end_at_zero_and_keep_the_length(rate):
    audio = noise(1.0)
    out, out_rate = Delivery(loudness=None, fade_in_ms=50, fade_out_ms=100, delivery_rate=rate).process(audio, SR)
    assert out.shape == (2, round(1.0 * out_rate))
    assert not out[:, 0].any() and not out[:, -1].any()
    n_in, n_out = round(0.05 * out_rate), round(0.1 * out_rate)
    mid = out_rate // 2
    parts = (slice(0, n_in // 4), slice(mid - 500, mid + 500), slice(-n_out // 4, None))
    level = [np.abs(out[:, part]).mean() for part in parts]
    assert level[0] < 0.5 * level[1] and level[2] < 0.5 * level[1], "a quarter into a fade the gain is below 0.4"
    if rate is None:
        np.testing.assert_array_equal(out[:, n_in:-n_out], audio[:, n_in:-n_out])
        # Quarter-sine (equal-power): half-way through the fade-in the gain is sin(pi/4).
        np.testing.assert_allclose(out[:, n_in // 2], audio[:, n_in // 2] * math.sin(math.pi / 4), rtol=1e-5)


def test_fades_may_fill_the_clip_but_not_more():
    audio = tone(0.2)
    out = apply_fades(audio, SR, 100, 100)
    assert out.shape == audio.shape and out[0, 0] == 0 and out[0, -1] == 0
    with pytest.raises(ValueError, match=r"\(100 \+ 101 ms\) is longer than the clip \(200 ms\)"):
        apply_fades(audio, SR, 100, 101)


@pytest.mark.parametrize("sample_rate, rate", [(SR, 48000), (8000, 48000), (SR, 44100), (SR, 16000)])
@pytest.mark.parametrize("samples", [1, 2960, 8158, 27563])
def test_resampling_keeps_the_exact_duration(sample_rate, rate, samples):
    audio = np.random.default_rng(samples).uniform(-0.1, 0.1, (2, samples)).astype(np.float32)
    out, out_rate = Delivery(loudness=None, delivery_rate=rate).process(audio, sample_rate)
    assert out_rate == rate and out.shape == (2, round(samples / sample_rate * rate))


def test_resampled_tone_keeps_pitch_and_loudness():
    out, rate = Delivery(delivery_rate=48000).process(tone(2.0, freq=1000.0), SR)
    spectrum = np.abs(np.fft.rfft(out[0]))
    assert abs(np.argmax(spectrum) * rate / out.shape[-1] - 1000.0) < 1.0
    assert abs(lufs(out, rate) - -14.0) <= 0.5, "measured on the delivered samples"


# --------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name", sorted(AUDIO_FORMATS))
def test_each_format_round_trips_with_its_subtype(name, tmp_path):
    fmt = AUDIO_FORMATS[name]
    audio = tone(0.5, freq=300.0)
    path = save_delivered(tmp_path / f"out{fmt.suffix}", audio, SR, format=name)
    info = sf.info(path)
    assert (info.format, info.subtype) == (fmt.container, fmt.subtype)
    assert (info.samplerate, info.frames) == (SR, audio.shape[-1])
    written = sf.read(path, dtype="float32", always_2d=True)[0].T
    expected = normalize_loudness(audio, SR)
    atol = {"PCM_16": 1e-4, "PCM_24": 1e-6, "FLOAT": 0.0}.get(fmt.subtype)
    if atol is None:  # Vorbis is lossy: the tone and its level survive
        assert abs(lufs(written, SR) - -14.0) <= 0.5
    else:
        np.testing.assert_allclose(written, expected, rtol=0, atol=atol)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left"


@pytest.mark.parametrize("suffix, subtype", [(".wav", "FLOAT"), (".flac", "PCM_24"), (".ogg", "VORBIS")])
def test_the_suffix_alone_picks_a_default_format(suffix, subtype, tmp_path):
    path = save_delivered(tmp_path / f"out{suffix.upper()}", noise(0.5), SR)
    assert sf.info(path).subtype == subtype


# --------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("out.wav", {"loudness": float("nan")}, "loudness must be a number of LUFS in [-70, 0], got nan"),
        ("out.wav", {"loudness": float("inf")}, "got inf"),
        ("out.wav", {"loudness": 3.0}, "loudness must be a number of LUFS in [-70, 0], got 3.0"),
        ("out.wav", {"loudness": -90.0}, "got -90.0"),
        ("out.wav", {"loudness": "-14"}, "got '-14'"),
        ("out.wav", {"true_peak_ceiling": 0.5}, "true_peak_ceiling must be a number of dBTP in [-70, 0], got 0.5"),
        ("out.wav", {"fade_in_ms": -5.0}, "fade_in_ms must be a number of milliseconds in [0, inf], got -5.0"),
        ("out.wav", {"fade_out_ms": float("nan")}, "fade_out_ms must be a number of milliseconds in [0, inf], got nan"),
        ("out.wav", {"fade_in_ms": 600.0}, "fade_in_ms + fade_out_ms (600 + 0 ms) is longer than the clip (500 ms)"),
        ("out.wav", {"fade_in_ms": 300.0, "fade_out_ms": 300.0}, "(300 + 300 ms) is longer than the clip"),
        ("out.wav", {"format": "mp3"}, "unknown audio format 'mp3'; valid formats: ['flac', 'flac16'"),
        ("out.wav", {"format": "flac24"}, "format 'flac24' writes .flac files, but the output is"),
        ("out.ogg", {"format": "wav16"}, "format 'wav16' writes .wav files"),
        ("out.mp3", {}, "output file"),
        ("out.wav", {"delivery_rate": 0}, "the delivery sample rate must be a whole number of Hz > 0, got 0"),
        ("out.wav", {"delivery_rate": -48000}, "got -48000"),
        ("out.wav", {"delivery_rate": 44100.5}, "got 44100.5"),
        ("out.wav", {"delivery_rate": True}, "got True"),
    ],
)
def test_bad_values_are_refused_before_writing(name, kwargs, match, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before every value was checked")

    monkeypatch.setattr("stable_audio_kit.delivery.resample", no_work)
    monkeypatch.setattr("stable_audio_kit.delivery.normalize_loudness", no_work)
    with pytest.raises(ValueError) as err:
        save_delivered(tmp_path / name, noise(0.5), SR, **kwargs)
    assert match in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "audio, match", [(np.zeros((1, 0)), "audio is empty"), (np.full((1, 100), np.nan), "NaN or infinite")]
)
def test_bad_audio_is_refused(audio, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        save_delivered(tmp_path / "out.wav", audio, SR)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- sak generate
def test_sak_generate_delivers_24_bit_flac_at_48khz(tiny_model_dir, tmp_path):
    args = ["generate", "a calm piano melody", "--seconds", "0.37", "--steps", "2", "--seed", "1"]
    args += ["--model", str(tiny_model_dir)]
    out = tmp_path / "out.flac"
    delivery = ["--loudness", "-16", "--format", "flac24", "--sample-rate", "48000", "--fade-out", "20"]
    assert main([*args, *delivery, "-o", str(out)]) == 0
    info = sf.info(out)
    samples = round(0.37 * 8000)  # the tiny model's rate
    assert (info.samplerate, info.frames, info.subtype) == (48000, round(samples / 8000 * 48000), "PCM_24")
    audio = sf.read(out, always_2d=True)[0].T
    assert abs(lufs(audio, 48000) - -16.0) <= 0.5
    assert true_peak(audio) <= -1.0 and audio[:, -1].max() == 0

    raw = tmp_path / "raw.wav"
    assert main([*args, "--no-normalize", "-o", str(raw)]) == 0
    raw_audio = sf.read(raw, always_2d=True)[0].T
    assert raw_audio.shape[-1] == samples
    assert abs(lufs(raw_audio, 8000) - -16.0) > 1.0, "--no-normalize keeps the model's levels"


def test_sak_generate_prompt_list_takes_the_format_suffix(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("soft piano\nloud drums\n")
    out = tmp_path / "out"
    args = ["generate", "--prompts", str(prompts), "--seconds", "0.25", "--steps", "1"]
    assert main([*args, "--model", str(tiny_model_dir), "--format", "wav16", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0000_soft_piano.wav", "0001_loud_drums.wav"]
    assert {sf.info(p).subtype for p in out.iterdir()} == {"PCM_16"}
    assert main([*args, "--model", str(tiny_model_dir), "--format", "ogg", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ogg")) == ["0000_soft_piano.ogg", "0001_loud_drums.ogg"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--loudness", "3"], "loudness must be a number of LUFS in [-70, 0], got 3.0"),
        (["--loudness", "nan"], "got nan"),
        (["--loudness", "-16", "--no-normalize"], "give --loudness or --no-normalize, not both"),
        (["--fade-in", "-1"], "fade_in_ms must be a number of milliseconds in [0, inf], got -1.0"),
        (["--fade-out", "300"], "fade_in_ms + fade_out_ms (0 + 300 ms) is longer than the clip (200 ms)"),
        (["--format", "mp3"], "unknown audio format 'mp3'"),
        (["--format", "flac"], "format 'flac' writes .flac files, but the output is 'out.wav'"),
        (["--sample-rate", "0"], "the delivery sample rate must be a whole number of Hz > 0, got 0"),
        (["--sample-rate", "-8000"], "got -8000"),
    ],
)
def test_sak_generate_refuses_bad_delivery_values_before_loading(args, match, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # No model directory: every delivery value is refused before a model would load.
    code = main(["generate", "x", "--seconds", "0.2", "--model", str(tmp_path / "none"), *args, "-o", "out.wav"])
    assert code == 2
    assert match in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
