"""``sak doctor``: what a bug report needs to know about the machine and the installation.

Versions of the libraries the toolkit runs on, the torch device and threads, whether FluidSynth and a
SoundFont are found (``sak catalogue make``), whether the bundled model loads, and how long the imports took.
Every check reports its failure as a line instead of raising, so the report is complete on a broken install.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from collections.abc import Callable

LIBRARIES = ("torch", "diffusers", "transformers", "accelerate")


def _timed_import(name: str) -> tuple[object | None, float, str | None]:
    """``(module, seconds, error)``; ``seconds`` is 0 for a module this process had imported already."""
    already = name in sys.modules
    start = time.perf_counter()
    try:
        module = importlib.import_module(name)
    except Exception as err:  # a broken install is what the report is for
        return None, time.perf_counter() - start, f"{type(err).__name__}: {err}"
    return module, 0.0 if already else time.perf_counter() - start, None


def _check(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as err:  # each check reports instead of stopping the report
        return f"not available ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"


def device_line(torch) -> str:
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"cuda ({torch.cuda.device_count()}: {names}; CUDA {torch.version.cuda})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps (Apple GPU)"
    return "cpu (no CUDA or MPS device)"


def threads_line(torch) -> str:
    cores = os.cpu_count()
    omp = os.environ.get("OMP_NUM_THREADS")
    setting = f"OMP_NUM_THREADS={omp}" if omp else "OMP_NUM_THREADS unset"
    return f"torch uses {torch.get_num_threads()} of {cores} CPU core(s) ({setting})"


def precision_line() -> str:
    """What ``--precision auto`` runs the U-Net in on this machine's CPU."""
    from .precision import native_bf16

    if native_bf16("cpu"):
        return "auto = bf16 on the CPU (it computes bfloat16 natively: AVX512-BF16 or AMX)"
    return "auto = fp32 on the CPU (no native bfloat16: bf16 would be emulated, slower than fp32)"


def fluidsynth_line() -> str:
    from .demo.extra import import_fluidsynth

    fluidsynth = import_fluidsynth()
    library = getattr(getattr(fluidsynth, "_fl", None), "_name", None)
    return f"found ({library})" if library else "found"


def soundfont_line() -> str:
    from .demo.rendering import find_soundfont

    return f"found ({find_soundfont()})"


def bundled_model_line() -> str:
    from .students import describe_distilled
    from .pipeline import DEFAULT_MODEL_DIR, StableAudioKitPipeline

    start = time.perf_counter()
    pipe = StableAudioKitPipeline.from_pretrained()
    took = time.perf_counter() - start
    student = describe_distilled(DEFAULT_MODEL_DIR)
    return (
        f"loads in {took:.2f} s ({DEFAULT_MODEL_DIR}: {pipe.sample_rate} Hz, {pipe.audio_channels} channel(s), "
        f"up to {pipe.max_seconds:.2f} s" + (f"; a distilled U-Net: {student}" if student else "") + ")"
    )


def report(load_model: bool = True, before_load: Callable[[], None] | None = None) -> list[str]:
    """The lines ``sak doctor`` prints; ``before_load`` runs after the timed imports, before the model loads."""
    from . import __version__

    lines = [f"stable-audio-kit {__version__}", f"python           {sys.version.split()[0]} ({platform.platform()})"]
    times = []
    modules = {}
    for name in LIBRARIES:
        module, seconds, error = _timed_import(name)
        modules[name] = module
        times.append(f"{name} {seconds:.2f} s")
        version = getattr(module, "__version__", "?") if module is not None else f"NOT IMPORTABLE ({error})"
        lines.append(f"{name:<17}{version}")
    _, seconds, error = _timed_import("stable_audio_kit.pipeline")
    times.append(f"stable_audio_kit.pipeline {seconds:.2f} s" + (f" ({error})" if error else ""))
    torch = modules["torch"]
    if torch is not None:
        lines.append(f"{'device':<17}{_check(lambda: device_line(torch))}")
        lines.append(f"{'threads':<17}{_check(lambda: threads_line(torch))}")
        lines.append(f"{'precision':<17}{_check(precision_line)}")
    lines.append(f"{'FluidSynth':<17}{_check(fluidsynth_line)}")
    lines.append(f"{'SoundFont':<17}{_check(soundfont_line)}")
    if load_model:
        if before_load is not None:
            before_load()
        lines.append(f"{'bundled model':<17}{_check(bundled_model_line)}")
    lines.append(f"{'import time':<17}{', '.join(times)} (0.00: imported before)")
    return lines
