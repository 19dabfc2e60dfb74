"""Probes for ``sak evaluate --probes``: does the audio move when one thing in the caption moves?

A probe takes the held-out captions that name something (a key, a tempo), rewrites that one span in
place and generates each caption twice with the same seed, length and sampler: as written and
swapped. Whatever differs between the two clips comes from the rewritten words, so the probe shows
whether the model reads the value itself rather than words that come with it (moods, instruments,
tempo words).

* ``key-swap``: tonal and mixed clips whose caption names a key; the key moves up a fourth
  (``Key.transpose(5)``, same mode). Reported: how often the estimated tonic (and key and mode) is
  the requested one, as written and moved; chance is 1/12 (1/24).
* ``tempo-swap``: percussive and mixed clips whose caption names a tempo; the tempo is scaled by
  1.25 (rounded half up to a whole bpm; only where the result stays within the tempi the held-out
  captions name). Reported: the median ratio of the two estimated tempi and how often
  it lies within 5 % of x1.25 (or of x1: the tempo ignored). A U-Net with a beat grid plays at the
  tempo its prompt names, so its grid moves with the caption.

``PROBES`` maps each name to a function ``(held-out rows, n, seed) -> Probe`` that selects the clips
and rewrites the captions without a model, so a catalogue with nothing to probe fails before any
generation; :meth:`Probe.run` then generates and measures. The clip at index i of the held-out rows
gets seed ``seed + i``, as in the evaluation itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..music import Key, find_key, find_tempo
from . import metrics

KEY_SHIFT = 5  # semitones: up a fourth
TEMPO_SCALE = 1.25
RATIO_TOLERANCE = 0.05


@dataclass(frozen=True)
class Swap:
    """One held-out clip asked for twice with one seed: ``caption`` as written, ``swapped`` with one span
    rewritten. ``requested`` / ``swapped_requested`` are what each caption names (a ``Key``, or bpm)."""

    path: str
    seconds: float
    seed: int
    caption: str
    swapped: str
    requested: Key | float
    swapped_requested: Key | float


# (swaps, [(mono as written, mono swapped), ...] each (samples,), sample rate) -> {"rows": ..., "clips": ...}
Measure = Callable[[Sequence[Swap], Sequence[tuple[np.ndarray, np.ndarray]], int], dict[str, Any]]


@dataclass(frozen=True)
class Probe:
    """A probe ready to run: the swapped captions, what was changed, and how to measure the pairs."""

    name: str
    change: str
    swaps: list[Swap]
    measure: Measure

    def run(
        self,
        pipe,
        steps: int,
        guidance_scale: float,
        progress: Callable[[Sequence], Sequence] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Generate every swap as written and swapped, and measure. Returns ``{"change", "n", "rows",
        "clips"}``; each row is ``{"label", "as_written", "swapped", "reference"}`` (chance or target).
        ``options`` go to the pipeline call (``tail_seconds``, ``precision``)."""
        pairs = []
        for swap in progress(self.swaps) if progress else self.swaps:
            pairs.append(
                tuple(
                    _generate(pipe, caption, swap.seconds, swap.seed, steps, guidance_scale, **options)
                    for caption in (swap.caption, swap.swapped)
                )
            )
        return {"change": self.change, "n": len(self.swaps), **self.measure(self.swaps, pairs, pipe.sample_rate)}


def _generate(
    pipe, caption: str, seconds: float, seed: int, steps: int, guidance_scale: float, **options: Any
) -> np.ndarray:
    """One clip through the pipeline's public call, down-mixed to ``(samples,)``."""
    import torch

    audio = pipe(
        caption,
        seconds_total=seconds,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=torch.Generator().manual_seed(seed),
        **options,
    ).audios[0]
    return np.asarray(audio, dtype=np.float32).mean(axis=0)


def _fraction(hits: Sequence[bool]) -> float:
    return float(np.mean(hits))


# --------------------------------------------------------------------------------------------
# Caption rewriting


