"""A procedural demo catalogue: MIDI composed with pretty_midi, rendered with FluidSynth, captioned MidiCaps-style.

``make_catalogue(out_dir)`` writes a small, fully labelled text-to-audio data set without any download
beyond a General MIDI SoundFont, for smoke-testing training, timing conditioning and evaluation::

    OUT_DIR/
      metadata.jsonl            one JSON row per clip (see below), ordered by clip index
      train/00000_piano-melody.wav
      valid/00007_house-drums.wav

Every clip is a short piece composed from a seed: melodies, chord progressions, arpeggios and bass
lines on General MIDI instruments, drum grooves on the GM drum channel, and combinations of them.
A *composition* (key, mode, tempo, register, progression, notes) is rendered one to three times with
different instruments, dynamics and lengths; those renditions share a ``group`` and always land in
the same split, so train and valid share no music.

Each metadata row holds ``path`` (relative to OUT_DIR), ``caption``, ``split`` (train|valid),
``group``, ``seconds`` / ``samples`` / ``sample_rate`` (``samples == round(seconds * sample_rate)``
is the exact length of the file), ``kind`` (percussive|tonal|mixed), ``texture``, ``instruments``
and ``programs`` (GM programs; the drum kit's program for drums), ``parts`` (role, instrument,
program, is_drum, register, velocity, median MIDI pitch and note count of every part), ``bpm``,
``tempo`` (slow|moderate|fast), ``tonic`` / ``mode`` / ``key`` (null for drums only), ``register``
and ``median_midi_pitch`` of the lead part, ``dynamics`` and its ``velocity``, ``mood`` (the mood
words used in the caption, possibly none), ``groove`` (drum style or null), ``progression`` (roman
numerals), ``patterns``, ``seed`` (catalogue seed), ``composition_seed``, ``rendition``,
``transposed_from`` (the index of the clip this one is a transposed copy of, else null; see
``make_catalogue(transpositions=)``) and ``soundfont``. :func:`compose_midi` rebuilds a row's notes from the row alone.

Audio is mono 16-bit PCM WAV at ``sample_rate`` (FluidSynth's stereo output averaged), with a fixed
synthesiser gain and no normalisation so that the velocity behind ``dynamics`` stays audible as
loudness. Events sit on FluidSynth's 64-sample processing grid (within 1.5 ms at 22.05 kHz). Each
clip is rendered by a fresh synthesiser (sample data stays cached), so a clip's audio depends only
on its row and the SoundFont, not on rendering order; the same seed gives byte-identical files.

Needs ``libfluidsynth3`` and a GM SoundFont (``timgm6mb-soundfont``) from apt and the ``[demo]`` extra
(pretty_midi, pyfluidsynth) from pip. The work is split: :mod:`.vocabulary` (instruments, grooves, words),
:mod:`.composition` (the notes), :mod:`.rendering` (FluidSynth), :mod:`.captions`; this module plans the
catalogue (groups, splits, transposed copies) and writes it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..music import TONIC_NAMES, key_from_name
from ..utils import atomic_write_text, check_writable
from .captions import write_caption
from .composition import MIN_SECONDS, compose_midi, sample_composition, sample_rendition
from .extra import import_fluidsynth, import_pretty_midi
from .rendering import Renderer, find_soundfont, write_wav
from .vocabulary import DRUM_KIT_NAMES, GROOVES, Palette, tempo_word

if TYPE_CHECKING:
    import pretty_midi

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 22050
DEFAULT_MAX_SECONDS = 10.0
DEFAULT_CLIPS = 200


def _plan(
    clips: int,
    seed: int,
    sample_rate: int,
    max_seconds: float,
    valid_fraction: float,
    transpositions: int = 0,
    palette: Palette | None = None,
) -> list[dict[str, Any]]:
    """All rows without the composed facts (median pitches, caption): cheap, so splits can see every group.

    ``clips`` rows, then ``transpositions`` copies of every tonal or mixed training row in other keys
    (same mode, tonics drawn without repeats), each with ``transposed_from`` set to its original's index.
    """
    root = np.random.SeedSequence(seed)
    comp_rng = np.random.default_rng(root.spawn(1)[0])
    rows: list[dict[str, Any]] = []
    group_sizes: list[int] = []
    g = 0
    while len(rows) < clips:
        comp = sample_composition(comp_rng, g, palette)
        n = min(int(comp_rng.integers(1, 4)), clips - len(rows))
        for r in range(n):
            rng = np.random.default_rng([seed, g, r, 1])
            rendition = sample_rendition(rng, comp, r, sample_rate, max_seconds, palette)
            rows.append({**comp, **rendition, "tempo": tempo_word(comp["bpm"])})
        group_sizes.append(n)
        g += 1
    # Split by composition: walk the groups in a seeded order, filling valid up to its share.
    order = np.random.default_rng([seed, 2]).permutation(len(group_sizes))
    target = round(valid_fraction * clips)
    if valid_fraction > 0 and len(group_sizes) > 1:
        target = max(target, 1)
    valid_groups: set[int] = set()
    count = 0
    for gi in order:
        if count >= target or len(valid_groups) == len(group_sizes) - 1:  # keep at least one training group
            break
        valid_groups.add(int(gi))
        count += group_sizes[gi]
    for row in rows:
        row["split"] = "valid" if int(row["group"][1:]) in valid_groups else "train"
        row["transposed_from"] = None
    # Transposed copies go after every original clip, so the first `clips` rows (and the held-out set)
    # do not depend on `transpositions`.
    copies = []
    for index, row in enumerate(rows):
        if row["split"] != "train" or row["mode"] is None or transpositions == 0:
            continue
        others = [t for t in TONIC_NAMES[row["mode"]] if t != row["tonic"]]
        picks = np.random.default_rng([seed, int(row["group"][1:]), row["rendition"], 5]).permutation(len(others))
        for k in picks[:transpositions]:
            copies.append({**row, "tonic": others[int(k)], "transposed_from": index})
    return rows + copies


def _median(values: Sequence[int]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _finish_row(
    index: int, plan: dict[str, Any], seed: int, sample_rate: int, soundfont: Path
) -> tuple[dict[str, Any], pretty_midi.PrettyMIDI]:
    """Compose the notes, measure what the caption states about them, caption, and order the row's fields."""
    row = {**plan, "sample_rate": sample_rate}
    midi = compose_midi(row)
    limit = row["samples"] / sample_rate
    parts = []
    for part, inst in zip(row["parts"], midi.instruments, strict=True):
        sounding = [n.pitch for n in inst.notes if n.start < limit]
        parts.append(
            {**part, "median_midi_pitch": None if part["is_drum"] else _median(sounding), "notes": len(sounding)}
        )
    row["parts"] = parts
    lead = parts[0]
    row["register"] = lead["register"]
    row["median_midi_pitch"] = lead["median_midi_pitch"]
    row["key"] = key_from_name((row["tonic"], row["mode"])).name if row["mode"] else None
    caption, moods = write_caption(np.random.default_rng([seed, int(row["group"][1:]), row["rendition"], 3]), row)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{row['groove'] or lead['instrument']} {row['texture']}".lower()).strip("-")
    out = {
        "path": f"{row['split']}/{index:05d}_{slug}.wav",
        "caption": caption,
        "split": row["split"],
        "group": row["group"],
        "index": index,
        "seconds": row["seconds"],
        "samples": row["samples"],
        "sample_rate": sample_rate,
        "channels": 1,
        "kind": row["kind"],
        "texture": row["texture"],
        "instruments": [p["instrument"] for p in parts],
        "programs": [p["program"] for p in parts],
        "parts": parts,
        "bpm": row["bpm"],
        "tempo": row["tempo"],
        "tonic": row["tonic"],
        "mode": row["mode"],
        "key": row["key"],
        "register": row["register"],
        "median_midi_pitch": row["median_midi_pitch"],
        "dynamics": row["dynamics"],
        "velocity": row["velocity"],
        "mood": moods,
        "groove": row["groove"],
        "drum_kit": DRUM_KIT_NAMES.get(GROOVES[row["groove"]].kit) if row["groove"] else None,
        "progression": row["progression"],
        "patterns": row["patterns"],
        "seed": seed,
        "composition_seed": row["composition_seed"],
        "rendition": row["rendition"],
        "transposed_from": row["transposed_from"],
        "soundfont": soundfont.name,
    }
    return out, midi


