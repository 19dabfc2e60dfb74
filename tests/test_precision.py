from contextlib import nullcontext

import numpy as np
import pytest
import torch

from stable_audio_kit.precision import PRECISIONS, autocast, check_precision, native_bf16, resolve_precision


def test_names_are_checked():
    assert [check_precision(name) for name in PRECISIONS] == list(PRECISIONS)
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        check_precision("fp16")


def test_auto_follows_the_hardware():
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert resolve_precision("auto", "mps") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not native_bf16("cpu") and resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16("cpu") and resolve_precision("auto", "cpu") == "bf16"


def test_contexts():
    session, step = autocast("fp32", "cpu")
    assert isinstance(session, nullcontext) and isinstance(step, nullcontext)
    session, step = autocast("bf16", "cpu")
    weight = torch.randn(8, 8, requires_grad=True)
    with session:
        with step:
            out = torch.nn.functional.linear(torch.randn(2, 8), weight)
        plain = torch.nn.functional.linear(torch.randn(2, 8), weight)
    assert out.dtype == torch.bfloat16 and plain.dtype == torch.float32  # only the step runs in bf16


def run(pipe, precision, **kwargs):
    kwargs.setdefault("seconds_total", 0.5)
    return pipe(
        "a calm piano melody",
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
        precision=precision,
        **kwargs,
    ).audios


def test_bf16_stays_close_to_fp32_and_keeps_float32_output(tiny_pipeline):
    fp32, bf16 = run(tiny_pipeline, "fp32"), run(tiny_pipeline, "bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert not np.array_equal(bf16, fp32)
    assert np.linalg.norm(bf16 - fp32) <= 0.1 * np.linalg.norm(fp32)
    np.testing.assert_array_equal(run(tiny_pipeline, "fp32"), fp32)
    latents = run(tiny_pipeline, "bf16", output_type="latent")
    assert latents.dtype == torch.float32


def test_unknown_precision_is_refused_before_work(tiny_pipeline):
    def boom(*args, **kwargs):
        raise AssertionError("the U-Net ran")

    original = tiny_pipeline.unet.forward
    tiny_pipeline.unet.forward = boom
    try:
        with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'half'"):
            run(tiny_pipeline, "half")
        with pytest.raises(ValueError, match="precision must be one of"):
            run(tiny_pipeline, "half", seconds_total=3.0)  # long-form checks it too
    finally:
        tiny_pipeline.unet.forward = original
