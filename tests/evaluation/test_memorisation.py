"""`sak evaluate --memorisation`: near-copies of training clips are found, and their threshold holds on real music.

The calibration cases are the ones the check must get right: a training clip of the demo catalogue through the
bundled model's VAE, with a gain change or a time shift, is a near-copy; the same instruments, key and texture on
another composition, progression and tempo are not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("librosa")

from stable_audio_kit.cli import main
from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR
from stable_audio_kit.evaluation.memorisation import (
    SHORTEST_SECONDS,
    THRESHOLD,
    TOP_K,
    Alignment,
    MemorisationCheck,
    align,
    alignment_features,
    check_options,
)

from .conftest import CATALOGUE_SR, click_track, tone, write_catalogue
from .helpers import SR, note_sequence

BUNDLED = DEFAULT_MODEL_DIR


def test_alignment_finds_the_shift_and_ignores_gain():
    melody = note_sequence([60, 64, 67, 72, 67, 64, 62, 65, 69, 65, 60, 55], 0.4, decay=0.3)
    shifted = np.concatenate([np.zeros(round(0.5 * SR), np.float32), 0.25 * melody])
    found = align(alignment_features(shifted, SR), alignment_features(melody, SR))
    assert found.score > 0.9 and found.spectrogram > 0.9 and found.onsets > 0.9
    assert found.shift_seconds == pytest.approx(0.5, abs=0.03)
    assert found.overlap_seconds == pytest.approx(4.8, abs=0.05)
    # Another melody on the same notes of C major at the same tempo: the same key and rhythm grid, not a copy.
    other = note_sequence([67, 60, 72, 64, 62, 69, 65, 60, 64, 55, 67, 72], 0.4, decay=0.3)
    assert align(alignment_features(other, SR), alignment_features(melody, SR)).score < THRESHOLD


def test_silence_and_short_clips_do_not_break_the_alignment():
    silent = alignment_features(np.zeros(3 * SR), SR)
    melody = alignment_features(note_sequence([60, 62, 64], 0.6, decay=0.2), SR)
    assert align(silent, melody).score == 0.0  # nothing varies: no correlation
    # Shorter than SHORTEST_SECONDS: no shift leaves enough overlap to judge.
    for short in (np.zeros(10), note_sequence([60, 62], 0.6, decay=0.2)):
        assert align(alignment_features(short, SR), melody) == Alignment(-1.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        alignment_features(np.full(100, np.nan), SR)


def test_options_are_checked():
    assert check_options(None, None) == (TOP_K, THRESHOLD)
    with pytest.raises(ValueError, match="memorisation_top_k must be a positive integer, got 0"):
        check_options(0, None)
    with pytest.raises(ValueError, match=r"--memorisation-threshold must be in \(-1, 1\]"):
        check_options(None, 1.5, threshold_name="--memorisation-threshold")
    with pytest.raises(ValueError, match="must be finite"):
        check_options(None, float("nan"))


# --------------------------------------------------------------------------------------------
# Calibration on the demo catalogue's own music


@pytest.fixture(scope="module")
def demo_catalogue(tmp_path_factory):
    pytest.importorskip("pretty_midi")
    pytest.importorskip("fluidsynth")
    from stable_audio_kit.demo import make_catalogue

    out = tmp_path_factory.mktemp("demo_cat") / "cat"
    make_catalogue(out, clips=30, seed=3, max_seconds=8.0)
    return out


def _other_piece(row: dict, renderer) -> np.ndarray:
    """Another piece of ``row``'s style and key: its instruments, key, texture, dynamics and length, another
    composition and progression, 15 % faster (at the same tempo and patterns the demo recipe leaves little to
    tell two pieces apart; the module docstring gives the figures)."""
    from stable_audio_kit.demo.composition import compose_midi
    from stable_audio_kit.demo.vocabulary import PROGRESSIONS, ROMAN

    new = json.loads(json.dumps(row))
    new["composition_seed"] = row["composition_seed"] + 1
    new["bpm"] = round(row["bpm"] * 1.15)
    if row.get("progression"):
        others = [[ROMAN[row["mode"]][d] for d in p] for p in PROGRESSIONS[row["mode"]]]
        new["progression"] = next(p for p in others if p != row["progression"])
    return renderer.render(compose_midi(new), row["samples"])


def test_threshold_separates_copies_from_pieces_of_the_same_style_and_key(demo_catalogue):
    import torch

    from stable_audio_kit.audio import load_audio
    from stable_audio_kit.demo.rendering import Renderer, find_soundfont
    from stable_audio_kit.vae import load_vae_folder

    rows = [json.loads(line) for line in (demo_catalogue / "metadata.jsonl").read_text().splitlines()]
    picked = {}
    for row in rows:  # one long-enough training clip of each kind
        if row["split"] == "train" and row["seconds"] >= 3.0:
            picked.setdefault(row["kind"], row)
    assert sorted(picked) == ["mixed", "percussive", "tonal"]
    vae = load_vae_folder(BUNDLED / "vae").eval()
    renderer = Renderer(find_soundfont(), rows[0]["sample_rate"])
    sr = rows[0]["sample_rate"]
    scores = {}
    for kind, row in picked.items():
        original = load_audio(demo_catalogue / row["path"], sr, 1)[0]
        with torch.no_grad():
            latents = vae.encode(torch.from_numpy(original)[None, None]).latent_dist.mode()
            through = vae.decode(latents).sample[0, 0, : original.shape[0]].numpy()
        target = alignment_features(original, sr)
        cases = {
            "gain": through * 10 ** (-6 / 20),
            "shift": np.concatenate([np.zeros(round(0.37 * sr), np.float32), through])[: original.shape[0]],
            "other piece": _other_piece(row, renderer),
        }
        for case, audio in cases.items():
            found = align(alignment_features(audio, sr), target)
            scores[kind, case] = found.score
            if case == "shift":
                assert found.shift_seconds == pytest.approx(0.37, abs=0.03)
    renderer.close()
    print({f"{kind} {case}": round(score, 3) for (kind, case), score in scores.items()})
    for (kind, case), score in scores.items():
        if case == "other piece":
            assert score < THRESHOLD, (kind, case, score)
        else:
            assert score >= THRESHOLD, (kind, case, score)


# --------------------------------------------------------------------------------------------
# The report


@pytest.fixture(scope="module")
def train_catalogue(catalogue, tmp_path_factory):
    """Training clips beside the held-out set of ``catalogue``: one a copy of held-out ``valid/a.wav`` (6 dB
    quieter, 0.3 s later), the others different music."""
    held_out, _ = sf.read(catalogue / "valid" / "a.wav", dtype="float32")
    copy = np.concatenate([np.zeros(round(0.3 * CATALOGUE_SR), np.float32), 0.5 * held_out])
    audio = {
        "train/copy.wav": copy,
        "train/slower.wav": click_track(96, 4.0),
        "train/melody.wav": np.concatenate([tone(m, 0.5) for m in (57, 60, 64, 62, 65, 60)]),
    }
    rows = [dict(path=path, caption="a clip", seconds=len(a) / CATALOGUE_SR) for path, a in audio.items()]
    return write_catalogue(tmp_path_factory.mktemp("train_cat"), rows, audio)


def test_evaluate_reports_near_copies_with_playable_paths(catalogue, train_catalogue, model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(model_dir), "--catalogue", str(catalogue), "--steps", "1"]
    args += ["--no-timing-floor", "--clap", str(BUNDLED / "clap"), "--memorisation", str(train_catalogue)]
    assert main([*args, "--memorisation-top-k", "2", "-o", str(out)]) == 0
    section = json.loads((out / "report.json").read_text())["memorisation"]
    assert section["train_clips"] == 3 and section["top_k"] == 2 and section["threshold"] == THRESHOLD
    real = section["summary"]["real"]
    # The control column holds the one real copy: the held-out clip the training catalogue copied. The two tones
    # of 0.7 and 0.5 s are too short to judge.
    assert SHORTEST_SECONDS > 0.7
    assert (real["n"], real["near_copies"], real["fraction"], real["too_short"]) == (1, 1, 1.0, 2)
    assert real["by_group"] == {"percussive": {"n": 1, "near_copies": 1}}  # the kind each held-out row asks for
    flagged = [p for p in section["pairs"] if p["near_copy"]]
    assert [(p["set"], p["name"]) for p in flagged] == [("real", "valid/a.wav")]
    pair = flagged[0]
    assert pair["train_path"] == str((train_catalogue / "train" / "copy.wav").resolve())
    assert pair["clip_path"] == str((catalogue / "valid" / "a.wav").resolve())
    # The training copy starts 0.3 s before the held-out clip's content: at -0.3 s on the held-out clip's time line.
    assert pair["shift_seconds"] == pytest.approx(-0.3, abs=0.03) and pair["score"] > 0.9
    assert (section["summary"]["model"]["n"], section["summary"]["model"]["too_short"]) == (1, 2)
    # Every listed generated clip is written into the report folder, to be played beside its training clip.
    listed = [p for p in section["pairs"] if p["set"] == "model"]
    assert listed and all((out / p["clip_path"]).is_file() for p in listed)
    judged = [clip for clip in section["clips"]["model"] if not clip.get("too_short")]
    assert len(judged) == 1 and len(judged[0]["candidates"]) == 2
    markdown = (out / "report.md").read_text()
    assert "## Memorisation" in markdown and "| real held-out clips (control) | 1 | 1 | 1.000 |" in markdown
    assert "real held-out clips (control): percussive 1/1" in markdown
    assert f"[valid/a.wav]({pair['clip_path']}) | `{pair['train_path']}`" in markdown
    assert "## Memorisation" in capsys.readouterr().out


def test_memorisation_bad_input_is_refused_before_generating(catalogue, train_catalogue, model_dir, tmp_path, capsys):
    def refused(extra, message):
        out = tmp_path / "r"
        args = ["evaluate", "--model", str(model_dir), "--catalogue", str(catalogue), "-o", str(out), *extra]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()

    refused(["--memorisation", str(tmp_path / "nowhere")], "is not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(["--memorisation", str(empty)], "has no training clips")
    refused(["--memorisation", str(catalogue), "--memorisation-top-k", "0"], "--memorisation-top-k must be")
    refused(["--memorisation", str(catalogue), "--memorisation-threshold", "2"], "--memorisation-threshold must be")
    refused(["--memorisation", str(catalogue)], "names files that are missing: ['train/d.wav']")
    refused(["--memorisation", str(train_catalogue)], "the memorisation check needs a CLAP model")


def test_plan_lists_the_training_split(train_catalogue):
    check = MemorisationCheck.plan(train_catalogue)
    assert check.train_paths == ["train/copy.wav", "train/melody.wav", "train/slower.wav"]
    assert check.catalogue == train_catalogue.resolve() and check.top_k == TOP_K and check.threshold == THRESHOLD
