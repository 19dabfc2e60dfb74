"""Give a trained pipeline new conditioning inputs that start as a no-op, ready for fine-tuning.

``sak extend MODEL OUT --input beat_grid --input key`` (or the shorthands ``--beat-grid``, ``--key``,
``--prompt-numbers``) adds registered conditioning inputs (:data:`stable_audio_kit.conditioning.CONDITIONERS`)
where they can start at zero:

* an input added to the prompt's token states gets its module in the projection, whose last layer
  starts at zero (``prompt_numbers``);
* an input-channel input widens the U-Net's input convolution with zero weights (``timing_mask``,
  ``beat_grid``);
* a FiLM input widens (or creates) the U-Net's zero-initialised FiLM projection (``key``).

Every existing weight is kept, so OUT generates what MODEL does (up to floating-point summation order)
until ``sak train unet`` fine-tunes it from there. A new cross-attention token would change the output
at once, so token inputs are refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROUTE_OF = {"prompt": "add_to_prompt", "channels": "input_channels", "film": "film"}


def _public(config) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def extend_model(
    model_dir: str | Path,
    out_dir: str | Path,
    inputs: Sequence[str] = (),
    options: dict[str, dict[str, Any]] | None = None,
    overwrite: bool = False,
    prompt_numbers: bool = False,
    prompt_number_min: float = 1.0,
    prompt_number_max: float = 1000.0,
    beat_grid: bool = False,
    key: bool = False,
) -> Path:
    """Write ``out_dir``: ``model_dir`` with the conditioning ``inputs`` added at zero.

    ``prompt_numbers``, ``beat_grid`` and ``key`` are shorthands for those inputs (``prompt_number_min``/
    ``_max`` their options). Raises ``ValueError``, before anything is written, if nothing is asked for,
    an input is unknown, cannot start at zero or is there already, or ``out_dir`` exists (unless
    ``overwrite``). A ``clap/`` folder (what ``sak evaluate`` scores with) is copied along.
    """
    from ..conditioning import ConditioningProjection, make_conditioner
    from ..pipeline import StableAudioKitPipeline, check_model_dir
    from ..unet import UNet1DConditionModel
    from ..utils import atomic_dir

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    names = list(dict.fromkeys(inputs))
    options = {name: dict(value) for name, value in (options or {}).items()}
    for flag, name in ((prompt_numbers, "prompt_numbers"), (beat_grid, "beat_grid"), (key, "key")):
        if flag and name not in names:
            names.append(name)
    if prompt_numbers:
        options.setdefault("prompt_numbers", {"min_value": prompt_number_min, "max_value": prompt_number_max})
    if not names:
        raise ValueError("nothing to add: name one or more conditioning inputs (e.g. --beat-grid, --key)")
    conditioners = {name: make_conditioner(name, options.get(name)) for name in names}  # refuses unknown names
    for name, conditioner in conditioners.items():
        if conditioner.placement not in ROUTE_OF:
            raise ValueError(
                f"{name!r} goes to the cross-attention tokens; a new token changes what a trained model "
                "generates, so it cannot be added at zero: build a new model with it (sak new-model)"
            )
    if out_dir.exists() and not overwrite:
        raise ValueError(f"output folder {str(out_dir)!r} already exists; choose another or pass --force")
    check_model_dir(model_dir)
    pipe = StableAudioKitPipeline.from_pretrained(model_dir)
    projection, unet = pipe.projection, pipe.unet
    for name in names:
        if name in projection.conditioners:
            raise ValueError(f"the model {str(model_dir)!r} has the {name!r} input already")

    # 1. The projection: the new inputs in their routes, their modules (zero at the start) built fresh.
    config = _public(projection.config)
    routes = {route: list(listed) for route, listed in projection.routes.items()}
    input_options = dict(config.get("options") or {})
    if "prompt_numbers" in projection.conditioners and "prompt_numbers" not in input_options:
        numbers = projection.conditioners["prompt_numbers"]  # saved by its legacy flags
        input_options["prompt_numbers"] = {"min_value": numbers.min_value, "max_value": numbers.max_value}
    for name, conditioner in conditioners.items():
        routes[ROUTE_OF[conditioner.placement]].append(name)
        if name in options:
            input_options[name] = options[name]
    config.update(routes, options=input_options, prompt_numbers=False)
    new_projection = ConditioningProjection(**config)
    missing, unexpected = new_projection.load_state_dict(projection.state_dict(), strict=False)
    if unexpected or any(k.split(".")[1] not in names for k in missing):
        raise ValueError(f"projection weights do not line up: missing {missing}, unexpected {unexpected}")

    # 2. The U-Net: wider input convolution and FiLM projection, zero where new. Legacy flags become counts.
    added_channels = sum(c.size for c in conditioners.values() if c.placement == "channels")
    added_film = sum(c.size for c in conditioners.values() if c.placement == "film")
    unet_config = _public(unet.config)
    unet_config.update(
        timing_mask_channel=False,
        beat_grid_channel=False,
        key_conditioning=False,
        extra_in_channels=unet.extra_channels + added_channels,
        film_cond_dim=unet.film_dim + added_film,
    )
    new_unet = UNet1DConditionModel(**unet_config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    # New channels go last, as the projection lists them last.
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], added_channels, weight.shape[2])], 1)
    if added_film:
        width = new_unet.film_embedding.weight.shape[0]
        old_weight = state.pop("film_embedding.weight", torch.zeros(width, 0))
        state["film_embedding.weight"] = torch.cat([old_weight, old_weight.new_zeros(width, added_film)], 1)
        state.setdefault("film_embedding.bias", torch.zeros(width))
    new_unet.load_state_dict(state)  # strict: every other weight lines up

    extended = StableAudioKitPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        projection=new_projection.to(torch.float32).eval(),
        unet=new_unet.to(torch.float32).eval(),
        scheduler=pipe.scheduler,
    )
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        extended.save_pretrained(tmp, safe_serialization=True)
        if (model_dir / "clap").is_dir():
            shutil.copytree(model_dir / "clap", tmp / "clap")
    return out_dir
