"""Assembling a pipeline: checking a model folder before loading it, loading it with the U-Net asked for
(:func:`load_pipeline`), building an untrained pipeline from a model config (``sak new-model``), and listing
the conditioning inputs of models saved before the projection listed them all. Importing it imports neither
torch nor diffusers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .sampling import DISTILLED_SUBFOLDER, PIPELINE_UNETS, check_unet_name
from .students import (
    STALE_STUDENT_REMEDY,
    describe_distilled,
    distilled_config,
    stale_student_message,
    student_is_stale,
)

COMPONENTS = ("vae", "text_encoder", "tokenizer", "projection", "unet", "scheduler")
DEFAULT_MODEL_DIR = Path(__file__).parent / "pretrained" / "demo"


def check_model_dir(path: str | Path) -> Path:
    """Raise ``ValueError`` naming what is missing unless ``path`` is a complete pipeline directory."""
    path = Path(path)
    if not path.is_dir():
        if path == DEFAULT_MODEL_DIR:
            raise ValueError(
                f"the bundled default model is not installed at {str(path)!r}; pass a model directory "
                "(create one with `sak new-model` or `sak export`)"
            )
        raise ValueError(f"model directory {str(path)!r} does not exist")
    index = path / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{str(path)!r} is not a pipeline directory: model_index.json is missing")
    try:
        entries = json.loads(index.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(index)!r} is not valid JSON: {err}") from None
    missing = [c for c in COMPONENTS if c not in entries or not (path / c).is_dir()]
    if missing:
        raise ValueError(f"model directory {str(path)!r} is missing component(s): {', '.join(missing)}")
    check_component_files(path)
    # Catch a VAE/U-Net mismatch from the configs, before loading weights fails less clearly.
    try:
        vae_cfg = json.loads((path / "vae" / "config.json").read_text())
        unet_cfg = json.loads((path / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"model directory {str(path)!r} has an unreadable component config: {err}") from None
    # AudioVAE stores its latent channels as decoder_input_channels, SpectralAudioVAE as latent_channels.
    latent = vae_cfg.get("decoder_input_channels", vae_cfg.get("latent_channels"))
    for key in ("in_channels", "out_channels"):
        value = unet_cfg.get(key) or unet_cfg.get("in_channels")
        if value != latent:
            raise ValueError(
                f"model directory {str(path)!r}: unet.{key}={value} but the VAE has {latent} latent channels"
            )
    return path


# diffusers' generic loader, ``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``, finds a pipeline
# class outside diffusers only through its custom-pipeline form: ``_class_name`` in model_index.json as
# ``[file, class]`` with ``file.py`` in the folder. The file is one import of the installed package, no model code.
LOADER_FILE = "stable_audio_kit_pipeline"
LOADER_SOURCE = (
    '"""Lets diffusers\' DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True) load this model:\n'
    'it imports the pipeline class from the installed stable-audio-kit package."""\n\n'
    "from stable_audio_kit.pipeline import StableAudioKitPipeline  # noqa: F401\n"
)


def write_loader_file(path: str | Path, class_name: str = "StableAudioKitPipeline") -> None:
    """Make a saved pipeline folder loadable by ``DiffusionPipeline.from_pretrained``: write :data:`LOADER_FILE`
    and point model_index.json's ``_class_name`` at it."""
    from .utils import atomic_write_text

    path = Path(path)
    index = path / "model_index.json"
    entries = json.loads(index.read_text())
    entries["_class_name"] = [LOADER_FILE, class_name]
    atomic_write_text(path / f"{LOADER_FILE}.py", LOADER_SOURCE)
    atomic_write_text(index, json.dumps(entries, indent=2, sort_keys=True) + "\n")


def check_component_files(path: Path) -> None:
    """Raise ``ValueError`` naming the file if a component's JSON is not valid or its weights file is not a whole
    safetensors file (truncated, zeroed), so a damaged folder is named before any weights load."""
    from .utils import check_safetensors

    for component in COMPONENTS:
        folder = path / component
        for file in sorted(folder.glob("*.json")):
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the model folder is damaged") from None
        for file in sorted(folder.glob("*.safetensors")):
            check_safetensors(file)


