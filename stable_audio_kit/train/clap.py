"""Contrastive text-audio training of a CLAP: ``sak train clap RUN.yaml``.

Stable Audio 1.0 trained its own CLAP on its catalogue and conditions on the text tower's token
states. This trains a transformers ``ClapModel`` (a RoBERTa-style text tower and an HTSAT audio
tower, each with a projection into a shared space) on the catalogue's ``(crop, caption)`` pairs
with CLIP's symmetric contrastive loss, in one flat Accelerate loop. Every checkpoint exports:

- ``text_encoder/``: a ``ClapTextModelWithProjection`` holding the trained text tower and its
  projection; ``sak export`` puts it into the base pipeline in place of the old one;
- ``tokenizer/``: the tokenizer it was trained with (the pipeline's new tokenizer);
- ``clap/``: the whole ``ClapModel`` with its feature extractor and tokenizer, for evaluation
  (:class:`stable_audio_kit.clap_audio.ClapAudioEmbedder`).

The text tower's width must equal the base pipeline's ``projection.text_encoder_dim``; its
vocabulary comes with its tokenizer, and its positions with ``max_length``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoTokenizer,
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    ClapTextModelWithProjection,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from ..clap_audio import (
    FEATURE_OPTIONS,
    ClapAudioEmbedder,
    build_feature_extractor,
    check_audio_config,
    extract_features,
)
from ..conditioning import SPECIAL_TOKENS, train_tokenizer
from ..evaluation.embedding import clap_score, retrieval_recall
from ..pipeline import check_model_dir
from ..utils import atomic_dir
from .common import (
    TrainerState,
    batches,
    check_loss,
    load_checkpoint,
    make_lr_scheduler,
    make_optimizer,
    save_checkpoint,
    setup_run,
    start_run,
)
from .config import ClapTrainConfig
from ..data import AudioCropDataset, collate, scan_catalogue, split_catalogue
from ..data.check import check_splits

logger = logging.getLogger(__name__)

# Fields the trainer sets itself: from the tokenizer, from max_length, or from the top-level config.
TEXT_OWNED = {
    "vocab_size": "the tokenizer",
    "pad_token_id": "the tokenizer",
    "bos_token_id": "the tokenizer",
    "eos_token_id": "the tokenizer",
    "max_position_embeddings": "max_length (+2)",
    "projection_dim": "projection_dim",
    "projection_hidden_act": "ClapConfig",
}
AUDIO_OWNED = {"projection_dim": "projection_dim", "projection_hidden_act": "ClapConfig"}
# The smallest byte-level BPE: 256 byte symbols and the special tokens.
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)
VALID_KS = (1, 5)


# --------------------------------------------------------------------------------------------
# Checking the config against the base model


@dataclass
class ClapPlan:
    """Everything the config and the base model decide, checked before any work."""

    sample_rate: int
    clip_seconds: float
    max_length: int
    text_options: dict
    audio_config: ClapAudioConfig
    feature_extractor: ClapFeatureExtractor


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return copy.deepcopy(value)


def _check_options(section: str, options: dict, config_cls: type, owned: dict[str, str]) -> dict:
    """``options`` as a plain dict; a typo or a trainer-owned key raises ``ValueError`` naming it."""
    base = {f.name for f in dataclasses.fields(PretrainedConfig)}
    valid = sorted({f.name for f in dataclasses.fields(config_cls)} - base - set(owned))
    for key in options:
        if key in owned:
            raise ValueError(f"{section}.{key} is set by {owned[key]}, not in the {section} section")
        if key not in valid:
            raise ValueError(f"unknown key {section}.{key}; valid keys: {valid}")
    return options


def _base_model(path: str) -> dict[str, Any]:
    """The facts of the base pipeline the CLAP must fit, read from its component configs."""
    root = check_model_dir(path)
    try:
        projection = json.loads((root / "projection" / "config.json").read_text())
        text = json.loads((root / "text_encoder" / "config.json").read_text())
        vae = json.loads((root / "vae" / "config.json").read_text())
        unet = json.loads((root / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"model directory {path!r} has an unreadable component config: {err}") from None
    hop = int(np.prod(vae["downsampling_ratios"]))
    return {
        "sample_rate": int(vae["sampling_rate"]),
        "window_seconds": unet["sample_size"] * hop / vae["sampling_rate"],
        "text_dim": int(projection["text_encoder_dim"]),
        "hidden_layer": int(projection.get("text_hidden_layer", -2)),
        "max_length": int(text["max_position_embeddings"]) - 2,
    }


@torch.no_grad()
def _dry_run_audio_tower(audio_config: ClapAudioConfig) -> None:
    """One forward pass of an untrained tower on silence, so a size HTSAT cannot take fails here, named."""
    from transformers import ClapAudioModel

    with torch.random.fork_rng(devices=[]):
        tower = ClapAudioModel(audio_config).eval()
    features = torch.zeros(
        1, 1, audio_config.spec_size * (audio_config.spec_size // audio_config.num_mel_bins), audio_config.num_mel_bins
    )
    try:
        tower(input_features=features)
    except RuntimeError as err:
        raise ValueError(f"the audio tower cannot run with these audio sizes: {err}") from None


def check_config(cfg: ClapTrainConfig) -> ClapPlan:
    """Validate the run config against the base model; raise ``ValueError`` naming the first problem."""
    base = _base_model(cfg.model)
    if cfg.data.batch_size < 2:
        raise ValueError(f"data.batch_size must be >= 2 for a contrastive loss (negatives), got {cfg.data.batch_size}")
    if cfg.projection_dim < 1:
        raise ValueError(f"projection_dim must be >= 1, got {cfg.projection_dim}")
    if not 1.0 <= cfg.logit_scale_init <= cfg.logit_scale_max:
        raise ValueError(
            f"need 1 <= logit_scale_init <= logit_scale_max, got {cfg.logit_scale_init} and {cfg.logit_scale_max}"
        )
    if cfg.tokenizer is None and cfg.tokenizer_vocab_size < MIN_VOCAB:
        raise ValueError(
            f"tokenizer_vocab_size must be >= {MIN_VOCAB} (bytes + special tokens), got {cfg.tokenizer_vocab_size}"
        )
    if cfg.tokenizer is not None and not Path(cfg.tokenizer).is_dir():
        raise ValueError(f"tokenizer {cfg.tokenizer!r} is not a local directory")
    sample_rate = cfg.sample_rate if cfg.sample_rate is not None else base["sample_rate"]
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    clip_seconds = cfg.data.window_seconds if cfg.data.window_seconds is not None else base["window_seconds"]
    if not clip_seconds > 0:
        raise ValueError(f"data.window_seconds must be > 0, got {clip_seconds}")
    max_length = cfg.max_length if cfg.max_length is not None else base["max_length"]
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 tokens (<s>, one token, </s>), got {max_length}")

    text = _check_options("text", _plain(cfg.text), ClapTextConfig, TEXT_OWNED)
    text.setdefault("hidden_size", base["text_dim"])
    if text["hidden_size"] != base["text_dim"]:
        raise ValueError(
            f"text.hidden_size={text['hidden_size']} but the base model's projection takes text states of width "
            f"{base['text_dim']} (projection.text_encoder_dim in {cfg.model!r}); they must match"
        )
    try:
        text_config = ClapTextConfig(**text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid text config: {err}") from None
    if text_config.hidden_size % text_config.num_attention_heads:
        raise ValueError(
            f"text.num_attention_heads={text_config.num_attention_heads} must divide text.hidden_size="
            f"{text_config.hidden_size}"
        )
    states = text_config.num_hidden_layers + 1
    if not -states <= base["hidden_layer"] < states:
        raise ValueError(
            f"the base model reads text hidden layer {base['hidden_layer']} (projection.text_hidden_layer), which a "
            f"tower of text.num_hidden_layers={text_config.num_hidden_layers} does not have"
        )

    audio = _check_options("audio", _plain(cfg.audio), ClapAudioConfig, AUDIO_OWNED)
    try:
        audio_config = ClapAudioConfig(**audio, projection_dim=cfg.projection_dim)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid audio config: {err}") from None
    check_audio_config(audio_config)
    _dry_run_audio_tower(audio_config)

    features = _plain(cfg.features)
    unknown = sorted(set(features) - set(FEATURE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown key features.{unknown[0]}; valid keys: {list(FEATURE_OPTIONS)}")
    extractor = build_feature_extractor(audio_config, sample_rate, float(clip_seconds), **features)
    return ClapPlan(sample_rate, float(clip_seconds), max_length, text, audio_config, extractor)


# --------------------------------------------------------------------------------------------
# Data, tokenizer, model


def make_datasets(cfg: ClapTrainConfig, plan: ClapPlan) -> tuple[AudioCropDataset, AudioCropDataset | None]:
    """Mono crops of the captioned files at the CLAP's rate, split into train and valid."""
    items = scan_catalogue(cfg.data.catalogue)
    captioned = [item for item in items if item.caption and item.caption.strip()]
    if len(captioned) < len(items):
        kept = {item.path for item in captioned}
        left_out = [item.path for item in items if item.path not in kept]
        logger.warning(
            "leaving out %d of %d files with no caption (a contrastive pair needs one): %s",
            len(left_out),
            len(items),
            ", ".join(left_out[:10]) + (" ..." if len(left_out) > 10 else ""),
        )
    train_items, valid_items = split_catalogue(captioned, cfg.data.valid_fraction)
    check_splits(cfg.data.catalogue, {"train": train_items, "valid": valid_items}, 1, cfg.data.skip_unreadable)

    def dataset(part, train: bool) -> AudioCropDataset:
        return AudioCropDataset(
            cfg.data.catalogue,
            plan.sample_rate,
            1,
            plan.clip_seconds,
            items=part,
            train=train,
            seed=cfg.run.seed,
            skip_unreadable=cfg.data.skip_unreadable,
        )

    train_set = dataset(train_items, True)
    if len(train_set) < cfg.data.batch_size:
        raise ValueError(
            f"the training split holds {len(train_set)} usable captioned files, fewer than data.batch_size="
            f"{cfg.data.batch_size}"
        )
    valid_set = dataset(valid_items, False) if valid_items else None
    if valid_set is None or len(valid_set) == 0:
        logger.warning("no validation files: retrieval recall will not be measured")
        valid_set = None
    return train_set, valid_set


