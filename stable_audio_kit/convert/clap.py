"""LAION-CLAP checkpoints to transformers' ``ClapModel`` folder: ``sak convert clap CHECKPOINT.pt OUT``.

An original LAION-CLAP checkpoint (``630k-audioset-best.pt``, ``music_audioset_epoch_15_esc_90.14.pt``, ...) is a
torch pickle whose ``state_dict`` holds the HTSAT audio tower (``audio_branch``), the RoBERTa text tower
(``text_branch``), two projection MLPs and two logit scales, every key behind DDP's ``module.`` prefix. It is read
with ``torch.load(weights_only=True)``, so no code in the pickle runs, and without the ``laion_clap`` package (which
downloads at import time). The tensors are renamed to transformers' names, the config is read off their shapes,
and the folder holds::

    config.json, model.safetensors   transformers ClapModel (float32)
    preprocessor_config.json         ClapFeatureExtractor with LAION's audio front end (LAION_FEATURES)
    tokenizer.json, ...              the RoBERTa tokenizer given with ``tokenizer=`` (``--tokenizer DIR``)

The renaming follows the facts of transformers' own conversion script (``convert_clap_original_pytorch_to_hf.py``):

* ``text_branch.*`` -> ``text_model.*``: LAION's text tower is a transformers ``RobertaModel``, names unchanged.
* ``audio_branch.*`` -> ``audio_model.audio_encoder.*``, Swin blocks renamed: ``norm1``/``norm2`` ->
  ``layernorm_before``/``layernorm_after``; ``attn.qkv`` cut into three row blocks, ``attention.self.query``,
  ``.key`` and ``.value``; ``attn.proj`` -> ``attention.output.dense``; ``mlp.fc1``/``mlp.fc2`` ->
  ``intermediate.dense``/``output.dense``; ``bn0`` -> ``batch_norm``.
* ``{text,audio}_projection.0`` and ``.2`` (an ``nn.Sequential`` with a ReLU between) -> ``linear1`` and ``linear2``.
* Left out: the torchlibrosa front end (``spectrogram_extractor``, ``logmel_extractor``; transformers computes the
  log-mel outside the model, in the feature extractor), the AudioSet classifier (``tscam_conv``, ``head``), the
  shifted-window attention masks (recomputed), and the ``{text,audio}_transform`` MLPs of LAION's training loss,
  which no embedding goes through.

Every other key must find its place and every tensor of the ``ClapModel`` must be given (deterministic index
buffers aside), shape for shape, or the conversion is refused naming the key. Fused checkpoints
(``enable_fusion``, e.g. ``630k-audioset-fusion-best.pt``) are refused: the toolkit's CLAP embedder takes
unfused towers only.

**The tokenizer.** LAION's text tower reads RoBERTa's byte-level BPE (``roberta-base``), which the checkpoint
does not hold. With ``tokenizer=DIR`` (a local copy of ``roberta-base``'s tokenizer files) it is checked against
the tower (vocabulary size, padding id) and written into the folder, which ``text.pretrained:`` then loads
whole. Without it the folder has no tokenizer: it embeds audio (``sak evaluate --clap``, the memorisation check)
but ``text.pretrained:`` needs one, so copy the tokenizer files in later.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

# LAION-CLAP's audio front end in every released checkpoint (its model configs' ``audio_cfg``): 48 kHz, 10 s clips,
# 1024-sample windows with a 480-sample hop, 64 mel bands from 50 Hz to 14 kHz.
LAION_FEATURES: dict[str, Any] = dict(
    sample_rate=48000,
    clip_seconds=10.0,
    hop_length=480,
    fft_window_size=1024,
    frequency_min=50.0,
    frequency_max=14000.0,
)
# RoBERTa's attention heads are 64 wide (base: 768 / 12, large: 1024 / 16); the weights do not give the count.
TEXT_HEAD_WIDTH = 64
# HTSAT's spectrogram side when no attention mask tells it (every released LAION tower uses 256).
DEFAULT_SPEC_SIZE = 256

_DDP_PREFIX = "module."
_TEXT, _AUDIO = "text_branch.", "audio_branch."
_HF_AUDIO = "audio_model.audio_encoder."
_LEFT_OUT = re.compile(
    r"^(text_transform|audio_transform)\."
    r"|^audio_branch\.(spectrogram_extractor|logmel_extractor|tscam_conv|head)\."
    r"|^audio_branch\.layers\.\d+\.blocks\.\d+\.attn_mask$"
    r"|^text_branch\.embeddings\.position_ids$"
)
_FUSION = re.compile(r"^audio_branch\.(.*\.)?(fusion_model|mel_conv1d|mel_conv2d)\.")
_BLOCK = re.compile(r"^audio_branch\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_PROJECTION = re.compile(r"^(text|audio)_projection\.([02])\.(weight|bias)$")
# Swin block parameters, LAION's name -> transformers' name (the rest of the key is kept).
_BLOCK_NAMES = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "attn.proj.": "attention.output.dense.",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "attn.relative_position_index": "attention.self.relative_position_index",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
# Buffers transformers builds from the config, which a checkpoint need not hold.
_REBUILT_BUFFERS = re.compile(r"(embeddings\.position_ids|embeddings\.token_type_ids|relative_position_index)$")


# --------------------------------------------------------------------------------------------
# Reading the checkpoint


def load_laion_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a LAION-CLAP checkpoint by their LAION names (``module.`` prefix removed).

    The file is read with ``torch.load(weights_only=True)``, which builds tensors, numbers, strings and
    containers only, and refuses anything else rather than run it. A checkpoint that pickled other objects
    (an argparse ``Namespace``, say) is refused naming them; ``trust_pickle=True`` (``--trust-pickle``) reads
    it with full unpickling, which runs whatever code it holds: only for files from a source you trust.
    Accepts ``{"state_dict": {...}, ...}`` (what LAION's training saves) or a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:
            raise ValueError(f"checkpoint {str(path)!r} cannot be read as a torch checkpoint") from None
        raise ValueError(
            f"checkpoint {str(path)!r} pickles a Python object ({found.group(1)}) besides its tensors, which the "
            "safe loader (torch.load weights_only=True) refuses; if you trust the file's source, pass "
            "--trust-pickle (trust_pickle=True) to unpickle it fully, which runs any code it holds"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"checkpoint {str(path)!r} cannot be read as a torch checkpoint: {err}") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"checkpoint {str(path)!r} holds no state dict (a mapping of tensor names to tensors)")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint {str(path)!r}: entry {key!r} is not a named tensor")
        state[key.removeprefix(_DDP_PREFIX)] = value
    for branch in (_TEXT, _AUDIO):
        if not any(key.startswith(branch) for key in state):
            sample = ", ".join(sorted(state)[:3])
            raise ValueError(
                f"checkpoint {str(path)!r} is not a LAION-CLAP checkpoint: no {branch.rstrip('.')} keys "
                f"(found {sample}, ...)"
            )
    fused = sorted(key for key in state if _FUSION.match(key))
    if fused:
        raise ValueError(
            f"checkpoint {str(path)!r} is a fused LAION-CLAP ({fused[0]}, ...): fused towers are not supported; "
            "use an unfused checkpoint such as 630k-audioset-best.pt"
        )
    return state


# --------------------------------------------------------------------------------------------
# The config, read off the shapes


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"LAION-CLAP checkpoint has no {key!r}")
    return tuple(state[key].shape)


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    if found != set(range(len(found))):
        raise ValueError(f"LAION-CLAP checkpoint: the indices of {pattern!r} are not 0..n-1: {sorted(found)}")
    return sorted(found)


def _spec_size(state: Mapping[str, torch.Tensor], window: int, patch_stride: int) -> int:
    """HTSAT's spectrogram side, from the first stage's shifted-window mask ``(windows, w*w, w*w)``."""
    masks = [key for key in state if re.match(r"^audio_branch\.layers\.0\.blocks\.\d+\.attn_mask$", key)]
    if not masks:
        logger.info("no attention mask in the checkpoint; HTSAT's spectrogram side is taken as %d", DEFAULT_SPEC_SIZE)
        return DEFAULT_SPEC_SIZE
    windows = state[masks[0]].shape[0]
    side = math.isqrt(windows)
    if side * side != windows:
        raise ValueError(f"LAION-CLAP checkpoint: {masks[0]} covers {windows} windows, not a square grid")
    return side * window * patch_stride


def clap_config_from_laion(state: Mapping[str, torch.Tensor]):
    """The transformers ``ClapConfig`` of a LAION-CLAP state dict (LAION names), read off the tensor shapes.

    Only the text tower's head count is not in the shapes: RoBERTa's 64-wide heads are assumed
    (:data:`TEXT_HEAD_WIDTH`); pass a config of your own to :func:`convert_clap_checkpoint` otherwise.
    The patch stride is taken equal to the patch size, as in every HTSAT.
    """
    from transformers import ClapConfig

    vocab, hidden = _shape(state, "text_branch.embeddings.word_embeddings.weight")
    layers = _indices(state, r"^text_branch\.encoder\.layer\.(\d+)\.")
    if hidden % TEXT_HEAD_WIDTH:
        raise ValueError(
            f"the text tower is {hidden} wide, not a multiple of RoBERTa's {TEXT_HEAD_WIDTH}-wide heads: "
            "give its config (--config CONFIG.json)"
        )
    projection = _shape(state, "text_projection.0.weight")[0]
    text = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=len(layers),
        num_attention_heads=hidden // TEXT_HEAD_WIDTH,
        intermediate_size=_shape(state, "text_branch.encoder.layer.0.intermediate.dense.weight")[0],
        max_position_embeddings=_shape(state, "text_branch.embeddings.position_embeddings.weight")[0],
        type_vocab_size=_shape(state, "text_branch.embeddings.token_type_embeddings.weight")[0],
    )

    width, in_channels, patch, _ = _shape(state, "audio_branch.patch_embed.proj.weight")
    stages = _indices(state, r"^audio_branch\.layers\.(\d+)\.")
    depths, heads = [], []
    for stage in stages:
        depths.append(len(_indices(state, rf"^audio_branch\.layers\.{stage}\.blocks\.(\d+)\.")))
        table = _shape(state, f"audio_branch.layers.{stage}.blocks.0.attn.relative_position_bias_table")
        heads.append(table[1])
    table_rows = _shape(state, "audio_branch.layers.0.blocks.0.attn.relative_position_bias_table")[0]
    window = (math.isqrt(table_rows) + 1) // 2
    if (2 * window - 1) ** 2 != table_rows:
        raise ValueError(f"LAION-CLAP checkpoint: a relative-position table of {table_rows} rows is not (2w - 1)^2")
    mlp_hidden = _shape(state, "audio_branch.layers.0.blocks.0.mlp.fc1.weight")[0]
    audio_hidden = _shape(state, "audio_branch.norm.weight")[0]
    classes = state["audio_branch.tscam_conv.weight"].shape[0] if "audio_branch.tscam_conv.weight" in state else 527
    audio = dict(
        spec_size=_spec_size(state, window, patch),
        num_mel_bins=_shape(state, "audio_branch.bn0.weight")[0],
        patch_size=patch,
        patch_stride=[patch, patch],
        patch_embed_input_channels=in_channels,
        patch_embeds_hidden_size=width,
        enable_patch_layer_norm="audio_branch.patch_embed.norm.weight" in state,
        depths=depths,
        num_attention_heads=heads,
        window_size=window,
        mlp_ratio=mlp_hidden / width,
        hidden_size=audio_hidden,
        num_classes=classes,
    )
    audio_projection = _shape(state, "audio_projection.0.weight")[0]
    if audio_projection != projection:
        raise ValueError(
            f"LAION-CLAP checkpoint: the text projection gives {projection} features, "
            f"the audio projection {audio_projection}"
        )
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=projection)


# --------------------------------------------------------------------------------------------
# Renaming


def _audio_name(key: str) -> str | None:
    """transformers' name of a LAION audio-tower tensor other than ``attn.qkv`` (``None``: unknown)."""
    block = _BLOCK.match(key)
    if block:
        stage, index, rest = block.groups()
        for laion, hf in _BLOCK_NAMES.items():
            if rest.startswith(laion):
                return f"{_HF_AUDIO}layers.{stage}.blocks.{index}.{hf}{rest[len(laion) :]}"
        return None
    rest = key[len(_AUDIO) :]
    if rest.startswith("bn0."):
        return f"{_HF_AUDIO}batch_norm.{rest[len('bn0.') :]}"
    if re.match(r"^(patch_embed\.(proj|norm)|norm|layers\.\d+\.downsample\.(reduction|norm))\.", rest):
        return _HF_AUDIO + rest
    return None


