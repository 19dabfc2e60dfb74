"""The conditioning component of a pipeline: which inputs a model has, where each goes, and their learned parts.

:class:`ConditioningProjection` is saved as the pipeline's ``projection/`` folder. Its config routes the
inputs by name, as stable-audio-tools does:

.. code-block:: yaml

    cross_attention: [prompt, seconds_start, seconds_total]  # concatenated tokens of the context
    global_cond: [seconds_start, seconds_total]               # pooled, added to the timestep embedding
    add_to_prompt: [prompt_numbers]                           # added to the prompt's token states
    input_channels: [timing_mask, beat_grid]                  # extra U-Net input channels, in order
    film: [key]                                               # features added to the FiLM embedding
    options: {prompt_numbers: {min_value: 1, max_value: 1000}}

and it holds each input's learned module (``embedders.<name>``). Channel and FiLM inputs have no
module here: the U-Net's input convolution and its FiLM projection read them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..music import Key
from .base import Conditioner, Conditioning, ConditioningRequest, ModelFacts, make_conditioner

ROUTES = {
    "cross_attention": ("tokens",),
    "global_cond": ("tokens",),
    "add_to_prompt": ("prompt",),
    "input_channels": ("channels",),
    "film": ("film",),
}

# Weight names of projections saved before the inputs were one interface.
_LEGACY_PREFIXES = (
    ("text_projection.", "embedders.prompt."),
    ("number_embedders.", "embedders."),
    ("prompt_number_embedder.", "embedders.prompt_numbers."),
)


def rename_legacy_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """Rename, in place, the weights of a projection saved before ``embedders`` held every input's module."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        for old, new in _LEGACY_PREFIXES:
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old) :]] = state_dict.pop(key)
                break


