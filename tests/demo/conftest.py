"""Shared by the demo catalogue tests: one small catalogue, the FluidSynth skip and caption word matching."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from stable_audio_kit.demo.catalogue import make_catalogue
from stable_audio_kit.demo.extra import EXTRA_HINT, INSTALL_HINT

MAX_SECONDS = 2.0
SAMPLE_RATE = 16000


def _fluidsynth_missing() -> str:
    """Why FluidSynth cannot be used here, or "" when it can."""
    try:
        importlib.import_module("pretty_midi")
        importlib.import_module("fluidsynth")
    except ImportError as e:  # no [demo] extra, or pyfluidsynth without libfluidsynth
        return str(e)
    return ""


_SKIP_REASON = f"FluidSynth is absent ({_fluidsynth_missing()}): `{EXTRA_HINT}` and `{INSTALL_HINT}`"
needs_fluidsynth = pytest.mark.skipif(bool(_fluidsynth_missing()), reason=_SKIP_REASON)


def read_rows(metadata: Path) -> list[dict]:
    return [json.loads(line) for line in metadata.read_text().splitlines()]


def has_word(text: str, words) -> bool:
    """Whole-word (or whole-phrase) match, so "low" is not found in "slow"."""
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text, flags=re.IGNORECASE) for w in words)


@pytest.fixture(scope="package")
def catalogue(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Enough short clips that every kind (percussive, tonal, mixed) and both splits occur."""
    if _fluidsynth_missing():
        pytest.skip(_SKIP_REASON)
    out = tmp_path_factory.mktemp("catalogue") / "demo"
    metadata = make_catalogue(out, clips=30, seed=7, sample_rate=SAMPLE_RATE, max_seconds=MAX_SECONDS, progress=False)
    assert metadata == out / "metadata.jsonl"
    rows = read_rows(metadata)
    assert {r["kind"] for r in rows} == {"percussive", "tonal", "mixed"}
    return out, rows
