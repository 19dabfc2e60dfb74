"""Probing audio files and the dry-run check of a catalogue against a model's format.

:func:`probe_file` reads a file's header, checks that its container is whole and optionally decodes
every sample, reporting a bad file instead of raising. :func:`check_catalogue` probes every file of a
catalogue into a :class:`CatalogueReport` (durations, sample rates, channels, missing captions,
unusable files) and :func:`format_report` renders it for ``sak data check``. The crop datasets and the
latent encoder decide which files they can use with the same probe and the same rule, so the report
and a training run agree on what is usable.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import struct
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from .catalogue import CatalogueItem, scan_catalogue
from .splits import split_catalogue

logger = logging.getLogger(__name__)

SILENCE_PEAK = 1e-6
# Sample formats that can hold NaN or infinity; the probe always decodes them to look.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


# --------------------------------------------------------------------------------------------
# Probing files


@dataclass
class FileProbe:
    """What one file's header (and optionally a full decode) says.

    ``error`` is ``None`` for a readable file. ``peak`` is the largest absolute sample value,
    known only after a full decode.
    """

    sample_rate: int = 0
    channels: int = 0
    frames: int = 0
    error: str | None = None
    peak: float | None = None

    @property
    def seconds(self) -> float:
        """Exact duration of the file: ``frames / sample_rate``."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _container_problem(path: Path) -> str | None:
    """Compare the data chunk size a WAV/AIFF header declares with the bytes on disk.

    libsndfile quietly shortens a truncated WAV to the frames present, so the header walk is what
    catches a file cut short by an interrupted copy.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return None
        if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
            endian, data_id = ("<" if head[:4] == b"RIFF" else ">"), b"data"
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            endian, data_id = ">", b"SSND"
        else:
            return None
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return f"truncated: no {data_id.decode()} chunk before the end of the file ({size} bytes)"
            (declared,) = struct.unpack(endian + "I", chunk[4:])
            if chunk[:4] == data_id:
                available = size - pos - 8
                # 0 and 0xFFFFFFFF mark streamed files whose writer never filled in the size.
                if declared not in (0, 0xFFFFFFFF) and declared > available:
                    return f"truncated: data chunk declares {declared} bytes but only {available} are present"
                return None
            pos += 8 + declared + (declared & 1)


def probe_file(path: str | Path, decode: bool = False) -> FileProbe:
    """Read ``path``'s header, check its container is whole, and with ``decode`` read every sample.

    Files stored as floating-point samples (WAV/AIFF ``FLOAT``/``DOUBLE``) are always decoded: only they can
    hold NaN or infinite samples, which would turn a training loss into NaN, and a probe that finds one
    reports the file like an unreadable one. Never raises for a bad file: the problem is returned in
    ``FileProbe.error``.
    """
    path = Path(path)
    if not path.is_file():
        return FileProbe(error="file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError) as err:  # libsndfile errors are RuntimeErrors
        return FileProbe(error=f"{type(err).__name__}: {err}")
    probe = FileProbe(sample_rate=info.samplerate, channels=info.channels, frames=info.frames)
    if probe.sample_rate <= 0 or probe.channels <= 0:
        probe.error = f"invalid header: sample rate {probe.sample_rate}, {probe.channels} channels"
        return probe
    try:
        probe.error = _container_problem(path)
    except OSError as err:
        probe.error = f"{type(err).__name__}: {err}"
    if probe.error is not None or not (decode or info.subtype in FLOAT_SUBTYPES):
        return probe
    read, peak = 0, 0.0
    try:
        for block in sf.blocks(str(path), blocksize=65536, dtype="float32", always_2d=True):
            if block.size and not np.isfinite(block).all():
                bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0]) + read
                probe.error = (
                    f"non-finite samples (NaN or inf), the first at frame {bad} ({bad / probe.sample_rate:.3f} s)"
                )
                return probe
            read += block.shape[0]
            if block.size:
                peak = max(peak, float(np.abs(block).max()))
    except (RuntimeError, OSError, ValueError) as err:
        probe.error = f"{type(err).__name__}: {err}"
        return probe
    # MP3 frame counts from the header can be estimates, so only exact formats are compared.
    if info.format != "MP3" and read < probe.frames:
        probe.error = f"corrupt: header declares {probe.frames} frames but only {read} could be decoded"
        return probe
    probe.peak = peak
    return probe


# --------------------------------------------------------------------------------------------
# What training can use


def _usability_problem(item: CatalogueItem, probe: FileProbe, channels: int) -> str | None:
    """Why ``item`` cannot be trained on, or ``None``."""
    if not item.exists:
        return "listed in metadata but not an audio file on disk"
    if probe.error is not None:
        return f"unreadable: {probe.error}"
    if probe.frames == 0:
        return "zero length"
    if probe.channels != channels and channels != 1 and probe.channels != 1:
        return f"cannot mix {probe.channels} channels to {channels}"
    return None


def _check_target(sample_rate: int, channels: int, window_seconds: float) -> None:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(window_seconds, (int, float)) or not math.isfinite(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}")


def _validate_items(
    root: Path, items: Sequence[CatalogueItem], channels: int, skip_unreadable: bool, decode_check: bool
) -> tuple[list[tuple[CatalogueItem, FileProbe]], list[tuple[str, str]]]:
    """Probe every item up front; raise ``ValueError`` naming the bad ones unless ``skip_unreadable``."""
    good, bad = [], []
    for item in items:
        probe = _cached_probe(root / item.path, decode_check) if item.exists else FileProbe()
        problem = _usability_problem(item, probe, channels)
        if problem is None:
            good.append((item, probe))
        else:
            bad.append((item.path, problem))
    if bad and not skip_unreadable:
        raise ValueError(_unusable_message(root, len(items), [f"{path} ({reason})" for path, reason in bad]))
    if bad:
        logger.warning(
            "skipping %d of %d catalogue files in %s: %s",
            len(bad),
            len(items),
            root,
            "; ".join(f"{path} ({reason})" for path, reason in bad),
        )
    return good, bad


def _unusable_message(root: Path, total: int, listing: list[str]) -> str:
    return (
        f"{len(listing)} of {total} catalogue files in {str(root)!r} cannot be used: {'; '.join(listing)}. "
        "Fix or remove them, or set data.skip_unreadable=true (sak encode: --skip-unreadable) to go on without them"
    )


def _cached_probe(path: Path, decode: bool) -> FileProbe:
    """:func:`probe_file`, once per file version: the trainers check every split up front
    (:func:`check_splits`) and their datasets probe the same files again."""
    try:
        stat = path.stat()
    except OSError:
        return probe_file(path, decode=decode)
    return dataclasses.replace(_probe_by_version(str(path), stat.st_size, stat.st_mtime_ns, decode))


@functools.lru_cache(maxsize=65536)
def _probe_by_version(path: str, size: int, mtime_ns: int, decode: bool) -> FileProbe:
    return probe_file(path, decode=decode)


def check_splits(
    root: str | Path,
    splits: dict[str, Sequence[CatalogueItem]],
    channels: int,
    skip_unreadable: bool,
    decode_check: bool = False,
) -> None:
    """Raise one ``ValueError`` naming every unusable file of every split (``{"train": items, "valid": items}``),
    unless ``skip_unreadable``: fixing the training split's files must not reveal the validation split's next."""
    if skip_unreadable:
        return
    root = Path(root)
    listing, total = [], 0
    for split, items in splits.items():
        total += len(items)
        for item in items:
            probe = _cached_probe(root / item.path, decode_check) if item.exists else FileProbe()
            problem = _usability_problem(item, probe, channels)
            if problem is not None:
                listing.append(f"{split}: {item.path} ({problem})")
    if listing:
        raise ValueError(_unusable_message(root, total, listing))


# --------------------------------------------------------------------------------------------
# Catalogue report


@dataclass
class CatalogueReport:
    """Dry-run report of a catalogue against a model's sample rate, channels and window.

    Lists hold catalogue-relative paths; ``unreadable`` and ``incompatible`` pair each path with the
    reason. ``durations`` and the histogram cover the files that could be read.
    """

    root: str
    sample_rate: int
    channels: int
    window_seconds: float
    num_files: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    histogram_edges: list[float] = field(default_factory=list)
    histogram_counts: list[int] = field(default_factory=list)
    missing_captions: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    zero_length: list[str] = field(default_factory=list)
    incompatible: list[tuple[str, str]] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    longer_than_window: list[str] = field(default_factory=list)
    sample_rates: dict[int, int] = field(default_factory=dict)
    channel_counts: dict[int, int] = field(default_factory=dict)

    @property
    def unusable(self) -> list[str]:
        """Paths that training would reject (missing, unreadable, zero length, unmixable channels)."""
        bad = set(self.missing_files) | set(self.zero_length)
        bad |= {path for path, _ in self.unreadable} | {path for path, _ in self.incompatible}
        return sorted(bad)

    @property
    def usable(self) -> int:
        """Number of files a training run can use."""
        return self.num_files - len(self.unusable)

    @property
    def total_seconds(self) -> float:
        """Summed duration of the usable files."""
        bad = set(self.unusable)
        return sum(seconds for path, seconds in self.durations.items() if path not in bad)

    @property
    def total_hours(self) -> float:
        return self.total_seconds / 3600.0


def duration_histogram(durations: Sequence[float], bins: int = 10) -> tuple[list[float], list[int]]:
    """``(edges, counts)`` of durations in seconds: ``bins`` equal bins from 0 to the longest."""
    if not durations:
        return [], []
    top = max(durations)
    counts, edges = np.histogram(
        np.asarray(durations, dtype=np.float64), bins=bins, range=(0.0, top if top > 0 else 1.0)
    )
    return [float(e) for e in edges], [int(c) for c in counts]


def render_histogram(edges: Sequence[float], counts: Sequence[int], width: int = 40) -> str:
    """Text bars, one line per bin: ``  0.00 -   1.50 s |#####     3``."""
    if not counts:
        return "  (no readable files)"
    most = max(counts) or 1
    lines = []
    for lo, hi, count in zip(edges[:-1], edges[1:], counts):
        bar = "#" * math.ceil(width * count / most) if count else ""
        lines.append(f"  {lo:8.2f} - {hi:8.2f} s |{bar:<{width}} {count}")
    return "\n".join(lines)


