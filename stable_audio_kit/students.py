"""A model directory's distilled student (``unet_distilled/``): its config, the teacher it names and whether it
is still the student of the directory's ``unet/``.

``sak train distill`` distils a student of a model's U-Net and ``sak export`` (or ``tools/bundle_distilled.py``) puts
it beside that U-Net with ``teacher.json``, the identity of the U-Net it was distilled from
(:func:`write_teacher_record`). A student beside other weights is stale (:func:`student_is_stale`): ``--unet auto``
passes it over with one warning (:func:`auto_student`) and an explicit request for it is refused
(:func:`stable_audio_kit.assembly.check_distilled_dir`). Imports neither torch nor diffusers, so the CLI can decide
which U-Net a request samples with before they load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from .sampling import DISTILLED_SUBFOLDER, holds_student

logger = logging.getLogger("stable_audio_kit")


def distilled_config(path: str | Path) -> dict[str, Any] | None:
    """The config of the distilled student a pipeline directory holds (``unet_distilled/config.json``), ``None``
    without one; ``ValueError`` naming the file if it is unreadable or not a student's. Loads no weights."""
    file = Path(path) / DISTILLED_SUBFOLDER / "config.json"
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the model folder is damaged") from None
    if not isinstance(config, dict) or config.get("distilled_steps") is None:
        raise ValueError(
            f"{str(file)!r} is not a distilled student's config (no distilled_steps); `sak train distill` makes one"
        )
    return config


# Beside a student's weights, the identity of the U-Net it was distilled from (write_teacher_record), so that a
# student is not paired with a U-Net put into unet/ after it was distilled (student_is_stale).
TEACHER_FILE = "teacher.json"
STALE_STUDENT_REMEDY = f"re-run `sak train distill` and `sak export` from this unet/, or remove {DISTILLED_SUBFOLDER}/"


def unet_weight_files(unet_dir: str | Path) -> list[Path]:
    """The safetensors file(s) of a U-Net folder, as ``save_pretrained`` wrote them (one file, or its shards)."""
    return sorted(Path(unet_dir).glob("*.safetensors"))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_teacher_record(student_dir: str | Path, unet_dir: str | Path, unet_sha256: str) -> None:
    """Write ``student_dir/teacher.json``, the identity of the teacher whose weights ``unet_dir`` holds (the
    ``unet/`` of the pipeline directory the student goes into): ``unet_sha256``, the tensor-content hash
    (:func:`~stable_audio_kit.lora.weights_sha256` of the teacher, alike in any dtype), and, for a fast check, the
    sha256 and size of each weights file in ``unet_dir``. :func:`student_is_stale` reads it."""
    from .utils import atomic_write_text

    files = unet_weight_files(unet_dir)
    if not files:
        raise ValueError(f"{str(unet_dir)!r} holds no safetensors weights of the teacher U-Net")
    record = {
        "unet_sha256": unet_sha256,
        "files": {file.name: {"sha256": file_sha256(file), "bytes": file.stat().st_size} for file in files},
    }
    atomic_write_text(Path(student_dir) / TEACHER_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_teacher_record(file: Path) -> dict[str, Any]:
    """A student's ``teacher.json`` (:func:`write_teacher_record`); ``ValueError`` naming it if it is not one."""
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the model folder is damaged") from None
    record = record if isinstance(record, dict) else {}
    files = record.get("files")
    whole = isinstance(record.get("unet_sha256"), str) and isinstance(files, dict)
    if not whole or not all(
        isinstance(f, dict) and isinstance(f.get("sha256"), str) and isinstance(f.get("bytes"), int)
        for f in files.values()
    ):
        raise ValueError(
            f"{str(file)!r} is not a student's teacher record (unet_sha256, and the sha256 and bytes of each file); "
            "the model folder is damaged"
        )
    return record


# What student_is_stale found, by the files it read (their sizes and times): a process asks once per change.
_stale_checks: dict[tuple, bool] = {}


def student_is_stale(path: str | Path) -> bool:
    """Whether the student in the pipeline directory ``path``'s ``unet_distilled/`` was distilled from other
    weights than its ``unet/`` holds, by its ``teacher.json`` (:func:`write_teacher_record`). First the bytes: the
    weights files of ``unet/`` of the recorded sizes and sha256 match. Else the tensors: ``unet/``'s files read
    with safetensors and hashed as :func:`~stable_audio_kit.lora.weights_sha256` hashes the loaded module, so the
    same weights saved again in another dtype still match. A student without ``teacher.json`` (exported before it
    was written) is not stale: unknown, one debug line. ``ValueError`` naming a damaged ``teacher.json`` or
    ``unet/`` file. The answer is kept for as long as the files keep their sizes and times."""
    path = Path(path)
    record_file = path / DISTILLED_SUBFOLDER / TEACHER_FILE
    if not record_file.is_file():
        if holds_student(path):
            logger.debug("%s: no %s, so which U-Net the student was distilled from is unknown", path, TEACHER_FILE)
        return False
    files = unet_weight_files(path / "unet")
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in [record_file, *files])
    if key not in _stale_checks:
        _stale_checks[key] = not _holds_teacher(read_teacher_record(record_file), files)
    return _stale_checks[key]


