"""Latent shards: a catalogue pre-encoded once with a VAE, and the manifest that describes it.

:func:`encode_catalogue` encodes every whole file (and optionally its caption) into
``shard-XXXXX.safetensors`` files plus an ``index.json`` manifest; :func:`load_manifest` reads the
manifest back, refusing other formats and versions, and :func:`latent_catalogue` lists the encoded
items. The manifest also stores the latent of silence, which pads latent crops past a file's end.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import mix_channels, read_audio, resample
from ..utils import atomic_path, atomic_write_text
from .catalogue import CatalogueItem, scan_catalogue
from .check import FileProbe, _validate_items

logger = logging.getLogger(__name__)

MANIFEST_NAME = "index.json"
MANIFEST_FORMAT = "stable-audio-kit-latents"
# Version 2 added ``silence_latent``; version 1 shards padded crops with zeros, not with silence.
MANIFEST_VERSION = 2

TextEncodeFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


def _vae_device(vae: Any) -> torch.device:
    params = getattr(vae, "parameters", None)
    if callable(params):
        for param in params():
            return param.device
    return torch.device("cpu")


def _encode_batch(
    vae: Any, audios: list[np.ndarray], hop: int, scaling: float, device: torch.device
) -> list[torch.Tensor]:
    """Encode whole files, zero-padded to a common multiple of ``hop``: list of ``(D, valid_frames)``."""
    longest = max(a.shape[-1] for a in audios)
    padded = math.ceil(longest / hop) * hop
    batch = torch.zeros(len(audios), audios[0].shape[0], padded, dtype=torch.float32)
    for row, audio in enumerate(audios):
        batch[row, :, : audio.shape[-1]] = torch.from_numpy(audio)
    with torch.no_grad():
        latents = vae.encode(batch.to(device)).latent_dist.mode() * scaling
    latents = latents.float().cpu()
    out = []
    for row, audio in enumerate(audios):
        valid = math.ceil(audio.shape[-1] / hop)
        if latents.ndim != 3 or latents.shape[-1] < valid:
            raise ValueError(
                f"VAE returned latents of shape {tuple(latents.shape)} for audio of {padded} samples; "
                f"expected (batch, channels, {padded // hop}) with hop_length {hop}"
            )
        out.append(latents[row, :, :valid].contiguous())
    return out


def _silence_latent(vae: Any, channels: int, hop: int, scaling: float, device: torch.device) -> torch.Tensor:
    """The latent frame of digital silence, ``(latent_channels,)``: what follows a short file's end.

    The middle frame of an encoded silent stretch, away from the convolutions' edges. It is rarely
    zero (biases), so padding latent crops with zeros would teach the U-Net a tail that decodes to
    sound instead of silence.
    """
    frames = 32
    silent = [np.zeros((channels, frames * hop), dtype=np.float32)]
    return _encode_batch(vae, silent, hop, scaling, device)[0][:, frames // 2].contiguous()


def encode_catalogue(
    vae: Any,
    root: str | Path,
    out_dir: str | Path,
    sample_rate: int,
    channels: int,
    *,
    items: Sequence[CatalogueItem] | None = None,
    shard_size: int = 256,
    batch_size: int = 1,
    text_encode_fn: TextEncodeFn | None = None,
    skip_unreadable: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Encode every whole file of a catalogue with ``vae`` and write latent shards plus a manifest.

    ``vae`` needs ``encode(x).latent_dist.mode()`` for ``x`` of shape ``(batch, channels, samples)``,
    ``hop_length`` and ``config.scaling_factor``; put it in eval mode on the device you want first.
    Stored latents are ``posterior mode * scaling_factor``, shape ``(latent_channels, valid_frames)``
    with ``valid_frames = ceil(num_samples / hop_length)`` (files are zero-padded to a multiple of the
    hop). ``batch_size > 1`` pads files of a batch to the longest, which can change the last latent
    frames of the shorter ones a little (the encoder's receptive field sees padding, not the
    convolutions' edge); keep 1 for exact per-file latents.

    ``text_encode_fn(captions) -> (hidden (B, L, D), mask (B, L))``, if given, is run on the captions
    (``""`` for missing ones) and its outputs are stored per item.

    Shards are ``shard-XXXXX.safetensors`` (tensors ``"<k>.latents"`` and optionally
    ``"<k>.text_hidden"``, ``"<k>.text_mask"``; per-item metadata in the header), written atomically;
    the manifest ``index.json`` is written last and lists ``sample_rate``, ``channels``,
    ``hop_length``, ``latent_channels``, ``latent_rate``, ``scaling_factor``, ``silence_latent`` (the
    latent frame of silence, which pads crops past a file's end) and every item
    (``path``, ``caption``, ``extra``, ``seconds_total``, ``num_samples``, ``valid_frames``,
    ``shard``, ``key``). Unusable files raise ``ValueError`` up front unless ``skip_unreadable``,
    in which case they (and files failing while being decoded) are logged and listed under
    ``"skipped"``. ``progress`` shows a tqdm bar on stderr. Returns the manifest path.
    """
    from safetensors.torch import save_file

    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(shard_size, int) or shard_size <= 0:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    hop = getattr(vae, "hop_length", None)
    if not isinstance(hop, int) or hop <= 0:
        raise ValueError(f"vae.hop_length must be a positive integer, got {hop!r}")
    scaling = float(vae.config.scaling_factor)
    root, out_dir = Path(root), Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists() and not overwrite:
        raise ValueError(f"{str(manifest_path)!r} already exists; pass overwrite=True to re-encode")
    if items is None:
        items = scan_catalogue(root)
    good, skipped = _validate_items(root, items, channels, skip_unreadable, decode_check=False)
    device = _vae_device(vae)

    entries: list[dict[str, Any]] = []
    shards: list[str] = []
    pending: dict[str, torch.Tensor] = {}
    pending_meta: list[dict[str, Any]] = []
    latent_channels: int | None = None

    def flush() -> None:
        if not pending_meta:
            return
        name = f"shard-{len(shards):05d}.safetensors"
        with atomic_path(out_dir / name) as tmp:
            save_file(pending, str(tmp), metadata={"items": json.dumps(pending_meta)})
        shards.append(name)
        entries.extend({**meta, "shard": name} for meta in pending_meta)
        logger.info("wrote %s (%d items)", name, len(pending_meta))
        pending.clear()
        pending_meta.clear()

    for start in tqdm(range(0, len(good), batch_size), desc="encoding", unit="batch", disable=not progress):
        loaded: list[tuple[CatalogueItem, FileProbe, np.ndarray]] = []
        for item, probe in good[start : start + batch_size]:
            try:
                audio, sr = read_audio(root / item.path)
                if audio.shape[-1] != probe.frames:
                    raise ValueError(f"read {audio.shape[-1]} frames, header declares {probe.frames}")
                audio = mix_channels(resample(audio, sr, sample_rate), channels)
            except Exception as err:  # reported below, never replaced by another file
                if not skip_unreadable:
                    raise ValueError(f"cannot read {str(root / item.path)!r}: {err}") from err
                logger.warning("skipping %s: %s", item.path, err)
                skipped.append((item.path, f"unreadable: {err}"))
                continue
            loaded.append((item, probe, audio))
        if not loaded:
            continue
        latents = _encode_batch(vae, [audio for _, _, audio in loaded], hop, scaling, device)
        hidden = mask = None
        if text_encode_fn is not None:
            with torch.no_grad():
                hidden, mask = text_encode_fn([item.caption or "" for item, _, _ in loaded])
            if hidden.ndim != 3 or mask.ndim != 2 or hidden.shape[:2] != mask.shape or hidden.shape[0] != len(loaded):
                raise ValueError(
                    f"text_encode_fn must return hidden (B, L, D) and mask (B, L) for B={len(loaded)}, "
                    f"got {tuple(hidden.shape)} and {tuple(mask.shape)}"
                )
        for row, ((item, probe, audio), latent) in enumerate(zip(loaded, latents)):
            latent_channels = latent.shape[0]
            key = str(len(entries) + len(pending_meta))
            pending[f"{key}.latents"] = latent
            if hidden is not None and mask is not None:
                pending[f"{key}.text_hidden"] = hidden[row].detach().cpu().contiguous()
                pending[f"{key}.text_mask"] = mask[row].detach().cpu().bool().contiguous()
            pending_meta.append(
                {
                    "key": key,
                    "path": item.path,
                    "caption": item.caption,
                    "extra": item.extra,
                    "seconds_total": probe.seconds,
                    "source_sample_rate": probe.sample_rate,
                    "source_frames": probe.frames,
                    "num_samples": int(audio.shape[-1]),
                    "valid_frames": int(latent.shape[-1]),
                }
            )
            if len(pending_meta) >= shard_size:
                flush()
    flush()
    silence = _silence_latent(vae, channels, hop, scaling, device)
    latent_channels = int(silence.shape[0]) if latent_channels is None else latent_channels
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "sample_rate": sample_rate,
        "channels": channels,
        "hop_length": hop,
        "latent_channels": latent_channels,
        "latent_rate": sample_rate / hop,
        "scaling_factor": scaling,
        "silence_latent": silence.tolist(),
        "has_text": text_encode_fn is not None,
        "shards": shards,
        "items": entries,
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    logger.info("encoded %d files into %d shards in %s", len(entries), len(shards), out_dir)
    return manifest_path


def load_manifest(latent_dir: str | Path) -> dict[str, Any]:
    """The ``index.json`` written by :func:`encode_catalogue`."""
    path = Path(latent_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{str(path)!r} not found: no latent shards there; write them with `sak encode`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{str(path)!r} is not a {MANIFEST_FORMAT} manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{str(path)!r} is version {manifest.get('version')!r} of the latent format, this toolkit reads "
            f"version {MANIFEST_VERSION} (it pads crops with the latent of silence); re-encode with `sak encode`"
        )
    return manifest


def latent_catalogue(latent_dir: str | Path) -> list[CatalogueItem]:
    """The encoded items as :class:`CatalogueItem` (e.g. for :func:`split_catalogue`)."""
    return [CatalogueItem(e["path"], e["caption"], dict(e["extra"])) for e in load_manifest(latent_dir)["items"]]


__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "encode_catalogue",
    "latent_catalogue",
    "load_manifest",
]
