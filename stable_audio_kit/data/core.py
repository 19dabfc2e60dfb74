"""Training data: catalogue scanning and checking, splits, random crops with timing, pre-encoded latents.

A *catalogue* is a folder of audio files (searched recursively) with captions from sidecar files
(``<stem>.txt`` holding the caption, or ``<stem>.json`` with a ``"caption"`` key and extra fields)
or from a root ``metadata.csv`` / ``metadata.jsonl`` with ``path`` and ``caption`` columns.

Every training example carries the Stable Audio timing conditions: ``seconds_start`` is where the
crop starts in its source file and ``seconds_total`` is the source file's whole duration. The raw
audio path (:class:`AudioCropDataset`) and the pre-encoded path (:func:`encode_catalogue` +
:class:`LatentCropDataset`) draw crop offsets from the same ``(seed, epoch, index)`` generator and
compute both values the same way, so switching to latents changes nothing the model sees.
"""

from __future__ import annotations

import abc

import csv
import hashlib
import json
import logging
import math
import struct
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..audio import AUDIO_EXTENSIONS, mix_channels, read_audio, resample
from ..utils import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
SPLIT_VALUES = ("train", "valid")
MANIFEST_NAME = "index.json"
MANIFEST_FORMAT = "stable-audio-kit-latents"
# Version 2 added ``silence_latent``; version 1 shards padded crops with zeros, not with silence.
MANIFEST_VERSION = 2
SILENCE_PEAK = 1e-6

TextEncodeFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------------------------
# Catalogue scanning


@dataclass
class CatalogueItem:
    """One audio file of a catalogue.

    ``path`` is relative to the catalogue root, with ``/`` separators. ``caption`` is ``None`` when
    no source gives one. ``extra`` holds any other metadata fields (e.g. ``split``, ``group``).
    ``exists`` is ``False`` for a file named in ``metadata.csv``/``.jsonl`` that is not on disk.
    """

    path: str
    caption: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    exists: bool = True


