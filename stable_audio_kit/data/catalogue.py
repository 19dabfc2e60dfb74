"""Catalogue scanning: the audio files of a folder with their captions and extra metadata.

A *catalogue* is a folder of audio files (searched recursively) with captions from sidecar files
(``<stem>.txt`` holding the caption, or ``<stem>.json`` with a ``"caption"`` key and extra fields)
or from a root ``metadata.csv`` / ``metadata.jsonl`` with ``path`` and ``caption`` columns.
:func:`scan_catalogue` lists its files as :class:`CatalogueItem`; the check, the splits, the crop
datasets and the latent encoder all start from that list.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..audio import AUDIO_EXTENSIONS

logger = logging.getLogger(__name__)

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
# The values of the ``split`` extra field (see ``split_catalogue``).
SPLIT_VALUES = ("train", "valid")


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


__all__ = ["METADATA_FILES", "SPLIT_VALUES", "CatalogueItem", "scan_catalogue"]
