"""Training crops: window-sized examples of raw audio or pre-encoded latents, with their timing.

Every training example carries the Stable Audio timing conditions: ``seconds_start`` is where the
crop starts in its source file and ``seconds_total`` is the source file's whole duration. The raw
audio path (:class:`AudioCropDataset`) and the pre-encoded path (``encode_catalogue`` +
:class:`LatentCropDataset`) draw crop offsets from the same ``(seed, epoch, index)`` generator and
compute both values the same way, so switching to latents changes nothing the model sees.
:func:`collate` batches the items of either dataset.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import mix_channels, read_audio, resample
from .catalogue import CatalogueItem, scan_catalogue
from .check import _check_target, _validate_items
from .shards import load_manifest


def _check_seed(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def draw_offset(seed: int, epoch: int, index: int, length: int, window: int, multiple: int = 1) -> int:
    """Random crop start in ``[0, length - window]``, a multiple of ``multiple``; 0 if ``length <= window``.

    Uniform over the valid starts, drawn as
    ``multiple * numpy.random.default_rng([seed, epoch, index]).integers(count)`` with
    ``count = (length - window) // multiple + 1``, so a resumed run reproduces every crop.
    """
    if length <= window:
        return 0
    count = (length - window) // multiple + 1
    return multiple * int(np.random.default_rng([seed, epoch, index]).integers(count))


class _CropDataset(Dataset, abc.ABC):
    """Epoch/seed bookkeeping shared by the audio and latent datasets (which define the two abstract methods)."""

    train: bool
    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch``. Call it before each epoch (DataLoader workers copy the
        dataset when they start, so use non-persistent workers or recreate the loader)."""
        self.epoch = _check_seed("epoch", epoch)

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return index % len(self)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        return self.load_crop(index, self.sample_offset(index))

    @abc.abstractmethod
    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in the subclass's own units."""

    @abc.abstractmethod
    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """Item ``index`` cropped at ``offset`` (audio or latents)."""


