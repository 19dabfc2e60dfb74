"""Rendering the demo catalogue: finding a General MIDI SoundFont and playing MIDI through FluidSynth.

Needs ``libfluidsynth3`` and a GM SoundFont (``timgm6mb-soundfont``) from apt and the ``[demo]`` extra.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from ..utils import atomic_path
from .extra import INSTALL_HINT, import_fluidsynth

if TYPE_CHECKING:
    import pretty_midi

logger = logging.getLogger(__name__)

SOUNDFONT_ENV = "SAK_SOUNDFONT"
SOUNDFONT_DIRS: tuple[Path, ...] = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
# Small and fast first: TimGM6mb is 6 MB, FluidR3 148 MB.
SOUNDFONT_NAMES: tuple[str, ...] = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2", "FluidR3_GS.sf2")

FADE_SECONDS = 0.02
# Fixed FluidSynth gain: leaves loud four-part clips below full scale without per-clip normalisation,
# which would erase the difference between soft and loud.
SYNTH_GAIN = 0.5
FLUID_BLOCK = 64  # FluidSynth applies events at the start of its 64-sample blocks
DRUM_CHANNEL = 9


def find_soundfont() -> Path:
    """Path of a General MIDI SoundFont: ``$SAK_SOUNDFONT``, else the first of :data:`SOUNDFONT_NAMES`
    in :data:`SOUNDFONT_DIRS`, else the TimGM6mb copy bundled with pretty_midi (if installed).

    Raises ``ValueError`` if ``$SAK_SOUNDFONT`` names a missing file and ``FileNotFoundError`` naming
    the apt command if no SoundFont is found.
    """
    override = os.environ.get(SOUNDFONT_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ValueError(f"${SOUNDFONT_ENV}={override!r} is not a SoundFont file")
        return path
    for folder in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (folder / name).is_file():
                return folder / name
    # pretty_midi ships an older TimGM6mb; it renders differently from Debian's, hence last and logged.
    try:
        import pretty_midi
    except ImportError:
        bundled = None
    else:
        bundled = Path(pretty_midi.__file__).with_name("TimGM6mb.sf2")
    if bundled is not None and bundled.is_file():
        logger.warning("no system SoundFont found; using pretty_midi's bundled %s (install: %s)", bundled, INSTALL_HINT)
        return bundled
    searched = ", ".join(str(d) for d in SOUNDFONT_DIRS)
    raise FileNotFoundError(
        f"no General MIDI SoundFont found in {searched} and ${SOUNDFONT_ENV} is not set; install one with "
        f"`{INSTALL_HINT}` or point ${SOUNDFONT_ENV} at a .sf2 file"
    )


def _write_float_fn(fluidsynth: Any) -> Callable[..., int]:
    # pyfluidsynth only wraps fluid_synth_write_s16, which dithers and quantises to 16 bit; the float
    # writer is exact and free of dither state, so it is declared here on pyfluidsynth's own library handle.
    fn = fluidsynth._fl.fluid_synth_write_float
    # (synth, frames, then buffer, offset, stride for the left and for the right channel)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, *[ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2]
    fn.restype = ctypes.c_int
    return fn


class Renderer:
    """Renders PrettyMIDI objects to exact-length mono audio, one fresh FluidSynth synthesiser per clip.

    A fresh synthesiser per clip is what makes a clip independent of the clips rendered before it:
    a reused one keeps voice and effect state that changes the next clip audibly even after
    ``system_reset``. A keeper synthesiser holds the SoundFont so FluidSynth's sample cache makes each
    fresh load cost milliseconds instead of a full file read.
    """

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        self.fluidsynth = import_fluidsynth()
        self.write_float = _write_float_fn(self.fluidsynth)
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        self._keeper, _ = self._new_synth()

    def _new_synth(self) -> tuple[Any, int]:
        synth = self.fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(self.sample_rate))
        sfid = synth.sfload(str(self.soundfont))
        if sfid < 0:
            synth.delete()
            raise ValueError(f"soundfont {str(self.soundfont)!r} could not be loaded by FluidSynth")
        return synth, sfid

    def close(self) -> None:
        self._keeper.delete()

    def render(self, midi: pretty_midi.PrettyMIDI, samples: int) -> np.ndarray:
        """Mono float32 ``(samples,)``: the MIDI from time 0, cut at ``samples``, last 20 ms faded out."""
        synth, sfid = self._new_synth()
        try:
            events = []  # (sample, order, fn, args); note-offs sort before note-ons at the same sample
            melodic_channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
            for inst in midi.instruments:
                channel = DRUM_CHANNEL if inst.is_drum else next(melodic_channels)
                if synth.program_select(channel, sfid, 128 if inst.is_drum else 0, inst.program) != 0:
                    raise ValueError(f"soundfont {self.soundfont.name} has no preset for {inst.name!r}")
                for note in inst.notes:
                    on = self._to_block(note.start)
                    if on >= samples:
                        continue
                    off = max(self._to_block(note.end), on + FLUID_BLOCK)
                    events.append((on, 1, synth.noteon, (channel, note.pitch, note.velocity)))
                    events.append((off, 0, synth.noteoff, (channel, note.pitch)))
            events.sort(key=lambda e: (e[0], e[1]))
            stereo = np.zeros((samples, 2), dtype=np.float32)
            ptr = stereo.ctypes.data
            cur = 0
            for at, _, fn, args in [*events, (samples, 0, None, ())]:
                at = min(at, samples)
                if at > cur:
                    self.write_float(synth.synth, at - cur, ptr, 2 * cur, 2, ptr, 2 * cur + 1, 2)
                    cur = at
                if fn is not None and at < samples:
                    fn(*args)
        finally:
            synth.delete()
        mono = stereo.mean(axis=1)
        fade = min(samples, round(FADE_SECONDS * self.sample_rate))
        mono[samples - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return mono

    def _to_block(self, seconds: float) -> int:
        # FluidSynth starts events at its next block; rounding to the nearest block keeps the error symmetric.
        return round(seconds * self.sample_rate / FLUID_BLOCK) * FLUID_BLOCK


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono ``(samples,)`` audio as 16-bit PCM WAV, atomically.

    Not ``audio.save_audio``: its float WAVs carry libsndfile's PEAK chunk, which holds a timestamp, so
    the same audio written twice differs in bytes. PCM has no PEAK chunk; 16 bit is ample for these clips.
    """
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        logger.warning("%s peaks at %.3f and is clipped to full scale", path.name, peak)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
