"""The key-swap and tempo-swap probes: caption rewriting, clip selection, and `sak evaluate --probes`."""

import json
from types import SimpleNamespace

import pytest

from stable_audio_kit.cli import main
from stable_audio_kit.evaluation.probes import (
    PROBES,
    key_swap,
    move_key,
    parse_probes,
    scale_tempo,
    tempo_swap,
)
from stable_audio_kit.evaluation.report import load_heldout, render_markdown
from stable_audio_kit.music import Key, find_key, find_tempo

from .helpers import SR, burst_grid, note_sequence

# ------------------------------------------------------------------------------------------
# Caption rewriting


def test_move_key_rewrites_only_the_key_span():
    assert move_key("a warm piano in A minor at 90 bpm") == (
        "a warm piano in D minor at 90 bpm",
        Key(9, "minor"),
        Key(2, "minor"),
    )
    # Spelled out, flat, or a short "m": the whole span is replaced by the moved key's conventional name.
    assert move_key("pads in the key of F sharp minor, slow")[0] == "pads in the key of B minor, slow"
    assert move_key("Bb major strings")[0] == "Eb major strings"
    assert move_key("a C#m riff")[0] == "a F# minor riff"
    assert move_key("in a minor, softly")[0] == "in D minor, softly"
    assert move_key("G major", 12)[0] == "G major"
    # "a major chord" names no key.
    assert move_key("a major chord on strings") is None
    assert move_key("rock drums at 120 bpm") is None


def test_scale_tempo_rewrites_only_the_number():
    assert scale_tempo("rock drums in A minor at 120 bpm") == ("rock drums in A minor at 150 bpm", 120.0, 150)
    assert scale_tempo("at a tempo of 96 beats per minute")[0] == "at a tempo of 120 beats per minute"
    # Rounded half up to a whole bpm.
    assert scale_tempo("a groove, 90 BPM, loud") == ("a groove, 113 BPM, loud", 90.0, 113)
    assert scale_tempo("a beat at 96.5bpm")[0] == "a beat at 121bpm"
    assert scale_tempo("a slow piano in A minor") is None


# ------------------------------------------------------------------------------------------
# Selection


def test_key_swap_picks_tonal_and_mixed_clips_naming_a_key(probe_catalogue):
    rows = load_heldout(probe_catalogue, None)
    probe = key_swap(rows, n=40, seed=10)
    assert [(s.path, s.seed) for s in probe.swaps] == [("valid/b.wav", 11), ("valid/e.wav", 13)]
    assert [s.swapped for s in probe.swaps] == ["a warm piano in D minor", "drums and bass in B minor at 90 BPM"]
    assert probe.swaps[1].requested == Key(6, "minor") and probe.swaps[1].swapped_requested == Key(11, "minor")
    assert [s.path for s in key_swap(rows, n=1, seed=0).swaps] == ["valid/b.wav"]
    with pytest.raises(ValueError, match="none of the 2 held-out clips"):
        key_swap([rows[0], rows[4]], n=40, seed=0)
    with pytest.raises(ValueError, match="probe-n"):
        key_swap(rows, n=0, seed=0)


def test_tempo_swap_keeps_scaled_tempi_within_the_captions_range(probe_catalogue):
    rows = load_heldout(probe_catalogue, None)
    probe = tempo_swap(rows, n=40, seed=0)
    assert [(s.path, s.seed, s.requested, s.swapped_requested) for s in probe.swaps] == [
        ("valid/a.wav", 0, 100.0, 125),
        ("valid/e.wav", 3, 90.0, 113),
    ]
    assert probe.swaps[0].swapped == "rock drums at 125 bpm"
    with pytest.raises(ValueError, match="none stays within that range"):
        tempo_swap([rows[4]], n=40, seed=0)
    with pytest.raises(ValueError, match="percussive or mixed"):
        tempo_swap([rows[1], rows[2]], n=40, seed=0)


