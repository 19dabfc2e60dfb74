"""``sak evaluate --memorisation TRAIN_CATALOGUE``: does the model copy its training clips?

Two stages:

1. **Retrieval.** Every checked clip's CLAP audio embedding is compared (cosine) with every training clip's, and
   the ``top_k`` nearest training clips are its candidates. CLAP puts two pieces of one style as close together
   as a piece and its copy, so it only proposes.
2. **Alignment.** Each candidate pair is compared along time, as a copy would show, at every time shift of one
   clip against the other (leaving half the shorter clip, but from 1.5 to 3 s, of overlap): the
   log-mel spectrogram (which sounds, in which register, when) and the onset strength in 16 groups of mel bands
   (when sounds start, and where), each a Pearson correlation over the overlapping frames with every band
   centred over the overlap, so that a level or a timbre held throughout gives nothing. A pair's **score** is the
   mean of the two correlations at its best shift.

A checked clip is a **near-copy** when its best candidate scores at least ``threshold`` (:data:`THRESHOLD`). The
report gives, for the model's clips and for the real held-out clips (a control: pieces never trained on), how many
are near-copies, and lists the pairs with the paths to play: the generated clip (written into the report folder)
and the training clip.

**Why not chroma.** The first design compared chroma and onset envelopes. Measured on the bundled model, its VAE
keeps too little pitch for chroma: a training clip through the VAE correlates with itself in chroma below 0.5 for
one clip in eight (chords, arpeggios; as low as 0.16), where two different pieces of the same texture and key reach
0.49 (90th percentile). The VAE is trained to reproduce the mel spectrogram, and its copies keep that; the score is
built on what a copy keeps.

**Calibration** on the bundled model's training catalogue (``sak catalogue make --clips 2000 --seed 0
--transpositions 2``; 180 training clips drawn at random, two seeds). Copies, each a training clip through the
bundled VAE and then 6 dB quieter or 0.37 s later (360): scores 0.64-0.99, median 0.88, 1 % below 0.69. Pairs of
different compositions with the same texture and key (170): median 0.30, 95 % below 0.55; 4 reach 0.62, among them
two sustained G# minor chords, i-III-VII-iv, at 62 and 126 bpm, which sound alike. Hence :data:`THRESHOLD` 0.62:
every copy flagged, 2.4 % of the same-style pairs. ``tests/evaluation/test_memorisation.py`` rebuilds such cases
(a copy with a gain change, one with a time shift, another composition of the same texture and key at another
tempo) for a tonal, a mixed and a drum clip.

**What it cannot tell apart.** The demo catalogue is made from few patterns: the same instruments, tempo and
rhythm patterns with other notes and another progression score as high as a copy (128 of 152 tonal
recompositions reach 0.62; 15 of 180 with the tempo 15 % faster), and its drum grooves are fixed patterns (a drum
clip recomposed at its tempo is the same audio; 5 of 10 catalogue pairs of one groove reach 0.62). A generation that
follows its prompt's recipe can therefore be flagged without having memorised anything: listen to the pairs. And
the bundled CLAP retrieves a copy's source poorly: among the 4743 training clips, the source of a VAE copy is among
the 5 nearest for 16-47 % of the copies and among the 100 nearest for 74-90 %, hence :data:`TOP_K` 100 (an
alignment takes about 9 ms, the features of a clip 0.1 s).

**Read the model against the control.** On the bundled model (40 held-out captions), 22 of 39 generations have a
near-copy among the 4743 training clips, and so do 26 of 39 real held-out clips: the demo catalogue repeats its
drum grooves and patterns across compositions, so near-copies there say little unless the model has more of them
than the control does.
"""

from __future__ import annotations

import logging
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
# Features: 128 log-mel bands, and onset strength in 16 groups of them.
MEL_BANDS = 128
ONSET_BANDS = 16
# The overlap a time shift must leave: half the shorter clip, but at least SHORTEST_SECONDS (shorter overlaps
# correlate by chance; shorter clips are not judged) and at most ENOUGH_OVERLAP_SECONDS.
SHORTEST_SECONDS = 1.5
ENOUGH_OVERLAP_SECONDS = 3.0
TOP_K = 100
THRESHOLD = 0.62
# Closest pairs below the threshold listed beside the near-copies, to listen to what almost counted.
CLOSEST_LISTED = 5
EMBED_BATCH = 32


@dataclass(frozen=True)
class AlignmentFeatures:
    """A clip as the alignment sees it: the log-mel spectrogram ``(MEL_BANDS, frames)`` and the onset strength of
    each of ``ONSET_BANDS`` groups of mel bands ``(ONSET_BANDS, frames)``."""

    mel: np.ndarray
    onsets: np.ndarray

    @property
    def frames(self) -> int:
        return self.mel.shape[1]


