"""LoRA adapters of a pipeline's U-Net (and optionally its conditioning projection), with ``peft``.

An adapter folder holds two files::

    pytorch_lora_weights.safetensors   the low-rank weights, diffusers' name and key layout
                                       (``unet.<module>.lora_A.weight``, ``projection.<module>.lora_B.weight``)
    lora_config.json                   rank, alpha, the target patterns and, per adapted component, the exact
                                       modules adapted and the sha256 of the base weights it was trained on

The base hash (:func:`weights_sha256`) is what makes an adapter refuse another model: its layers would fit any
model of the same shape, but mean nothing on other weights. The trainer (``sak train unet RUN.yaml lora.rank=16``)
adds adapters with :func:`add_adapters` and writes them with :meth:`LoraAdapter.save_pretrained`; the pipeline's
``load_lora_weights`` / ``set_adapters`` / ``unload_lora_weights`` call :func:`load_adapter`, :func:`activate` and
:func:`unload`, and ``sak export --merge-lora`` calls :func:`merge`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .utils import FILE_MODE

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
CONFIG_NAME = "lora_config.json"
FORMAT = "stable-audio-kit-lora"
FORMAT_VERSION = 1
# The pipeline components an adapter may hold, in the order they are hashed and loaded.
COMPONENTS = ("unet", "projection")
# The U-Net's attention projections, its FiLM projections, the attention blocks' in/out projections and the
# residual blocks' convolutions: attention sits only at the coarsest levels, so the convolutions carry most of
# what a new timbre needs.
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "emb_proj", "proj_in", "proj_out", "conv1", "conv2")
ADAPTABLE = (nn.Linear, nn.Conv1d)


@dataclass
class LoraSpec:
    """What to adapt and how: ``targets`` / ``projection_targets`` are module-name patterns of the U-Net and the
    conditioning projection, matched as peft matches ``target_modules`` (a module's full name, or its name ending
    in ``.`` + pattern: ``to_q`` matches every ``...attn1.to_q``). ``alpha`` ``None`` means ``rank`` (scale 1)."""

    rank: int
    alpha: float | None = None
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    projection_targets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"lora.rank must be an integer >= 1, got {self.rank!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"lora.alpha must be > 0 (or null for the rank), got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.targets and not self.projection_targets:
            raise ValueError("lora.targets and lora.projection_targets are both empty: nothing to adapt")

    @property
    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)

    def patterns(self) -> dict[str, list[str]]:
        """``{component: patterns}`` for the components this spec adapts."""
        found = {"unet": list(self.targets), "projection": list(self.projection_targets)}
        return {name: patterns for name, patterns in found.items() if patterns}


# --------------------------------------------------------------------------- base weights
def base_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict without any adapter: peft's ``<name>.base_layer.weight`` read as ``<name>.weight``
    and the ``lora_*`` tensors left out, so a module with adapters loaded gives its base model's names."""
    out = {}
    for name, tensor in module.state_dict().items():
        parts = name.split(".")
        if any(part.startswith("lora_") for part in parts):
            continue
        out[".".join(part for part in parts if part != "base_layer")] = tensor
    return out


