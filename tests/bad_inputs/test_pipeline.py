"""The Python pipeline: ``StableAudioKitPipeline(...)`` arguments and ``from_pretrained`` of damaged folders."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from stable_audio_kit.pipeline import StableAudioKitPipeline

from .conftest import Row, params

WINDOW = (1, 4, 250)  # the tiny model's latents: (batch, latent channels, frames)


def nan_latents():
    return torch.full(WINDOW, float("nan"))


def inf_latents():
    latents = torch.zeros(WINDOW)
    latents[0, 1, 5] = float("inf")
    return latents


CALLS = [
    Row(
        "prompt-none", {"prompt": None}, "prompt must be a string or a non-empty list of strings, got None", ValueError
    ),
    Row("prompt-number", {"prompt": 5}, "got 5", ValueError),
    Row("prompt-empty-list", {"prompt": []}, "got []", ValueError),
    Row("prompt-list-with-number", {"prompt": ["a", 3]}, "an item 3 of type int", ValueError),
    Row("prompt-bytes", {"prompt": b"a piano"}, "b'a piano'", ValueError),
    Row("negative-number", {"negative_prompt": 5}, "negative_prompt must be a string or a list", ValueError),
    Row("negative-count", {"negative_prompt": ["a", "b"]}, "negative_prompt has 2 items for 1 prompts", ValueError),
    Row("seconds-total-0", {"seconds_total": 0}, "seconds_total must be in (0, 1.000], got 0", ValueError),
    Row("seconds-total-negative", {"seconds_total": -1.0}, "got -1.0", ValueError),
    Row("seconds-total-nan", {"seconds_total": float("nan")}, "seconds_total must be finite, got nan", ValueError),
    Row("seconds-total-string", {"seconds_total": "0.5"}, "seconds_total must be a number, got '0.5'", ValueError),
    Row("seconds-total-below-one-sample", {"seconds_total": 1e-9}, "shorter than one sample", ValueError),
    Row("seconds-start-negative", {"seconds_start": -0.5}, "seconds_start must be >= 0, got -0.5", ValueError),
    Row("seconds-start-nan", {"seconds_start": float("nan")}, "seconds_start must be finite, got nan", ValueError),
    Row("seconds-start-inf", {"seconds_start": float("inf")}, "seconds_start must be finite, got inf", ValueError),
    Row(
        "seconds-start-after-total",
        {"seconds_start": 2.0, "seconds_total": 0.5},
        "seconds_start must be below seconds_total (0.5)",
        ValueError,
    ),
    Row("seconds-start-string", {"seconds_start": "1"}, "seconds_start must be a number, got '1'", ValueError),
    Row("steps-0", {"num_inference_steps": 0}, "num_inference_steps must be >= 1, got 0", ValueError),
    Row(
        "steps-float", {"num_inference_steps": 2.5}, "num_inference_steps must be an integer >= 1, got 2.5", ValueError
    ),
    Row("steps-bool", {"num_inference_steps": True}, "got True", ValueError),
    Row("waveforms-0", {"num_waveforms_per_prompt": 0}, "num_waveforms_per_prompt must be >= 1, got 0", ValueError),
    Row("cfg-nan", {"guidance_scale": float("nan")}, "guidance_scale must be finite, got nan", ValueError),
    Row("cfg-string", {"guidance_scale": "7"}, "guidance_scale must be a number, got '7'", ValueError),
    Row("output-type", {"output_type": "wav"}, "output_type must be 'np', 'pt' or 'latent', got 'wav'", ValueError),
    Row(
        "latents-shape",
        {"latents": torch.zeros(1, 4, 7)},
        "latents must be a tensor of shape (1, 4, frames) with frames from 63 (the requested audio) to 250 (the "
        "window), got (1, 4, 7)",
        ValueError,
    ),
    Row("latents-list", {"latents": [[0.0]]}, "got list", ValueError),
    Row("latents-nan", {"latents": nan_latents()}, "latents hold 1000 NaN or infinite values", ValueError),
    Row("latents-inf", {"latents": inf_latents()}, "latents hold 1 NaN or infinite values", ValueError),
    Row("callback-input", {"callback_on_step_end_tensor_inputs": ["prompt_embeds"]}, "'prompt_embeds'", ValueError),
    Row("generators-count", {"generator": [torch.Generator()] * 3}, "got 3 generators for a batch of 1", ValueError),
    Row("bpm-negative", {"bpm": -1}, "bpm must be a finite number > 0, got -1", ValueError),
    Row("bpm-nan", {"bpm": float("nan")}, "bpm must be a finite number > 0, got nan", ValueError),
    Row("bpm-model-without-grid", {"bpm": 120}, "bpm", ValueError),
    Row("key-unknown", {"key": "H major"}, "'H major'", ValueError),
    Row("key-model-without-key", {"key": "C major"}, "key", ValueError),
    Row("override-unknown", {"overrides": {"colour": "red"}}, "'colour'", ValueError),
    # Workflows: audio-to-audio, inpainting, loops.
    Row("strength-without-init", {"strength": 0.5}, "strength=0.5 given without init_audio", ValueError),
    Row("init-and-inpaint", {"init_audio": np.zeros(800), "inpaint_audio": np.zeros(800)}, "not both", ValueError),
    Row("regions-without-inpaint", {"regions": [(0.1, 0.2)]}, "regions given without inpaint_audio", ValueError),
    Row("loop-not-bool", {"loop": "yes"}, "loop must be True or False, got 'yes'", ValueError),
    Row(
        "loop-with-init", {"loop": True, "init_audio": np.zeros(800)}, "cannot be combined with input audio", ValueError
    ),
    Row("rate-without-audio", {"input_sample_rate": 8000}, "input_sample_rate given without", ValueError),
    Row(
        "init-audio-missing-file",
        {"init_audio": "/nonexistent/in.wav"},
        "'/nonexistent/in.wav' does not exist",
        ValueError,
    ),
    Row("init-audio-nan", {"init_audio": np.full(800, np.nan, dtype=np.float32)}, "init_audio", ValueError),
    Row("init-audio-empty", {"init_audio": np.zeros(0, dtype=np.float32)}, "init_audio", ValueError),
    Row("init-latents", {"init_audio": np.zeros(800), "latents": torch.zeros(WINDOW)}, "latents=", ValueError),
    Row("overlap-without-longform", {"overlap_seconds": 0.1}, "overlap_seconds applies to long-form", ValueError),
]


def call(pipe, row: Row):
    kwargs = {"prompt": "a calm piano melody", "num_inference_steps": 2, "seconds_total": 0.25, **row.args}
    return pipe(**kwargs)


@pytest.mark.parametrize("row", params(CALLS))
def test_pipeline_refuses(tiny_pipeline, row):
    with pytest.raises(row.code) as caught:
        call(tiny_pipeline, row)
    assert row.fragment in str(caught.value)


def test_a_prompt_beyond_the_tokenizer_limit_is_truncated_with_a_warning(tiny_pipeline, caplog):
    limit = tiny_pipeline.text_encoder.config.max_position_embeddings - 2
    prompt = "a calm piano melody with soft strings and a slow warm bass line " * 3
    with caplog.at_level(logging.WARNING):
        tiny_pipeline(prompt, num_inference_steps=1, seconds_total=0.25)
        tiny_pipeline(prompt, num_inference_steps=1, seconds_total=0.25)
    warnings = [r.getMessage() for r in caplog.records if "tokens long" in r.getMessage()]
    assert len(warnings) == 1, "once per prompt"
    assert prompt[:40] in warnings[0] and f"limit of {limit}" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tiny_pipeline("a calm piano", num_inference_steps=1, seconds_total=0.25)
    assert "tokens long" not in caplog.text, "a prompt within the limit is not warned about"


LOADS = [
    Row("missing", {"path": "{work}/nope"}, "model directory '{work}/nope' does not exist", ValueError),
    Row("empty-folder", {"path": "{inputs}/empty_dir"}, "model_index.json is missing", ValueError),
    Row("truncated-weights", {"path": "{m_truncated_unet}"}, "is truncated", ValueError),
    Row("zeroed-weights", {"path": "{m_zeroed_vae}"}, "is zeroed", ValueError),
    Row("garbage-header", {"path": "{m_garbage_projection}"}, "header is not JSON", ValueError),
    Row("missing-component", {"path": "{m_missing_unet}"}, "missing component(s): unet", ValueError),
    Row("bad-index", {"path": "{m_bad_index_json}"}, "is not valid JSON", ValueError),
    Row("bad-tokenizer", {"path": "{m_bad_tokenizer_json}"}, "tokenizer.json' is not valid JSON", ValueError),
    Row("mismatched-latents", {"path": "{m_mismatched_latents}"}, "unet.in_channels=7", ValueError),
]


@pytest.mark.parametrize("row", params(LOADS))
def test_from_pretrained_refuses(row, places, unchanged):
    path = row.args["path"].format(**places)
    with pytest.raises(row.code) as caught:
        StableAudioKitPipeline.from_pretrained(path)
    assert row.fragment.format(**places) in str(caught.value)
