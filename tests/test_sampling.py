import argparse

import pytest

from stable_audio_kit.sampling import (
    DEFAULT_UNET,
    TAIL_SECONDS,
    UNETS,
    SamplingSettings,
    add_arguments,
    check_tail_seconds,
    check_unet_name,
)


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return SamplingSettings.from_args(parser.parse_args(list(argv)))


def test_defaults_and_arguments():
    assert parse() == SamplingSettings(None, None, None, "auto", None, "base")  # steps None: the model's own
    assert parse().call_options()["num_inference_steps"] is None
    assert (
        parse("--unet", "distilled").unet == "distilled" and DEFAULT_UNET == "base" and UNETS == ("base", "distilled")
    )
    assert check_unet_name("distilled") == "distilled"
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
        (SamplingSettings(unet="fast"), "unet must be one of base, distilled, got 'fast'"),
        (
            SamplingSettings(unet="distilled", scheduler="unipc"),
            "scheduler 'unipc' cannot sample the distilled U-Net: it samples only with its own DDIM sampler",
        ),
    ],
)
def test_bad_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        settings.check()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--unet", "distilled", "--scheduler", "unipc"], "--scheduler 'unipc' cannot sample the distilled U-Net"),
        (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    ],
)
def test_a_message_names_the_option(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_an_unknown_unet_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse("--unet", "fast")
    assert "argument --unet: invalid choice: 'fast'" in capsys.readouterr().err


def test_apply_sets_the_sampler_and_refuses_griffin_lim_without_a_spectral_decoder(tiny_pipeline):
    before = tiny_pipeline.scheduler
    try:
        SamplingSettings(scheduler="unipc").apply(tiny_pipeline)
        assert type(tiny_pipeline.scheduler).__name__ == "UniPCMultistepScheduler"
    finally:
        tiny_pipeline.scheduler = before
    with pytest.raises(ValueError, match=r"this model's VAE \(AudioVAE\) has no Griffin-Lim decoder"):
        SamplingSettings(griffin_lim_iters=8).apply(tiny_pipeline)
