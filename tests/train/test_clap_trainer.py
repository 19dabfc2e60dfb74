"""CLAP training: tokenizer, contrastive learning, validation, exact resume, the loss guard, export."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoTokenizer, ClapTextModelWithProjection

import stable_audio_kit.train.clap as clap_trainer
from stable_audio_kit.clap_audio import ClapAudioEmbedder
from stable_audio_kit.cli import main
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.train.common import NonFiniteLossError, checkpoint_dirs, latest_checkpoint, load_run_config
from stable_audio_kit.train.config import ClapTrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "configs" / "tiny.yaml"
TINY_CLAP = ROOT / "configs" / "train" / "tiny_clap.yaml"
SR = 8000
CAPTIONS = {
    "low": "a low sine drone",
    "high": "a high pitched whistle",
    "noise": "short bursts of noise",
    "chord": "a major chord on an organ",
}
NO_DROPOUT = ["text.hidden_dropout_prob=0", "text.attention_probs_dropout_prob=0", "audio.hidden_dropout_prob=0"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models have a few thousand parameters: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips() -> dict[str, np.ndarray]:
    t = np.arange(SR) / SR
    bursts = np.random.default_rng(0).standard_normal(SR) * (np.sin(2 * np.pi * 4 * t) > 0.5)
    return {
        "low": 0.5 * np.sin(2 * np.pi * 110 * t),
        "high": 0.5 * np.sin(2 * np.pi * 1760 * t),
        "noise": 0.4 * bursts,
        "chord": 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
    }


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """Four 1 s clips with distinct captions for training, and copies of them as the validation split."""
    root = tmp_path_factory.mktemp("clap_catalogue")
    rows = []
    for name, audio in _clips().items():
        for split in ("train", "valid"):
            path = f"{split}_{name}.wav"
            sf.write(root / path, audio.astype(np.float32), SR)
            rows.append((path, CAPTIONS[name], split))
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption", "split"])
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """`sak new-model configs/tiny.yaml BASE`: 8 kHz, a 1 s window, a text tower of width 16."""
    out = tmp_path_factory.mktemp("clap_base") / "base"
    assert main(["new-model", str(TINY_MODEL), str(out)]) == 0
    return out


def run_config(base: Path, catalogue: Path, out: Path, *overrides: str):
    return load_run_config(
        ClapTrainConfig,
        TINY_CLAP,
        [f"model={base}", f"data.catalogue={catalogue}", f"run.output_dir={out}", *overrides],
    )


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for events in sorted((run_dir / "logs").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values.update({e.step: e.value for e in acc.Scalars(tag)})
    return values


@pytest.fixture(scope="module")
def trained_run(base_model, catalogue, tmp_path_factory) -> Path:
    """The tiny config as shipped: 40 steps on the fixed batch of four pairs, validated at 20 and 40."""
    out = tmp_path_factory.mktemp("clap_run") / "run"
    return clap_trainer.train(run_config(base_model, catalogue, out))


def test_tokenizer_is_trained_on_the_captions_when_none_given(trained_run):
    tokenizer = AutoTokenizer.from_pretrained(trained_run / "tokenizer")
    # Merges learned from the captions: their words take fewer tokens than their bytes.
    for caption in CAPTIONS.values():
        assert len(tokenizer.tokenize(caption)) < len(caption.encode()) / 2
    assert len(tokenizer) > 261
    exported = AutoTokenizer.from_pretrained(latest_checkpoint(trained_run) / "export" / "tokenizer")
    assert exported.get_vocab() == tokenizer.get_vocab()


def test_contrastive_loss_drops_and_validation_reports_recall(trained_run):
    losses = scalars(trained_run, "train/loss")
    assert sorted(losses) == list(range(5, 41, 5))
    # Chance level for four pairs is ln 4 = 1.386 in both directions.
    assert losses[40] < 0.5 * math.log(4)
    recall = scalars(trained_run, "valid/recall@1")
    assert sorted(recall) == [20, 40]
    for tag in ("valid/recall@5", "valid/clap_score", "valid/loss", "valid/items"):
        assert sorted(scalars(trained_run, tag)) == [20, 40]
    assert scalars(trained_run, "valid/items")[40] == 4
    # The held-out copies are retrieved far above chance (0.25) once the pairs are learnt.
    assert recall[40] >= 0.75


def test_contrastive_loss_is_symmetric():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(5, 8), dim=-1)
    audio = F.normalize(torch.randn(5, 8), dim=-1)
    logits = 10 * text @ audio.T
    labels = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    torch.testing.assert_close(clap_trainer.contrastive_loss(logits, logits.T), expected)


def test_export_loads_in_the_pipeline_and_generates(trained_run, base_model, tmp_path):
    out = tmp_path / "pipe"
    assert main(["export", str(trained_run), str(out)]) == 0
    pipe = StableAudioKitPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    audio = pipe(
        "a low sine drone", seconds_total=0.37, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).audios
    assert audio.shape == (1, 1, round(0.37 * SR)) and np.isfinite(audio).all()

    # The pipeline's text encoder is the trained text tower + projection, with its tokenizer.
    clap = ClapAudioEmbedder.from_pretrained(latest_checkpoint(trained_run) / "export" / "clap").model
    trained = {k: v for k, v in clap.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
    loaded = pipe.text_encoder.state_dict()
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[k], loaded[k]) for k in trained)
    assert pipe.tokenizer.get_vocab() == AutoTokenizer.from_pretrained(trained_run / "tokenizer").get_vocab()
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)
    base_text = ClapTextModelWithProjection.from_pretrained(base_model / "text_encoder")
    assert pipe.text_encoder.config.max_position_embeddings == base_text.config.max_position_embeddings
    states, mask = pipe.encode_prompt(["a low sine drone"])
    assert states.shape == (1, base_text.config.max_position_embeddings - 2, 16) and mask.sum() > 2


def test_kill_and_resume_matches_an_uninterrupted_run(base_model, catalogue, tmp_path, monkeypatch):
    # Batches of two out of four files (two per epoch), dropout on, gradients accumulated over two
    # batches; checkpoints every 3 steps, so the resume lands mid-epoch.
    overrides = [
        "run.max_steps=7",
        "run.checkpoint_every=3",
        "run.valid_every=4",
        "run.tensorboard=false",
        "data.batch_size=2",
        "run.grad_accum=2",
    ]
    whole = clap_trainer.train(run_config(base_model, catalogue, tmp_path / "whole", *overrides))

    class Killed(Exception):
        pass

    real_check = clap_trainer.check_loss

    def kill_at_step_5(loss, step, run_dir, **kwargs):
        if step == 5:
            raise Killed
        real_check(loss, step, run_dir, **kwargs)

    cfg = run_config(base_model, catalogue, tmp_path / "resumed", *overrides)
    monkeypatch.setattr(clap_trainer, "check_loss", kill_at_step_5)
    with pytest.raises(Killed):
        clap_trainer.train(cfg)
    monkeypatch.setattr(clap_trainer, "check_loss", real_check)
    assert [p.name for p in checkpoint_dirs(cfg.run.output_dir)] == ["step_00000003"]
    with pytest.raises(ValueError, match="--resume"):
        clap_trainer.train(cfg)
    resumed = clap_trainer.train(cfg, resume=True)

    for part in ("model.safetensors", "export/clap/model.safetensors", "export/text_encoder/model.safetensors"):
        a = load_file(latest_checkpoint(whole) / part)
        b = load_file(latest_checkpoint(resumed) / part)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    a = torch.load(latest_checkpoint(whole) / "optimizer.bin", weights_only=True)["state"]
    b = torch.load(latest_checkpoint(resumed) / "optimizer.bin", weights_only=True)["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
    base_model, catalogue, tmp_path, monkeypatch
):
    # Also the path with a given tokenizer: the base model's untrained byte-level one.
    cfg = run_config(
        base_model,
        catalogue,
        tmp_path / "run",
        "run.max_steps=6",
        "run.checkpoint_every=2",
        "run.valid_every=100",
        "run.tensorboard=false",
        f"tokenizer={base_model / 'tokenizer'}",
    )
    real_loss = clap_trainer.contrastive_loss
    calls = []

    def nan_at_step_3(logits_per_text, logits_per_audio):
        calls.append(1)
        loss = real_loss(logits_per_text, logits_per_audio)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(clap_trainer, "contrastive_loss", nan_at_step_3)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3.*step_00000002"):
        clap_trainer.train(cfg)
    run = Path(cfg.run.output_dir)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002"]
    assert not (run / "tokenizer").exists()
    export = run / "checkpoints" / "step_00000002" / "export"
    encoder = ClapTextModelWithProjection.from_pretrained(export / "text_encoder")
    assert all(torch.isfinite(p).all() for p in encoder.parameters())
    assert len(AutoTokenizer.from_pretrained(export / "tokenizer")) == 261


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("text.hiden_size=16", "unknown key text.hiden_size"),
        ("audio.spec_sise=32", "unknown key audio.spec_sise"),
        ("features.hop=10", "unknown key features.hop"),
        ("text.vocab_size=500", "text.vocab_size is set by the tokenizer"),
        ("audio.projection_dim=8", "audio.projection_dim is set by projection_dim"),
        ("text.hidden_size=32", "text_encoder_dim"),
        ("text.num_hidden_layers=0", "hidden layer -2"),
        ("audio.hidden_size=8", "audio.hidden_size must be patch_embeds_hidden_size"),
        ("audio.spec_size=24", "multiple of audio.num_mel_bins"),
        ("audio.num_attention_heads=[1]", "one entry per stage"),
        (
            "audio.depths=[1,1,1] audio.num_attention_heads=[1,1,1] audio.hidden_size=32",
            "last stage's 2x2 grid is smaller",
        ),
        ("audio.depths=[1,1,1,1,1] audio.num_attention_heads=[1,1,1,1,1] audio.hidden_size=128", "halve 4 times"),
        ("features.hop_length=10", "more than the audio tower's 64"),
        ("features.fft_window_size=16", "mel filters cover no FFT bin"),
        ("data.batch_size=1", "batch_size must be >= 2"),
    ],
)
def test_bad_configs_are_rejected_before_any_work(base_model, catalogue, tmp_path, overrides, message):
    cfg = run_config(base_model, catalogue, tmp_path / "run", *overrides.split())
    with pytest.raises(ValueError, match=message):
        clap_trainer.train(cfg)
    assert not (tmp_path / "run").exists()


def test_typos_in_the_run_config_are_rejected(base_model, catalogue, tmp_path):
    with pytest.raises(ValueError, match="projection_dims"):
        run_config(base_model, catalogue, tmp_path / "run", "projection_dims=8")
    with pytest.raises(ValueError, match="tokenizer_vocab"):
        run_config(base_model, catalogue, tmp_path / "run", "tokenizer_vocab=8")
