"""Catalogues shared by the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .helpers import SR, truncate, write_ramp, write_tone


@pytest.fixture
def odd_catalogue(tmp_path) -> Path:
    root = tmp_path / "odd"
    write_tone(root / "long.wav", 3.0)
    (root / "long.txt").write_text("a long tone")
    write_tone(root / "u8.wav", 1.0, subtype="PCM_U8")
    (root / "u8.json").write_text(json.dumps({"caption": "eight bit"}))
    write_tone(root / "s24.wav", 1.5, subtype="PCM_24")
    (root / "s24.txt").write_text("twenty-four bit")
    write_tone(root / "stereo48k.wav", 0.5, sr=48000, channels=2)
    (root / "stereo48k.txt").write_text("stereo at 48 kHz")
    write_tone(root / "trunc.wav", 1.0)
    (root / "trunc.txt").write_text("cut short")
    truncate(root / "trunc.wav")
    sf.write(str(root / "empty.wav"), np.zeros((0, 1), np.float32), SR)
    (root / "empty.txt").write_text("nothing")
    sf.write(str(root / "silent.wav"), np.zeros((1000, 1), np.float32), SR)
    (root / "silent.txt").write_text("silence")
    write_tone(root / "nocap.wav", 0.25)
    write_tone(root / "emptycap.wav", 0.25)
    (root / "emptycap.txt").write_text("   \n")
    return root


@pytest.fixture
def latent_catalogue_root(tmp_path) -> Path:
    root = tmp_path / "lat"
    write_ramp(root / "a.wav", 3000)
    (root / "a.txt").write_text("a ramp up")
    write_tone(root / "b.wav", 1.234)
    (root / "b.txt").write_text("b")
    write_tone(root / "c.wav", 0.4)
    write_tone(root / "d.wav", 0.403)
    (root / "d.txt").write_text("a four word caption")
    write_tone(root / "e.wav", 1.5, sr=2000, channels=2)
    (root / "e.txt").write_text("stereo")
    return root