def check_catalogue(
    root: str | Path, sample_rate: int, channels: int, window_seconds: float, *, progress: bool = False
) -> CatalogueReport:
    """Scan a catalogue and decode every file once, collecting a :class:`CatalogueReport`.

    Nothing is modified; problems are reported, not raised (except a malformed catalogue, see
    :func:`scan_catalogue`). ``progress`` shows a tqdm bar on stderr.
    """
    _check_target(sample_rate, channels, window_seconds)
    root = Path(root)
    items = scan_catalogue(root)
    split_catalogue(items, 0.0)  # a split field training would refuse (a misspelt value, a group in both) fails here
    report = CatalogueReport(
        root=str(root), sample_rate=sample_rate, channels=channels, window_seconds=window_seconds, num_files=len(items)
    )
    rates: Counter[int] = Counter()
    chans: Counter[int] = Counter()
    for item in tqdm(items, desc="checking", unit="file", disable=not progress):
        if item.caption is None or not item.caption.strip():
            report.missing_captions.append(item.path)
        if not item.exists:
            report.missing_files.append(item.path)
            continue
        probe = probe_file(root / item.path, decode=True)
        if probe.error is not None:
            report.unreadable.append((item.path, probe.error))
            continue
        rates[probe.sample_rate] += 1
        chans[probe.channels] += 1
        report.durations[item.path] = probe.seconds
        problem = _usability_problem(item, probe, channels)
        if probe.frames == 0:
            report.zero_length.append(item.path)
        elif problem is not None:
            report.incompatible.append((item.path, problem))
        elif probe.peak is not None and probe.peak < SILENCE_PEAK:
            report.silent.append(item.path)
        if probe.seconds > window_seconds:
            report.longer_than_window.append(item.path)
    report.sample_rates = dict(sorted(rates.items()))
    report.channel_counts = dict(sorted(chans.items()))
    bad = set(report.unusable)
    usable = [seconds for path, seconds in report.durations.items() if path not in bad]
    report.histogram_edges, report.histogram_counts = duration_histogram(usable)
    return report