def laion_to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LAION-CLAP state dict (LAION names, no ``module.`` prefix) under transformers' ``ClapModel`` names.

    Raises ``ValueError`` naming the first key that has no place (the rules are in the module docstring).
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if _LEFT_OUT.match(key):
            continue
        if key in ("logit_scale_a", "logit_scale_t"):
            out[key] = value
        elif key.startswith(_TEXT):
            out["text_model." + key[len(_TEXT) :]] = value
        elif projection := _PROJECTION.match(key):
            tower, index, kind = projection.groups()
            out[f"{tower}_projection.linear{1 if index == '0' else 2}.{kind}"] = value
        elif (block := _BLOCK.match(key)) and block.group(3) in ("attn.qkv.weight", "attn.qkv.bias"):
            stage, index, rest = block.groups()
            if value.shape[0] % 3:
                raise ValueError(f"{key} has {value.shape[0]} rows, not three equal blocks (query, key, value)")
            prefix = f"{_HF_AUDIO}layers.{stage}.blocks.{index}.attention.self."
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[prefix + name + "." + rest.rsplit(".", 1)[1]] = part.clone()
        elif key.startswith(_AUDIO) and (name := _audio_name(key)) is not None:
            out[name] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"LAION-CLAP checkpoint has {len(unknown)} tensor(s) with no place in transformers' ClapModel: "
            f"{', '.join(sorted(unknown)[:5])}"
        )
    return out