def _check_inputs(
    out_dir: str | Path,
    clips: int,
    seed: int,
    sample_rate: int,
    max_seconds: float,
    valid_fraction: float,
    soundfont: str | Path | None,
) -> tuple[Path, Path]:
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise ValueError(f"clips must be an integer >= 1, got {clips!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be an integer in [8000, 96000] (FluidSynth's range), got {sample_rate!r}")
    if (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, (int, float))
        or not math.isfinite(max_seconds)
        or max_seconds < MIN_SECONDS
    ):
        raise ValueError(f"max_seconds must be a finite number >= {MIN_SECONDS}, got {max_seconds!r}")
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, (int, float))
        or not 0.0 <= valid_fraction < 1.0
    ):
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    check_writable(out / "metadata.jsonl")
    if out.is_dir() and any(out.iterdir()) and not (out / "metadata.jsonl").is_file():
        raise ValueError(f"out_dir {str(out)!r} is not empty and holds no catalogue to replace; use an empty folder")
    if soundfont is None:
        font = find_soundfont()
    else:
        font = Path(soundfont).expanduser()
        if not font.is_file():
            raise ValueError(f"soundfont {str(soundfont)!r} is not a file")
    return out, font


def _previous_paths(out: Path) -> set[str]:
    """Audio files listed by a catalogue already in ``out``: the only files a rebuild may delete."""
    meta = out / "metadata.jsonl"
    if not meta.is_file():
        return set()
    paths = set()
    for line in meta.read_text().splitlines():
        try:
            path = json.loads(line).get("path") if line.strip() else None
        except (json.JSONDecodeError, AttributeError):
            path = None
        if isinstance(path, str) and path.startswith(("train/", "valid/")) and ".." not in path:
            paths.add(path)
    return paths


