"""Catalogues of audio and captions: scanning, the dry-run check, splits, training crops and latent shards."""

from .catalogue import METADATA_FILES, SPLIT_VALUES, CatalogueItem, scan_catalogue
from .check import (
    SILENCE_PEAK,
    CatalogueReport,
    FileProbe,
    check_catalogue,
    data_check_main,
    duration_histogram,
    format_report,
    probe_file,
    render_histogram,
)
from .crops import AudioCropDataset, LatentCropDataset, collate, draw_offset
from .shards import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, encode_catalogue, latent_catalogue, load_manifest
from .splits import split_catalogue

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