def test_parse_probes_refuses_unknown_names_listing_the_valid_ones():
    assert list(PROBES) == ["key-swap", "tempo-swap"]
    assert parse_probes("key-swap, tempo-swap") == ["key-swap", "tempo-swap"]
    assert parse_probes(["tempo-swap"]) == ["tempo-swap"]
    assert parse_probes("") == parse_probes(None) == []
    with pytest.raises(ValueError, match="unknown probe 'pitch-swap'; valid probes: key-swap, tempo-swap"):
        parse_probes("key-swap,pitch-swap")
    with pytest.raises(ValueError, match="unknown probe ''"):
        parse_probes("key-swap,")
    with pytest.raises(ValueError, match="twice"):
        parse_probes("key-swap,key-swap")


# ------------------------------------------------------------------------------------------
# Measurement, with a stand-in pipeline that plays exactly what each caption names


class CaptionPlayer:
    """Called like the pipeline: a scale and tonic arpeggio in the caption's key, or noise bursts at its tempo
    (or, when ``deaf``, at 100 bpm whatever the caption says)."""

    sample_rate = SR

    def __init__(self, deaf: bool = False):
        self.deaf, self.calls = deaf, []

    def __call__(self, prompt, seconds_total, num_inference_steps, guidance_scale, generator):
        self.calls.append((prompt, seconds_total, generator.initial_seed()))
        key = find_key(prompt)
        if key is not None:
            # The harmonic minor scale, then the tonic arpeggio, from C3 up: the fixture's keys are minor.
            steps = (0, 2, 3, 5, 7, 8, 11, 12, 0, 3, 7, 12, 7, 3, 0)
            audio = note_sequence([48 + key[0].tonic + step for step in steps], 0.3, decay=0.25)
        else:
            bpm = 100.0 if self.deaf else find_tempo(prompt)[0]
            audio = burst_grid(bpm, 8.0)
        return SimpleNamespace(audios=audio[None, None])


def test_key_swap_measures_the_requested_tonic(probe_catalogue):
    pytest.importorskip("librosa")
    probe = key_swap(load_heldout(probe_catalogue, None), n=40, seed=0)
    player = CaptionPlayer()
    result = probe.run(player, steps=3, guidance_scale=2.0)
    # Both generations of a clip share its seed and length.
    assert [call[1:] for call in player.calls] == [(0.8, 1), (0.8, 1), (1.0, 3), (1.0, 3)]
    assert result["n"] == 2
    assert {k: (row["as_written"], row["swapped"]) for k, row in result["rows"].items()} == {
        "tonic": (1.0, 1.0),
        "key_exact": (1.0, 1.0),
    }
    assert result["clips"][0]["estimated"] == "A minor" and result["clips"][0]["swapped_estimated"] == "D minor"


def test_tempo_swap_measures_the_ratio_of_the_two_tempi(probe_catalogue):
    pytest.importorskip("librosa")
    probe = tempo_swap(load_heldout(probe_catalogue, None), n=1, seed=0)
    rows = probe.run(CaptionPlayer(), steps=3, guidance_scale=2.0)["rows"]
    assert rows["tempo_ratio_median"]["swapped"] == pytest.approx(1.25, rel=0.05)
    assert rows["ratio_within_5pct"]["swapped"] == 1.0 and rows["ratio_unchanged"]["swapped"] == 0.0
    assert (rows["tempo_within_5pct"]["as_written"], rows["tempo_within_5pct"]["swapped"]) == (1.0, 1.0)
    # A model that ignores the number keeps its tempo: ratio 1.
    rows = probe.run(CaptionPlayer(deaf=True), steps=3, guidance_scale=2.0)["rows"]
    assert rows["tempo_ratio_median"]["swapped"] == pytest.approx(1.0)
    assert rows["ratio_within_5pct"]["swapped"] == 0.0 and rows["ratio_unchanged"]["swapped"] == 1.0
    assert rows["tempo_within_5pct"]["swapped"] == 0.0


# ------------------------------------------------------------------------------------------
# sak evaluate --probes