@dataclass(frozen=True)
class Alignment:
    """The best time shift of a pair: its score (the mean of the two correlations) and each correlation.
    ``shift_seconds``: where the training clip starts on the checked clip's time line (negative: before it);
    ``overlap_seconds``: how much of the two clips that shift lines up."""

    score: float
    spectrogram: float
    onsets: float
    shift_seconds: float
    overlap_seconds: float


def alignment_features(audio: np.ndarray, sample_rate: float) -> AlignmentFeatures:
    """Log-mel spectrogram and band onsets of ``audio`` (``(samples,)`` or ``(channels, samples)``, mixed to mono)."""
    librosa = require_librosa()
    sr = int(check_sample_rate(sample_rate))
    y = resample(as_mono(audio)[None], sr, ALIGN_SAMPLE_RATE)[0]
    # Silence before and after, so that a sound at a clip's very start or end has its onset as it would inside a
    # longer clip (a copy shifted in time has it); both clips get the same, so shifts are unchanged.
    y = np.pad(y, (ALIGN_FFT, ALIGN_FFT))
    power = librosa.feature.melspectrogram(
        y=y, sr=ALIGN_SAMPLE_RATE, n_fft=ALIGN_FFT, hop_length=ALIGN_HOP, n_mels=MEL_BANDS
    )
    mel = librosa.power_to_db(power, ref=np.max, top_db=80.0)  # relative to the clip's peak: gain drops out
    edges = np.linspace(0, MEL_BANDS, ONSET_BANDS + 1).astype(int)
    onsets = librosa.onset.onset_strength_multi(S=mel, sr=ALIGN_SAMPLE_RATE, channels=edges)
    # Onset peaks are a frame wide: a copy shifted by half a frame would halve their correlation. Smoothed over a
    # few frames, they line up whatever the sub-frame shift.
    onsets = np.stack([np.convolve(band, ONSET_SMOOTHING, mode="same") for band in onsets])
    frames = min(mel.shape[1], onsets.shape[1])
    return AlignmentFeatures(mel[:, :frames].astype(np.float64), onsets[:, :frames].astype(np.float64))