def _load_into(model, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy ``tensors`` into ``model``, refusing a missing tensor, an extra one or a shape that differs."""
    expected = model.state_dict()
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ValueError(f"converted tensors the ClapModel does not have: {', '.join(extra[:5])}")
    missing = sorted(k for k in set(expected) - set(tensors) if not _REBUILT_BUFFERS.search(k))
    if missing:
        raise ValueError(f"the LAION-CLAP checkpoint gives no {', '.join(missing[:5])}")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{key}: the checkpoint's tensor is {tuple(value.shape)}, the config wants {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()}, strict=False)


# --------------------------------------------------------------------------------------------
# The whole conversion


def _load_tokenizer(path: str | Path, text_config):
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"tokenizer {str(path)!r} is not a local folder (a copy of roberta-base's tokenizer files)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"tokenizer {str(path)!r} cannot be loaded: {err}") from None
    if len(tokenizer) > text_config.vocab_size:
        raise ValueError(
            f"tokenizer {str(path)!r} has {len(tokenizer)} tokens, more than the text tower's {text_config.vocab_size}"
        )
    # RoBERTa numbers positions after the padding id, so a tokenizer padding with another id shifts every position.
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tokenizer, name) != getattr(text_config, name):
            raise ValueError(
                f"tokenizer {str(path)!r} has {name} {getattr(tokenizer, name)}, the text tower "
                f"{getattr(text_config, name)}: it is not RoBERTa's"
            )
    return tokenizer


def convert_clap_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    tokenizer: str | Path | None = None,
    config: str | Path | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the transformers ``ClapModel`` folder of a LAION-CLAP checkpoint (layout in the module docstring).

    Args:
        checkpoint: the ``.pt`` file.
        out_dir: the folder to write, atomically; an existing one is refused unless ``overwrite``.
        tokenizer: a local RoBERTa tokenizer folder to include (see the module docstring); ``None`` writes none.
        config: a transformers ``ClapConfig`` JSON file to use instead of the one read off the shapes.
        trust_pickle: unpickle the file fully (runs code in it); see :func:`load_laion_state_dict`.
        overwrite: replace an existing ``out_dir``.

    Returns ``out_dir``. Every argument is checked before the checkpoint is read.
    """
    from transformers import ClapConfig, ClapModel

    from ..clap_audio import build_feature_extractor
    from ..utils import atomic_dir

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint {str(checkpoint)!r} is not a file")
    if out_dir.exists() and not overwrite:
        raise ValueError(f"output folder {str(out_dir)!r} already exists; pass --force to replace it")
    if tokenizer is not None and not Path(tokenizer).is_dir():
        raise ValueError(
            f"tokenizer {str(tokenizer)!r} is not a local folder (a copy of roberta-base's tokenizer files)"
        )
    if config is not None and not Path(config).is_file():
        raise ValueError(f"config {str(config)!r} is not a file")

    state = load_laion_state_dict(checkpoint, trust_pickle=trust_pickle)
    clap_config = ClapConfig.from_pretrained(config) if config is not None else clap_config_from_laion(state)
    if clap_config.audio_config.enable_fusion:
        raise ValueError(f"config {str(config)!r} enables fusion; fused towers are not supported")
    text_tokenizer = _load_tokenizer(tokenizer, clap_config.text_config) if tokenizer is not None else None
    features = dict(LAION_FEATURES)
    extractor = build_feature_extractor(
        clap_config.audio_config, features.pop("sample_rate"), features.pop("clip_seconds"), **features
    )
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in laion_to_transformers(state).items()}
    model = ClapModel(clap_config).eval()
    _load_into(model, tensors)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        extractor.save_pretrained(tmp)
        if text_tokenizer is not None:
            text_tokenizer.save_pretrained(tmp)
    if text_tokenizer is None:
        logger.warning(
            "%s has no tokenizer: it embeds audio, but text.pretrained needs RoBERTa's tokenizer files in it "
            "(convert again with --tokenizer DIR)",
            out_dir,
        )
    return out_dir


__all__ = [
    "DEFAULT_SPEC_SIZE",
    "LAION_FEATURES",
    "TEXT_HEAD_WIDTH",
    "clap_config_from_laion",
    "convert_clap_checkpoint",
    "laion_to_transformers",
    "load_laion_state_dict",
]