def weights_sha256(module: nn.Module) -> str:
    """sha256 over the base weights of ``module`` (:func:`base_state_dict`) in name order: each name, shape and the
    float32 bytes of the values. float32 makes a half-precision file and its float32 load hash alike."""
    return tensors_sha256(base_state_dict(module))


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """:func:`weights_sha256` of named tensors, e.g. a module's weights as its safetensors file holds them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        value = tensor.detach().to("cpu")
        value = value.float() if value.is_floating_point() else value
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def match_targets(module: nn.Module, patterns: list[str], component: str) -> list[str]:
    """The names of the modules of ``module`` that ``patterns`` select (peft's rule, see :class:`LoraSpec`).

    Raises ``ValueError`` for a pattern that matches nothing (a typo) or a matched layer LoRA cannot adapt
    (only ``Linear`` and ``Conv1d`` are)."""
    named = {name: m for name, m in module.named_modules() if name}
    chosen: dict[str, None] = {}
    for pattern in patterns:
        hits = [name for name in named if name == pattern or name.endswith("." + pattern)]
        if not hits:
            layers = sorted({name.rsplit(".", 1)[-1] for name, m in named.items() if isinstance(m, ADAPTABLE)})
            raise ValueError(
                f"LoRA target {pattern!r} matches no module of the {component}; its Linear/Conv1d layers end in: "
                f"{layers}"
            )
        wrong = [name for name in hits if not isinstance(named[name], ADAPTABLE)]
        if wrong:
            raise ValueError(
                f"LoRA target {pattern!r} matches {component} modules LoRA cannot adapt (only Linear and Conv1d): "
                f"{[f'{n} ({type(named[n]).__name__})' for n in wrong[:5]]}"
            )
        chosen.update(dict.fromkeys(hits))
    return sorted(chosen)


# --------------------------------------------------------------------------- adding and reading adapters
def _inject(module: nn.Module, names: list[str], rank: int, alpha: float, dropout: float, adapter_name: str) -> None:
    """Wrap the modules ``names`` of ``module`` in peft LoRA layers of ``adapter_name`` (B at zero, so the output is
    unchanged until trained). Base weights are frozen; the new adapter's weights are trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names)
    with warnings.catch_warnings():  # several adapters on one model are what the pipeline is for
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        inject_adapter_in_model(config, module, adapter_name=adapter_name)
    if hasattr(module, "_hf_peft_config_loaded"):  # diffusers' PeftAdapterMixin (the U-Net) then sees the adapter
        module._hf_peft_config_loaded = True


def add_adapters(components: dict[str, nn.Module], spec: LoraSpec, adapter_name: str = "default") -> dict[str, Any]:
    """Freeze every weight of ``components`` (``{"unet": ..., "projection": ...}``) and add a trainable adapter
    to those ``spec`` targets. Returns ``{component: {"modules": [...], "base_sha256": ...}}``, the base
    identity :meth:`LoraAdapter.from_modules` writes; the hashes are taken before the adapter is added."""
    adapted = {}
    for component, patterns in spec.patterns().items():
        module = components[component]
        names = match_targets(module, patterns, component)
        adapted[component] = {"modules": names, "base_sha256": weights_sha256(module)}
    for module in components.values():
        module.requires_grad_(False)
    for component, info in adapted.items():
        _inject(components[component], info["modules"], spec.rank, spec.lora_alpha, spec.dropout, adapter_name)
    return adapted


@dataclass
class LoraAdapter:
    """An adapter as stored: its config (``rank``, ``alpha``, ``targets``, ``components``: per component the
    adapted modules and the base hash) and its weights ``{"unet.<module>.lora_A.weight": tensor, ...}``."""

    config: dict[str, Any]
    weights: dict[str, torch.Tensor]

    @classmethod
    def from_modules(
        cls,
        components: dict[str, nn.Module],
        spec: LoraSpec,
        adapted: dict[str, Any],
        adapter_name: str = "default",
        **info: Any,
    ) -> LoraAdapter:
        """The adapter ``adapter_name`` of ``components`` (as :func:`add_adapters` made it; ``adapted`` is what it
        returned). ``info`` (e.g. the base model's path, the training step) is kept in the config."""
        from peft.utils import get_peft_model_state_dict

        weights = {}
        for component in adapted:
            state = get_peft_model_state_dict(components[component], adapter_name=adapter_name)
            weights.update({f"{component}.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rank": spec.rank,
            "alpha": spec.lora_alpha,
            "dropout": spec.dropout,
            "targets": list(spec.targets),
            "projection_targets": list(spec.projection_targets),
            "components": adapted,
            **info,
        }
        return cls(config, weights)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the two files of an adapter folder into ``folder`` (created if needed)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.weights, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        os.chmod(folder / WEIGHTS_NAME, FILE_MODE)  # safetensors writes 0600; an adapter is made to be shared
        (folder / CONFIG_NAME).write_text(json.dumps(self.config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> LoraAdapter:
        """Read an adapter folder; ``ValueError`` if it is not one (see :func:`read_config`)."""
        from safetensors.torch import load_file

        config = read_config(folder)
        weights = load_file(str(Path(folder) / WEIGHTS_NAME))
        for key in weights:
            if key.split(".", 1)[0] not in config["components"]:
                raise ValueError(f"LoRA adapter {str(folder)!r}: weight {key!r} belongs to no adapted component")
        return cls(config, weights)

    def component_weights(self, component: str) -> dict[str, torch.Tensor]:
        prefix = component + "."
        return {k[len(prefix) :]: v for k, v in self.weights.items() if k.startswith(prefix)}


def read_config(folder: str | Path) -> dict[str, Any]:
    """An adapter folder's ``lora_config.json``, checked; ``ValueError`` naming the folder if it is not an adapter
    folder. Cheap: the CLI calls it to check ``--lora`` before loading a model."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise ValueError(
            f"{str(folder)!r} is not a LoRA adapter folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(`sak export RUN OUT` of a run trained with lora.rank > 0 writes one)"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(config_path)!r} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{str(config_path)!r} is not a stable-audio-kit LoRA config (format {FORMAT!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(config_path)!r} has format version {config['format_version']}; this stable-audio-kit reads up to "
            f"{FORMAT_VERSION}: upgrade it"
        )
    components = config.get("components")
    if not isinstance(components, dict) or not components or set(components) - set(COMPONENTS):
        raise ValueError(f"{str(config_path)!r}: 'components' must name some of {list(COMPONENTS)}")
    return config


# --------------------------------------------------------------------------- adapters on a pipeline
def _state(pipe) -> dict[str, float]:
    """The pipeline's adapters by name, in load order, with their scale while active (``None``: inactive)."""
    if "_lora_adapters" not in pipe.__dict__:
        pipe.__dict__["_lora_adapters"] = {}
    return pipe.__dict__["_lora_adapters"]


def load_adapter(pipe, folder: str | Path, adapter_name: str | None = None, scale: float = 1.0) -> str:
    """Load the adapter in ``folder`` into ``pipe`` as ``adapter_name`` (default ``default_<n>``) at ``scale``,
    beside the adapters already loaded, which stay active. Returns the name.

    Raises ``ValueError`` if the adapter was trained on other base weights than the pipeline's (naming both
    hashes), the name is taken, or the folder is not an adapter; nothing is changed then."""
    loaded = _state(pipe)
    if adapter_name is None:
        adapter_name = next(f"default_{n}" for n in range(len(loaded) + 1) if f"default_{n}" not in loaded)
    if not isinstance(adapter_name, str) or not adapter_name or "." in adapter_name:
        raise ValueError(f"adapter_name must be a non-empty string without '.', got {adapter_name!r}")
    if adapter_name in loaded:
        raise ValueError(f"an adapter named {adapter_name!r} is already loaded; loaded: {list(loaded)}")
    scale = _check_scale(scale, "scale")
    adapter = LoraAdapter.from_pretrained(folder)
    config = adapter.config
    for component, info in config["components"].items():
        actual = weights_sha256(getattr(pipe, component))
        if actual != info["base_sha256"]:
            trained_on = f" ({config['base_model']})" if config.get("base_model") else ""
            raise ValueError(
                f"LoRA adapter {str(folder)!r} was trained on another base model{trained_on}: its {component} "
                f"weights have sha256 {info['base_sha256']}, this pipeline's {component} has {actual}. Load the "
                "pipeline it was trained on"
            )
    from peft.utils import set_peft_model_state_dict

    injected = []
    try:
        for component, info in config["components"].items():
            module = getattr(pipe, component)
            injected.append(module)
            _inject(module, info["modules"], int(config["rank"]), float(config["alpha"]), 0.0, adapter_name)
            weights = adapter.component_weights(component)
            result = set_peft_model_state_dict(module, weights, adapter_name=adapter_name)
            missing = [k for k in result.missing_keys if f".{adapter_name}." in k and "lora_" in k]
            if result.unexpected_keys or missing:
                raise ValueError(
                    f"LoRA adapter {str(folder)!r} does not fit the {component}: unexpected "
                    f"{result.unexpected_keys[:3]}, missing {missing[:3]}"
                )
    except Exception:
        for module in injected:  # leave the pipeline as it was
            _remove_adapter(module, adapter_name)
        raise
    loaded[adapter_name] = scale
    activate(pipe, [n for n, s in loaded.items() if s is not None], [s for s in loaded.values() if s is not None])
    return adapter_name


def activate(pipe, adapter_names: str | list[str], weights: float | list[float] | None = None) -> None:
    """Make ``adapter_names`` the active adapters of ``pipe``, each at its weight (default 1.0); the other loaded
    adapters stay loaded but inactive."""
    loaded = _state(pipe)
    names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
    unknown = [n for n in names if n not in loaded]
    if unknown:
        raise ValueError(f"no adapter named {unknown}; loaded: {list(loaded)}")
    if len(set(names)) != len(names):
        raise ValueError(f"an adapter is named twice: {names}")
    if weights is None:
        weights = [1.0] * len(names)
    elif not isinstance(weights, (list, tuple)):
        weights = [weights] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"{len(names)} adapter(s) but {len(weights)} weight(s)")
    weights = [_check_scale(w, "adapter weight") for w in weights]
    from peft.tuners.tuners_utils import BaseTunerLayer

    for component in COMPONENTS:
        for module in getattr(pipe, component).modules():
            if isinstance(module, BaseTunerLayer):
                module.set_adapter(names, inference_mode=True)
                for name, weight in zip(names, weights):
                    module.set_scale(name, weight)
    for name in loaded:
        loaded[name] = None
    loaded.update(zip(names, weights))


def unload(pipe) -> None:
    """Remove every adapter from ``pipe``: its modules are the base modules again, with their weights untouched."""
    from diffusers.utils import recurse_remove_peft_layers

    for component in COMPONENTS:
        module = getattr(pipe, component)
        recurse_remove_peft_layers(module)
        _forget_peft_config(module)
    _state(pipe).clear()


def merge(pipe) -> None:
    """Add the active adapters, at their weights, into ``pipe``'s base weights and remove every adapter: the
    pipeline then computes what it computed with them, as a plain pipeline (``sak export --merge-lora``)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for component in COMPONENTS:
        for module in getattr(pipe, component).modules():
            if isinstance(module, BaseTunerLayer):
                module.merge()
    unload(pipe)


def _remove_adapter(module: nn.Module, adapter_name: str) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for layer in module.modules():
        if isinstance(layer, BaseTunerLayer) and adapter_name in layer.lora_A:
            layer.delete_adapter(adapter_name)
    getattr(module, "peft_config", {}).pop(adapter_name, None)
    if not getattr(module, "peft_config", None):
        from diffusers.utils import recurse_remove_peft_layers

        recurse_remove_peft_layers(module)
        _forget_peft_config(module)


def _forget_peft_config(module: nn.Module) -> None:
    if hasattr(module, "peft_config"):
        del module.peft_config
    if hasattr(module, "_hf_peft_config_loaded"):
        module._hf_peft_config_loaded = False


def _check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
