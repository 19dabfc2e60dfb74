"""The demo catalogue: procedurally composed MIDI, rendered with FluidSynth and captioned (``sak catalogue make``).

Needs the ``[demo]`` extra (pretty_midi, pyfluidsynth) and a General MIDI SoundFont to compose and render;
importing it does not.
"""

from .catalogue import make_catalogue
from .composition import compose_midi
from .rendering import find_soundfont
from .vocabulary import Palette

__all__ = ["Palette", "compose_midi", "find_soundfont", "make_catalogue"]
