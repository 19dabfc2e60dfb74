"""The ``[demo]`` extra (pretty_midi, pyfluidsynth), imported only where it is used.

``import stable_audio_kit.demo`` works without it; composing or rendering raises ``ValueError`` naming the
install command, which ``sak`` prints as one line.
"""

from __future__ import annotations

from typing import Any

EXTRA_HINT = 'pip install -e ".[demo]"'
INSTALL_HINT = "apt-get install -y --no-install-recommends libfluidsynth3 timgm6mb-soundfont"


def _missing_extra(error: ImportError) -> ValueError:
    return ValueError(f"the demo catalogue needs the [demo] extra (pretty_midi, pyfluidsynth): {EXTRA_HINT} ({error})")


def import_pretty_midi() -> Any:
    """The ``pretty_midi`` module; ``ValueError`` naming :data:`EXTRA_HINT` if it is not installed."""
    try:
        import pretty_midi
    except ImportError as e:
        raise _missing_extra(e) from e
    return pretty_midi


def import_fluidsynth() -> Any:
    """The ``fluidsynth`` module of pyfluidsynth; ``ValueError`` naming :data:`EXTRA_HINT` if pyfluidsynth is
    not installed, or :data:`INSTALL_HINT` if it is but cannot load the FluidSynth library."""
    try:
        import fluidsynth
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == "fluidsynth":
            raise _missing_extra(e) from e
        # pyfluidsynth is there, libfluidsynth is not
        raise ValueError(f"pyfluidsynth cannot load the FluidSynth library: {INSTALL_HINT} ({e})") from e
    return fluidsynth
