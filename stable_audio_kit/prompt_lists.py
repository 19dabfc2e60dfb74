"""Prompt lists for batch generation, and the names of the files they become.

``sak generate --prompts FILE`` reads a plain-text file (one prompt a line), a CSV with a ``prompt``
column or a JSONL file with a ``prompt`` field; ``seconds``, ``seed`` and ``negative`` are optional per
row, and so are the workflow columns ``init_audio`` (a file, relative to the list's folder) with
``strength``, and ``loop`` (true/false). Every row is read and checked here, before any model loads,
and each prompt is read once (:func:`stable_audio_kit.conditioning.parse_prompt`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
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
    # Workflow arguments of the pipeline call: init_audio, strength, inpaint_audio, regions, loop, ...
    options: dict = field(default_factory=dict)
    # A prompt schedule [(prompt, seconds), ...] played instead of ``prompt`` (story mode).
    schedule: list | None = None

    @property
    def pipeline_prompt(self):
        """What the pipeline is given as ``prompt``: the schedule, or the prompt."""
        return self.schedule if self.schedule is not None else self.prompt


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


def parse_region(text: str) -> tuple[float, float]:
    """A region to regenerate from ``"START:END"`` in seconds: ``"2.0:3.5"`` -> ``(2.0, 3.5)``. Whether it lies
    in the clip is the pipeline's check (:func:`stable_audio_kit.workflows.check_regions`)."""
    start, sep, end = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise ValueError(f"region takes START:END in seconds, e.g. 2.0:3.5, got {text!r}") from None


def continuation_regions(path: str | Path, seconds: float) -> list[tuple[float, float]]:
    """The region a continuation of the audio file ``path`` to ``seconds`` in all regenerates: from the end of
    the input to ``seconds``. ``ValueError`` for an unreadable file or a length that does not reach past it."""
    from .audio import audio_info

    try:
        rate, _, frames = audio_info(path)
    except Exception as err:  # soundfile's own error types for a missing or unreadable file
        raise ValueError(f"cannot read {str(path)!r} as audio: {err}") from None
    have = frames / rate
    if seconds <= have:
        raise ValueError(f"seconds ({seconds:g}) must be longer than the input ({have:.3f} s) to continue it")
    return [(have, seconds)]


def parse_seed(value, what: str) -> int:
    """A seed from a prompt-list cell: an integer in ``[0, 2**64 - 1]`` (what ``torch.Generator`` takes)."""
    from .utils import check_seed

    return check_seed(value, f"{what}: seed")


def _rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"prompt file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
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
        rows = _csv_rows(path, text)
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append({"prompt": line.strip(), "_where": f"{path}:{n}"})
    return rows


def _csv_rows(path: Path, text: str) -> list[dict]:
    """The rows of a CSV prompt list, each with the line it starts on. A quoted cell may not run over a line
    end: that is an unterminated quote, which would otherwise swallow the rows after it into one prompt."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise ValueError(f"{path}:1: malformed CSV header ({err})") from None
    if header is None or "prompt" not in header:
        raise ValueError(f"{path}: a CSV prompt file needs a 'prompt' column, got {header}")
    rows, start = [], reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as err:
            raise ValueError(f"{path}:{start}: malformed CSV row, an unterminated quote? ({err})") from None
        if reader.line_num > start or any("\n" in cell or "\r" in cell for cell in cells):
            raise ValueError(
                f"{path}:{start}: a quoted cell runs over {reader.line_num - start + 1} lines; is a closing quote "
                "missing? (a prompt must fit on one line)"
            )
        if cells:
            if len(cells) > len(header):
                raise ValueError(f"{path}:{start}: {len(cells)} cells for {len(header)} columns {header}")
            rows.append({**dict(zip(header, cells)), "_where": f"{path}:{start}"})
        start = reader.line_num + 1


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
        options = _workflow_columns(row, path.parent, where)
        seconds = row.get("seconds")
        if seconds in (None, ""):
            if default_seconds is None and "init_audio" not in options:
                raise ValueError(f"{where}: no seconds given and no --seconds default")
            seconds = default_seconds
        seed = row.get("seed")
        seed = (
            parse_seed(base_seed + i, f"{where} (--seed + row index)")
            if seed in (None, "")
            else parse_seed(seed, where)
        )
        negative = row.get("negative") or None
        jobs.append(
            Job(
                i,
                parse_prompt(prompt.strip()),
                None if seconds is None else parse_seconds(seconds, where),  # None: the init audio's length
                seed,
                parse_prompt(negative) if negative else None,
                options,
            )
        )
    return jobs


def parse_flag(value, what: str) -> bool:
    """true/false, yes/no, 1/0 (any case) from a prompt-list cell or JSON boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0", ""):
        return False
    raise ValueError(f"{what}: expected true or false, got {value!r}")


def _workflow_columns(row: dict, folder: Path, where: str) -> dict:
    options = {}
    if row.get("init_audio") not in (None, ""):
        audio = Path(str(row["init_audio"]))
        options["init_audio"] = audio if audio.is_absolute() else folder / audio
    if row.get("strength") not in (None, ""):
        try:
            options["strength"] = float(row["strength"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: strength must be a number, got {row['strength']!r}") from None
    if row.get("loop") not in (None, ""):
        options["loop"] = parse_flag(row["loop"], f"{where}: loop")
    return options


def read_schedule(path: str | Path) -> list[tuple[ParsedPrompt, float]]:
    """A prompt schedule from a file: CSV or JSONL with ``prompt`` and ``seconds`` per row, or plain text with
    ``SECONDS PROMPT`` a line; each prompt plays for its seconds, in order (story mode)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"schedule file {str(path)!r} does not exist")
    if path.suffix.lower() in (".csv", ".jsonl"):
        rows = _rows(path)
    else:
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                seconds, _, prompt = line.strip().partition(" ")
                rows.append({"prompt": prompt.strip(), "seconds": seconds, "_where": f"{path}:{n}"})
    if not rows:
        raise ValueError(f"schedule file {str(path)!r} holds no prompts")
    schedule = []
    for row in rows:
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{row['_where']}: prompt must be a non-empty string, got {prompt!r}")
        schedule.append((parse_prompt(prompt.strip()), parse_seconds(row.get("seconds"), row["_where"])))
    return schedule


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