def load_pipeline(path: str | Path | None = None, unet: str = "base", **kwargs):
    """The pipeline in ``path`` (default: the bundled model) with the U-Net ``unet`` names: ``"base"``, its own
    (``unet/``), or ``"distilled"``, the step-distilled student of it in ``unet_distilled/`` (``sak train distill``,
    :mod:`stable_audio_kit.distillation`). The student loads diffusers' way, as the ``unet=`` component override
    of ``StableAudioKitPipeline.from_pretrained``, and gets its sampler, ``pipe.scheduler =
    student_scheduler(pipe.scheduler.config)``. ``kwargs`` go to ``from_pretrained`` (``torch_dtype``, ...).

    Raises ``ValueError`` for an unknown ``unet`` (before torch is imported) and for a directory without a
    student or whose student was distilled from other weights than its ``unet/`` (:func:`student_is_stale`),
    naming it (before anything loads). ``"auto"``, the CLI's default, is the command's to resolve
    (:func:`~stable_audio_kit.sampling.choose_unet`), not the loader's."""
    check_unet_name(unet, PIPELINE_UNETS)
    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if unet == "distilled":
        check_distilled_dir(folder)
    from .pipeline import StableAudioKitPipeline

    if unet == "base":
        return StableAudioKitPipeline.from_pretrained(path, **kwargs)
    import torch

    from .distillation import student_scheduler
    from .unet import UNet1DConditionModel

    # In the dtype from_pretrained loads the other components in: float32 unless asked.
    dtype = kwargs.get("dtype") or kwargs.get("torch_dtype") or torch.float32
    student = UNet1DConditionModel.from_pretrained(
        folder, subfolder=DISTILLED_SUBFOLDER, dtype=dtype, local_files_only=True
    )
    pipe = StableAudioKitPipeline.from_pretrained(folder, unet=student, **kwargs)
    pipe.scheduler = student_scheduler(pipe.scheduler.config)
    return pipe


def with_student(pipe, path: str | Path | None = None):
    """A pipeline that samples with the student in ``path``'s ``unet_distilled/`` (default: the bundled model) and
    shares every other component with ``pipe``, the same objects: the page holds both U-Nets of one model without
    a second copy of its VAE and text encoder. ``ValueError`` naming the directory if it holds no student or a
    student of other weights than its ``unet/`` (:func:`student_is_stale`)."""
    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    check_distilled_dir(folder)
    from .distillation import student_scheduler
    from .pipeline import StableAudioKitPipeline
    from .unet import UNet1DConditionModel

    student = UNet1DConditionModel.from_pretrained(
        folder, subfolder=DISTILLED_SUBFOLDER, dtype=pipe.unet.dtype, local_files_only=True
    ).to(pipe.unet.device)
    components = {**pipe.components, "unet": student, "scheduler": student_scheduler(pipe.scheduler.config)}
    out = StableAudioKitPipeline(**components)
    out.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return out


def check_distilled_dir(path: str | Path) -> Path:
    """Raise ``ValueError`` naming the folder unless ``path`` is a whole pipeline directory (:func:`check_model_dir`)
    holding a whole distilled student in ``unet_distilled/`` (its config a student's, its weights whole) that was
    not distilled from other weights than its ``unet/`` holds (:func:`student_is_stale`)."""
    from .utils import check_safetensors

    path = check_model_dir(path)
    if distilled_config(path) is None:
        raise ValueError(
            f"model directory {str(path)!r} holds no distilled U-Net ({DISTILLED_SUBFOLDER}/config.json is missing); "
            "`sak train distill` (then `sak export`) makes one"
        )
    weights = sorted((path / DISTILLED_SUBFOLDER).glob("*.safetensors"))
    if not weights:
        raise ValueError(f"model directory {str(path)!r}: {DISTILLED_SUBFOLDER}/ has no safetensors weights")
    for file in weights:
        check_safetensors(file)
    if student_is_stale(path):
        raise ValueError(f"{stale_student_message(path)}: {STALE_STUDENT_REMEDY}")
    return path


def build_pipeline(cfg):
    """An untrained pipeline from a :class:`stable_audio_kit.config.ModelConfig` (``sak new-model``)."""
    import torch

    from .conditioning import ConditioningProjection, build_text_encoder
    from .pipeline import StableAudioKitPipeline
    from .schedulers import make_scheduler
    from .unet import UNet1DConditionModel
    from .vae import build_vae

    if cfg.window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {cfg.window_seconds}")
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg)
    text_encoder, tokenizer = build_text_encoder(cfg.text)
    sample_size = max(1, round(cfg.window_seconds * cfg.sample_rate / vae.hop_length))
    projection = ConditioningProjection(
        text_encoder_dim=text_encoder.config.hidden_size,
        text_hidden_layer=cfg.text.hidden_layer,
        **conditioning_routes(cfg),
    )
    u = cfg.unet
    unet = UNet1DConditionModel(
        in_channels=cfg.vae.latent_channels,
        sample_size=sample_size,
        block_out_channels=list(u.block_out_channels),
        layers_per_block=u.layers_per_block,
        attention_levels=list(u.attention_levels),
        attention_head_dim=u.attention_head_dim,
        transformer_layers_per_block=u.transformer_layers_per_block,
        cross_attention_dim=cfg.conditioning.dim,
        global_cond_dim=projection.global_dim,
        norm_num_groups=u.norm_num_groups,
        dropout=u.dropout,
        position_embedding_dim=u.position_embedding_dim,
        extra_in_channels=projection.channel_count,
        film_cond_dim=projection.film_dim,
    )
    scheduler = make_scheduler(cfg.scheduler.name, cfg.scheduler.num_train_timesteps, cfg.scheduler.beta_schedule)
    for module in (vae, projection, unet):
        module.eval()
    return StableAudioKitPipeline(vae, text_encoder, tokenizer, projection, unet, scheduler)