class ConditioningProjection(ModelMixin, ConfigMixin):
    """Routes the named conditioning inputs into the U-Net and embeds those that need a learned layer.

    Args:
        text_encoder_dim: width of the text encoder's token states.
        conditioning_dim: width of every token of the cross-attention context.
        min_seconds, max_seconds, number_internal_dim: the timing number embeddings' range and width.
        cross_attention: token inputs concatenated (in order, along the token axis) into the context.
        global_cond: token inputs pooled (masked mean) and concatenated into the global vector.
        text_hidden_layer: the text encoder's hidden layer that gives the token states.
        prompt_numbers, prompt_number_min, prompt_number_max: the ``prompt_numbers`` input as saved
            before ``add_to_prompt``; ``prompt_numbers=True`` means ``add_to_prompt: [prompt_numbers]``.
        add_to_prompt: inputs added token by token to the prompt's states.
        input_channels: inputs given to the U-Net as extra input channels, in this order.
        film: inputs whose features drive the U-Net's FiLM, in this order.
        options: per-input settings, ``{name: {option: value}}``.
    """

    @register_to_config
    def __init__(
        self,
        text_encoder_dim: int = 768,
        conditioning_dim: int = 768,
        min_seconds: float = 0.0,
        max_seconds: float = 512.0,
        cross_attention: tuple[str, ...] | list[str] = ("prompt", "seconds_start", "seconds_total"),
        global_cond: tuple[str, ...] | list[str] = ("seconds_start", "seconds_total"),
        text_hidden_layer: int = -2,
        number_internal_dim: int = 256,
        prompt_numbers: bool = False,
        prompt_number_min: float = 1.0,
        prompt_number_max: float = 1000.0,
        add_to_prompt: tuple[str, ...] | list[str] = (),
        input_channels: tuple[str, ...] | list[str] = (),
        film: tuple[str, ...] | list[str] = (),
        options: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__()
        if not cross_attention:
            raise ValueError("cross_attention must name at least one conditioning input")
        routes = {
            "cross_attention": list(cross_attention),
            "global_cond": list(global_cond),
            "add_to_prompt": list(add_to_prompt),
            "input_channels": list(input_channels),
            "film": list(film),
        }
        options = {name: dict(value) for name, value in (options or {}).items()}
        if prompt_numbers and "prompt_numbers" not in routes["add_to_prompt"]:
            routes["add_to_prompt"].append("prompt_numbers")
            options.setdefault("prompt_numbers", {"min_value": prompt_number_min, "max_value": prompt_number_max})
        for name in ("seconds_start", "seconds_total"):
            options.setdefault(
                name, {"min_seconds": min_seconds, "max_seconds": max_seconds, "internal_dim": number_internal_dim}
            )
        self.routes = routes
        self.conditioners: OrderedDict[str, Conditioner] = OrderedDict()
        for route, names in routes.items():
            for name in names:
                if name not in self.conditioners:
                    self.conditioners[name] = make_conditioner(name, options.get(name))
                placement = self.conditioners[name].placement
                if placement not in ROUTES[route]:
                    raise ValueError(
                        f"conditioning input {name!r} gives {placement} and cannot go to {route}; "
                        f"put it in {[r for r, p in ROUTES.items() if placement in p]}"
                    )
            if len(set(names)) != len(names):
                raise ValueError(f"{route} names an input twice: {names}")
        if routes["add_to_prompt"] and "prompt" not in routes["cross_attention"] + routes["global_cond"]:
            raise ValueError(f"add_to_prompt {routes['add_to_prompt']} needs the prompt among the token inputs")
        unused = [n for n, c in self.conditioners.items() if c.placement == "tokens" and n not in self.token_names]
        if unused:
            raise ValueError(f"token inputs {unused} are routed nowhere")
        self.embedders = nn.ModuleDict()
        for name, conditioner in self.conditioners.items():
            module = conditioner.make_embedder(conditioning_dim, text_encoder_dim)
            if module is not None:
                self.embedders[name] = module

    # ------------------------------------------------------------------ what the model takes
    @property
    def token_names(self) -> list[str]:
        return list(dict.fromkeys(self.routes["cross_attention"] + self.routes["global_cond"]))

    @property
    def global_dim(self) -> int:
        return len(self.routes["global_cond"]) * self.config.conditioning_dim

    @property
    def channel_count(self) -> int:
        """Extra U-Net input channels the inputs give."""
        return sum(self.conditioners[n].size for n in self.routes["input_channels"])

    @property
    def film_dim(self) -> int:
        """FiLM features the inputs give."""
        return sum(self.conditioners[n].size for n in self.routes["film"])

    @property
    def overrides(self) -> dict[str, Conditioner]:
        """``{override keyword: input}`` of this model's inputs (``{"bpm": BeatGrid, ...}``)."""
        return {c.override: c for c in self.conditioners.values() if c.override}

    def describe(self) -> list[str]:
        """The inputs in words, for ``sak info``."""
        words = []
        for name, conditioner in self.conditioners.items():
            if name == "seconds_total" and "seconds_start" in self.conditioners:
                continue
            if name == "seconds_start" and "seconds_total" in self.conditioners:
                words.append("seconds_start/seconds_total")
                continue
            words.append(conditioner.description or name)
        return words

    def ensure_inputs(self, route: str, names: list[str]) -> None:
        """Put the inputs ``names`` first in ``route`` where missing, for inputs with no learned module here
        (channels, FiLM). Used to list the inputs of U-Nets saved before the projection listed them."""
        missing = [name for name in names if name not in self.routes[route]]
        if not missing:
            return
        for name in missing:
            conditioner = make_conditioner(name, (self.config.options or {}).get(name))
            if conditioner.placement not in ROUTES[route] or conditioner.make_embedder(1, 1) is not None:
                raise ValueError(f"conditioning input {name!r} cannot be added to {route} of a built projection")
            self.conditioners[name] = conditioner
        self.routes[route] = missing + self.routes[route]
        self.register_to_config(**{route: list(self.routes[route])})

    # ------------------------------------------------------------------ reading a request
    def check(self, request: ConditioningRequest, model: ModelFacts) -> None:
        """Validate a request against every input and refuse overrides no input reads (``ValueError`` naming
        the value)."""
        takes = self.overrides
        for key, value in request.overrides.items():
            if key not in takes:
                shown = value.name if isinstance(value, Key) else value
                raise ValueError(
                    f"{key}={shown!r} given but this model has no input that reads it; name it in the prompt instead"
                )
        for conditioner in self.conditioners.values():
            conditioner.check(request, model)

    @torch.no_grad()
    def features(
        self, request: ConditioningRequest, model: ModelFacts, device: torch.device | None = None
    ) -> dict[str, Any]:
        """Each input's features for the request (no gradient): what :meth:`forward` embeds."""
        return {name: c.features(request, model, device) for name, c in self.conditioners.items()}

    # ------------------------------------------------------------------ embedding
    def forward(self, features: dict[str, Any]) -> Conditioning:
        """The U-Net's conditioning from :meth:`features`' output (or the same dict built by hand)."""
        missing = [name for name in self.conditioners if name not in features]
        if missing:
            raise ValueError(f"the features lack {missing}: build them with ConditioningProjection.features")
        tokens = {}
        for name in self.token_names:
            tokens[name] = self.conditioners[name].embed(
                self.embedders[name] if name in self.embedders else None, features[name]
            )
        if self.routes["add_to_prompt"]:
            states, mask = tokens["prompt"]
            for name in self.routes["add_to_prompt"]:
                added = self.conditioners[name].embed(self.embedders[name], features[name])
                if added.shape != states.shape:
                    raise ValueError(
                        f"{name} gives {tuple(added.shape)} for the prompt's token states {tuple(states.shape)}"
                    )
                states = states + added.to(states.dtype)
            tokens["prompt"] = (states, mask)
        dtype = tokens["prompt"][0].dtype if "prompt" in tokens else None
        if dtype is not None:
            tokens = {name: (emb.to(dtype), mask) for name, (emb, mask) in tokens.items()}
        context = torch.cat([tokens[n][0] for n in self.routes["cross_attention"]], dim=1)
        mask = torch.cat([tokens[n][1] for n in self.routes["cross_attention"]], dim=1)
        pooled = []
        for name in self.routes["global_cond"]:
            emb, m = tokens[name]
            weights = m.to(emb.dtype).unsqueeze(-1)
            pooled.append((emb * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        global_states = torch.cat(pooled, dim=-1) if pooled else None
        channels = {n: features[n] for n in self.routes["input_channels"]}
        film = {n: features[n] for n in self.routes["film"]}
        nulls = {
            n: self.conditioners[n].null(value)
            for n, value in {**channels, **film}.items()
            if self.conditioners[n].follows_prompt
        }
        return Conditioning(context, mask, global_states, channels, film, nulls)

    # ------------------------------------------------------------------ loading what older versions saved
    def _fix_state_dict_keys_on_load(self, state_dict) -> None:
        rename_legacy_keys(state_dict)
        super()._fix_state_dict_keys_on_load(state_dict)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_legacy_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