class AudioCropDataset(_CropDataset):
    """Window-sized crops of a catalogue's audio at the model's rate and channel count.

    Each item is a dict:

    - ``audio``: float32 ``(channels, window_samples)``, silence after the end of a short file
    - ``padding_mask``: bool ``(window_samples,)``, ``True`` where the audio is real
    - ``seconds_start``: crop start in the source file, ``offset / sample_rate``
    - ``seconds_total``: the source file's duration, ``source_frames / source_rate``
    - ``caption`` (``""`` when missing) and ``path`` (relative to ``root``)

    In training mode the offset is drawn by :func:`draw_offset` from ``(seed, epoch, index)``
    (a multiple of ``offset_multiple`` samples; use the VAE hop to match :class:`LatentCropDataset`);
    in validation mode (``train=False``) it is 0. Files shorter than the window start at 0.

    Every file is probed when the dataset is built (header and container; ``decode_check`` also
    decodes every sample). Missing, unreadable, zero-length or unmixable files raise ``ValueError``
    naming them, or with ``skip_unreadable`` are left out, logged and listed in ``.skipped``.
    A file that fails later raises from ``__getitem__``; no other sample is substituted.
    """

    def __init__(
        self,
        root: str | Path,
        sample_rate: int,
        channels: int,
        window_seconds: float,
        *,
        items: Sequence[CatalogueItem] | None = None,
        train: bool = True,
        seed: int = 0,
        offset_multiple: int = 1,
        skip_unreadable: bool = False,
        decode_check: bool = False,
    ) -> None:
        _check_target(sample_rate, channels, window_seconds)
        if not isinstance(offset_multiple, int) or offset_multiple <= 0:
            raise ValueError(f"offset_multiple must be a positive integer, got {offset_multiple!r}")
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.channels = channels
        self.window_seconds = float(window_seconds)
        self.window_samples = round(window_seconds * sample_rate)
        self.offset_multiple = offset_multiple
        self.train = train
        self.seed = _check_seed("seed", seed)
        self.epoch = 0
        if items is None:
            items = scan_catalogue(self.root)
        good, self.skipped = _validate_items(self.root, items, channels, skip_unreadable, decode_check)
        self.items = [item for item, _ in good]
        self._probes = [probe for _, probe in good]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        if self._probes[index].sample_rate == self.sample_rate:
            return self.load_crop(index, self.sample_offset(index))
        # A resampled file is loaded once: its length at the model rate decides the offset.
        whole = self._load_whole(index)
        return self._crop(index, whole, self._offset_for(index, whole.shape[-1]))

    def num_samples(self, index: int) -> int:
        """Length of item ``index`` at the model rate (what resampling the whole file yields)."""
        probe = self._probes[index]
        if probe.sample_rate == self.sample_rate:
            return probe.frames
        return self._load_whole(index).shape[-1]

    def _load_whole(self, index: int) -> np.ndarray:
        path = self.root / self.items[index].path
        audio, sr = read_audio(path)
        expected = self._probes[index].frames
        if audio.shape[-1] != expected:
            raise ValueError(f"{str(path)!r}: read {audio.shape[-1]} frames, header declares {expected}")
        return mix_channels(resample(audio, sr, self.sample_rate), self.channels)

    def _offset_for(self, index: int, length: int) -> int:
        if not self.train:
            return 0
        return draw_offset(self.seed, self.epoch, index, length, self.window_samples, self.offset_multiple)

    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in samples at the model rate."""
        return self._offset_for(index, self.num_samples(index))

    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """The item dict for a crop of item ``index`` starting at sample ``offset`` (model rate)."""
        index = self._check_index(index)
        if self._probes[index].sample_rate == self.sample_rate:
            return self._crop(index, None, offset)
        return self._crop(index, self._load_whole(index), offset)

    def _crop(self, index: int, whole: np.ndarray | None, offset: int) -> dict[str, Any]:
        """Crop ``whole`` (the resampled file) or, if ``None``, read just the window from disk."""
        item, probe = self.items[index], self._probes[index]
        path = self.root / item.path
        window = self.window_samples
        length = probe.frames if whole is None else whole.shape[-1]
        if not 0 <= offset < max(length, 1):
            raise ValueError(f"offset {offset} outside {item.path!r} ({length} samples at {self.sample_rate} Hz)")
        if whole is None:
            want = min(window, length - offset)
            segment, _ = read_audio(path, start=offset, frames=want)
            if segment.shape[-1] != want:
                raise ValueError(f"{str(path)!r}: read {segment.shape[-1]} of {want} frames from {offset}")
            segment = mix_channels(segment, self.channels)
        else:
            segment = whole[:, offset : offset + window]
        real = segment.shape[-1]
        audio = torch.zeros(self.channels, window, dtype=torch.float32)
        audio[:, :real] = torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))
        mask = torch.zeros(window, dtype=torch.bool)
        mask[:real] = True
        return {
            "audio": audio,
            "padding_mask": mask,
            "seconds_start": offset / self.sample_rate,
            "seconds_total": probe.seconds,
            "caption": item.caption or "",
            "path": item.path,
        }


class LatentCropDataset(_CropDataset):
    """Window-sized crops of pre-encoded latents, with the timing of :class:`AudioCropDataset`.

    Each item is a dict:

    - ``latents``: float32 ``(latent_channels, window_frames)``; after a short file's end, the
      manifest's ``silence_latent`` (what the VAE makes of the silence the audio path pads with)
    - ``padding_mask``: bool ``(window_frames,)``, ``True`` for frames holding any real audio
    - ``seconds_start``: ``frame_offset * hop_length / sample_rate``
    - ``seconds_total``: the source file's duration (as in the audio path)
    - ``caption``, ``path``; and ``text_hidden`` ``(L, D)``, ``text_mask`` ``(L,)`` if text was cached

    ``window_frames = ceil(window_seconds * sample_rate / hop_length)``. Offsets are drawn by
    :func:`draw_offset` over samples with ``multiple = hop_length`` and window
    ``window_frames * hop_length``, so when the audio window is a multiple of the hop an
    :class:`AudioCropDataset` with ``offset_multiple=hop_length`` over the same items, seed and
    epoch picks the same crops and reports the same timing. ``paths`` selects a subset (e.g. one
    split) in the given order.
    """

    def __init__(
        self,
        latent_dir: str | Path,
        window_seconds: float,
        *,
        paths: Sequence[str] | None = None,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        self.latent_dir = Path(latent_dir)
        manifest = load_manifest(self.latent_dir)
        self.sample_rate = int(manifest["sample_rate"])
        self.hop_length = int(manifest["hop_length"])
        self.latent_channels = manifest["latent_channels"]
        self.latent_rate = float(manifest["latent_rate"])
        self.has_text = bool(manifest["has_text"])
        self.silence_latent = torch.tensor(manifest["silence_latent"], dtype=torch.float32)
        if self.silence_latent.shape != (self.latent_channels,):
            raise ValueError(
                f"silence_latent in {str(self.latent_dir)!r} has shape {tuple(self.silence_latent.shape)}, "
                f"expected ({self.latent_channels},)"
            )
        _check_target(self.sample_rate, int(manifest["channels"]), window_seconds)
        self.window_seconds = float(window_seconds)
        self.window_frames = math.ceil(round(window_seconds * self.sample_rate) / self.hop_length)
        self.train = train
        self.seed = _check_seed("seed", seed)
        self.epoch = 0
        entries = manifest["items"]
        if paths is not None:
            by_path = {entry["path"]: entry for entry in entries}
            unknown = [path for path in paths if path not in by_path]
            if unknown:
                raise ValueError(f"paths not in {str(self.latent_dir)!r}: {unknown}")
            entries = [by_path[path] for path in paths]
        self.entries: list[dict[str, Any]] = entries

    def __len__(self) -> int:
        return len(self.entries)

    def sample_offset(self, index: int) -> int:
        """The crop start of item ``index`` this epoch, in latent frames."""
        if not self.train:
            return 0
        hop = self.hop_length
        length = self.entries[index]["num_samples"]
        return draw_offset(self.seed, self.epoch, index, length, self.window_frames * hop, hop) // hop

    def load_crop(self, index: int, offset: int) -> dict[str, Any]:
        """The item dict for a crop of item ``index`` starting at latent frame ``offset``."""
        from safetensors import safe_open

        index = self._check_index(index)
        entry = self.entries[index]
        valid = entry["valid_frames"]
        if not 0 <= offset < max(valid, 1):
            raise ValueError(f"frame offset {offset} outside {entry['path']!r} ({valid} frames)")
        key = entry["key"]
        with safe_open(str(self.latent_dir / entry["shard"]), framework="pt") as f:
            stored = f.get_slice(f"{key}.latents")[:, offset : offset + self.window_frames]
            text = (f.get_tensor(f"{key}.text_hidden"), f.get_tensor(f"{key}.text_mask")) if self.has_text else None
        real = min(stored.shape[-1], valid - offset)
        latents = self.silence_latent[:, None].repeat(1, self.window_frames)
        latents[:, :real] = stored[:, :real]
        mask = torch.zeros(self.window_frames, dtype=torch.bool)
        mask[:real] = True
        out = {
            "latents": latents,
            "padding_mask": mask,
            "seconds_start": offset * self.hop_length / self.sample_rate,
            "seconds_total": entry["seconds_total"],
            "caption": entry["caption"] or "",
            "path": entry["path"],
        }
        if text is not None:
            out["text_hidden"], out["text_mask"] = text
        return out


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch item dicts: tensors are stacked ``(B, ...)``, numbers become float tensors ``(B,)``,
    strings become lists. Cached text (``text_hidden`` ``(L, D)``, ``text_mask`` ``(L,)``) of
    different lengths is zero-padded to the longest, with ``False`` in the mask.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    keys = set(batch[0])
    for item in batch[1:]:
        if set(item) != keys:
            raise ValueError(f"items have different keys: {sorted(keys)} vs {sorted(item)}")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        first = values[0]
        if key in ("text_hidden", "text_mask"):
            longest = max(v.shape[0] for v in values)
            padded = first.new_zeros((len(values), longest, *first.shape[1:]))
            for row, value in enumerate(values):
                padded[row, : value.shape[0]] = value
            out[key] = padded
        elif isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = list(values)
    return out


__all__ = ["AudioCropDataset", "LatentCropDataset", "collate", "draw_offset"]
