"""The 1D conditional U-Net denoiser."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), so importing the package imports neither torch nor diffusers.
_LAZY = {"UNet1DConditionModel": "unet_1d_condition", "UNet1DConditionOutput": "unet_1d_condition"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["UNet1DConditionModel", "UNet1DConditionOutput"]
