"""The U-Net's compute precision at sampling time: the one home of its names, its check and its detection.

``"auto"`` (the default) runs the U-Net under bfloat16 autocast on a CPU that computes bfloat16 natively
(AVX512-BF16 or AMX) and in float32 everywhere else. ``"bf16"`` asks for bfloat16 autocast on any device,
``"fp32"`` for float32. Autocast keeps the weights in float32 and computes convolutions, linear layers and
attention in bfloat16, with normalisation and softmax in float32; the scheduler's arithmetic, the VAE and
the text encoder always stay in float32. ``benchmarks/speed.py`` measures the speed, ``sak evaluate
--precision`` the quality.

Imports nothing heavy, so the CLI can check a name before torch loads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(precision: Any) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else ``ValueError`` naming it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def native_bf16(device_type: str = "cpu") -> bool:
    """True if ``device_type`` computes bfloat16 natively: an x86 CPU with AVX512-BF16 or AMX, or a CUDA GPU
    that supports it. Emulated bfloat16 (plain AVX512 or AVX2) is slower than float32, so it counts as no."""
    import torch

    if device_type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def resolve_precision(precision: str, device_type: str) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` means on ``device_type``."""
    if check_precision(precision) == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    return precision


def autocast(precision: str, device_type: str) -> tuple[AbstractContextManager, AbstractContextManager]:
    """``(session, step)``: the contexts a denoising loop runs in and each U-Net forward runs in.

    ``step`` is bfloat16 autocast (or nothing, for float32). ``session`` is autocast switched off: it runs
    nothing in bfloat16, but it keeps autocast's cache of the weights cast to bfloat16 alive from one
    forward to the next (autocast drops it when the outermost context exits), which saves recasting every
    weight at every step (about 2 ms a forward for the bundled U-Net on two cores).
    """
    if resolve_precision(precision, device_type) == "fp32":
        return nullcontext(), nullcontext()
    import torch

    return torch.autocast(device_type, enabled=False), torch.autocast(device_type, dtype=torch.bfloat16)