def move_key(caption: str, semitones: int = KEY_SHIFT) -> tuple[str, Key, Key] | None:
    """``caption`` with the key it names moved by ``semitones`` (same mode, written as ``Key.name``), the
    key as written and the moved key; ``None`` if it names no key (``music.find_key``)."""
    found = find_key(caption)
    if found is None:
        return None
    key, (start, end) = found
    moved = key.transpose(semitones)
    return caption[:start] + moved.name + caption[end:], key, moved


def scale_tempo(caption: str, scale: float = TEMPO_SCALE) -> tuple[str, float, int] | None:
    """``caption`` with the tempo it names scaled by ``scale`` and rounded half up to a whole bpm, the tempo
    as written and the scaled one; ``None`` if it names no tempo (``music.find_tempo``)."""
    found = find_tempo(caption)
    if found is None:
        return None
    bpm, (start, end) = found
    scaled = math.floor(bpm * scale + 0.5)
    return caption[:start] + str(scaled) + caption[end:], bpm, scaled


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--probe-n must be an integer >= 1, got {n!r}")


# --------------------------------------------------------------------------------------------
# key-swap


def key_swap(rows: Sequence[dict], n: int, seed: int) -> Probe:
    """The first ``n`` tonal or mixed held-out clips whose caption names a key, the key moved up a fourth."""
    _check_n(n)
    swaps = []
    for i, row in enumerate(rows):
        moved = move_key(row["caption"]) if row.get("kind") in ("tonal", "mixed") else None
        if moved is not None:
            swaps.append(Swap(row["path"], row["seconds"], seed + i, row["caption"], *moved))
    if not swaps:
        raise ValueError(f"key-swap: none of the {len(rows)} held-out clips is tonal or mixed and names its key")
    return Probe("key-swap", f"key moved up {KEY_SHIFT} semitones, same mode", swaps[:n], _measure_keys)


def _measure_keys(
    swaps: Sequence[Swap], pairs: Sequence[tuple[np.ndarray, np.ndarray]], sample_rate: int
) -> dict[str, Any]:
    clips, tonic, exact = [], {"as_written": [], "swapped": []}, {"as_written": [], "swapped": []}
    for swap, audios in zip(swaps, pairs):
        clip: dict[str, Any] = {"path": swap.path, "seed": swap.seed}
        for column, caption, want, audio in zip(
            ("as_written", "swapped"), (swap.caption, swap.swapped), (swap.requested, swap.swapped_requested), audios
        ):
            estimated = metrics.estimate_key(audio, sample_rate)
            tonic[column].append(estimated is not None and estimated[0] == want.sharp_name[0])
            exact[column].append(bool(metrics.key_match(estimated, want.sharp_name)["exact"]))
            prefix = "" if column == "as_written" else "swapped_"
            clip |= {f"{prefix}caption": caption, f"{prefix}requested": want.name}
            clip[f"{prefix}estimated"] = " ".join(estimated) if estimated else None
        clips.append(clip)
    return {
        "rows": {
            "tonic": {
                "label": "estimated tonic = requested",
                **{column: _fraction(hits) for column, hits in tonic.items()},
                "reference": 1 / 12,
            },
            "key_exact": {
                "label": "estimated key and mode = requested",
                **{column: _fraction(hits) for column, hits in exact.items()},
                "reference": 1 / 24,
            },
        },
        "clips": clips,
    }


# --------------------------------------------------------------------------------------------
# tempo-swap


