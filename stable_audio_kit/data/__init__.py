"""Catalogues of audio and captions: scanning, the dry-run check, splits, training crops and latent shards."""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported from its module on first use (PEP 562): ``sak data check`` needs neither the
# torch datasets (.crops) nor the latent shards (.shards).
_LAZY = {
    "METADATA_FILES": "catalogue",
    "SPLIT_VALUES": "catalogue",
    "CatalogueItem": "catalogue",
    "scan_catalogue": "catalogue",
    "SILENCE_PEAK": "check",
    "CatalogueReport": "check",
    "FileProbe": "check",
    "check_catalogue": "check",
    "data_check_main": "check",
    "duration_histogram": "check",
    "format_report": "check",
    "probe_file": "check",
    "render_histogram": "check",
    "AudioCropDataset": "crops",
    "LatentCropDataset": "crops",
    "collate": "crops",
    "draw_offset": "crops",
    "MANIFEST_FORMAT": "shards",
    "MANIFEST_NAME": "shards",
    "MANIFEST_VERSION": "shards",
    "encode_catalogue": "shards",
    "latent_catalogue": "shards",
    "load_manifest": "shards",
    "split_catalogue": "splits",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "METADATA_FILES",
    "SILENCE_PEAK",
    "SPLIT_VALUES",
    "AudioCropDataset",
    "CatalogueItem",
    "CatalogueReport",
    "FileProbe",
    "LatentCropDataset",
    "check_catalogue",
    "collate",
    "data_check_main",
    "draw_offset",
    "duration_histogram",
    "encode_catalogue",
    "format_report",
    "latent_catalogue",
    "load_manifest",
    "probe_file",
    "render_histogram",
    "scan_catalogue",
    "split_catalogue",
]