def make_catalogue(
    out_dir: str | Path,
    clips: int = DEFAULT_CLIPS,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    valid_fraction: float = 0.1,
    soundfont: str | Path | None = None,
    progress: bool = True,
    transpositions: int = 0,
    palette: Palette | None = None,
) -> Path:
    """Compose, render and caption ``clips`` clips into ``out_dir``; returns the ``metadata.jsonl`` path.

    Audio is mono 16-bit PCM WAV at ``sample_rate``, one file per clip in ``out_dir/train`` or
    ``out_dir/valid``; clip lengths are drawn uniformly from ``[1, max_seconds]`` seconds (2 decimals)
    and each file holds exactly ``round(seconds * sample_rate)`` samples. About ``valid_fraction`` of
    the clips go to the valid split, chosen by whole compositions (at least one group per split when
    ``valid_fraction > 0`` and there are two groups or more). The same ``seed``, arguments and
    SoundFont give byte-identical metadata and audio. ``soundfont`` defaults to
    :func:`find_soundfont`. An existing catalogue in ``out_dir`` is replaced (its listed audio files
    that the new one does not reuse are removed); any other non-empty ``out_dir`` is refused.

    ``transpositions`` (0-11) adds that many copies of every tonal or mixed *training* clip in other
    keys of the same mode: the same composition, instruments, dynamics, length and caption wording,
    only the key moved (its row's ``transposed_from`` is the original's index). They follow the
    ``clips`` originals, which stay exactly as without them, and the held-out split gets none. They
    show a model the same music in several keys, so the key words of a caption are what tells them apart.

    ``palette`` (:class:`~stable_audio_kit.demo.vocabulary.Palette`) restricts the instruments and grooves, e.g.
    to extra instruments the default catalogue never draws (a style the bundled model never heard); only
    the textures they can play are drawn. The default draws exactly what a catalogue without it does.

    Raises ``ValueError`` naming the bad value before any work for ``clips < 1``, ``max_seconds < 1``,
    a sample rate outside FluidSynth's range, ``valid_fraction`` outside ``[0, 1)``, an unwritable or
    foreign non-empty ``out_dir`` and a missing or unloadable ``soundfont``, and ``ValueError`` naming
    ``pip install -e ".[demo]"`` first if the ``[demo]`` extra is not installed.
    """
    from tqdm import tqdm

    import_pretty_midi()
    import_fluidsynth()
    if isinstance(transpositions, bool) or not isinstance(transpositions, int) or not 0 <= transpositions <= 11:
        raise ValueError(f"transpositions must be an integer in [0, 11] (other keys of a mode), got {transpositions!r}")
    out, font = _check_inputs(out_dir, clips, seed, sample_rate, max_seconds, valid_fraction, soundfont)
    renderer = Renderer(font, sample_rate)  # loads the SoundFont: fails here, before any file is written
    previous = _previous_paths(out)
    try:
        plans = _plan(clips, seed, sample_rate, float(max_seconds), float(valid_fraction), transpositions, palette)
        rows = []
        for index, plan in enumerate(tqdm(plans, desc="catalogue", unit="clip", disable=not progress)):
            row, midi = _finish_row(index, plan, seed, sample_rate, font)
            write_wav(out / row["path"], renderer.render(midi, row["samples"]), sample_rate)
            rows.append(row)
    finally:
        renderer.close()
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write_text(out / "metadata.jsonl", text)
    for stale in sorted(previous - {row["path"] for row in rows}):
        (out / stale).unlink(missing_ok=True)
    n_valid = sum(row["split"] == "valid" for row in rows)
    n_copies = sum(row["transposed_from"] is not None for row in rows)
    hours = sum(row["seconds"] for row in rows) / 3600
    logger.info(
        "wrote %d clips (%d train including %d transposed copies, %d valid, %.2f h) to %s with %s",
        len(rows),
        len(rows) - n_valid,
        n_copies,
        n_valid,
        hours,
        out,
        font.name,
    )
    return out / "metadata.jsonl"