def test_evaluate_runs_each_probe_and_reports_its_rows(probe_catalogue, tiny_model_dir, tmp_path):
    pytest.importorskip("librosa")
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model_dir), "--catalogue", str(probe_catalogue), "--steps", "1"]
    args += ["--n", "2", "--no-timing-floor", "--probes", "key-swap,tempo-swap", "--probe-n", "2", "-o", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["probes"]) == ["key-swap", "tempo-swap"]
    keys, tempi = report["probes"]["key-swap"], report["probes"]["tempo-swap"]
    assert keys["n"] == 2 and list(keys["rows"]) == ["tonic", "key_exact"]
    assert keys["rows"]["tonic"]["reference"] == pytest.approx(1 / 12)
    for row in keys["rows"].values():
        assert 0.0 <= row["as_written"] <= 1.0 and 0.0 <= row["swapped"] <= 1.0
    assert [(c["requested"], c["swapped_requested"]) for c in keys["clips"]] == [
        ("A minor", "D minor"),
        ("F# minor", "B minor"),
    ]
    assert keys["clips"][0]["swapped_caption"] == "a warm piano in D minor"
    assert tempi["n"] == 2
    assert list(tempi["rows"]) == ["tempo_within_5pct", "tempo_ratio_median", "ratio_within_5pct", "ratio_unchanged"]
    assert tempi["rows"]["tempo_ratio_median"]["reference"] == 1.25
    assert [c["swapped_caption"] for c in tempi["clips"]] == [
        "rock drums at 125 bpm",
        "drums and bass in F# minor at 113 BPM",
    ]
    text = (out / "report.md").read_text()
    assert "## Probes" in text and "| key-swap (key moved up 5 semitones, same mode) | 2 |" in text
    assert "| tempo-swap (tempo x1.25, rounded to a whole bpm) | 2 |" in text
    assert "| estimated tonic = requested |" in text
    # The probes sit beside the other rows: the evaluation itself is unchanged.
    assert report["n"] == 2 and "model" in report["summary"]


def test_evaluate_refuses_an_unknown_probe_before_any_work(probe_catalogue, catalogue, tmp_path, capsys, monkeypatch):
    from stable_audio_kit.pipeline import StableAudioKitPipeline

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(StableAudioKitPipeline, "from_pretrained", no_model)
    out = tmp_path / "r"
    args = ["evaluate", "--model", str(tmp_path / "nowhere"), "--catalogue", str(probe_catalogue), "-o", str(out)]
    assert main([*args, "--probes", "key-swap,pitch-swap"]) == 2
    assert "unknown probe 'pitch-swap'; valid probes: key-swap, tempo-swap" in capsys.readouterr().err
    assert main([*args, "--probes", "tempo-swap", "--probe-n", "0"]) == 2
    assert "--probe-n must be an integer >= 1" in capsys.readouterr().err
    # A catalogue with nothing to probe is refused before any model loads too: its one tempo, x1.25,
    # leaves the range of tempi its captions name.
    args[args.index(str(probe_catalogue))] = str(catalogue)
    assert main([*args, "--probes", "tempo-swap"]) == 2
    assert "tempo-swap: the held-out captions name tempi of 120-120 bpm" in capsys.readouterr().err
    assert not out.exists()


def test_report_markdown_renders_probe_rows():
    report = {
        "model": "m",
        "catalogue": "c",
        "n": 2,
        "steps": 1,
        "guidance_scale": 7.0,
        "seed": 0,
        "summary": {c: {"n": 2, "exact_length": 1.0} for c in ("model", "real", "shuffled")},
        "probes": {
            "tempo-swap": {
                "change": "tempo x1.25",
                "n": 3,
                "rows": {
                    "tempo_ratio_median": {
                        "label": "median ratio",
                        "as_written": None,
                        "swapped": 1.2,
                        "reference": 1.25,
                    }
                },
            }
        },
    }
    assert "| tempo-swap (tempo x1.25) | 3 | median ratio | – | 1.200 | 1.250 |" in render_markdown(report)
    report["probes"] = {}
    assert "## Probes" not in render_markdown(report)
