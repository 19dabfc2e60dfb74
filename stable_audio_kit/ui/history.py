"""The page's results on disk, so that a reload, or a restart of ``sak ui``, loses nothing.

Each result is a folder of the outputs folder (default ``./sak-ui-outputs``), numbered in order::

    sak-ui-outputs/
      0001/a_calm_piano_melody_seed1234.wav    the delivered audio (32-bit float)
      0001/a_calm_piano_melody_seed1234.flac   the same samples, 24-bit FLAC
      0001/a_calm_piano_melody_seed1234.png    its waveform and spectrogram
      0001/a_calm_piano_melody_seed1234.json   the sidecar: the settings that made it, its length, its files
      inputs/3f2a.../tone.wav                  an input audio of audio-to-audio, inpainting or continuation

Every file is written atomically, and the sidecar last: a folder without one (a job killed while it wrote)
is not a result and is never listed. The sidecar holds every setting of the request, the U-Net that sampled it
and its steps and guidance too, so a result can be made again, sample for sample, from it alone. A sidecar written
before the settings named the U-Net is read as made with the U-Net its command names (:func:`recorded_unet`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..prompt_lists import slug
from ..utils import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

SIDECAR_VERSION = 1
# What each mode asks of the pipeline: text alone, or an input audio used one of three ways.
MODES = ("text to audio", "audio to audio", "inpaint", "continue")


@dataclass
class Settings:
    """Everything that makes one result: the fields of the page, as the pipeline and delivery take them.

    ``seconds`` is the length asked for (``None``: the model's window, or the input's length); ``bars`` 4/4
    bars at the tempo instead; ``steps`` and ``cfg`` (``None``: the model's own, which a checked request records,
    see :meth:`~stable_audio_kit.ui.studio.Studio.plan`); ``scheduler`` a name of
    :data:`stable_audio_kit.schedulers.SCHEDULER_NAMES` (``None``: the model's own); ``loudness`` the target in
    LUFS (``None``: the default, see :func:`stable_audio_kit.delivery.delivery_loudness`); ``input_audio`` a file
    of the outputs folder's ``inputs/``, relative to it; ``regions`` the ``(start, end)`` seconds inpainting
    regenerates; ``unet`` the U-Net that samples, ``"base"`` or ``"distilled"`` (``None``: the page's choice,
    ``sak ui --unet``, which a checked request records, see :meth:`~stable_audio_kit.ui.studio.Studio.choose_unet`).
    """

    prompt: str
    mode: str = MODES[0]
    negative: str | None = None
    seconds: float | None = None
    bars: int | None = None
    steps: int | None = None
    cfg: float | None = None
    seed: int = 0
    scheduler: str | None = None
    bpm: float | None = None
    key: str | None = None
    loudness: float | None = None
    normalize: bool = True
    loop: bool = False
    input_audio: str | None = None
    strength: float | None = None
    regions: list[tuple[float, float]] | None = None
    unet: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
        settings = cls(**data)
        if settings.regions is not None:
            settings.regions = [tuple(region) for region in settings.regions]
        return settings


@dataclass
class Result:
    """One result on disk: its folder, settings, files and exact length."""

    id: str
    folder: Path
    settings: Settings
    stem: str
    sample_rate: int
    channels: int
    samples: int
    created: str
    model: str
    command: str = ""

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def wav(self) -> Path:
        return self.folder / f"{self.stem}.wav"

    @property
    def flac(self) -> Path:
        return self.folder / f"{self.stem}.flac"

    @property
    def picture(self) -> Path:
        return self.folder / f"{self.stem}.png"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SIDECAR_VERSION,
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "settings": asdict(self.settings),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "samples": self.samples,
            "seconds": self.seconds,
            "files": {"wav": self.wav.name, "flac": self.flac.name, "picture": self.picture.name},
            "command": self.command,
        }


def recorded_unet(command: str) -> str:
    """The U-Net that made a result whose sidecar's settings do not name one (written before they did), from the
    ``sak`` command the sidecar records: the one its ``--unet`` names (``sak ui --unet distilled`` wrote such
    sidecars before the page chose a U-Net per request), else ``"base"``, the model's own, the only one there was."""
    words = shlex.split(command)
    if "--unet" in words[:-1]:
        return words[words.index("--unet") + 1]
    return "base"


def result_stem(prompt: str, seed: int) -> str:
    """The file name of a result, from its prompt and seed: ``a_calm_piano_melody_seed1234``."""
    return f"{slug(prompt)}_seed{seed}"


class ResultStore:
    """The results in one outputs folder, numbered in order of creation."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def new_folder(self) -> tuple[str, Path]:
        """A new, empty result folder: the number after the highest one there."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()]
        number = max(numbers, default=0) + 1
        while True:
            folder = self.root / f"{number:04d}"
            try:
                folder.mkdir()
                return folder.name, folder
            except FileExistsError:
                number += 1

    def keep_input(self, path: str | Path) -> str:
        """Copy an input audio file into ``inputs/`` (in a folder named by its content, so a file kept twice is
        stored once, under its own name, which messages about it then name) and return its path relative to
        the outputs folder."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        kept = self.inputs / digest / path.name
        if not kept.exists():
            with atomic_path(kept) as tmp:
                shutil.copyfile(path, tmp)
        return kept.relative_to(self.root).as_posix()

    def input_path(self, settings: Settings) -> Path | None:
        return None if settings.input_audio is None else self.root / settings.input_audio

    def finish(self, result: Result) -> Result:
        """Write the sidecar, last: from now on the result is listed."""
        atomic_write_text(result.sidecar, json.dumps(result.to_json(), indent=2) + "\n")
        return result

    @staticmethod
    def now() -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S")

    def load(self, sidecar: str | Path) -> Result:
        """The result a sidecar describes; ``ValueError`` naming the file if it is unreadable or its audio is
        missing."""
        sidecar = Path(sidecar)
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            if data.get("version") != SIDECAR_VERSION:
                raise ValueError(f"sidecar version {data.get('version')!r}, expected {SIDECAR_VERSION}")
            settings = dict(data["settings"])
            if "unet" not in settings:
                settings["unet"] = recorded_unet(str(data.get("command", "")))
            result = Result(
                id=str(data["id"]),
                folder=sidecar.parent,
                settings=Settings.from_dict(settings),
                stem=sidecar.stem,
                sample_rate=int(data["sample_rate"]),
                channels=int(data["channels"]),
                samples=int(data["samples"]),
                created=str(data["created"]),
                model=str(data["model"]),
                command=str(data.get("command", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"result {str(sidecar)!r} cannot be read: {err}") from None
        if not result.wav.is_file():
            raise ValueError(f"result {str(sidecar)!r} has lost its audio {result.wav.name!r}")
        return result

    def list(self) -> list[Result]:
        """Every complete result, newest first; unreadable ones are logged and left out."""
        if not self.root.is_dir():
            return []
        results = []
        folders = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True)
        for folder in folders:
            for sidecar in sorted(folder.glob("*.json")):
                try:
                    results.append(self.load(sidecar))
                except ValueError as err:
                    logger.warning("%s", err)
        return results

    def get(self, result_id: str) -> Result:
        """The result numbered ``result_id``; ``ValueError`` if there is none."""
        folder = self.root / str(result_id)
        sidecars = sorted(folder.glob("*.json")) if str(result_id).isdigit() and folder.is_dir() else []
        if not sidecars:
            raise ValueError(f"no result {result_id!r} in {str(self.root)!r}")
        return self.load(sidecars[0])
