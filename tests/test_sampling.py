import argparse

import pytest

from stable_audio_kit.sampling import (
    DEFAULT_UNET,
    PIPELINE_UNETS,
    TAIL_SECONDS,
    UNETS,
    SamplingSettings,
    add_arguments,
    check_tail_seconds,
    check_unet_name,
    choose_unet,
    holds_student,
)


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return SamplingSettings.from_args(parser.parse_args(list(argv)))


def test_defaults_and_arguments():
    assert parse() == SamplingSettings(None, None, None, "auto", None, "auto")  # steps None: the model's own
    assert parse().call_options()["num_inference_steps"] is None
    assert parse("--unet", "distilled").unet == "distilled" and parse("--unet", "base").unet == "base"
    assert DEFAULT_UNET == "auto" and UNETS == ("auto", "base", "distilled") and PIPELINE_UNETS == ("base", "distilled")
    assert SamplingSettings().unet == "base"  # the Python API's default: the model's own U-Net
    assert check_unet_name("distilled") == "distilled" and check_unet_name("auto") == "auto"
    with pytest.raises(ValueError, match="unet must be one of base, distilled, got 'auto'"):
        check_unet_name("auto", PIPELINE_UNETS)
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
        (SamplingSettings(unet="fast"), "unet must be one of auto, base, distilled, got 'fast'"),
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


# Each option a request may set that only the model's own U-Net samples with: auto turns to it.
BASE_ONLY = {
    "steps": 8,  # even the student's own count: an explicit --steps asks for the base U-Net's sampler
    "scheduler": "unipc",
    "guidance_scale": 7.0,  # even the student's own guidance
    "negative_prompt": "hiss",
    "lora": [("adapter", 1.0)],
}


def test_auto_is_the_student_only_for_a_request_that_sets_nothing_only_the_base_does():
    assert choose_unet("auto", True) == "distilled"
    assert choose_unet("auto", False) == "base"  # no unet_distilled/
    unset = dict(steps=None, scheduler=None, guidance_scale=None, negative_prompt=None, lora=None)
    assert choose_unet("auto", True, **unset) == "distilled"
    assert choose_unet("auto", True, negative_prompt=[], lora=[], scheduler="") == "distilled"  # empty: not set
    for name, value in BASE_ONLY.items():
        assert choose_unet("auto", True, **{name: value}) == "base", name
        assert choose_unet("auto", False, **{name: value}) == "base", name
    assert choose_unet("auto", True, guidance_scale=0.0) == "base"  # a number is set, 0 too
    assert choose_unet("auto", True, negative_prompt=["hiss"]) == "base"  # the negatives of a prompt list


@pytest.mark.parametrize("unet", PIPELINE_UNETS)
@pytest.mark.parametrize("has_student", [True, False])
def test_an_explicit_unet_is_returned_as_is(unet, has_student):
    """`--unet distilled --cfg 3` stays the student, so its refusal is the clear message; base stays base."""
    assert choose_unet(unet, has_student) == unet
    assert choose_unet(unet, has_student, **BASE_ONLY) == unet


def test_choose_unet_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="unet must be one of auto, base, distilled, got 'fast'"):
        choose_unet("fast", True)


def test_holds_student_looks_for_the_students_config(tmp_path, distilled_model_dir, tiny_model_dir):
    assert holds_student(distilled_model_dir) and holds_student(str(distilled_model_dir))
    assert not holds_student(tiny_model_dir) and not holds_student(tmp_path / "nowhere")
    (tmp_path / "unet_distilled").mkdir()  # a folder without a config is no student
    assert not holds_student(tmp_path)


def test_unet_help_explains_auto(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser, base_only=("--steps", "--cfg"))
    parser.print_help()
    text = " ".join(capsys.readouterr().out.split())
    assert "auto (default), the student if the model has one and none of --steps, --cfg is given" in text
