"""A new conditioning input is one class and a config entry.

This file defines an input the package does not have, "brightness", builds a tiny model with it through
the model config, trains it a few steps, samples it with and without an override, extends a model that
lacks it, and lists it in ``sak info``, all without touching a package file. docs/conditioning.md walks
through the same class.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState, GradientState

from stable_audio_kit import StableAudioKitPipeline, build_pipeline
from stable_audio_kit.cli import main
from stable_audio_kit.conditioning import Conditioner, ConditioningRequest, ModelFacts, register_conditioner
from stable_audio_kit.config import ModelConfig, load_config
from stable_audio_kit.train import unet as trainer
from stable_audio_kit.train.common import load_run_config
from stable_audio_kit.train.config import UNetTrainConfig

ROOT = Path(__file__).resolve().parents[2]
BRIGHTNESS_WORDS = {"bright": 1.0, "brilliant": 1.0, "dark": -1.0, "muffled": -1.0}


@register_conditioner
class Brightness(Conditioner):
    """How bright the prompt asks the sound to be: "bright" 1, "dark" -1, or ``brightness=`` in [-1, 1], as
    two FiLM features (the value, and 1 if one was asked for); zeros when the prompt says nothing."""

    name = "brightness"
    placement = "film"
    size = 2
    override = "brightness"
    description = "brightness (bright/dark, or brightness=)"

    @classmethod
    def check_override(cls, value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
            raise ValueError(f"brightness must be a number in [-1, 1], got {value!r}")
        return float(value)

    def features(self, request: ConditioningRequest, model: ModelFacts, device) -> torch.Tensor:
        given = request.overrides.get("brightness")
        rows = []
        for prompt in request.prompts:
            words = [BRIGHTNESS_WORDS[w] for w in re.findall(r"[a-z]+", prompt.text.lower()) if w in BRIGHTNESS_WORDS]
            value = given if given is not None else (words[0] if words else None)
            rows.append([0.0, 0.0] if value is None else [value, 1.0])
        return torch.tensor(rows, dtype=torch.float32, device=device)


def write_catalogue(root: Path) -> Path:
    root.mkdir(parents=True)
    sr = 8000
    for i, (caption, freq) in enumerate([("a bright tone", 900), ("a dark tone", 200), ("a tone", 500)] * 2):
        t = np.arange(round(0.4 * sr)) / sr
        sf.write(root / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
        split = "valid" if i == 5 else "train"
        (root / f"tone{i}.json").write_text(json.dumps({"caption": caption, "split": split}))
    return root


@pytest.fixture(scope="module")
def bright_model(tmp_path_factory) -> Path:
    cfg = load_config(ModelConfig, ROOT / "configs" / "tiny.yaml", ["conditioning.film=[brightness]"])
    path = tmp_path_factory.mktemp("bright") / "model"
    build_pipeline(cfg).save_pretrained(path)
    return path


def generate(pipe, prompt="a bright tone", **kwargs):
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt, seconds_total=0.4, num_inference_steps=3, generator=torch.Generator().manual_seed(0), **kwargs
    ).audios


def test_a_model_built_with_the_new_input_has_it(bright_model):
    pipe = StableAudioKitPipeline.from_pretrained(bright_model)
    assert pipe.projection.routes["film"] == ["brightness"] and pipe.unet.film_dim == 2
    request = pipe.make_request(["a BRIGHT pad", "a dark drone", "a pad"], 0.0, 0.4)
    features = pipe.projection.features(request, pipe.model_facts)
    assert features["brightness"].tolist() == [[1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="brightness must be a number in"):
        generate(pipe, overrides={"brightness": 3})
    with pytest.raises(ValueError, match="unknown conditioning override 'loudness'"):
        generate(pipe, overrides={"loudness": 3})


def test_the_new_input_trains_and_samples(bright_model, tmp_path, capsys):
    """A few training steps move its zero-initialised FiLM weights; then the prompt's word and the override
    change what the model samples, and CFG dropout gave the dropped rows its null form."""
    catalogue = write_catalogue(tmp_path / "audio")
    cfg = load_run_config(
        UNetTrainConfig,
        ROOT / "configs" / "train" / "tiny_unet.yaml",
        [
            f"model={bright_model}",
            f"data.catalogue={catalogue}",
            f"run.output_dir={tmp_path / 'run'}",
            "data.window_seconds=0.25",
            "run.max_steps=4",
            "run.checkpoint_every=4",
            "run.valid_every=1000",
            "run.tensorboard=false",
            "cfg_dropout=0.5",
            "optim.lr=1e-2",
        ],
    )
    seen = []
    original = trainer.ConditionedDenoiser.forward

    def forward(self, noisy, timesteps, features, drop):
        hook = self.unet.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append((drop.clone(), kwargs["film_inputs"])), with_kwargs=True
        )
        try:
            return original(self, noisy, timesteps, features, drop)
        finally:
            hook.remove()

    trainer.ConditionedDenoiser.forward = forward
    try:
        trainer.train(cfg)
    finally:
        trainer.ConditionedDenoiser.forward = original
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    assert any(drop.any() for drop, _ in seen) and any((~drop).any() for drop, _ in seen)
    for drop, film in seen:
        assert (film[drop] == 0).all()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    trained = StableAudioKitPipeline.from_pretrained(tmp_path / "out")
    assert trained.unet.film_embedding.weight.abs().max() > 0
    bright = generate(trained)
    assert bright.shape == (1, 1, round(0.4 * trained.sample_rate))
    assert not np.allclose(bright, generate(trained, "a dark tone"))
    assert not np.allclose(bright, generate(trained, overrides={"brightness": -1.0}))
    assert main(["info", str(tmp_path / "out")]) == 0
    assert "brightness (bright/dark, or brightness=)" in capsys.readouterr().out


def test_sak_extend_adds_the_new_input_at_zero(tiny_model_dir, tmp_path):
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "ext"), "--input", "brightness"]) == 0
    old = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    new = StableAudioKitPipeline.from_pretrained(tmp_path / "ext")
    assert new.projection.routes["film"] == ["brightness"]
    np.testing.assert_allclose(generate(new), generate(old), rtol=0, atol=1e-5)


def test_sak_generate_sets_the_new_input(bright_model, tmp_path, capsys):
    out = tmp_path / "bright.wav"
    args = ["generate", "a tone", "--model", str(bright_model), "--seconds", "0.3", "--steps", "2", "-o", str(out)]
    assert main([*args, "--set", "brightness=0.5"]) == 0 and out.is_file()
    assert main([*args, "--set", "brightness=7"]) == 2
    assert "brightness must be a number in [-1, 1], got 7.0" in capsys.readouterr().err
    assert main([*args, "--set", "loudness=1"]) == 2
    assert "unknown conditioning override 'loudness'" in capsys.readouterr().err
    assert main([*args, "--set", "nonsense"]) == 2
    assert "--set takes NAME=VALUE, got 'nonsense'" in capsys.readouterr().err
