"""Small shared helpers: atomic writes, input validation, launch detection and the training-stop error."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create 0600 files and 0700 folders; what the atomic helpers rename into place gets the
# permissions a plain open()/mkdir() would have given it, so other users can read outputs as usual.
_UMASK = _umask()
FILE_MODE, DIR_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    A crash or exception inside the block leaves ``path`` untouched and removes the temporary
    file, so readers never see a half-written file. ``suffix`` defaults to ``path``'s own suffix,
    which keeps format detection by extension (soundfile, torch.save) working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_finite_number(name: str, value: object) -> float:
    """Return ``value`` as float, or raise ``ValueError`` naming it if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import torch

            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            else:
                raise TypeError
        except TypeError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_writable(path: str | Path) -> Path:
    """Raise ``ValueError`` unless a file could be created at ``path`` (its folder may not exist yet)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output path {str(path)!r} is a directory, expected a file")
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output path {str(path)!r} cannot be written: {str(parent)!r} is not a writable folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"output path {str(path)!r} cannot be written: file is read-only")
    return path


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    An existing ``path`` is refused unless ``overwrite``; then it is moved aside first and removed
    only after the new folder is in place, so a crash leaves either the old or the new folder.
    """
    import shutil

    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"output folder {str(path)!r} already exists; choose another or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class NonFiniteLossError(RuntimeError):
    """Raised when a training loss is NaN or infinite; the last good checkpoint is left as it was."""


def cpu_data_parallel() -> bool:
    """Whether this is one process of a multi-process launch (``torchrun``, ``accelerate launch --multi_gpu``)
    on a machine without a GPU backend. Accelerate then needs ``cpu=True`` to run data-parallel on the
    CPU (gloo); without it every process would work alone (train on the same run folder, or generate every
    prompt)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    from accelerate import utils

    others = ("is_xpu_available", "is_npu_available", "is_mlu_available", "is_musa_available", "is_sdaa_available")
    return not (torch.cuda.is_available() or any(getattr(utils, name, lambda: False)() for name in others))
