"""Give a trained pipeline a new conditioning input that starts as a no-op, ready for fine-tuning.

``sak extend MODEL OUT --prompt-numbers`` adds a :class:`~stable_audio_kit.conditioning.PromptNumberEmbedding`
to the projection (its last layer is zero), ``--beat-grid`` the four beat-grid input channels to the
U-Net (their weights are zero), ``--key`` the U-Net's key embedding (zero). Every existing weight is
kept, so OUT generates exactly what MODEL does until ``sak train unet`` fine-tunes it from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch


def extend_model(
    model_dir: str | Path,
    out_dir: str | Path,
    prompt_numbers: bool = False,
    prompt_number_min: float = 1.0,
    prompt_number_max: float = 1000.0,
    beat_grid: bool = False,
    overwrite: bool = False,
    key: bool = False,
) -> Path:
    """Write ``out_dir``: ``model_dir`` with prompt-number embeddings, a beat grid and/or a key input added at zero.

    Raises ``ValueError``, before anything is written, if neither is asked for, if the model has
    one of them already, or if ``out_dir`` exists (unless ``overwrite``). A ``clap/`` folder (what
    ``sak evaluate`` scores with) is copied along.
    """
    from ..conditioning import ConditioningProjection
    from ..pipeline import StableAudioKitPipeline, check_model_dir
    from ..unet import UNet1DConditionModel
    from ..utils import atomic_dir

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not prompt_numbers and not beat_grid and not key:
        raise ValueError("nothing to add: ask for prompt numbers, a beat grid, a key input or several")
    if out_dir.exists() and not overwrite:
        raise ValueError(f"output folder {str(out_dir)!r} already exists; choose another or pass --force")
    check_model_dir(model_dir)
    pipe = StableAudioKitPipeline.from_pretrained(model_dir)

    if prompt_numbers:
        old = pipe.projection
        if old.config.get("prompt_numbers", False):
            raise ValueError(f"the projection of {str(model_dir)!r} embeds prompt numbers already")
        config = {k: v for k, v in old.config.items() if not k.startswith("_")}
        config.update(prompt_numbers=True, prompt_number_min=prompt_number_min, prompt_number_max=prompt_number_max)
        new = ConditioningProjection(**config)  # refuses a bad range
        missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
        if unexpected or any(not key.startswith("prompt_number_embedder.") for key in missing):
            raise ValueError(f"projection weights do not line up: missing {missing}, unexpected {unexpected}")
        pipe.register_modules(projection=new.to(torch.float32).eval())

    if beat_grid:
        old = pipe.unet
        if old.config.get("beat_grid_channel", False):
            raise ValueError(f"the U-Net of {str(model_dir)!r} reads a beat grid already")
        config = {k: v for k, v in old.config.items() if not k.startswith("_")}
        new = UNet1DConditionModel(**{**config, "beat_grid_channel": True})
        state = old.state_dict()
        weight = state["conv_in.weight"]
        added = new.conv_in.weight.shape[1] - weight.shape[1]
        # The grid's inputs go last (UNet1DConditionModel.forward concatenates them after the rest).
        state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], added, weight.shape[2])], 1)
        new.load_state_dict(state)  # strict: every other weight lines up
        pipe.register_modules(unet=new.to(torch.float32).eval())

    if key:
        old = pipe.unet
        if old.config.get("key_conditioning", False):
            raise ValueError(f"the U-Net of {str(model_dir)!r} reads the key already")
        config = {k: v for k, v in old.config.items() if not k.startswith("_")}
        new = UNet1DConditionModel(**{**config, "key_conditioning": True})  # its key embedding starts at zero
        missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
        if unexpected or any(not name.startswith("key_embedding.") for name in missing):
            raise ValueError(f"U-Net weights do not line up: missing {missing}, unexpected {unexpected}")
        pipe.register_modules(unet=new.to(torch.float32).eval())

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        if (model_dir / "clap").is_dir():
            shutil.copytree(model_dir / "clap", tmp / "clap")
    return out_dir
