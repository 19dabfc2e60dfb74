"""The demo catalogue: procedurally composed MIDI, rendered with FluidSynth and captioned (``sak catalogue make``).

Needs the ``[demo]`` extra (pretty_midi, pyfluidsynth) and a General MIDI SoundFont.
"""

from .catalogue import compose_midi, find_soundfont, make_catalogue

__all__ = ["compose_midi", "find_soundfont", "make_catalogue"]