def load_or_train_tokenizer(
    cfg: ClapTrainConfig, captions: list[str], run_dir: Path, resume: bool, is_main: bool
) -> PreTrainedTokenizerBase:
    """``cfg.tokenizer``, or a byte-level BPE trained on ``captions`` and kept in ``run_dir/tokenizer``."""
    if cfg.tokenizer is not None:
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer, local_files_only=True)
    else:
        saved = run_dir / "tokenizer"
        if resume and saved.is_dir():
            return AutoTokenizer.from_pretrained(saved, local_files_only=True)
        tokenizer = train_tokenizer(captions, cfg.tokenizer_vocab_size, cfg.tokenizer_min_frequency)
        if is_main:
            with atomic_dir(saved, overwrite=True) as tmp:
                tokenizer.save_pretrained(tmp)
        logger.info("trained a %d-token BPE tokenizer on %d captions", len(tokenizer), len(captions))
    if tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer {cfg.tokenizer!r} has no padding token")
    return tokenizer


def build_clap(cfg: ClapTrainConfig, plan: ClapPlan, tokenizer: PreTrainedTokenizerBase) -> ClapModel:
    text_config = ClapTextConfig(
        **plan.text_options,
        vocab_size=len(tokenizer),
        # RoBERTa positions start after the padding index, hence the +2.
        max_position_embeddings=plan.max_length + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = ClapConfig(
        text_config=text_config.to_dict(),
        audio_config=plan.audio_config.to_dict(),
        projection_dim=cfg.projection_dim,
        logit_scale_init_value=cfg.logit_scale_init,
    )
    return ClapModel(config)


class ClapCollator:
    """Batches of :class:`AudioCropDataset` items for a ``ClapModel``.

    Adds ``input_features`` ``(B, 1, frames, n_mels)`` (each crop cut to its real audio, then
    padded by the feature extractor) and ``input_ids`` / ``attention_mask`` ``(B, L)`` of the captions.
    """

    def __init__(self, feature_extractor: ClapFeatureExtractor, tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(items)
        clips = [item["audio"][0, : max(1, int(item["padding_mask"].sum()))].numpy() for item in items]
        tokens = self.tokenizer(
            batch["caption"], padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {
            "input_features": extract_features(self.feature_extractor, clips),
            "input_ids": tokens.input_ids,
            "attention_mask": tokens.attention_mask,
            "caption": batch["caption"],
            "path": batch["path"],
        }


def text_encoder_from_clap(model: ClapModel) -> ClapTextModelWithProjection:
    """The pipeline's text encoder: a ``ClapTextModelWithProjection`` holding ``model``'s text tower
    (``text_model.*``) and text projection (``text_projection.*``), copied."""
    # Building a module draws its random init from the global RNG; the run's RNG must not notice.
    with torch.random.fork_rng(devices=[]):
        encoder = ClapTextModelWithProjection(copy.deepcopy(model.config.text_config))
    state = {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if k.startswith(("text_model.", "text_projection."))
    }
    encoder.load_state_dict(state, strict=True)
    return encoder.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# Objective and validation


def contrastive_loss(logits_per_text: torch.Tensor, logits_per_audio: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: text->audio over the rows of ``logits_per_text`` ``(B, B)`` and
    audio->text over the rows of ``logits_per_audio`` ``(B, B)``; pair ``i`` is the match.

    (``ClapModel(return_loss=True)`` averages two text->audio terms, ``logits_per_audio.t()`` being
    text-major again, so the audio->text direction is never trained; this is the loss LAION-CLAP uses.)
    """
    labels = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return 0.5 * (F.cross_entropy(logits_per_text.float(), labels) + F.cross_entropy(logits_per_audio.float(), labels))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases, norms and the logit scales are left alone."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


@torch.no_grad()
def evaluate(model: ClapModel, loader: DataLoader, max_batches: int, device: torch.device) -> dict[str, float]:
    """Text->audio retrieval recall@1/@5, mean CLAP score and the contrastive loss on held-out pairs."""
    was_training = model.training
    model.eval()
    texts, audios, losses = [], [], []
    try:
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            out = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                input_features=batch["input_features"].to(device),
            )
            texts.append(out.text_embeds.float().cpu())
            audios.append(out.audio_embeds.float().cpu())
            if out.text_embeds.shape[0] > 1:
                losses.append(contrastive_loss(out.logits_per_text, out.logits_per_audio).item())
    finally:
        model.train(was_training)
    text = torch.cat(texts).numpy()
    audio = torch.cat(audios).numpy()
    metrics = retrieval_recall(text, audio, ks=VALID_KS)
    metrics["clap_score"] = clap_score(audio, text)
    if losses:
        metrics["loss"] = float(np.mean(losses))
    metrics["items"] = float(text.shape[0])
    return metrics


# --------------------------------------------------------------------------------------------
# The loop


def train(cfg: ClapTrainConfig, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Train a CLAP as ``cfg`` says; with ``resume`` continue the run folder's newest checkpoint
    exactly (same batches, crops, dropout and optimizer state as an uninterrupted run).

    Returns the run folder. Raises ``ValueError`` for a bad config before any work, and
    ``NonFiniteLossError`` naming the step if the loss becomes NaN/inf.
    """
    # 1. Validate everything against the base model, then the catalogue, before writing anything.
    plan = check_config(cfg)
    train_set, valid_set = make_datasets(cfg, plan)

    # 2. Run folder, tokenizer, model, optimizer, data.
    accelerator, run_dir = setup_run(cfg, "clap", resume, allow_config_change)
    start_run(accelerator, cfg, "clap", run_dir)
    captions = [item.caption for item in train_set.items]
    tokenizer = load_or_train_tokenizer(cfg, captions, run_dir, resume, accelerator.is_main_process)
    tokenizer.model_max_length = plan.max_length
    model = build_clap(cfg, plan, tokenizer)
    logger.info("CLAP: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    optimizer = make_optimizer(param_groups(model, cfg.optim.weight_decay), cfg.optim)
    # Stepped by the loop once per optimizer step; saved and restored with the checkpoints.
    lr_scheduler = make_lr_scheduler(optimizer, cfg.optim, cfg.run.max_steps)
    collator = ClapCollator(plan.feature_extractor, tokenizer, plan.max_length)
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.data.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collator,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    valid_loader = None
    if valid_set is not None and cfg.data.valid_batches > 0:
        # Its own generator: validating never draws from the training RNG, so it cannot change training.
        valid_loader = DataLoader(
            valid_set,
            batch_size=cfg.data.batch_size,
            shuffle=False,
            collate_fn=collator,
            num_workers=cfg.data.num_workers,
            generator=torch.Generator(),
        )
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    accelerator.register_for_checkpointing(lr_scheduler)
    state = load_checkpoint(accelerator, run_dir) if resume else TrainerState()

    def exports() -> dict[str, Any]:
        clap = accelerator.unwrap_model(model)
        return {
            "text_encoder": text_encoder_from_clap(clap),
            "tokenizer": tokenizer,
            "clap": ClapAudioEmbedder(clap, plan.feature_extractor, tokenizer),
        }

    # 3. Train.
    data = batches(accelerator, train_loader, train_set, state)
    progress = tqdm(
        total=cfg.run.max_steps,
        initial=state.step,
        desc="clap",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    model.train()
    grad_norm = torch.tensor(float("nan"))
    while state.step < cfg.run.max_steps:
        batch = next(data)
        with accelerator.accumulate(model):
            out = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                input_features=batch["input_features"],
            )
            loss = contrastive_loss(out.logits_per_text, out.logits_per_audio)
            check_loss(loss, state.step + 1, run_dir, accelerator=accelerator)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        lr_scheduler.step()
        clap = accelerator.unwrap_model(model)
        with torch.no_grad():
            # CLIP's guard: a temperature below 1/logit_scale_max makes the softmax unstable.
            for scale in (clap.logit_scale_a, clap.logit_scale_t):
                scale.clamp_(0.0, math.log(cfg.logit_scale_max))
        state.step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if state.step % cfg.run.log_every == 0:
            accelerator.log(
                {
                    "train/loss": loss.item(),
                    "train/lr": lr_scheduler.get_last_lr()[0],
                    "train/grad_norm": float(grad_norm),
                    "train/logit_scale": clap.logit_scale_t.exp().item(),
                },
                step=state.step,
            )
        last = state.step == cfg.run.max_steps
        if valid_loader is not None and (state.step % cfg.run.valid_every == 0 or last):
            metrics = evaluate(clap, valid_loader, cfg.data.valid_batches, accelerator.device)
            accelerator.log({f"valid/{k}": v for k, v in metrics.items()}, step=state.step)
            logger.info("step %d valid: %s", state.step, ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
        if state.step % cfg.run.checkpoint_every == 0 or last:
            save_checkpoint(
                accelerator, run_dir, state, exports() if accelerator.is_main_process else {}, cfg.run.keep_checkpoints
            )
    progress.close()
    accelerator.end_training()
    return run_dir


__all__ = [
    "ClapCollator",
    "ClapPlan",
    "build_clap",
    "check_config",
    "contrastive_loss",
    "evaluate",
    "load_or_train_tokenizer",
    "make_datasets",
    "text_encoder_from_clap",
    "train",
]
