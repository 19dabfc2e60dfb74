"""Tiny models and synthetic held-out sets with known answers, for the evaluation and its probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CATALOGUE_SR = 8000


def click_track(bpm: float, seconds: float) -> np.ndarray:
    out = np.zeros(round(seconds * CATALOGUE_SR), dtype=np.float32)
    period = 60.0 / bpm
    burst = np.random.default_rng(0).standard_normal(200) * np.exp(-np.arange(200) / 30)
    for k in range(int(seconds / period) + 1):
        i = round(k * period * CATALOGUE_SR)
        seg = out[i : i + 200]
        seg += 0.5 * burst[: len(seg)]
    return out


def tone(midi: float, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * CATALOGUE_SR)) / CATALOGUE_SR
    f = 440 * 2 ** ((midi - 69) / 12)
    return (0.3 * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))).astype(np.float32)


def write_catalogue(root: Path, rows: list[dict], audio: dict[str, np.ndarray]) -> Path:
    """``metadata.jsonl`` of ``rows`` (split from the folder of each path) and their audio at 8 kHz."""
    for row in rows:
        row["split"] = "train" if row["path"].startswith("train") else "valid"
        if row["path"] in audio:
            (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / row["path"], audio[row["path"]], CATALOGUE_SR)
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="package")
def model_dir(tmp_path_factory):
    """The tiny model with a 4 s window: tempo needs a few beats."""
    from stable_audio_kit.cli import main

    out = tmp_path_factory.mktemp("eval_model") / "m"
    config = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    assert main(["new-model", str(config), str(out), "window_seconds=4.0"]) == 0
    return out


@pytest.fixture(scope="package")
def catalogue(tmp_path_factory):
    rows = [
        dict(path="valid/a.wav", caption="rock drums at 120 bpm", seconds=3.5, bpm=120, kind="percussive"),
        dict(
            path="valid/b.wav",
            caption="a low tone in A minor",
            seconds=0.7,
            kind="tonal",
            register="low",
            tonic="A",
            mode="minor",
        ),
        dict(path="valid/c.wav", caption="a high tone", seconds=0.5, kind="tonal", register="high"),
        dict(path="train/d.wav", caption="unused", seconds=0.5, kind="tonal"),
    ]
    audio = {"valid/a.wav": click_track(120, 3.5), "valid/b.wav": tone(45, 0.7), "valid/c.wav": tone(80, 0.5)}
    return write_catalogue(tmp_path_factory.mktemp("eval_cat"), rows, audio)


@pytest.fixture(scope="package")
def probe_catalogue(tmp_path_factory):
    """Clips of at most 1 s (the window of ``tiny_model_dir``) whose captions name keys and tempi.

    key-swap takes b (A minor -> D minor) and e (F# minor -> B minor), not c ("a major chord" names no
    key) nor a (drums). tempo-swap takes a (100 -> 125 bpm) and e (90 -> 113), not f: 128 x 1.25 = 160
    lies beyond the held-out captions' 90-128 bpm.
    """
    rows = [
        dict(path="valid/a.wav", caption="rock drums at 100 bpm", seconds=1.0, bpm=100, kind="percussive"),
        dict(path="valid/b.wav", caption="a warm piano in A minor", seconds=0.8, kind="tonal"),
        dict(path="valid/c.wav", caption="a major chord on strings", seconds=0.5, kind="tonal"),
        dict(path="valid/e.wav", caption="drums and bass in F# minor at 90 BPM", seconds=1.0, bpm=90, kind="mixed"),
        dict(path="valid/f.wav", caption="a fast beat, 128 bpm", seconds=1.0, bpm=128, kind="percussive"),
        dict(path="train/g.wav", caption="a slow beat in C major at 60 bpm", seconds=1.0, bpm=60, kind="mixed"),
    ]
    audio = {
        "valid/a.wav": click_track(100, 1.0),
        "valid/b.wav": tone(57, 0.8),
        "valid/c.wav": tone(60, 0.5),
        "valid/e.wav": click_track(90, 1.0) + tone(42, 1.0),
        "valid/f.wav": click_track(128, 1.0),
    }
    return write_catalogue(tmp_path_factory.mktemp("probe_cat"), rows, audio)
