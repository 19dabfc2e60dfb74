"""The [demo] extra is imported only where used, and its absence is one clear error."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from stable_audio_kit import cli
from stable_audio_kit.demo.extra import EXTRA_HINT, INSTALL_HINT, import_fluidsynth


def test_importing_needs_no_demo_extra():
    # With pretty_midi and pyfluidsynth unimportable, the package imports and make_catalogue says what to install.
    code = (
        "import sys\n"
        "sys.modules['pretty_midi'] = sys.modules['fluidsynth'] = None\n"
        "import stable_audio_kit.demo as demo\n"
        "try:\n"
        "    demo.make_catalogue(sys.argv[1], clips=1, progress=False)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "unused"], capture_output=True, text=True, check=True)
    assert EXTRA_HINT in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("missing", ["pretty_midi", "fluidsynth"])
def test_cli_without_the_demo_extra_prints_the_install_command(tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)
    out = tmp_path / "demo"
    assert cli.main(["catalogue", "make", str(out), "--clips", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and EXTRA_HINT in err, err
    assert not out.exists()


def test_a_missing_fluidsynth_library_names_the_apt_command(monkeypatch):
    class NoLibrary:  # what pyfluidsynth does when libfluidsynth is not installed
        def find_spec(self, name, path=None, target=None):
            if name == "fluidsynth":
                raise ImportError("Couldn't find the FluidSynth library.")
            return None

    monkeypatch.delitem(sys.modules, "fluidsynth", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoLibrary(), *sys.meta_path])
    with pytest.raises(ValueError, match=re.escape(INSTALL_HINT)):
        import_fluidsynth()
