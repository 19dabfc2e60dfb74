"""FluidSynth rendering and SoundFont finding."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from stable_audio_kit.demo import find_soundfont, make_catalogue, rendering
from stable_audio_kit.demo.extra import INSTALL_HINT

from .conftest import needs_fluidsynth


@needs_fluidsynth
def test_a_render_has_exactly_the_requested_length_and_fades_out():
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(velocity=100, pitch=60, start=0.0, end=2.0))  # longer than the clip
    midi.instruments.append(piano)
    renderer = rendering.Renderer(find_soundfont(), 16000)
    try:
        first, second = renderer.render(midi, 12345), renderer.render(midi, 12345)
    finally:
        renderer.close()
    assert first.shape == (12345,) and first.dtype == np.float32
    assert np.abs(first).max() > 1e-2 and first[-1] == 0.0
    np.testing.assert_array_equal(first, second)  # a fresh synthesiser per clip: no state carried over


@needs_fluidsynth
def test_unloadable_soundfont_is_refused(tmp_path):
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"not a soundfont")
    with pytest.raises(ValueError, match="bogus.sf2"):
        make_catalogue(tmp_path / "demo", clips=1, soundfont=bogus, progress=False)
    assert not (tmp_path / "demo" / "metadata.jsonl").exists()


def test_find_soundfont_prefers_env_then_system_folders(tmp_path, monkeypatch):
    font = tmp_path / "mine.sf2"
    font.write_bytes(b"")
    monkeypatch.setenv(rendering.SOUNDFONT_ENV, str(font))
    assert find_soundfont() == font
    monkeypatch.setenv(rendering.SOUNDFONT_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(ValueError, match="gone.sf2"):
        find_soundfont()
    monkeypatch.delenv(rendering.SOUNDFONT_ENV)
    (tmp_path / "FluidR3_GM.sf2").write_bytes(b"")
    monkeypatch.setattr(rendering, "SOUNDFONT_DIRS", (tmp_path,))
    assert find_soundfont() == tmp_path / "FluidR3_GM.sf2"
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"")
    assert find_soundfont() == tmp_path / "TimGM6mb.sf2"  # the small one first


def test_find_soundfont_names_the_install_command_when_none_exists(tmp_path, monkeypatch):
    monkeypatch.delenv(rendering.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(rendering, "SOUNDFONT_DIRS", (tmp_path,))
    pretty_midi = pytest.importorskip("pretty_midi")
    monkeypatch.setattr(pretty_midi, "__file__", str(tmp_path / "pretty_midi" / "__init__.py"))
    with pytest.raises(FileNotFoundError, match=re.escape(INSTALL_HINT)):
        find_soundfont()
    monkeypatch.setitem(sys.modules, "pretty_midi", None)  # no pretty_midi, no bundled SoundFont
    with pytest.raises(FileNotFoundError, match=re.escape(INSTALL_HINT)):
        find_soundfont()
