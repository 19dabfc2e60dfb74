"""``sak evaluate --memorisation TRAIN_CATALOGUE``: does the model copy its training clips?

Two stages, each doing what it is good at:

1. **Retrieval.** Every checked clip's CLAP audio embedding is compared (cosine) with every training clip's, and
   the ``top_k`` nearest training clips are its candidates. It covers the whole catalogue cheaply, but CLAP puts
   two pieces of one style close together as readily as a piece and its copy, so it only proposes.
2. **Alignment.** Each candidate pair is compared along time, as a copy would show: the chroma (which pitch
   classes sound, each one's mean over the overlap removed, so that sharing a key alone gives nothing) and the
   onset strength (when sounds start), each a Pearson correlation over the frames where the two clips overlap, at
   every time shift of one against the other (at least ``min(MIN_OVERLAP_SECONDS, shorter clip)`` of overlap).
   A pair's **score** is, at its best shift, the smaller of the two correlations: a copy keeps both its notes and
   its rhythm, through a gain change, a time shift or a trip through the VAE, whereas two pieces of one style,
   key and tempo share at most what the style fixes.

A checked clip is a **near-copy** when its best candidate scores at least ``threshold`` (:data:`THRESHOLD`). The
report gives, for the model's clips and for the real held-out clips (a control: the catalogue's own held-out
pieces, which were never trained on and share no composition with the training clips), how many are near-copies,
and lists the pairs, each with the paths to play: the generated clip (written into the report folder) and the
training clip.

Calibration (``tests/evaluation/test_memorisation.py`` builds its cases from the demo catalogue's own music): a
training clip through the bundled model's VAE, with a 6 dB gain change or a 0.37 s time shift, must score at
least :data:`THRESHOLD`; another composition with the same instruments, key, tempo and texture must not. On the
bundled model's training catalogue, those copies score 0.73-0.97 (median 0.93, 60 copies of 30 clips) and the
pairs of different pieces of the same texture and key at most 0.45 (median 0.12, 60 pairs); the threshold sits
between, at 0.6.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load_audio, resample, save_audio
from ..utils import check_finite_number
from .arrays import as_mono, check_sample_rate
from .metrics import require_librosa

logger = logging.getLogger(__name__)

# Alignment features: ~23 ms frames at 22.05 kHz, whatever the clips' own rate.
ALIGN_SAMPLE_RATE = 22050
ALIGN_HOP = 512
ALIGN_FFT = 2048
# A Hann window over five frames (~116 ms), normalised.
ONSET_SMOOTHING = np.hanning(7)[1:-1] / np.hanning(7)[1:-1].sum()
# The least overlap a time shift must leave (or all of the shorter clip): shorter overlaps correlate by chance.
MIN_OVERLAP_SECONDS = 3.0
TOP_K = 5
THRESHOLD = 0.6
# Closest pairs below the threshold listed beside the near-copies, to listen to what almost counted.
CLOSEST_LISTED = 5
EMBED_BATCH = 32


@dataclass(frozen=True)
class AlignmentFeatures:
    """A clip as the alignment sees it: chroma ``(12, frames)`` and onset strength ``(frames,)``."""

    chroma: np.ndarray
    onset: np.ndarray

    @property
    def frames(self) -> int:
        return self.onset.shape[0]


@dataclass(frozen=True)
class Alignment:
    """The best time shift of a pair. ``shift_seconds``: where the training clip starts on the checked clip's time
    line (negative: before it); ``overlap_seconds``: how much of the two the shift lines up."""

    score: float
    chroma: float
    onset: float
    shift_seconds: float
    overlap_seconds: float


def alignment_features(audio: np.ndarray, sample_rate: float) -> AlignmentFeatures:
    """Chroma and onset strength of ``audio`` (``(samples,)`` or ``(channels, samples)``, mixed to mono)."""
    librosa = require_librosa()
    sr = int(check_sample_rate(sample_rate))
    y = resample(as_mono(audio)[None], sr, ALIGN_SAMPLE_RATE)[0]
    # Silence before and after, so that a sound at a clip's very start or end has its onset as it would inside a
    # longer clip (a copy shifted in time has it); both clips get the same, so shifts are unchanged.
    y = np.pad(y, (ALIGN_FFT, ALIGN_FFT))
    # Standard tuning, not estimated: a copy is compared on the same pitch-class bins as its source.
    chroma = librosa.feature.chroma_stft(y=y, sr=ALIGN_SAMPLE_RATE, n_fft=ALIGN_FFT, hop_length=ALIGN_HOP, tuning=0.0)
    onset = librosa.onset.onset_strength(y=y, sr=ALIGN_SAMPLE_RATE, n_fft=ALIGN_FFT, hop_length=ALIGN_HOP)
    # Onset peaks are a frame wide: a copy shifted by half a frame would halve their correlation. Smoothed over a
    # few frames, they line up whatever the sub-frame shift.
    onset = np.convolve(onset, ONSET_SMOOTHING, mode="same")
    frames = min(chroma.shape[1], onset.shape[0])
    return AlignmentFeatures(chroma[:, :frames].astype(np.float64), onset[:frames].astype(np.float64))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two ``(rows, frames)`` arrays, each row centred over the frames; 0 if either is flat."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    norm = math.sqrt(float(np.sum(x * x)) * float(np.sum(y * y)))
    return float(np.sum(x * y)) / norm if norm > 1e-12 else 0.0


def align(
    checked: AlignmentFeatures, train: AlignmentFeatures, min_overlap_seconds: float = MIN_OVERLAP_SECONDS
) -> Alignment:
    """The time shift of ``train`` against ``checked`` with the highest score, ``min(chroma, onset)`` correlation.

    Every shift that overlaps the two by at least ``min(min_overlap_seconds, shorter clip)`` is tried.
    """
    frame_seconds = ALIGN_HOP / ALIGN_SAMPLE_RATE
    a, b = checked.frames, train.frames
    pad = ALIGN_FFT // ALIGN_HOP
    least = max(2, min(a, b, round(min_overlap_seconds / frame_seconds)))
    best = Alignment(-1.0, 0.0, 0.0, 0.0, 0.0)
    # shift: the checked clip's frame where the training clip's frame 0 falls.
    for shift in range(least - b, a - least + 1):
        a0, b0 = max(shift, 0), max(-shift, 0)
        length = min(a - a0, b - b0)
        chroma = _correlation(checked.chroma[:, a0 : a0 + length], train.chroma[:, b0 : b0 + length])
        if chroma <= best.score:
            continue  # the score is the smaller correlation: this shift cannot win
        onset = _correlation(checked.onset[None, a0 : a0 + length], train.onset[None, b0 : b0 + length])
        score = min(chroma, onset)
        if score > best.score:
            # The overlap of the clips themselves, without the silence alignment_features added around them.
            real = min(a - pad, b - pad + shift) - max(pad, pad + shift)
            best = Alignment(score, chroma, onset, shift * frame_seconds, max(real, 0) * frame_seconds)
    return best


def check_options(
    top_k: int | None,
    threshold: float | None,
    top_k_name: str = "memorisation_top_k",
    threshold_name: str = "memorisation_threshold",
) -> tuple[int, float]:
    """The check's settings, ``None`` giving :data:`TOP_K` and :data:`THRESHOLD`; ``ValueError`` names a bad one."""
    top_k = TOP_K if top_k is None else top_k
    threshold = THRESHOLD if threshold is None else threshold
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"{top_k_name} must be a positive integer, got {top_k!r}")
    threshold = check_finite_number(threshold_name, threshold)
    if not -1.0 < threshold <= 1.0:
        raise ValueError(f"{threshold_name} must be in (-1, 1] (a correlation), got {threshold}")
    return top_k, threshold


