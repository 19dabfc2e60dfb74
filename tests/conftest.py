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


@pytest.fixture(scope="session")
def tiny_student(tiny_pipeline):
    """A distilled student of the tiny U-Net: its weights, with a student's config (4 DDIM steps, guidance 7 baked
    in). Untrained as a student, but it samples as one: what the pipeline does with a student is under test."""
    from stable_audio_kit import UNet1DConditionModel

    unet = tiny_pipeline.unet
    # Without `_use_default_values`: from_config would put the defaults (None) back for the keys it lists.
    config = {k: v for k, v in unet.config.items() if k != "_use_default_values"}
    student = UNet1DConditionModel.from_config({**config, "distilled_steps": 4, "distilled_guidance_scale": 7.0})
    student.load_state_dict(unet.state_dict())
    assert student.config.distilled_steps == 4
    return student.eval()


@pytest.fixture(scope="session")
def distilled_model_dir(tiny_pipeline, tiny_student, tmp_path_factory) -> Path:
    """The tiny model with its student in ``unet_distilled/``, as ``sak export`` of a distillation run writes it:
    its ``teacher.json`` names the tiny U-Net."""
    from stable_audio_kit.students import write_teacher_record
    from stable_audio_kit.distillation import DISTILLED_SUBFOLDER
    from stable_audio_kit.lora import weights_sha256

    path = tmp_path_factory.mktemp("distilled_model") / "model"
    tiny_pipeline.save_pretrained(path)
    tiny_student.save_pretrained(path / DISTILLED_SUBFOLDER)
    write_teacher_record(path / DISTILLED_SUBFOLDER, path / "unet", weights_sha256(tiny_pipeline.unet))
    return path


@pytest.fixture(scope="session")
def stale_student_dir(distilled_model_dir, tmp_path_factory) -> Path:
    """The distilled tiny model after its ``unet/`` was replaced (one weight changed, saved again): its student
    was distilled from other weights than ``unet/`` holds."""
    import shutil

    from stable_audio_kit import UNet1DConditionModel

    path = tmp_path_factory.mktemp("stale_student") / "model"
    shutil.copytree(distilled_model_dir, path)
    unet = UNet1DConditionModel.from_pretrained(path / "unet")
    with torch.no_grad():
        next(unet.parameters()).add_(0.01)
    unet.save_pretrained(path / "unet")
    return path
