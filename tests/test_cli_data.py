"""`sak data check` and `sak encode` on a tiny catalogue."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def write_catalogue(root: Path, bad: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000 * 2) / 8000
    sf.write(root / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 8000)
    (root / "tone.txt").write_text("a low sine tone")
    sf.write(root / "short.flac", 0.3 * np.sin(2 * np.pi * 440 * t[:3000]), 8000)
    (root / "short.json").write_text(json.dumps({"caption": "a short high tone"}))
    sf.write(root / "nocaption.wav", np.zeros(4000), 16000)
    if bad:
        (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


def test_data_check_report(tmp_path, capsys):
    cat = write_catalogue(tmp_path / "cat", bad=True)
    code = main(["data", "check", str(cat), "--config", str(ROOT / "configs" / "tiny.yaml")])
    out = capsys.readouterr().out
    assert code == 0  # some files are usable
    assert "broken.wav" in out and "nocaption.wav" in out


def test_data_check_nothing_usable(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "check", str(tmp_path / "empty"), "--sample-rate", "8000", "--channels", "1"]) != 0


def test_encode_writes_shards_with_timing(tmp_path, tiny_model_dir):
    cat = write_catalogue(tmp_path / "cat")
    out = tmp_path / "latents"
    assert main(["encode", str(cat), "--model", str(tiny_model_dir), "-o", str(out), "--text"]) == 0
    index = json.loads((out / "index.json").read_text())
    durations = {item["path"]: item["seconds_total"] for item in index["items"]}
    assert durations == pytest.approx({"nocaption.wav": 0.25, "short.flac": 0.375, "tone.wav": 2.0})
    assert index["has_text"] is True
    # A second run refuses to overwrite without --force.
    assert main(["encode", str(cat), "--model", str(tiny_model_dir), "-o", str(out)]) == 2
