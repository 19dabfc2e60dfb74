"""Prompt lists for batch generation, and the names of the files they become.

``sak generate --prompts FILE`` reads a plain-text file (one prompt a line), a CSV with a ``prompt``
column or a JSONL file with a ``prompt`` field; ``seconds``, ``seed`` and ``negative`` are optional per
row. Every row is read and checked here, before any model loads, and each prompt is read once
(:func:`stable_audio_kit.conditioning.parse_prompt`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .conditioning.prompts import ParsedPrompt, parse_prompt


@dataclass
class Job:
    """One row of a prompt list: what to generate and with which seed."""

    index: int
    prompt: ParsedPrompt
    seconds: float | None
    seed: int
    negative: ParsedPrompt | None = None


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a prompt: ``"A rock groove, 96 BPM!"`` -> ``"a_rock_groove_96_bpm"``."""
    out = re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_").lower()
    return out[:limit] or "audio"


def parse_seconds(value, what: str) -> float:
    """A length in seconds from a CLI argument or a prompt-list cell; ``ValueError`` naming ``what``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: seconds must be a number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{what}: seconds must be a finite number > 0, got {value!r}")
    return out


def parse_seed(value, what: str) -> int:
    try:
        out = int(str(value))
    except ValueError:
        raise ValueError(f"{what}: seed must be an integer, got {value!r}") from None
    if out < 0:
        raise ValueError(f"{what}: seed must be >= 0, got {out}")
    return out


def _rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    rows: list[dict] = []
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: each line must be a JSON object, got {line.strip()!r}")
            rows.append({**row, "_where": f"{path}:{n}"})
    elif suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or "prompt" not in reader.fieldnames:
            raise ValueError(f"{path}: a CSV prompt file needs a 'prompt' column, got {reader.fieldnames}")
        for n, row in enumerate(reader, 2):
            rows.append({**row, "_where": f"{path}:{n}"})
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append({"prompt": line.strip(), "_where": f"{path}:{n}"})
    return rows


def read_prompt_file(path: str | Path, default_seconds: float | None, base_seed: int) -> list[Job]:
    """Jobs from a prompt list: plain text (one prompt a line), CSV or JSONL with ``prompt`` and optional
    ``seconds``, ``seed`` and ``negative`` fields. A row without a seed gets ``base_seed + row index``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"prompt file {str(path)!r} does not exist")
    rows = _rows(path)
    if not rows:
        raise ValueError(f"prompt file {str(path)!r} holds no prompts")
    jobs = []
    for i, row in enumerate(rows):
        where = row["_where"]
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: prompt must be a non-empty string, got {prompt!r}")
        seconds = row.get("seconds")
        if seconds in (None, ""):
            if default_seconds is None:
                raise ValueError(f"{where}: no seconds given and no --seconds default")
            seconds = default_seconds
        seed = row.get("seed")
        seed = base_seed + i if seed in (None, "") else parse_seed(seed, where)
        negative = row.get("negative") or None
        jobs.append(
            Job(
                i,
                parse_prompt(prompt.strip()),
                parse_seconds(seconds, where),
                seed,
                parse_prompt(negative) if negative else None,
            )
        )
    return jobs


def output_paths(job: Job, out: Path, batch: int, single: bool) -> list[Path]:
    """Where a job's ``batch`` waveforms go: ``out`` itself (``out_0.wav``, ``out_1.wav`` for several) for a
    single prompt, else ``out/0000_<prompt slug>.wav`` by row."""
    if single:
        if batch == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{k}{out.suffix}") for k in range(batch)]
    stem = f"{job.index:04d}_{slug(job.prompt.text)}"
    if batch == 1:
        return [out / f"{stem}.wav"]
    return [out / f"{stem}_{k}.wav" for k in range(batch)]