def shifted_correlations(x: np.ndarray, y: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x`` ``(rows, a)`` and ``y`` ``(rows, b)`` over their overlap at each shift.

    At shift ``s``, ``y``'s frame 0 lies on ``x``'s frame ``s``; each row is centred over the overlap, and the
    rows are pooled (one correlation of the two overlapping blocks). A flat block gives 0. The cross terms of all
    shifts come from one FFT, the window sums from prefix sums.
    """
    a, b = x.shape[1], y.shape[1]
    n = a + b - 1
    cross = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n).sum(axis=0)[shifts % n]
    a0, b0 = np.maximum(shifts, 0), np.maximum(-shifts, 0)
    length = np.minimum(a - a0, b - b0)

    def window_sums(z: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prefix = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(z, axis=1)], axis=1)
        prefix2 = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(z * z, axis=1)], axis=1)
        return prefix[:, start + length] - prefix[:, start], prefix2[:, start + length] - prefix2[:, start]

    sx, sxx = window_sums(x, a0)
    sy, syy = window_sums(y, b0)
    covariance = cross - (sx * sy).sum(axis=0) / length
    variance = (sxx - sx * sx / length).sum(axis=0) * (syy - sy * sy / length).sum(axis=0)
    scale = np.sqrt(np.maximum(variance, 0.0))
    flat = scale <= 1e-9 * np.maximum(sxx.sum(axis=0) * syy.sum(axis=0), 1e-30) ** 0.5
    return np.where(flat, 0.0, covariance / np.where(flat, 1.0, scale))


def align(checked: AlignmentFeatures, train: AlignmentFeatures) -> Alignment:
    """The time shift of ``train`` against ``checked`` with the highest score: the mean of the log-mel and band
    onset correlations. Every shift is tried that overlaps the two clips by half the shorter one, but by no less
    than :data:`SHORTEST_SECONDS` and no more than :data:`ENOUGH_OVERLAP_SECONDS`; a clip shorter than
    :data:`SHORTEST_SECONDS` gives no shift, and a score of -1."""
    frame_seconds = ALIGN_HOP / ALIGN_SAMPLE_RATE
    a, b = checked.frames, train.frames
    pad = ALIGN_FFT // ALIGN_HOP  # the silence alignment_features put around each clip
    shortest = min(a, b) - 2 * pad
    least = min(
        max(shortest // 2, round(SHORTEST_SECONDS / frame_seconds)), round(ENOUGH_OVERLAP_SECONDS / frame_seconds)
    )
    shifts = np.arange(1 - b, a)
    overlap = np.minimum(a - pad, b - pad + shifts) - np.maximum(pad, pad + shifts)
    shifts, overlap = shifts[overlap >= least], overlap[overlap >= least]
    if shifts.size == 0:
        return Alignment(-1.0, 0.0, 0.0, 0.0, 0.0)
    spectrogram = shifted_correlations(checked.mel, train.mel, shifts)
    onsets = shifted_correlations(checked.onsets, train.onsets, shifts)
    score = (spectrogram + onsets) / 2
    best = int(np.argmax(score))
    return Alignment(
        float(score[best]),
        float(spectrogram[best]),
        float(onsets[best]),
        float(shifts[best] * frame_seconds),
        float(overlap[best] * frame_seconds),
    )


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
    ``path`` is where to play it; ``None`` writes the audio into the report folder when a pair lists it.
    ``group`` (e.g. the requested kind) gives the report near-copy counts by group."""

    name: str
    audio: np.ndarray
    caption: str
    path: str | None = None
    # What the clip is, for counts by group (the requested kind, say); None leaves it out of them.
    group: str | None = None


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
        train_emb = self.embed_training_clips(
            embedder, sample_rate, lambda it: bar(it, f"embedding training clips ({EMBED_BATCH} a step)")
        )
        features: dict[str, AlignmentFeatures] = {}
        result: dict[str, Any] = {
            "train_catalogue": str(self.catalogue),
            "train_clips": len(self.train_paths),
            "top_k": self.top_k,
            "threshold": self.threshold,
            "shortest_seconds": SHORTEST_SECONDS,
            "enough_overlap_seconds": ENOUGH_OVERLAP_SECONDS,
            "summary": {},
            "clips": {},
        }
        pairs = []
        for set_name, clips in clip_sets.items():
            if not clips:
                continue
            # Too short to tell a copy from a coincidence: left out, and counted.
            short = [c for c in clips if c.audio.shape[-1] < SHORTEST_SECONDS * sample_rate]
            clips = [c for c in clips if c.audio.shape[-1] >= SHORTEST_SECONDS * sample_rate]
            result["summary"][set_name] = {"n": 0, "too_short": len(short), "near_copies": 0, "fraction": None}
            result["clips"][set_name] = [{"name": c.name, "caption": c.caption, "too_short": True} for c in short]
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
                entry = {
                    "name": clip.name,
                    "caption": clip.caption,
                    "group": clip.group,
                    "near_copy": best["score"] >= self.threshold,
                }
                per_clip.append({**entry, "best": best, "candidates": candidates})
                pairs.append({"set": set_name, **entry, **best, "clip": clip})
            scores = [c["best"]["score"] for c in per_clip]
            copies = sum(c["near_copy"] for c in per_clip)
            result["summary"][set_name].update(
                n=len(per_clip),
                near_copies=copies,
                fraction=copies / len(per_clip),
                max_score=float(max(scores)),
                median_score=float(np.median(scores)),
                by_group={
                    group: {
                        "n": sum(c["group"] == group for c in per_clip),
                        "near_copies": sum(c["near_copy"] for c in per_clip if c["group"] == group),
                    }
                    for group in sorted({c["group"] for c in per_clip if c["group"] is not None})
                },
            )
            result["clips"][set_name] = per_clip + result["clips"][set_name]
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
        f"clip's {section['top_k']} nearest training clips by CLAP audio embedding, aligned in time (log-mel and "
        "band-onset correlations at the best shift; the score is their mean). A near-copy scores "
        f"at least {section['threshold']:.2f}. Clips shorter than {section['shortest_seconds']:g} s are not judged.",
        "",
        "| clips | checked | near-copies | fraction | highest score | median score | too short |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def number(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    for name, s in section["summary"].items():
        cells = [s["n"], s["near_copies"], s["fraction"], s.get("max_score"), s.get("median_score"), s["too_short"]]
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(number(c) for c in cells) + " |")
    groups = [
        f"{labels.get(name, name)}: " + ", ".join(f"{g} {c['near_copies']}/{c['n']}" for g, c in s["by_group"].items())
        for name, s in section["summary"].items()
        if s.get("by_group")
    ]
    if groups:
        lines += ["", "Near-copies by group: " + "; ".join(groups) + "."]
    lines += [
        "",
        "Read the model against the control: the real held-out clips were never trained on, so their near-copies are "
        "the catalogue's own repetitions, which the model's clips meet as well.",
    ]
    if section["pairs"]:
        lines += [
            "",
            "Near-copies, then the closest pairs below the threshold:",
            "",
            "| near-copy | set | clip | training clip | CLAP cosine | score | spectrogram | onsets | shift (s) |",
            "|---|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for p in section["pairs"]:
            lines.append(
                f"| {'yes' if p['near_copy'] else 'no'} | {p['set']} | [{p['name']}]({p['clip_path']}) | "
                f"`{p['train_path']}` | {p['clap_cosine']:.3f} | {p['score']:.2f} | {p['spectrogram']:.2f} | "
                f"{p['onsets']:.2f} | {p['shift_seconds']:+.2f} |"
            )
    return lines


__all__ = [
    "ALIGN_HOP",
    "ALIGN_SAMPLE_RATE",
    "MEL_BANDS",
    "ENOUGH_OVERLAP_SECONDS",
    "ONSET_BANDS",
    "SHORTEST_SECONDS",
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
    "shifted_correlations",
]