def tempo_swap(rows: Sequence[dict], n: int, seed: int) -> Probe:
    """The first ``n`` percussive or mixed held-out clips whose caption names a tempo, the tempo x1.25.

    Only clips whose scaled tempo stays within the range of tempi the held-out captions name are kept
    (the catalogue's held-out and training clips share one range): a tempo the model never heard
    would test extrapolation, not whether it reads the number.
    """
    _check_n(n)
    candidates = [
        (i, row, scaled)
        for i, row in enumerate(rows)
        if row.get("kind") in ("percussive", "mixed") and (scaled := scale_tempo(row["caption"])) is not None
    ]
    if not candidates:
        raise ValueError(
            f"tempo-swap: none of the {len(rows)} held-out clips is percussive or mixed with a tempo in its caption"
        )
    low, high = min(s[1] for _, _, s in candidates), max(s[1] for _, _, s in candidates)
    swaps = [
        Swap(row["path"], row["seconds"], seed + i, row["caption"], *scaled)
        for i, row, scaled in candidates
        if low <= scaled[2] <= high
    ]
    if not swaps:
        raise ValueError(
            f"tempo-swap: the held-out captions name tempi of {low:g}-{high:g} bpm; none stays within that range "
            f"when scaled by {TEMPO_SCALE:g}"
        )
    return Probe("tempo-swap", f"tempo x{TEMPO_SCALE:g}, rounded to a whole bpm", swaps[:n], _measure_tempi)


def _measure_tempi(
    swaps: Sequence[Swap], pairs: Sequence[tuple[np.ndarray, np.ndarray]], sample_rate: int
) -> dict[str, Any]:
    clips, matched, ratios = [], {"as_written": [], "swapped": []}, []
    for swap, audios in zip(swaps, pairs):
        tempi = [metrics.estimate_tempo(audio, sample_rate) for audio in audios]
        for column, tempo, want in zip(matched, tempi, (swap.requested, swap.swapped_requested)):
            matched[column].append(metrics.tempo_match(tempo, want))
        # NaN (no onsets in one of the two) stays NaN and counts as a miss below.
        ratios.append(tempi[1] / tempi[0] if tempi[0] > 0 else math.nan)
        clips.append(
            {
                "path": swap.path,
                "seed": swap.seed,
                "caption": swap.caption,
                "requested": swap.requested,
                "estimated": tempi[0],
                "swapped_caption": swap.swapped,
                "swapped_requested": swap.swapped_requested,
                "swapped_estimated": tempi[1],
                "ratio": ratios[-1],
            }
        )
    ratios_arr = np.asarray(ratios, dtype=np.float64)
    finite = ratios_arr[np.isfinite(ratios_arr)]
    with np.errstate(invalid="ignore"):
        near = np.abs(ratios_arr / TEMPO_SCALE - 1) <= RATIO_TOLERANCE
        unchanged = np.abs(ratios_arr - 1) <= RATIO_TOLERANCE
    return {
        "rows": {
            "tempo_within_5pct": {
                "label": "estimated tempo within 5 % of the caption's",
                **{column: _fraction(hits) for column, hits in matched.items()},
                "reference": None,
            },
            "tempo_ratio_median": {
                "label": "tempo ratio swapped / as written (median)",
                "as_written": None,
                "swapped": float(np.median(finite)) if finite.size else None,
                "reference": TEMPO_SCALE,
            },
            "ratio_within_5pct": {
                "label": f"ratio within 5 % of x{TEMPO_SCALE:g}",
                "as_written": None,
                "swapped": _fraction(near.tolist()),
                "reference": None,
            },
            "ratio_unchanged": {
                "label": "ratio within 5 % of x1 (tempo ignored)",
                "as_written": None,
                "swapped": _fraction(unchanged.tolist()),
                "reference": None,
            },
        },
        "clips": clips,
    }


# --------------------------------------------------------------------------------------------
# Registry


PROBES: dict[str, Callable[[Sequence[dict], int, int], Probe]] = {"key-swap": key_swap, "tempo-swap": tempo_swap}


def parse_probes(probes: str | Sequence[str] | None) -> list[str]:
    """Probe names from ``"key-swap,tempo-swap"`` (or a list); empty or ``None`` is none. Raises
    ``ValueError`` listing the valid names on an unknown or repeated one."""
    if probes is None:
        return []
    names = [name.strip() for name in probes.split(",")] if isinstance(probes, str) else list(probes)
    if names == [""]:
        return []
    for i, name in enumerate(names):
        if name not in PROBES:
            raise ValueError(f"unknown probe {name!r}; valid probes: {', '.join(PROBES)}")
        if name in names[:i]:
            raise ValueError(f"probe {name!r} is named twice")
    return names