def _format_paths(title: str, entries: Sequence[str | tuple[str, str]], limit: int = 50) -> list[str]:
    if not entries:
        return []
    lines = [f"{title} ({len(entries)}):"]
    for entry in entries[:limit]:
        lines.append(f"  {entry[0]}: {entry[1]}" if isinstance(entry, tuple) else f"  {entry}")
    if len(entries) > limit:
        lines.append(f"  ... and {len(entries) - limit} more")
    return lines


def format_report(report: CatalogueReport) -> str:
    """Human-readable multi-line text of a :class:`CatalogueReport`."""
    target_rate = report.sample_rate
    resampled = sum(count for rate, count in report.sample_rates.items() if rate != target_rate)
    lines = [
        f"Catalogue {report.root}",
        f"  target: {report.sample_rate} Hz, {report.channels} channel(s), window {report.window_seconds:g} s",
        f"  files: {report.num_files}, usable: {report.usable}, unusable: {len(report.unusable)}",
        f"  usable audio: {report.total_hours:.3f} h ({report.total_seconds:.1f} s)",
        f"  longer than the window: {len(report.longer_than_window)} (trained on random crops)",
        "  sample rates: "
        + (", ".join(f"{rate} Hz x{count}" for rate, count in report.sample_rates.items()) or "-")
        + (f" ({resampled} to resample)" if resampled else ""),
        "  channels: " + (", ".join(f"{ch} x{count}" for ch, count in report.channel_counts.items()) or "-"),
        "Durations:",
        render_histogram(report.histogram_edges, report.histogram_counts),
    ]
    lines += _format_paths("Missing files (named in metadata)", report.missing_files)
    lines += _format_paths("Unreadable or corrupt files", report.unreadable)
    lines += _format_paths("Zero-length files", report.zero_length)
    lines += _format_paths("Incompatible channel layouts", report.incompatible)
    lines += _format_paths("Silent files (still used)", report.silent)
    lines += _format_paths("Missing or empty captions (trained with an empty prompt)", report.missing_captions)
    if report.usable == 0:
        lines.append("No usable files: nothing to train on.")
    return "\n".join(lines)


def data_check_main(root: str, sample_rate: int, channels: int, window_seconds: float) -> int:
    """Print the catalogue report; return 0 if any file is usable, 1 if none. Bad arguments or a malformed
    catalogue raise ``ValueError`` (the CLI prints it and exits with 2)."""
    report = check_catalogue(root, sample_rate, channels, window_seconds, progress=sys.stderr.isatty())
    print(format_report(report))
    return 0 if report.usable > 0 else 1


__all__ = [
    "SILENCE_PEAK",
    "CatalogueReport",
    "FileProbe",
    "check_catalogue",
    "check_splits",
    "data_check_main",
    "duration_histogram",
    "format_report",
    "probe_file",
    "render_histogram",
]
