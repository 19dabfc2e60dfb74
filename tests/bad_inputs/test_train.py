"""``sak train``: run configs (files, keys, values), catalogues that cannot be trained on, and resumes.

Every refusal comes before the first step and leaves no run folder behind (``unchanged``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import SR, Row, check_cli_row, fill, params, run_cli, write_bad_samples, write_tone

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "configs" / "train"
COMMON = ("run.output_dir={work}/run", "run.max_steps=2", "run.valid_every=0", "run.tensorboard=false")
UNET = ("train", "unet", str(RUNS / "tiny_unet.yaml"), "model={model}", "data.window_seconds=0.25", *COMMON)
VAE = ("train", "vae", str(RUNS / "tiny_vae.yaml"), "model={model}", "adversarial=false", *COMMON)
CLAP = ("train", "clap", str(RUNS / "tiny_clap.yaml"), "model={model}", *COMMON)
GOOD = "data.catalogue={cat_good}"

RUN_FILES = {
    "empty.yaml": "",
    "list.yaml": "- model: x\n",
    "unclosed.yaml": "run: {max_steps: 3\n",
    "missing_keys.yaml": "cfg_dropout: 0.1\n",
}

CONFIG_ROWS = [
    Row("file-missing", ("train", "unet", "{work}/nope.yaml", GOOD), "config file '{work}/nope.yaml' does not exist"),
    Row("file-empty", ("train", "unet", "{runs}/empty.yaml", GOOD), "empty.yaml' is empty; write {{}} to use"),
    Row("file-list", ("train", "unet", "{runs}/list.yaml", GOOD), "must hold a mapping of keys"),
    Row("file-unclosed", ("train", "unet", "{runs}/unclosed.yaml", GOOD), "is not valid YAML at line"),
    Row("missing-keys", ("train", "unet", "{runs}/missing_keys.yaml"), "missing required keys: data.catalogue, model"),
    Row("kind-unknown", ("train", "gan", str(RUNS / "tiny_unet.yaml")), "argument kind: invalid choice: 'gan'"),
    Row("typo", (*UNET, GOOD, "run.max_stepz=3"), "unknown key 'run.max_stepz'; did you mean 'run.max_steps'?"),
    Row("typo-top", (*UNET, GOOD, "cfg_dropuot=0.2"), "did you mean 'cfg_dropout'?"),
    Row("override-no-equals", (*UNET, GOOD, "run.max_steps"), "override 'run.max_steps' is not of the form"),
    Row("max-steps-0", (*UNET, GOOD, "run.max_steps=0"), "run.max_steps must be >= 1, got 0"),
    Row("max-steps-word", (*UNET, GOOD, "run.max_steps=lots"), "run.max_steps: Value 'lots'"),
    Row("grad-accum-0", (*UNET, GOOD, "run.grad_accum=0"), "run.grad_accum must be >= 1, got 0"),
    Row("checkpoint-every-0", (*UNET, GOOD, "run.checkpoint_every=0"), "run.checkpoint_every must be >= 1, got 0"),
    Row("mixed-precision", (*UNET, GOOD, "run.mixed_precision=fp8"), "run.mixed_precision must be 'no'"),
    Row("fp16-on-cpu", (*UNET, GOOD, "run.mixed_precision=fp16"), "'fp16' needs a CUDA device"),
    Row("seed-negative", (*UNET, GOOD, "run.seed=-1"), "run.seed must be in [0, 2**32 - 1], got -1"),
    Row("seed-huge", (*UNET, GOOD, "run.seed=4294967296"), "run.seed must be in [0, 2**32 - 1], got 4294967296"),
    Row("batch-0", (*UNET, GOOD, "data.batch_size=0"), "data.batch_size must be >= 1, got 0"),
    Row("workers-negative", (*UNET, GOOD, "data.num_workers=-1"), "data.num_workers must be >= 0, got -1"),
    Row("valid-fraction-2", (*UNET, GOOD, "data.valid_fraction=2"), "valid_fraction must be in [0, 1), got 2"),
    Row("valid-fraction-neg", (*UNET, GOOD, "data.valid_fraction=-0.1"), "got -0.1"),
    Row("valid-batches-neg", (*UNET, GOOD, "data.valid_batches=-1"), "data.valid_batches must be >= 0, got -1"),
    Row("lr-0", (*UNET, GOOD, "optim.lr=0"), "optim.lr must be > 0, got 0"),
    Row("lr-nan", (*UNET, GOOD, "optim.lr=.nan"), "optim.lr must be > 0, got nan"),
    Row("lr-schedule", (*UNET, GOOD, "optim.lr_schedule=wobbly"), "optim.lr_schedule 'wobbly' is unknown"),
    Row("betas-one", (*UNET, GOOD, "optim.betas=[0.9]"), "optim.betas must be two numbers in [0, 1), got [0.9]"),
    Row("betas-range", (*UNET, GOOD, "optim.betas=[2,0.999]"), "optim.betas must be two numbers in [0, 1)"),
    Row("weight-decay-neg", (*UNET, GOOD, "optim.weight_decay=-1"), "optim.weight_decay must be >= 0, got -1"),
    Row("warmup-neg", (*UNET, GOOD, "optim.warmup_steps=-1"), "optim.warmup_steps must be >= 0, got -1"),
    Row("grad-clip-nan", (*UNET, GOOD, "optim.grad_clip=.nan"), "optim.grad_clip must be >= 0, got nan"),
    Row("cfg-dropout", (*UNET, GOOD, "cfg_dropout=2"), "cfg_dropout must be in [0, 1], got 2"),
    Row("ema-decay", (*UNET, GOOD, "ema_decay=1.5"), "ema_decay must be in [0, 1], got 1.5"),
    Row("valid-steps-0", (*UNET, GOOD, "valid_steps=0"), "valid_steps must be >= 1, got 0"),
    Row("log-every-0", (*UNET, GOOD, "run.log_every=0"), "run.log_every must be >= 1"),
    Row("window-0", (*UNET, GOOD, "data.window_seconds=0"), "data.window_seconds must be > 0, got 0"),
    Row("model-missing", (*UNET, GOOD, "model={work}/nope"), "model directory '{work}/nope' does not exist"),
    Row("model-truncated", (*UNET, GOOD, "model={m_truncated_unet}"), "is truncated"),
    Row("latents-missing", (*UNET, GOOD, "latents={work}/nope"), "'{work}/nope/index.json' not found"),
    Row("allow-change-alone", (*UNET, GOOD, "--allow-config-change"), "--allow-config-change applies to a resume"),
    Row("lora-rank-negative", (*UNET, GOOD, "lora.rank=-1"), "lora.rank must be >= 0 (0: full fine-tuning), got -1"),
    Row("lora-alpha-0", (*UNET, GOOD, "lora.rank=4", "lora.alpha=0"), "lora.alpha must be > 0"),
    Row("lora-dropout-1", (*UNET, GOOD, "lora.rank=4", "lora.dropout=1"), "lora.dropout must be in [0, 1), got 1"),
    Row("lora-no-targets", (*UNET, GOOD, "lora.rank=4", "lora.targets=[]"), "nothing to adapt"),
    Row(
        "lora-target-unknown",
        (*UNET, GOOD, "lora.rank=4", "lora.targets=[nonexistent_layer]"),
        "LoRA target 'nonexistent_layer' matches no module",
    ),
    Row("vae-crop-0", (*VAE, GOOD, "crop_seconds=0"), "crop_seconds must be > 0, got 0"),
    Row("vae-loss", (*VAE, GOOD, "adversarial=true", "adversarial_loss=wasserstein"), "'wasserstein' is unknown"),
    Row("vae-fft-small", (*VAE, GOOD, "stft_fft_sizes=[8]"), "FFT sizes >= 16, got [8]"),
    Row("vae-window", (*VAE, GOOD, "data.window_seconds=1"), "data.window_seconds is not used by the VAE trainer"),
    Row("clap-tokenizer", (*CLAP, GOOD, "tokenizer={work}/nope"), "'{work}/nope'"),
    Row("clap-width", (*CLAP, GOOD, "text.hidden_size=8"), "hidden_size"),
]

CATALOGUE_ROWS = [
    Row("catalogue-missing", (*UNET, "data.catalogue={work}/nope"), "'{work}/nope'"),
    Row("catalogue-is-a-file", (*UNET, "data.catalogue={inputs}/afile.txt"), "afile.txt"),
    Row("catalogue-empty", (*UNET, "data.catalogue={inputs}/empty_dir"), "split of '{inputs}/empty_dir' has 0 files"),
    Row("catalogue-one-file", (*UNET, "data.catalogue={cat_one}"), "fewer than one global batch of 2"),
    Row("catalogue-only-valid", (*UNET, "data.catalogue={cat_only_valid}"), "fewer than one global batch of 2"),
    Row("catalogue-nan", (*UNET, "data.catalogue={cat_nan}"), "train: nan.wav (unreadable: non-finite samples"),
    Row("catalogue-inf-valid", (*UNET, "data.catalogue={cat_nan}"), "valid: inf.wav (unreadable: non-finite"),
    Row("catalogue-both-splits", (*UNET, "data.catalogue={cat_unreadable}"), "train: cut.wav (unreadable"),
    Row("catalogue-both-splits-2", (*UNET, "data.catalogue={cat_unreadable}"), "valid: junk.wav (unreadable"),
    Row("catalogue-hint", (*UNET, "data.catalogue={cat_unreadable}"), "set data.skip_unreadable=true"),
    Row("catalogue-bad-metadata", (*UNET, "data.catalogue={cat_bad_metadata}"), "metadata.csv"),
    Row("vae-catalogue-nan", (*VAE, "data.catalogue={cat_nan}"), "nan.wav (unreadable: non-finite samples"),
    Row("vae-catalogue-empty", (*VAE, "data.catalogue={inputs}/empty_dir"), "empty_dir"),
    Row("clap-catalogue-nan", (*CLAP, "data.catalogue={cat_nan}"), "nan.wav (unreadable: non-finite samples"),
    Row("clap-no-captions", (*CLAP, "data.catalogue={cat_uncaptioned}"), "usable captioned files"),
]

RESUME_ROWS = [
    Row("resume-no-run", (*UNET, GOOD, "run.output_dir={work}/other", "--resume"), "holds no checkpoint"),
    Row("resume-other-kind", (*VAE, GOOD, "--resume"), "is a 'unet' run, not 'vae'"),
    Row("new-run-over-checkpoints", (*UNET, GOOD), "already holds checkpoints; pass --resume"),
    Row("resume-changed", (*UNET, GOOD, "run.max_steps=5", "--resume"), "run.max_steps: 2 -> 5"),
    Row("resume-changed-lr", (*UNET, GOOD, "optim.lr=0.5", "--resume"), "Pass --allow-config-change to resume anyway"),
]


def catalogue(root: Path, files: dict) -> Path:
    root.mkdir(parents=True)
    for name, write in files.items():
        write(root / name)
    return root


@pytest.fixture(scope="session")
def catalogues(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("catalogues")

    def tone(split="train", caption="a tone"):
        return lambda path: write_tone(path, 0.4, caption=caption, split=split)

    def cut(path):
        tone()(path)
        path.write_bytes(path.read_bytes()[:200])

    def junk(path):
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        path.with_suffix(".json").write_text(json.dumps({"caption": "junk", "split": "valid"}))

    def bad(value, split):
        return lambda path: write_bad_samples(path, value, split=split)

    good = {f"t{i}.wav": tone() for i in range(4)} | {"v0.wav": tone("valid")}
    cats = {
        "good": good,
        "one": {"t0.wav": tone(), "v0.wav": tone("valid")},
        "only_valid": {f"v{i}.wav": tone("valid") for i in range(3)},
        "nan": {**good, "nan.wav": bad(np.nan, "train"), "inf.wav": bad(np.inf, "valid")},
        "unreadable": {**good, "cut.wav": cut, "junk.wav": junk},
        "uncaptioned": {f"t{i}.wav": tone(caption=None) for i in range(4)},
    }
    out = {name: catalogue(base / name, files) for name, files in cats.items()}
    out["bad_metadata"] = catalogue(base / "bad_metadata", {"a.wav": lambda p: sf.write(str(p), np.zeros(800), SR)})
    (out["bad_metadata"] / "metadata.csv").write_text("file,text\na.wav,hello\n")
    return out


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runfiles")
    for name, text in RUN_FILES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def train_places(places, catalogues, runs) -> dict:
    return {**places, "runs": runs, **{f"cat_{name}": path for name, path in catalogues.items()}}


def check(row: Row, places: dict, capsys, caplog) -> None:
    result = run_cli(fill(row.args, places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**places), row.code, row.stream), result, "train")


@pytest.mark.parametrize("row", params(CONFIG_ROWS + CATALOGUE_ROWS))
def test_train_refuses_before_writing_a_run_folder(row, train_places, unchanged, capsys, caplog):
    check(row, train_places, capsys, caplog)


@pytest.fixture
def run_copy(finished_run, work) -> Path:
    shutil.copytree(finished_run, work / "run")
    return work / "run"


@pytest.mark.parametrize("row", params(RESUME_ROWS))
def test_resume_refuses_and_leaves_the_run_as_it_was(row, train_places, run_copy, unchanged, capsys, caplog):
    original = (run_copy / "config.yaml").read_text()
    check(row, train_places, capsys, caplog)
    assert (run_copy / "config.yaml").read_text() == original
