"""Shared fixtures: a tiny untrained pipeline built from configs/tiny.yaml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from stable_audio_kit import server

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"

# The test models are tiny: one thread avoids thread start-up and contention costs.
torch.set_num_threads(1)

# A developer's running `sak serve` must not answer the suite's `sak generate` calls (tests/test_server.py
# starts its own servers on its own sockets).
os.environ[server.NO_SERVER_ENV] = "1"


@pytest.fixture(scope="session")
def tiny_config():
    from stable_audio_kit.config import ModelConfig, load_config

    return load_config(ModelConfig, TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_config):
    from stable_audio_kit import build_pipeline

    pipe = build_pipeline(tiny_config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipeline, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_model") / "model"
    tiny_pipeline.save_pretrained(path)
    return path
