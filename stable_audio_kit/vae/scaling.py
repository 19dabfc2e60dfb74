"""The latent scale: ``scaling_factor``, so that diffusion latents ``posterior mode * scaling_factor`` have unit
variance.

:func:`fit_scaling_factor` measures it on batches of audio; the VAE trainer calls it at every checkpoint, and
``sak encode CATALOGUE --model DIR --calibrate`` calls it through :func:`calibrate_scaling_factor` on a sample
of a catalogue, for a VAE that came from elsewhere (``vae.pretrained``), and writes the result into the model
folder with :func:`write_scaling_factor`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


@torch.no_grad()
def fit_scaling_factor(vae: Any, loader, max_batches: int, device) -> float:
    """``1 / std`` of the posterior-mode latents of the first ``max_batches`` batches of ``loader`` (dicts with
    ``audio`` ``(batch, channels, samples)``), all channels, frames and items together. A degenerate std (zero,
    not finite) keeps the VAE's current factor, with a warning."""
    was_training = vae.training
    vae.eval()
    latents = []
    for index, batch in enumerate(loader):
        if index >= max_batches:
            break
        latents.append(vae.encode(batch["audio"].to(device)).latent_dist.mode().float().flatten())
    vae.train(was_training)
    std = torch.cat(latents).std().item()
    if not np.isfinite(std) or std < 1e-8:
        # Keep the checkpoint rather than lose it to a degenerate scale; the factor stays as it was.
        logger.warning("latent std is %s; the VAE's scaling_factor is left at %s", std, vae.config.scaling_factor)
        return float(vae.config.scaling_factor)
    return 1.0 / std


def calibrate_scaling_factor(
    vae: Any,
    catalogue: str | Path,
    sample_rate: int,
    channels: int,
    window_seconds: float,
    clips: int = 64,
    batch_size: int = 8,
    seed: int = 0,
    skip_unreadable: bool = False,
) -> float:
    """The scaling factor :func:`fit_scaling_factor` measures on ``clips`` training clips of a catalogue.

    The clips are drawn at random (``seed``) from the catalogue's training split and cropped to
    ``window_seconds``, the model's window: the crops the U-Net trains on, short clips padded with silence.
    Raises ``ValueError`` for bad arguments or a catalogue with no training clips, before anything is encoded.
    """
    from ..data import AudioCropDataset, scan_catalogue, split_catalogue

    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise ValueError(f"the number of calibration clips must be a positive integer, got {clips!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    train, _ = split_catalogue([item for item in scan_catalogue(catalogue) if item.exists])
    if not train:
        raise ValueError(f"catalogue {str(catalogue)!r} has no training clips to calibrate on")
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(train), size=min(clips, len(train)), replace=False).tolist())
    dataset = AudioCropDataset(
        catalogue,
        sample_rate,
        channels,
        window_seconds,
        items=[train[i] for i in picked],
        train=True,
        seed=seed,
        offset_multiple=vae.hop_length,
        skip_unreadable=skip_unreadable,
    )
    from torch.utils.data import DataLoader

    from ..data import collate

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    device = next(vae.parameters()).device
    logger.info("calibrating the latent scale on %d clips of %s", len(dataset), catalogue)
    return fit_scaling_factor(vae, loader, math.ceil(len(dataset) / batch_size), device)


def write_scaling_factor(model_dir: str | Path, scaling_factor: float) -> None:
    """Set ``scaling_factor`` in a pipeline folder's ``vae/config.json`` and, where it is, in its
    ``model_config.yaml`` (``vae.scaling_factor``); each file is replaced atomically."""
    import json

    from omegaconf import OmegaConf

    from ..utils import atomic_write_text

    if not math.isfinite(scaling_factor) or scaling_factor <= 0:
        raise ValueError(f"scaling_factor must be a finite number > 0, got {scaling_factor}")
    config_file = Path(model_dir) / "vae" / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(config_file)!r} cannot be read: {err}") from None
    if "scaling_factor" not in config:
        raise ValueError(f"{str(config_file)!r} has no scaling_factor: it is not a stable-audio-kit VAE")
    config["scaling_factor"] = float(scaling_factor)
    atomic_write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
    model_config = Path(model_dir) / "model_config.yaml"
    if model_config.is_file():
        cfg = OmegaConf.load(model_config)
        OmegaConf.update(cfg, "vae.scaling_factor", float(scaling_factor), force_add=True)
        atomic_write_text(model_config, OmegaConf.to_yaml(cfg))


__all__ = ["calibrate_scaling_factor", "fit_scaling_factor", "write_scaling_factor"]
