import argparse

import pytest

from stable_audio_kit.sampling import DEFAULT_STEPS, TAIL_SECONDS, SamplingSettings, add_arguments, check_tail_seconds


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return SamplingSettings.from_args(parser.parse_args(list(argv)))


def test_defaults_and_arguments():
    assert parse() == SamplingSettings(DEFAULT_STEPS, None, None, "auto", None)
    settings = parse("--steps", "12", "--scheduler", "unipc", "--tail", "0.5", "--precision", "fp32")
    assert settings.call_options() == {"num_inference_steps": 12, "tail_seconds": 0.5, "precision": "fp32"}
    assert parse("--griffin-lim-iters", "8").griffin_lim_iters == 8
    assert check_tail_seconds(None) == TAIL_SECONDS and check_tail_seconds(0) == 0.0


@pytest.mark.parametrize(
    "settings, match",
    [
        (SamplingSettings(steps=0), "steps must be an integer >= 1, got 0"),
        (SamplingSettings(steps=2.5), "steps must be an integer >= 1, got 2.5"),
        (SamplingSettings(scheduler="fast"), "unknown scheduler 'fast'"),
        (SamplingSettings(tail_seconds=-1.0), "tail_seconds must be >= 0, got -1.0"),
        (SamplingSettings(tail_seconds=float("nan")), "tail_seconds must be finite"),
        (SamplingSettings(precision="fp16"), "precision must be one of auto, bf16, fp32, got 'fp16'"),
        (SamplingSettings(griffin_lim_iters=-2), "griffin_lim_iters must be an integer >= 0, got -2"),
    ],
)
def test_bad_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        settings.check()


def test_apply_sets_the_sampler_and_refuses_griffin_lim_without_a_spectral_decoder(tiny_pipeline):
    before = tiny_pipeline.scheduler
    try:
        SamplingSettings(scheduler="unipc").apply(tiny_pipeline)
        assert type(tiny_pipeline.scheduler).__name__ == "UniPCMultistepScheduler"
    finally:
        tiny_pipeline.scheduler = before
    with pytest.raises(ValueError, match=r"this model's VAE \(AudioVAE\) has no Griffin-Lim decoder"):
        SamplingSettings(griffin_lim_iters=8).apply(tiny_pipeline)
