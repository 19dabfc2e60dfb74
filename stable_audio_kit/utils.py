"""Small shared helpers: atomic writes, input validation, launch detection and the training-stop error."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


# The format of the CLI's log lines, in a terminal and in what `sak serve` sends back to a client.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


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
    """Raise ``ValueError`` unless a file could be created at ``path`` (its folder may not exist yet).

    The nearest existing folder is tried by creating (and removing) a temporary file in it: permission bits
    say nothing for root, a read-only file system or a folder like ``/proc``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output path {str(path)!r} is a directory, expected a file")
    parent = path.parent
    while not parent.exists() and not parent.is_symlink():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"output path {str(path)!r} cannot be written: {str(parent)!r} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".sak-write-check.", dir=parent)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(f"output path {str(path)!r} cannot be written: {str(parent)!r}: {reason}") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"output path {str(path)!r} cannot be written: file is read-only")
    return path


# torch.Generator.manual_seed takes any integer in [0, 2**64 - 1] (it wraps negative ones, which we refuse).
SEED_MAX = 2**64 - 1


def check_seed(value: object, what: str = "seed") -> int:
    """``value`` as a seed for ``torch.Generator.manual_seed``; ``ValueError`` naming ``what`` and the value."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        seed = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != seed:
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{what} must be in [0, 2**64 - 1], got {seed}")
    return seed


def random_seed() -> int:
    """A seed for a request that names none, from the system's entropy, in ``[0, 2**31 - 1)``: short enough to read
    out and type again."""
    import secrets

    return secrets.randbelow(2**31 - 1)


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def check_device(name: str | None) -> str | None:
    """``name`` if this machine has that torch device (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``xpu``), else a
    ``ValueError`` naming it and saying what is missing. ``None`` passes through (the caller picks a default)."""
    if name is None:
        return None
    kind, sep, index = str(name).strip().partition(":")
    if kind not in DEVICE_TYPES or (sep and not index.isdigit()):
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_TYPES)}, optionally ':N'")
    if kind == "cpu":
        return name
    import torch

    backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None), "xpu": getattr(torch, "xpu", None)}
    module = backend[kind]
    if module is None or not module.is_available():
        raise ValueError(f"device {name!r} is not available: this torch ({torch.__version__}) has no usable {kind}")
    if sep and kind in ("cuda", "xpu") and int(index) >= module.device_count():
        raise ValueError(f"device {name!r} does not exist: this machine has {module.device_count()} {kind} device(s)")
    return name


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


def launcher_shortfall(launcher_argv: list[str] | None = None) -> tuple[int, int] | None:
    """``(asked, started)`` when ``accelerate launch`` was asked for more processes than it started, else ``None``.

    ``accelerate launch --cpu --num_processes 2`` runs the script once, alone, and tells it nothing of the 2: the
    number asked for is read from the launcher's command line, ``launcher_argv`` (default: the parent process's,
    from Linux ``/proc``; elsewhere nothing is known).
    """
    if "ACCELERATE_USE_CPU" not in os.environ and "ACCELERATE_MIXED_PRECISION" not in os.environ:
        return None
    started = int(os.environ.get("WORLD_SIZE", "1"))
    argv = launcher_argv
    if argv is None:
        try:
            argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            return None
    if "launch" not in argv:
        return None
    asked = None
    for i, arg in enumerate(argv):
        name, sep, value = arg.partition("=")
        if name in ("--num_processes", "--num-processes"):
            value = value if sep else (argv[i + 1] if i + 1 < len(argv) else "")
            asked = int(value) if value.isdigit() else None
    if asked is None or asked <= started:
        return None
    return asked, started


def launcher_warning(launcher_argv: list[str] | None = None) -> str | None:
    """The warning to print when :func:`launcher_shortfall` finds one, else ``None``."""
    found = launcher_shortfall(launcher_argv)
    if found is None:
        return None
    asked, started = found
    return (
        f"accelerate launch was asked for {asked} processes but started {started}: with --cpu it runs the script "
        f"once. On a CPU-only machine use `torchrun --nproc_per_node {asked}` or `accelerate launch --multi_gpu "
        f"--num_processes {asked}`"
    )


def check_safetensors(path: str | Path) -> None:
    """Raise ``ValueError`` naming ``path`` unless it is a whole safetensors file: an 8-byte header length, a JSON
    header, and tensor data ending exactly at the end of the file. Reads the header only, so a file cut short by an
    interrupted copy or overwritten with zeros is found before any weights load."""
    import json

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"weights file {str(path)!r} is truncated ({size} bytes, no safetensors header)")
        length = int.from_bytes(head, "little")
        if length == 0 or length > size - 8:
            what = "zeroed" if length == 0 else "truncated"
            raise ValueError(
                f"weights file {str(path)!r} is {what} or not a safetensors file "
                f"(header length {length}, file size {size} bytes)"
            )
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"weights file {str(path)!r} is corrupt: its safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"weights file {str(path)!r} is corrupt: its safetensors header is not a JSON object")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise ValueError(f"weights file {str(path)!r} is corrupt: tensor {name!r} has no data offsets")
        end = max(end, int(offsets[1]))
    if 8 + length + end != size:
        raise ValueError(
            f"weights file {str(path)!r} is truncated or corrupt: its header describes {8 + length + end} bytes, "
            f"the file has {size}"
        )


class _DropEmptyFloat32Warning(logging.Filter):
    """diffusers' ``ModelMixin.to(dtype)`` warns that "modules ... should be kept in float32: []" for every model,
    also when the list is empty (``self._keep_in_fp32_modules or []`` is never ``None``). The empty case says
    nothing; a warning naming modules still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []." not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_DropEmptyFloat32Warning())


def describe_os_error(err: OSError) -> str:
    """``"cannot write 'out/x.wav': No space left on device"``: the file and the reason, without errno noise."""
    reason = err.strerror or str(err) or type(err).__name__
    files = [str(name) for name in (err.filename, err.filename2) if name is not None]
    return f"{' -> '.join(repr(name) for name in files)}: {reason}" if files else reason
