"""`sak generate --init-audio / --loop / --bars / --schedule`, `sak inpaint` and `sak continue` on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.cli import main


@pytest.fixture()
def tone_file(tmp_path, tiny_pipeline):
    sr = tiny_pipeline.sample_rate
    t = np.arange(round(0.6 * sr)) / sr
    path = tmp_path / "in.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="FLOAT")
    return path


def run(tiny_model_dir, *args):
    return main([*args, "--model", str(tiny_model_dir), "--steps", "2", "--seed", "0"])


def test_audio_to_audio_from_the_cli(tiny_model_dir, tone_file, tmp_path):
    out = tmp_path / "a2a.wav"
    assert (
        run(tiny_model_dir, "generate", "a tone", "--init-audio", str(tone_file), "--strength", "0.6", "-o", str(out))
        == 0
    )
    assert sf.info(out).frames == sf.info(tone_file).frames  # the input's length


def test_inpaint_and_continue_from_the_cli(tiny_model_dir, tone_file, tmp_path):
    original, sr = sf.read(tone_file, dtype="float32")
    out = tmp_path / "inpainted.wav"
    assert run(tiny_model_dir, "inpaint", str(tone_file), "a tone", "--region", "0.2:0.4", "-o", str(out)) == 0
    got, _ = sf.read(out, dtype="float32")
    keep = np.r_[0 : round(0.18 * sr), round(0.42 * sr) : len(original)]
    np.testing.assert_array_equal(got[keep], original[keep])  # the input's level is kept: no normalisation
    out = tmp_path / "continued.wav"
    assert run(tiny_model_dir, "continue", str(tone_file), "a tone", "--seconds", "0.9", "-o", str(out)) == 0
    got, _ = sf.read(out, dtype="float32")
    assert len(got) == round(0.9 * sr)
    head = len(original) - round(0.02 * sr)
    np.testing.assert_array_equal(got[:head], original[:head])


def test_continue_beyond_the_window_from_the_cli(tiny_model_dir, tone_file, tmp_path, tiny_pipeline, capsys):
    # The tiny model's window is 1 s: a 0.6 s input continued to 2.5 s, and a 1.6 s one to 2.2 s.
    sr = tiny_pipeline.sample_rate
    long_file = tmp_path / "long.wav"
    t = np.arange(round(1.6 * sr)) / sr
    sf.write(long_file, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="FLOAT")
    for source, seconds in ((tone_file, 2.5), (long_file, 2.2)):
        original, _ = sf.read(source, dtype="float32")
        out = tmp_path / f"continued_{source.stem}.wav"
        assert run(tiny_model_dir, "continue", str(source), "a tone", "--seconds", str(seconds), "-o", str(out)) == 0
        got, _ = sf.read(out, dtype="float32")
        assert len(got) == round(seconds * sr)
        head = len(original) - round(0.02 * sr)
        np.testing.assert_array_equal(got[:head], original[:head])  # the input's level is kept: no normalisation
    # An input at least as long as --seconds, beyond the window: one line, no traceback, no file.
    capsys.readouterr()
    out = tmp_path / "never.wav"
    assert run(tiny_model_dir, "continue", str(long_file), "a tone", "--seconds", "1.5", "-o", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--seconds (1.5) must be longer than the input (1.600 s) to continue it"), err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_loop_bars_and_schedule_from_the_cli(tiny_model_dir, tmp_path):
    out = tmp_path / "loop.wav"
    # One 4/4 bar at 240 bpm is 1 s, the tiny model's window.
    assert run(tiny_model_dir, "generate", "a beat at 240 bpm", "--loop", "--bars", "1", "-o", str(out)) == 0
    info = sf.info(out)
    assert info.frames == info.samplerate
    schedule = tmp_path / "story.jsonl"
    schedule.write_text(
        "\n".join(json.dumps(r) for r in [{"prompt": "rain", "seconds": 1.2}, {"prompt": "thunder", "seconds": 0.9}])
    )
    out = tmp_path / "story.wav"
    assert run(tiny_model_dir, "generate", "--schedule", str(schedule), "-o", str(out)) == 0
    info = sf.info(out)
    assert info.frames == round(2.1 * info.samplerate)
    out = tmp_path / "long.wav"
    assert run(tiny_model_dir, "generate", "wind", "--seconds", "2.5", "--overlap", "0.3", "-o", str(out)) == 0
    assert sf.info(out).frames == round(2.5 * sf.info(out).samplerate)


def test_workflow_columns_of_a_prompt_list(tiny_model_dir, tone_file, tmp_path):
    rows = [
        {"prompt": "a tone", "init_audio": tone_file.name, "strength": 0.5},
        {"prompt": "a loop", "seconds": 0.5, "loop": "true"},
        {"prompt": "plain", "seconds": 0.3},
    ]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "outs"
    assert run(tiny_model_dir, "generate", "--prompts", str(prompts), "-o", str(out)) == 0
    files = sorted(out.iterdir())
    frames = [sf.info(f).frames for f in files]
    sr = sf.info(files[0]).samplerate
    assert frames == [sf.info(tone_file).frames, round(0.5 * sr), round(0.3 * sr)]


@pytest.mark.parametrize(
    "args, match",
    [
        (["inpaint", "{tone}", "x", "--region", "0.4:0.2"], r"region \(0.4, 0.2\) is empty"),
        (["inpaint", "{tone}", "x", "--region", "abc"], "--region takes START:END"),
        (["inpaint", "{tone}", "x", "--region", "0.1:2.0"], r"region \(0.1, 2\) ends after the clip"),
        (["inpaint", "{tone}", "x", "--region", "0.1:0.3", "--region", "0.2:0.4"], "overlap"),
        (["continue", "{tone}", "x", "--seconds", "0.5"], r"--seconds \(0.5\) must be longer than the input"),
        (["continue", "{missing}", "x", "--seconds", "2"], "cannot read"),
        (["continue", "{tone}", "x", "--seconds", "3", "--overlap", "0.9"], "overlap_seconds must be between"),
        (["generate", "x", "--strength", "0.5"], "--strength applies to --init-audio"),
        (["generate", "x", "--init-audio", "{tone}", "--strength", "2"], r"strength must be in \[0, 1\], got 2"),
        (["generate", "x", "--init-audio", "{missing}"], "does not exist"),
        (["generate", "x", "--bars", "2"], "--bars needs a tempo"),
        (["generate", "x at 120 bpm", "--bars", "2", "--seconds", "1"], "give --seconds or --bars, not both"),
        (["generate", "x at 120 bpm", "--loop", "--fade-in", "10"], "a loop has no start or end to fade"),
        (["generate", "x", "--loop", "--init-audio", "{tone}"], "cannot be combined with input audio"),
        (["generate", "x", "--seconds", "3", "--loop"], "loop cannot be combined with long-form"),
        (["generate", "x", "--seconds", "3", "--overlap", "0.9"], "overlap_seconds must be between"),
        (["generate", "--schedule", "{missing}"], "schedule file .* does not exist"),
    ],
)
def test_bad_workflow_arguments(tiny_model_dir, tone_file, tmp_path, capsys, args, match):
    import re

    args = [a.format(tone=tone_file, missing=tmp_path / "missing.wav") for a in args]
    out = tmp_path / "never.wav"
    assert run(tiny_model_dir, *args, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "Traceback" not in err and not out.exists()