def _holds_teacher(record: dict[str, Any], files: list[Path]) -> bool:
    """Whether the U-Net weights ``files`` are the teacher of ``record`` (:func:`student_is_stale`)."""
    recorded = record["files"]
    sizes = {f.name: f.stat().st_size for f in files}
    if sizes == {name: entry["bytes"] for name, entry in recorded.items()}:
        if all(file_sha256(f) == recorded[f.name]["sha256"] for f in files):
            return True
    # Other bytes may hold the same weights (saved in another dtype): hash the tensors, not the file, under the
    # names the U-Net gives them when it loads (older files name some otherwise), as weights_sha256 of it would.
    from safetensors.torch import load_file

    from .lora import tensors_sha256
    from .unet.unet_1d_condition import rename_legacy_keys
    from .utils import check_safetensors

    tensors = {}
    for file in files:
        check_safetensors(file)
        tensors.update(load_file(file))
    rename_legacy_keys(tensors)
    return bool(tensors) and tensors_sha256(tensors) == record["unet_sha256"]


def stale_student_message(path: str | Path) -> str:
    """What is wrong with a stale student (:func:`student_is_stale`), naming its pipeline directory."""
    return (
        f"model directory {str(path)!r}: its distilled U-Net ({DISTILLED_SUBFOLDER}/) was distilled from other "
        "weights than unet/ holds"
    )


def auto_student(path: str | Path) -> bool:
    """Whether ``--unet auto`` may pick the student of the pipeline directory ``path``: it holds one
    (:func:`~stable_audio_kit.sampling.holds_student`) that was not distilled from other weights than its
    ``unet/`` (:func:`student_is_stale`). A stale one: one warning line, and the model's own U-Net samples."""
    if not holds_student(path):
        return False
    if student_is_stale(path):
        logger.warning("%s; sampling with the base U-Net (%s)", stale_student_message(path), STALE_STUDENT_REMEDY)
        return False
    return True


def describe_distilled(path: str | Path) -> str | None:
    """One line on the distilled student a pipeline directory holds (its steps and guidance, and whether it is
    stale, :func:`student_is_stale`), ``None`` without one."""
    try:
        config = distilled_config(path)
        stale = config is not None and student_is_stale(path)
    except ValueError as err:
        return f"{DISTILLED_SUBFOLDER}/ unreadable: {err}"
    if config is None:
        return None
    student = (
        f"{DISTILLED_SUBFOLDER}/, {config['distilled_steps']} steps, guidance "
        f"{float(config['distilled_guidance_scale']):g} baked in"
    )
    if stale:
        return (
            f"{student}, STALE: distilled from other weights than unet/ holds (--unet auto samples with the base "
            f"U-Net; {STALE_STUDENT_REMEDY})"
        )
    return f"{student} (sampled by default, --unet auto; --unet base for the model's own)"