@dataclass(frozen=True)
class CheckedClip:
    """A clip to check: ``name`` (a report file stem for a generated clip, else its path), its audio and caption.
    ``path`` is where to play it; ``None`` writes the audio into the report folder when a pair lists it."""

    name: str
    audio: np.ndarray
    caption: str
    path: str | None = None


@dataclass
class MemorisationCheck:
    """The check against one training catalogue, planned before any model loads (see :meth:`plan`)."""

    catalogue: Path
    train_paths: list[str]
    top_k: int = TOP_K
    threshold: float = THRESHOLD

    @classmethod
    def plan(cls, catalogue: str | Path, top_k: int | None = None, threshold: float | None = None) -> MemorisationCheck:
        """List the catalogue's training clips (its ``train`` split, as the trainers take it) and validate the
        settings (``None``: the defaults); raises ``ValueError`` for a catalogue without training clips on disk."""
        from ..data import scan_catalogue, split_catalogue

        top_k, threshold = check_options(top_k, threshold)
        catalogue = Path(catalogue)
        items = scan_catalogue(catalogue)
        missing = [item.path for item in items if not item.exists]
        if missing:
            raise ValueError(f"training catalogue {str(catalogue)!r} names files that are missing: {missing[:3]}")
        train, _ = split_catalogue(items)
        if not train:
            raise ValueError(f"training catalogue {str(catalogue)!r} has no training clips")
        return cls(catalogue.resolve(), [item.path for item in train], top_k, threshold)

    def embed_training_clips(self, embedder, sample_rate: int, progress: Callable | None = None) -> np.ndarray:
        """CLAP audio embeddings ``(train clips, D)`` of the training clips, read mono at ``sample_rate``."""
        batches = [self.train_paths[i : i + EMBED_BATCH] for i in range(0, len(self.train_paths), EMBED_BATCH)]
        out = []
        for batch in progress(batches) if progress else batches:
            clips = [self._load(path, sample_rate) for path in batch]
            out.append(embedder.embed_audio(clips, sample_rate))
        return np.concatenate(out)

    def _load(self, path: str, sample_rate: int) -> np.ndarray:
        try:
            return load_audio(self.catalogue / path, sample_rate, 1)[0]
        except Exception as err:  # soundfile raises its own types; the file is named either way
            raise ValueError(f"training clip {path!r} cannot be read: {err}") from None

    def run(
        self,
        embedder,
        clip_sets: dict[str, Sequence[CheckedClip]],
        sample_rate: int,
        out_dir: str | Path,
        progress: Callable[[Sequence, str], Sequence] | None = None,
    ) -> dict[str, Any]:
        """Check every clip of every set (``{"model": [...], "real": [...]}``) and return the report section.

        Generated clips that a listed pair names are written to ``out_dir/memorisation/NAME.wav``.
        """
        bar = progress or (lambda items, desc: items)
        train_emb = self.embed_training_clips(embedder, sample_rate, lambda it: bar(it, "embedding training clips"))
        features: dict[str, AlignmentFeatures] = {}
        result: dict[str, Any] = {
            "train_catalogue": str(self.catalogue),
            "train_clips": len(self.train_paths),
            "top_k": self.top_k,
            "threshold": self.threshold,
            "min_overlap_seconds": MIN_OVERLAP_SECONDS,
            "summary": {},
            "clips": {},
        }
        pairs = []
        for set_name, clips in clip_sets.items():
            if not clips:
                continue
            emb = embedder.embed_audio([c.audio for c in clips], sample_rate)
            cosine = emb @ train_emb.T
            per_clip = []
            for index in bar(range(len(clips)), f"aligning {set_name} clips"):
                clip = clips[index]
                mine = alignment_features(clip.audio, sample_rate)
                candidates = []
                for j in np.argsort(-cosine[index], kind="stable")[: self.top_k]:
                    path = self.train_paths[j]
                    if path not in features:
                        features[path] = alignment_features(self._load(path, sample_rate), sample_rate)
                    found = align(mine, features[path])
                    candidates.append({"train_path": path, "clap_cosine": float(cosine[index, j]), **asdict(found)})
                best = max(candidates, key=lambda c: c["score"])
                entry = {"name": clip.name, "caption": clip.caption, "near_copy": best["score"] >= self.threshold}
                per_clip.append({**entry, "best": best, "candidates": candidates})
                pairs.append({"set": set_name, **entry, **best, "clip": clip})
            scores = [c["best"]["score"] for c in per_clip]
            copies = sum(c["near_copy"] for c in per_clip)
            result["summary"][set_name] = {
                "n": len(per_clip),
                "near_copies": copies,
                "fraction": copies / len(per_clip),
                "max_score": float(max(scores)),
                "median_score": float(np.median(scores)),
            }
            result["clips"][set_name] = per_clip
        result["pairs"] = self._listed_pairs(pairs, Path(out_dir), sample_rate)
        return result

    def _listed_pairs(self, pairs: list[dict], out_dir: Path, sample_rate: int) -> list[dict[str, Any]]:
        """The near-copies and the :data:`CLOSEST_LISTED` closest pairs below the threshold, highest score first,
        each with the paths to play (generated clips written into ``out_dir/memorisation``)."""
        pairs = sorted(pairs, key=lambda p: -p["score"])
        listed = [p for p in pairs if p["near_copy"]] + [p for p in pairs if not p["near_copy"]][:CLOSEST_LISTED]
        out = []
        for pair in listed:
            clip: CheckedClip = pair.pop("clip")
            if clip.path is not None:
                played = clip.path
            else:
                played = f"memorisation/{clip.name}.wav"
                save_audio(out_dir / played, clip.audio, sample_rate)
            out.append({**pair, "clip_path": played, "train_path": str(self.catalogue / pair["train_path"])})
        return out