def conditioning_routes(cfg) -> dict[str, Any]:
    """The projection's routing from a model config. The flags older configs set for an input
    (``conditioning.prompt_numbers``, ``unet.timing_mask_channel``, ``unet.beat_grid_channel``,
    ``unet.key_conditioning``) add that input to its route, ahead of the ones the lists name."""
    cond, unet = cfg.conditioning, cfg.unet
    options = {name: dict(value) for name, value in (cond.options or {}).items()}
    add_to_prompt = ["prompt_numbers"] if cond.prompt_numbers else []
    if cond.prompt_numbers:
        options.setdefault("prompt_numbers", {"min_value": cond.prompt_number_min, "max_value": cond.prompt_number_max})
    channels = [name for flag, name in LEGACY_UNET_INPUTS["input_channels"] if unet.get(flag, False)]
    film = [name for flag, name in LEGACY_UNET_INPUTS["film"] if unet.get(flag, False)]

    def merged(first: list[str], listed) -> list[str]:
        return list(dict.fromkeys(first + list(listed)))

    return dict(
        conditioning_dim=cond.dim,
        max_seconds=cond.max_seconds,
        cross_attention=list(cond.cross_attention),
        global_cond=list(cond.global_cond),
        add_to_prompt=merged(add_to_prompt, cond.add_to_prompt),
        input_channels=merged(channels, cond.input_channels),
        film=merged(film, cond.film),
        options=options,
    )


# The inputs U-Nets saved before the conditioning seam declared by flags, in their channel order.
LEGACY_UNET_INPUTS = {
    "input_channels": (("timing_mask_channel", "timing_mask"), ("beat_grid_channel", "beat_grid")),
    "film": (("key_conditioning", "key"),),
}


def adopt_legacy_inputs(projection, unet) -> None:
    """A U-Net saved before the conditioning seam names its timing mask, beat grid and key by flags of its
    own, and its projection does not list them: list them there (first, in the U-Net's channel order)."""
    for route, flags in LEGACY_UNET_INPUTS.items():
        names = [name for flag, name in flags if unet.config.get(flag, False)]
        projection.ensure_inputs(route, names)


def describe_pipeline(pipe, path: Path | str) -> str:
    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    vae = pipe.vae
    lines = [
        f"model:            {path}",
        f"sample rate:      {pipe.sample_rate} Hz",
        f"channels:         {pipe.audio_channels}",
        f"vae:              {type(vae).__name__}, {vae.latent_channels} latent channels",
        f"latent rate:      {pipe.sample_rate / vae.hop_length:.3f} frames/s (hop {vae.hop_length})",
        f"window:           {pipe.unet.config.sample_size} latent frames",
        f"maximum length:   {pipe.max_seconds:.3f} s",
        f"scheduler:        {type(pipe.scheduler).__name__}",
        f"conditioning:     {', '.join(pipe.projection.describe())}",
    ]
    student = pipe.unet.config.get("distilled_steps")
    if student is not None:
        lines.append(
            f"unet:             a distilled student: {student} steps, guidance "
            f"{float(pipe.unet.config.distilled_guidance_scale):g} baked in"
        )
    folder = Path(path) if Path(path).is_dir() else Path(getattr(pipe, "name_or_path", None) or path)
    held = describe_distilled(folder)
    if held is not None:
        lines.append(f"distilled U-Net:  {held}")
    lines.append("parameters:")
    total = 0
    for name in ("vae", "text_encoder", "projection", "unet"):
        n = count(getattr(pipe, name))
        total += n
        lines.append(f"  {name:<14}{n:>14,}")
    lines.append(f"  {'total':<14}{total:>14,}")
    return "\n".join(lines)
