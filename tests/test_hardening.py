"""What a user meets around the edges: diffusers' generic loader, quiet progress and warnings, the checks of
outputs, devices, seeds and weights files, launcher mismatches and ``sak doctor``."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from stable_audio_kit.cli import main
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.utils import (
    SEED_MAX,
    check_device,
    check_safetensors,
    check_seed,
    check_writable,
    launcher_shortfall,
    launcher_warning,
)


def test_the_generic_diffusers_loader_loads_a_saved_pipeline(tiny_pipeline, tmp_path):
    """``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``: diffusers' custom-pipeline form, whose
    file in the folder is one import of the installed package."""
    from diffusers import DiffusionPipeline

    tiny_pipeline.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["_class_name"] == ["stable_audio_kit_pipeline", "StableAudioKitPipeline"]
    code = [line for line in (tmp_path / "model" / "stable_audio_kit_pipeline.py").read_text().splitlines()]
    assert [line for line in code if line and not line.startswith(('"""', "it imports"))] == [
        "from stable_audio_kit.pipeline import StableAudioKitPipeline  # noqa: F401"
    ]
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(tmp_path / "model")
    generic = DiffusionPipeline.from_pretrained(tmp_path / "model", trust_remote_code=True)
    own = StableAudioKitPipeline.from_pretrained(tmp_path / "model")
    assert type(generic) is StableAudioKitPipeline
    for pipe in (generic, own):
        pipe.set_progress_bar_config(disable=True)
    a, b = (
        p("a piano", num_inference_steps=2, seconds_total=0.25, generator=torch.Generator().manual_seed(0)).audios
        for p in (generic, own)
    )
    np.testing.assert_array_equal(a, b)
    # Saved again by either, the folder loads again by both.
    generic.save_pretrained(tmp_path / "again")
    assert type(DiffusionPipeline.from_pretrained(tmp_path / "again", trust_remote_code=True)) is StableAudioKitPipeline


def test_the_bundled_model_loads_through_the_generic_loader_too():
    from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR

    assert (DEFAULT_MODEL_DIR / "stable_audio_kit_pipeline.py").is_file()
    assert (
        json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())["_class_name"][0]
        == "stable_audio_kit_pipeline"
    )


def test_casting_to_float32_prints_no_empty_keep_in_float32_warning(tiny_pipeline, caplog):
    with caplog.at_level(logging.WARNING):
        tiny_pipeline.to(torch.float32)
    assert "kept in float32" not in caplog.text
    # A warning that names modules still shows.
    logging.getLogger("diffusers.models.modeling_utils").warning("should be kept in float32: ['norm'].")
    assert "['norm']" in caplog.text


def test_building_the_oobleck_vae_warns_nothing(tiny_config):
    from stable_audio_kit.vae import build_vae

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        build_vae(tiny_config)


def test_check_writable_tries_the_folder(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "out.wav") == tmp_path / "new" / "deeper" / "out.wav"
    assert list(tmp_path.iterdir()) == [], "the probe file is removed and no folder is made"
    for path in ("/proc/out.wav", "/sys/out.wav"):
        with pytest.raises(ValueError, match="cannot be written"):
            check_writable(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        check_writable(tmp_path / "file" / "out.wav")
    with pytest.raises(ValueError, match="is a directory"):
        check_writable(tmp_path)


def test_check_seed_takes_what_torch_generator_takes():
    for seed in (0, 1, 2**63, SEED_MAX, "17", 5.0):
        torch.Generator().manual_seed(check_seed(seed))
    for bad in (-1, SEED_MAX + 1, 1.5, "x", True, None):
        with pytest.raises(ValueError, match="seed"):
            check_seed(bad)


def test_check_device():
    assert check_device(None) is None and check_device("cpu") == "cpu"
    for bad, message in (("gpu", "unknown device"), ("cuda:x", "unknown device"), ("cpu:", "unknown device")):
        with pytest.raises(ValueError, match=message):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1' is not available"):
            check_device("cuda:1")


def test_check_safetensors_finds_cut_and_zeroed_files(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(10), "b": torch.zeros(3, 3)}, str(path))
    check_safetensors(path)
    whole = path.read_bytes()
    for damaged, message in (
        (whole[:-4], "truncated or corrupt"),
        (whole[:6], "truncated"),
        (bytes(len(whole)), "zeroed"),
        (whole + b"\0" * 8, "truncated or corrupt"),
    ):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=message):
            check_safetensors(path)


def test_a_launcher_that_started_fewer_processes_is_named(monkeypatch):
    launch = ["/venv/bin/python", "/venv/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "x"]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert launcher_shortfall(launch) is None, "not under accelerate launch"
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert launcher_shortfall(launch) == (2, 1)
    assert launcher_shortfall([*launch[:4], "--num_processes=3"]) == (3, 1)
    assert "asked for 2 processes but started 1" in launcher_warning(launch)
    assert launcher_shortfall([*launch[:4], "--num_processes", "1"]) is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launcher_shortfall(launch) is None, "torchrun-style launches start them all"


def test_generate_shows_one_labelled_progress_bar(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out.wav"
    args = ["generate", "a piano", "--model", str(tiny_model_dir), "--seconds", "0.25", "--steps", "3", "-o", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "sampling:" in err and "3/3" in err
    assert "Loading pipeline components" not in err and "Loading weights" not in err


def test_errors_of_every_command_share_one_prefix(tmp_path, capsys):
    cases = {
        ("data", "check", str(tmp_path / "nope")): "sak data check: error: ",
        ("info", str(tmp_path / "nope")): "sak info: error: ",
        ("generate", "x", "--bogus"): "sak generate: error: unrecognized arguments: --bogus",
        ("export", str(tmp_path), str(tmp_path / "o")): "sak export: error: ",
    }
    for argv, prefix in cases.items():
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and len(err.strip().splitlines()) == 1, err


def test_doctor_names_versions_device_threads_and_the_bundled_model(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for line in (
        "torch ",
        "diffusers ",
        "transformers ",
        "accelerate ",
        "device ",
        "threads ",
        "precision        auto = ",
        "FluidSynth ",
        "SoundFont ",
        "bundled model    loads in",
        "import time ",
    ):
        assert line in out, line
    assert f"of {os.cpu_count()} CPU core(s)" in out


def test_loader_file_is_documented():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "trust_remote_code=True" in readme and "stable_audio_kit_pipeline.py" in readme