def render_memorisation(section: dict[str, Any]) -> list[str]:
    """The report section as markdown lines."""
    labels = {"model": "model", "real": "real held-out clips (control)"}
    lines = [
        "## Memorisation",
        "",
        f"Against the training catalogue `{section['train_catalogue']}` ({section['train_clips']} clips): each "
        f"clip's {section['top_k']} nearest training clips by CLAP audio embedding, aligned in time (chroma and "
        "onset-strength correlation at the best shift; the score is the smaller of the two). A near-copy scores "
        f"at least {section['threshold']:.2f}.",
        "",
        "| clips | checked | near-copies | fraction | highest score | median score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in section["summary"].items():
        lines.append(
            f"| {labels.get(name, name)} | {s['n']} | {s['near_copies']} | {s['fraction']:.3f} | "
            f"{s['max_score']:.2f} | {s['median_score']:.2f} |"
        )
    if section["pairs"]:
        lines += [
            "",
            "Near-copies, then the closest pairs below the threshold:",
            "",
            "| near-copy | set | clip | training clip | CLAP cosine | score | chroma | onset | shift (s) |",
            "|---|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for p in section["pairs"]:
            lines.append(
                f"| {'yes' if p['near_copy'] else 'no'} | {p['set']} | [{p['name']}]({p['clip_path']}) | "
                f"`{p['train_path']}` | {p['clap_cosine']:.3f} | {p['score']:.2f} | {p['chroma']:.2f} | "
                f"{p['onset']:.2f} | {p['shift_seconds']:+.2f} |"
            )
    return lines


__all__ = [
    "ALIGN_HOP",
    "ALIGN_SAMPLE_RATE",
    "MIN_OVERLAP_SECONDS",
    "THRESHOLD",
    "TOP_K",
    "Alignment",
    "AlignmentFeatures",
    "CheckedClip",
    "MemorisationCheck",
    "align",
    "alignment_features",
    "check_options",
    "render_memorisation",
]