def _is_hidden(rel: PurePosixPath) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _normalise_metadata_path(value: object, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{source}: 'path' must be a non-empty string, got {value!r}")
    rel = PurePosixPath(value.strip())
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{source}: path {value!r} must be relative to the catalogue root")
    return rel.as_posix()


def _read_metadata(root: Path) -> tuple[str, list[tuple[str, str | None, dict[str, Any]]]] | None:
    found = [name for name in METADATA_FILES if (root / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"catalogue {str(root)!r} has both {' and '.join(found)}; keep only one")
    if not found:
        return None
    name = found[0]
    rows: list[dict[str, Any]] = []
    if name.endswith(".csv"):
        with open(root / name, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if "path" not in columns:
                raise ValueError(f"{name} must have a 'path' column, found {columns}")
            if "caption" not in columns:
                logger.warning("%s has no 'caption' column (columns: %s); every caption is missing", name, columns)
            rows = [dict(row) for row in reader]
    else:
        with open(root / name, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{name} line {lineno} is not valid JSON: {err}") from None
                if not isinstance(row, dict) or "path" not in row:
                    raise ValueError(
                        f"{name} line {lineno} must be a JSON object with a 'path' field, got {line.strip()}"
                    )
                rows.append(row)
    entries = []
    for lineno, row in enumerate(rows, 1):
        source = f"{name} row {lineno}"
        path = _normalise_metadata_path(row.pop("path"), source)
        caption = row.pop("caption", None)
        if caption is not None and not isinstance(caption, str):
            raise ValueError(f"{source}: caption must be a string, got {caption!r}")
        entries.append((path, caption, row))
    return name, entries


def _read_sidecars(audio: Path) -> list[tuple[str, str | None, dict[str, Any]]]:
    found = []
    txt = audio.with_suffix(".txt")
    if txt.is_file():
        found.append((txt.name, txt.read_text(encoding="utf-8").strip(), {}))
    js = audio.with_suffix(".json")
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"sidecar {str(js)!r} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"sidecar {str(js)!r} must hold a JSON object, got {type(data).__name__}")
        caption = data.pop("caption", None)
        if caption is not None and not isinstance(caption, str):
            raise ValueError(f"sidecar {str(js)!r}: caption must be a string, got {caption!r}")
        found.append((js.name, caption, data))
    return found


def scan_catalogue(root: str | Path) -> list[CatalogueItem]:
    """List the audio files of a catalogue with their captions, sorted by path.

    Every audio file under ``root`` (recursively; names starting with ``.`` are ignored) is an
    item; a root ``metadata.csv``/``metadata.jsonl`` adds captions and extra fields, and may name
    files that are missing on disk: those are kept with ``exists=False`` and logged as warnings,
    so :func:`check_catalogue` and the datasets report them. Captions may come from several sources
    for one file (metadata row, ``.json``, ``.txt`` sidecar) only if they agree; a conflict raises
    ``ValueError``, as do malformed metadata files.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"catalogue root {str(root)!r} is not a folder")
    on_disk: set[str] = set()
    for file in root.rglob("*"):
        rel = PurePosixPath(file.relative_to(root).as_posix())
        if file.suffix.lower() in AUDIO_EXTENSIONS and not _is_hidden(rel) and file.is_file():
            on_disk.add(rel.as_posix())

    sources: dict[str, list[tuple[str, str | None, dict[str, Any]]]] = {path: [] for path in on_disk}
    metadata = _read_metadata(root)
    if metadata is not None:
        name, entries = metadata
        for path, caption, extra in entries:
            if path in sources and any(src == name for src, _, _ in sources[path]):
                raise ValueError(f"{name} lists {path!r} more than once")
            sources.setdefault(path, []).append((name, caption, extra))
    for path in on_disk:
        sources[path].extend(_read_sidecars(root / path))

    items = []
    for path in sorted(sources):
        caption: str | None = None
        caption_source = ""
        extra: dict[str, Any] = {}
        for source, value, fields in sources[path]:
            if value is not None:
                if caption is not None and value != caption:
                    raise ValueError(
                        f"{path!r} has different captions in {caption_source} ({caption!r}) and {source} ({value!r})"
                    )
                caption, caption_source = value, source
            for key, val in fields.items():
                if key in extra and extra[key] != val:
                    raise ValueError(f"{path!r} has different values for {key!r}: {extra[key]!r} and {val!r}")
                extra[key] = val
        exists = path in on_disk
        if not exists:
            logger.warning("%s names %r, which is not an audio file under %s", metadata[0], path, root)
        items.append(CatalogueItem(path=path, caption=caption, extra=extra, exists=exists))
    return items


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

    Never raises for a bad file: the problem is returned in ``FileProbe.error``.
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
    if probe.error is not None or not decode:
        return probe
    read, peak = 0, 0.0
    try:
        for block in sf.blocks(str(path), blocksize=65536, dtype="float32", always_2d=True):
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
    """Print the catalogue report; return 0 if any file is usable, 1 if none, 2 for bad arguments."""
    try:
        report = check_catalogue(root, sample_rate, channels, window_seconds, progress=sys.stderr.isatty())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report.usable > 0 else 1


# --------------------------------------------------------------------------------------------
# Splits


def _split_of(item: CatalogueItem) -> str | None:
    value = item.extra.get("split")
    if value is None or value == "":
        return None
    if value not in SPLIT_VALUES:
        raise ValueError(f"{item.path!r} has split {value!r}; expected one of {list(SPLIT_VALUES)}")
    return value


def _hash_unit(key: str) -> float:
    """A stable number in [0, 1) for ``key`` (independent of Python's hash seed)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_catalogue(
    items: Sequence[CatalogueItem], valid_fraction: float = 0.1
) -> tuple[list[CatalogueItem], list[CatalogueItem]]:
    """Deterministic ``(train, valid)`` split.

    An explicit ``split`` extra (``train``/``valid``) wins. Otherwise an item goes to validation when
    a hash of its path falls below ``valid_fraction``, so adding files never moves existing ones.
    Items sharing a non-empty ``group`` extra (e.g. stems or edits of one composition) are hashed by
    group and always land on the same side; an explicit split on any member applies to the whole
    group, and members with conflicting explicit splits raise ``ValueError``.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    group_split: dict[str, str] = {}
    group_owner: dict[str, str] = {}
    for item in items:
        group, split = item.extra.get("group"), _split_of(item)
        if group in (None, "") or split is None:
            continue
        key = str(group)
        if key in group_split and group_split[key] != split:
            raise ValueError(
                f"group {key!r} has conflicting splits: {group_owner[key]!r} is {group_split[key]!r}, "
                f"{item.path!r} is {split!r}"
            )
        group_split[key], group_owner[key] = split, item.path
    train, valid = [], []
    for item in items:
        group = item.extra.get("group")
        split = _split_of(item)
        if group not in (None, ""):
            split = group_split.get(str(group), split)
            key = f"group:{group}"
        else:
            key = f"path:{item.path}"
        if split is None:
            split = "valid" if _hash_unit(key) < valid_fraction else "train"
        (valid if split == "valid" else train).append(item)
    if valid_fraction > 0 and not valid and train:
        logger.warning("validation split is empty (%d items, valid_fraction=%g)", len(train), valid_fraction)
    return train, valid


# --------------------------------------------------------------------------------------------
# Crops


def _check_target(sample_rate: int, channels: int, window_seconds: float) -> None:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(window_seconds, (int, float)) or not math.isfinite(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}")


def _check_seed(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def draw_offset(seed: int, epoch: int, index: int, length: int, window: int, multiple: int = 1) -> int:
    """Random crop start in ``[0, length - window]``, a multiple of ``multiple``; 0 if ``length <= window``.

    Uniform over the valid starts, drawn as
    ``multiple * numpy.random.default_rng([seed, epoch, index]).integers(count)`` with
    ``count = (length - window) // multiple + 1``, so a resumed run reproduces every crop.
    """
    if length <= window:
        return 0
    count = (length - window) // multiple + 1
    return multiple * int(np.random.default_rng([seed, epoch, index]).integers(count))


class _CropDataset(Dataset, abc.ABC):
    """Epoch/seed bookkeeping shared by the audio and latent datasets (which define the two abstract methods)."""

    train: bool
    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch``. Call it before each epoch (DataLoader workers copy the
        dataset when they start, so use non-persistent workers or recreate the loader)."""
        self.epoch = _check_seed("epoch", epoch)

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return index % len(self)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        return self.load_crop(index, self.sample_offset(index))

    @abc.abstractmethod
    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in the subclass's own units."""

    @abc.abstractmethod
    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """Item ``index`` cropped at ``offset`` (audio or latents)."""


def _validate_items(
    root: Path, items: Sequence[CatalogueItem], channels: int, skip_unreadable: bool, decode_check: bool
) -> tuple[list[tuple[CatalogueItem, FileProbe]], list[tuple[str, str]]]:
    """Probe every item up front; raise ``ValueError`` naming the bad ones unless ``skip_unreadable``."""
    good, bad = [], []
    for item in items:
        probe = probe_file(root / item.path, decode=decode_check) if item.exists else FileProbe()
        problem = _usability_problem(item, probe, channels)
        if problem is None:
            good.append((item, probe))
        else:
            bad.append((item.path, problem))
    if bad and not skip_unreadable:
        listing = "; ".join(f"{path} ({reason})" for path, reason in bad)
        raise ValueError(
            f"{len(bad)} of {len(items)} catalogue files in {str(root)!r} cannot be used: {listing}. "
            "Fix or remove them, or pass skip_unreadable=True to train without them"
        )
    if bad:
        logger.warning(
            "skipping %d of %d catalogue files in %s: %s",
            len(bad),
            len(items),
            root,
            "; ".join(f"{path} ({reason})" for path, reason in bad),
        )
    return good, bad


class AudioCropDataset(_CropDataset):
    """Window-sized crops of a catalogue's audio at the model's rate and channel count.

    Each item is a dict:

    - ``audio``: float32 ``(channels, window_samples)``, silence after the end of a short file
    - ``padding_mask``: bool ``(window_samples,)``, ``True`` where the audio is real
    - ``seconds_start``: crop start in the source file, ``offset / sample_rate``
    - ``seconds_total``: the source file's duration, ``source_frames / source_rate``
    - ``caption`` (``""`` when missing) and ``path`` (relative to ``root``)

    In training mode the offset is drawn by :func:`draw_offset` from ``(seed, epoch, index)``
    (a multiple of ``offset_multiple`` samples; use the VAE hop to match :class:`LatentCropDataset`);
    in validation mode (``train=False``) it is 0. Files shorter than the window start at 0.

    Every file is probed when the dataset is built (header and container; ``decode_check`` also
    decodes every sample). Missing, unreadable, zero-length or unmixable files raise ``ValueError``
    naming them, or with ``skip_unreadable`` are left out, logged and listed in ``.skipped``.
    A file that fails later raises from ``__getitem__``; no other sample is substituted.
    """

    def __init__(
        self,
        root: str | Path,
        sample_rate: int,
        channels: int,
        window_seconds: float,
        *,
        items: Sequence[CatalogueItem] | None = None,
        train: bool = True,
        seed: int = 0,
        offset_multiple: int = 1,
        skip_unreadable: bool = False,
        decode_check: bool = False,
    ) -> None:
        _check_target(sample_rate, channels, window_seconds)
        if not isinstance(offset_multiple, int) or offset_multiple <= 0:
            raise ValueError(f"offset_multiple must be a positive integer, got {offset_multiple!r}")
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.channels = channels
        self.window_seconds = float(window_seconds)
        self.window_samples = round(window_seconds * sample_rate)
        self.offset_multiple = offset_multiple
        self.train = train
        self.seed = _check_seed("seed", seed)
        self.epoch = 0
        if items is None:
            items = scan_catalogue(self.root)
        good, self.skipped = _validate_items(self.root, items, channels, skip_unreadable, decode_check)
        self.items = [item for item, _ in good]
        self._probes = [probe for _, probe in good]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        if self._probes[index].sample_rate == self.sample_rate:
            return self.load_crop(index, self.sample_offset(index))
        # A resampled file is loaded once: its length at the model rate decides the offset.
        whole = self._load_whole(index)
        return self._crop(index, whole, self._offset_for(index, whole.shape[-1]))

    def num_samples(self, index: int) -> int:
        """Length of item ``index`` at the model rate (what resampling the whole file yields)."""
        probe = self._probes[index]
        if probe.sample_rate == self.sample_rate:
            return probe.frames
        return self._load_whole(index).shape[-1]

    def _load_whole(self, index: int) -> np.ndarray:
        path = self.root / self.items[index].path
        audio, sr = read_audio(path)
        expected = self._probes[index].frames
        if audio.shape[-1] != expected:
            raise ValueError(f"{str(path)!r}: read {audio.shape[-1]} frames, header declares {expected}")
        return mix_channels(resample(audio, sr, self.sample_rate), self.channels)

    def _offset_for(self, index: int, length: int) -> int:
        if not self.train:
            return 0
        return draw_offset(self.seed, self.epoch, index, length, self.window_samples, self.offset_multiple)

    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in samples at the model rate."""
        return self._offset_for(index, self.num_samples(index))

    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """The item dict for a crop of item ``index`` starting at sample ``offset`` (model rate)."""
        index = self._check_index(index)
        if self._probes[index].sample_rate == self.sample_rate:
            return self._crop(index, None, offset)
        return self._crop(index, self._load_whole(index), offset)

    def _crop(self, index: int, whole: np.ndarray | None, offset: int) -> dict[str, Any]:
        """Crop ``whole`` (the resampled file) or, if ``None``, read just the window from disk."""
        item, probe = self.items[index], self._probes[index]
        path = self.root / item.path
        window = self.window_samples
        length = probe.frames if whole is None else whole.shape[-1]
        if not 0 <= offset < max(length, 1):
            raise ValueError(f"offset {offset} outside {item.path!r} ({length} samples at {self.sample_rate} Hz)")
        if whole is None:
            want = min(window, length - offset)
            segment, _ = read_audio(path, start=offset, frames=want)
            if segment.shape[-1] != want:
                raise ValueError(f"{str(path)!r}: read {segment.shape[-1]} of {want} frames from {offset}")
            segment = mix_channels(segment, self.channels)
        else:
            segment = whole[:, offset : offset + window]
        real = segment.shape[-1]
        audio = torch.zeros(self.channels, window, dtype=torch.float32)
        audio[:, :real] = torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))
        mask = torch.zeros(window, dtype=torch.bool)
        mask[:real] = True
        return {
            "audio": audio,
            "padding_mask": mask,
            "seconds_start": offset / self.sample_rate,
            "seconds_total": probe.seconds,
            "caption": item.caption or "",
            "path": item.path,
        }


# --------------------------------------------------------------------------------------------
# Pre-encoded latents


def _vae_device(vae: Any) -> torch.device:
    params = getattr(vae, "parameters", None)
    if callable(params):
        for param in params():
            return param.device
    return torch.device("cpu")


def _encode_batch(
    vae: Any, audios: list[np.ndarray], hop: int, scaling: float, device: torch.device
) -> list[torch.Tensor]:
    """Encode whole files, zero-padded to a common multiple of ``hop``: list of ``(D, valid_frames)``."""
    longest = max(a.shape[-1] for a in audios)
    padded = math.ceil(longest / hop) * hop
    batch = torch.zeros(len(audios), audios[0].shape[0], padded, dtype=torch.float32)
    for row, audio in enumerate(audios):
        batch[row, :, : audio.shape[-1]] = torch.from_numpy(audio)
    with torch.no_grad():
        latents = vae.encode(batch.to(device)).latent_dist.mode() * scaling
    latents = latents.float().cpu()
    out = []
    for row, audio in enumerate(audios):
        valid = math.ceil(audio.shape[-1] / hop)
        if latents.ndim != 3 or latents.shape[-1] < valid:
            raise ValueError(
                f"VAE returned latents of shape {tuple(latents.shape)} for audio of {padded} samples; "
                f"expected (batch, channels, {padded // hop}) with hop_length {hop}"
            )
        out.append(latents[row, :, :valid].contiguous())
    return out


def _silence_latent(vae: Any, channels: int, hop: int, scaling: float, device: torch.device) -> torch.Tensor:
    """The latent frame of digital silence, ``(latent_channels,)``: what follows a short file's end.

    The middle frame of an encoded silent stretch, away from the convolutions' edges. It is rarely
    zero (biases), so padding latent crops with zeros would teach the U-Net a tail that decodes to
    sound instead of silence.
    """
    frames = 32
    silent = [np.zeros((channels, frames * hop), dtype=np.float32)]
    return _encode_batch(vae, silent, hop, scaling, device)[0][:, frames // 2].contiguous()


def encode_catalogue(
    vae: Any,
    root: str | Path,
    out_dir: str | Path,
    sample_rate: int,
    channels: int,
    *,
    items: Sequence[CatalogueItem] | None = None,
    shard_size: int = 256,
    batch_size: int = 1,
    text_encode_fn: TextEncodeFn | None = None,
    skip_unreadable: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Encode every whole file of a catalogue with ``vae`` and write latent shards plus a manifest.

    ``vae`` needs ``encode(x).latent_dist.mode()`` for ``x`` of shape ``(batch, channels, samples)``,
    ``hop_length`` and ``config.scaling_factor``; put it in eval mode on the device you want first.
    Stored latents are ``posterior mode * scaling_factor``, shape ``(latent_channels, valid_frames)``
    with ``valid_frames = ceil(num_samples / hop_length)`` (files are zero-padded to a multiple of the
    hop). ``batch_size > 1`` pads files of a batch to the longest, which can change the last latent
    frames of the shorter ones a little (the encoder's receptive field sees padding, not the
    convolutions' edge); keep 1 for exact per-file latents.

    ``text_encode_fn(captions) -> (hidden (B, L, D), mask (B, L))``, if given, is run on the captions
    (``""`` for missing ones) and its outputs are stored per item.

    Shards are ``shard-XXXXX.safetensors`` (tensors ``"<k>.latents"`` and optionally
    ``"<k>.text_hidden"``, ``"<k>.text_mask"``; per-item metadata in the header), written atomically;
    the manifest ``index.json`` is written last and lists ``sample_rate``, ``channels``,
    ``hop_length``, ``latent_channels``, ``latent_rate``, ``scaling_factor``, ``silence_latent`` (the
    latent frame of silence, which pads crops past a file's end) and every item
    (``path``, ``caption``, ``extra``, ``seconds_total``, ``num_samples``, ``valid_frames``,
    ``shard``, ``key``). Unusable files raise ``ValueError`` up front unless ``skip_unreadable``,
    in which case they (and files failing while being decoded) are logged and listed under
    ``"skipped"``. ``progress`` shows a tqdm bar on stderr. Returns the manifest path.
    """
    from safetensors.torch import save_file

    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(shard_size, int) or shard_size <= 0:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    hop = getattr(vae, "hop_length", None)
    if not isinstance(hop, int) or hop <= 0:
        raise ValueError(f"vae.hop_length must be a positive integer, got {hop!r}")
    scaling = float(vae.config.scaling_factor)
    root, out_dir = Path(root), Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists() and not overwrite:
        raise ValueError(f"{str(manifest_path)!r} already exists; pass overwrite=True to re-encode")
    if items is None:
        items = scan_catalogue(root)
    good, skipped = _validate_items(root, items, channels, skip_unreadable, decode_check=False)
    device = _vae_device(vae)

    entries: list[dict[str, Any]] = []
    shards: list[str] = []
    pending: dict[str, torch.Tensor] = {}
    pending_meta: list[dict[str, Any]] = []
    latent_channels: int | None = None

    def flush() -> None:
        if not pending_meta:
            return
        name = f"shard-{len(shards):05d}.safetensors"
        with atomic_path(out_dir / name) as tmp:
            save_file(pending, str(tmp), metadata={"items": json.dumps(pending_meta)})
        shards.append(name)
        entries.extend({**meta, "shard": name} for meta in pending_meta)
        logger.info("wrote %s (%d items)", name, len(pending_meta))
        pending.clear()
        pending_meta.clear()

    for start in tqdm(range(0, len(good), batch_size), desc="encoding", unit="batch", disable=not progress):
        loaded: list[tuple[CatalogueItem, FileProbe, np.ndarray]] = []
        for item, probe in good[start : start + batch_size]:
            try:
                audio, sr = read_audio(root / item.path)
                if audio.shape[-1] != probe.frames:
                    raise ValueError(f"read {audio.shape[-1]} frames, header declares {probe.frames}")
                audio = mix_channels(resample(audio, sr, sample_rate), channels)
            except Exception as err:  # reported below, never replaced by another file
                if not skip_unreadable:
                    raise ValueError(f"cannot read {str(root / item.path)!r}: {err}") from err
                logger.warning("skipping %s: %s", item.path, err)
                skipped.append((item.path, f"unreadable: {err}"))
                continue
            loaded.append((item, probe, audio))
        if not loaded:
            continue
        latents = _encode_batch(vae, [audio for _, _, audio in loaded], hop, scaling, device)
        hidden = mask = None
        if text_encode_fn is not None:
            with torch.no_grad():
                hidden, mask = text_encode_fn([item.caption or "" for item, _, _ in loaded])
            if hidden.ndim != 3 or mask.ndim != 2 or hidden.shape[:2] != mask.shape or hidden.shape[0] != len(loaded):
                raise ValueError(
                    f"text_encode_fn must return hidden (B, L, D) and mask (B, L) for B={len(loaded)}, "
                    f"got {tuple(hidden.shape)} and {tuple(mask.shape)}"
                )
        for row, ((item, probe, audio), latent) in enumerate(zip(loaded, latents)):
            latent_channels = latent.shape[0]
            key = str(len(entries) + len(pending_meta))
            pending[f"{key}.latents"] = latent
            if hidden is not None and mask is not None:
                pending[f"{key}.text_hidden"] = hidden[row].detach().cpu().contiguous()
                pending[f"{key}.text_mask"] = mask[row].detach().cpu().bool().contiguous()
            pending_meta.append(
                {
                    "key": key,
                    "path": item.path,
                    "caption": item.caption,
                    "extra": item.extra,
                    "seconds_total": probe.seconds,
                    "source_sample_rate": probe.sample_rate,
                    "source_frames": probe.frames,
                    "num_samples": int(audio.shape[-1]),
                    "valid_frames": int(latent.shape[-1]),
                }
            )
            if len(pending_meta) >= shard_size:
                flush()
    flush()
    silence = _silence_latent(vae, channels, hop, scaling, device)
    latent_channels = int(silence.shape[0]) if latent_channels is None else latent_channels
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "sample_rate": sample_rate,
        "channels": channels,
        "hop_length": hop,
        "latent_channels": latent_channels,
        "latent_rate": sample_rate / hop,
        "scaling_factor": scaling,
        "silence_latent": silence.tolist(),
        "has_text": text_encode_fn is not None,
        "shards": shards,
        "items": entries,
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    logger.info("encoded %d files into %d shards in %s", len(entries), len(shards), out_dir)
    return manifest_path


def load_manifest(latent_dir: str | Path) -> dict[str, Any]:
    """The ``index.json`` written by :func:`encode_catalogue`."""
    path = Path(latent_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{str(path)!r} not found; run encode_catalogue first")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{str(path)!r} is not a {MANIFEST_FORMAT} manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{str(path)!r} is version {manifest.get('version')!r} of the latent format, this toolkit reads "
            f"version {MANIFEST_VERSION} (it pads crops with the latent of silence); re-encode with `sak encode`"
        )
    return manifest


def latent_catalogue(latent_dir: str | Path) -> list[CatalogueItem]:
    """The encoded items as :class:`CatalogueItem` (e.g. for :func:`split_catalogue`)."""
    return [CatalogueItem(e["path"], e["caption"], dict(e["extra"])) for e in load_manifest(latent_dir)["items"]]


class LatentCropDataset(_CropDataset):
    """Window-sized crops of pre-encoded latents, with the timing of :class:`AudioCropDataset`.

    Each item is a dict:

    - ``latents``: float32 ``(latent_channels, window_frames)``; after a short file's end, the
      manifest's ``silence_latent`` (what the VAE makes of the silence the audio path pads with)
    - ``padding_mask``: bool ``(window_frames,)``, ``True`` for frames holding any real audio
    - ``seconds_start``: ``frame_offset * hop_length / sample_rate``
    - ``seconds_total``: the source file's duration (as in the audio path)
    - ``caption``, ``path``; and ``text_hidden`` ``(L, D)``, ``text_mask`` ``(L,)`` if text was cached

    ``window_frames = ceil(window_seconds * sample_rate / hop_length)``. Offsets are drawn by
    :func:`draw_offset` over samples with ``multiple = hop_length`` and window
    ``window_frames * hop_length``, so when the audio window is a multiple of the hop an
    :class:`AudioCropDataset` with ``offset_multiple=hop_length`` over the same items, seed and
    epoch picks the same crops and reports the same timing. ``paths`` selects a subset (e.g. one
    split) in the given order.
    """

    def __init__(
        self,
        latent_dir: str | Path,
        window_seconds: float,
        *,
        paths: Sequence[str] | None = None,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        self.latent_dir = Path(latent_dir)
        manifest = load_manifest(self.latent_dir)
        self.sample_rate = int(manifest["sample_rate"])
        self.hop_length = int(manifest["hop_length"])
        self.latent_channels = manifest["latent_channels"]
        self.latent_rate = float(manifest["latent_rate"])
        self.has_text = bool(manifest["has_text"])
        self.silence_latent = torch.tensor(manifest["silence_latent"], dtype=torch.float32)
        if self.silence_latent.shape != (self.latent_channels,):
            raise ValueError(
                f"silence_latent in {str(self.latent_dir)!r} has shape {tuple(self.silence_latent.shape)}, "
                f"expected ({self.latent_channels},)"
            )
        _check_target(self.sample_rate, int(manifest["channels"]), window_seconds)
        self.window_seconds = float(window_seconds)
        self.window_frames = math.ceil(round(window_seconds * self.sample_rate) / self.hop_length)
        self.train = train
        self.seed = _check_seed("seed", seed)
        self.epoch = 0
        entries = manifest["items"]
        if paths is not None:
            by_path = {entry["path"]: entry for entry in entries}
            unknown = [path for path in paths if path not in by_path]
            if unknown:
                raise ValueError(f"paths not in {str(self.latent_dir)!r}: {unknown}")
            entries = [by_path[path] for path in paths]
        self.entries: list[dict[str, Any]] = entries

    def __len__(self) -> int:
        return len(self.entries)

    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in latent frames."""
        if not self.train:
            return 0
        hop = self.hop_length
        length = self.entries[index]["num_samples"]
        return draw_offset(self.seed, self.epoch, index, length, self.window_frames * hop, hop) // hop

    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """The item dict for a crop of item ``index`` starting at latent frame ``offset``."""
        from safetensors import safe_open

        index = self._check_index(index)
        entry = self.entries[index]
        valid = entry["valid_frames"]
        if not 0 <= offset < max(valid, 1):
            raise ValueError(f"frame offset {offset} outside {entry['path']!r} ({valid} frames)")
        key = entry["key"]
        with safe_open(str(self.latent_dir / entry["shard"]), framework="pt") as f:
            stored = f.get_slice(f"{key}.latents")[:, offset : offset + self.window_frames]
            text = (f.get_tensor(f"{key}.text_hidden"), f.get_tensor(f"{key}.text_mask")) if self.has_text else None
        real = min(stored.shape[-1], valid - offset)
        latents = self.silence_latent[:, None].repeat(1, self.window_frames)
        latents[:, :real] = stored[:, :real]
        mask = torch.zeros(self.window_frames, dtype=torch.bool)
        mask[:real] = True
        out = {
            "latents": latents,
            "padding_mask": mask,
            "seconds_start": offset * self.hop_length / self.sample_rate,
            "seconds_total": entry["seconds_total"],
            "caption": entry["caption"] or "",
            "path": entry["path"],
        }
        if text is not None:
            out["text_hidden"], out["text_mask"] = text
        return out


# --------------------------------------------------------------------------------------------
# Batching


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch item dicts: tensors are stacked ``(B, ...)``, numbers become float tensors ``(B,)``,
    strings become lists. Cached text (``text_hidden`` ``(L, D)``, ``text_mask`` ``(L,)``) of
    different lengths is zero-padded to the longest, with ``False`` in the mask.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    keys = set(batch[0])
    for item in batch[1:]:
        if set(item) != keys:
            raise ValueError(f"items have different keys: {sorted(keys)} vs {sorted(item)}")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        first = values[0]
        if key in ("text_hidden", "text_mask"):
            longest = max(v.shape[0] for v in values)
            padded = first.new_zeros((len(values), longest, *first.shape[1:]))
            for row, value in enumerate(values):
                padded[row, : value.shape[0]] = value
            out[key] = padded
        elif isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = list(values)
    return out


__all__ = [
    "AudioCropDataset",
    "CatalogueItem",
    "CatalogueReport",
    "FileProbe",
    "LatentCropDataset",
    "check_catalogue",
    "collate",
    "data_check_main",
    "draw_offset",
    "duration_histogram",
    "encode_catalogue",
    "format_report",
    "latent_catalogue",
    "load_manifest",
    "probe_file",
    "render_histogram",
    "scan_catalogue",
    "split_catalogue",
]
