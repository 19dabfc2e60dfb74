"""The page's layer under Gradio, without a browser: each result is the ``sak`` command its sidecar names, sample
for sample; results persist and list again after a restart; requests are refused with the library's messages;
``sak ui`` is local by default and says how to install Gradio when it is missing."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.cli import main
from stable_audio_kit.ui.history import ResultStore, Settings, result_stem
from stable_audio_kit.ui.studio import Cancelled, Studio


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from stable_audio_kit import StableAudioKitPipeline

    return StableAudioKitPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture
def studio(pipe, tiny_model_dir, tmp_path):
    return Studio(pipe, ResultStore(tmp_path / "outputs"), str(tiny_model_dir))


def tone(path: Path, seconds: float, rate: int = 8000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate)
    return path


CASES = {
    "text": dict(prompt="a short test tone", seconds=0.4, cfg=3.0, negative="hiss", loudness=-20.0),
    "loop with bars": dict(prompt="a loop at 240 bpm", bars=1, loop=True, normalize=False),
    "long-form": dict(prompt="a long test tone", seconds=1.6, scheduler="euler"),
    "audio to audio": dict(prompt="brighter", mode="audio to audio", strength=0.5),
    "inpaint": dict(prompt="a new middle", mode="inpaint", regions=[(0.2, 0.4)]),
    "continue": dict(prompt="and then", mode="continue", seconds=0.9),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_result_is_the_sak_command_its_sidecar_names(case, studio, tmp_path):
    values = dict(CASES[case], steps=3, seed=11)
    if values.get("mode"):
        values["input_audio"] = studio.store.keep_input(tone(tmp_path / "in.wav", 0.6))
    result = studio.run(studio.plan(Settings(**values)))

    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["command"] == result.command and Settings.from_dict(sidecar["settings"]) == result.settings
    argv = shlex.split(result.command)
    assert argv[0] == "sak" and argv[-2:] == ["-o", f"{result_stem(values['prompt'], 11)}.wav"]
    out = tmp_path / "cli.wav"
    assert main([*argv[1:-1], str(out)]) == 0
    page, _ = sf.read(result.wav, dtype="float32")
    cli, _ = sf.read(out, dtype="float32")
    np.testing.assert_array_equal(page, cli)
    assert sf.info(result.flac).frames == result.samples == page.shape[0]
    assert result.picture.stat().st_size > 0


def test_variations_take_the_next_seeds_and_report_every_step(studio):
    plans = studio.variations(Settings(prompt="three", seconds=0.25, steps=2, seed=40), 3)
    assert [p.settings.seed for p in plans] == [40, 41, 42]
    steps = []
    results = [studio.run(plan, on_step=steps.append) for plan in plans]
    assert steps == [2] * 6
    assert [r.wav.name for r in results] == [f"three_seed{s}.wav" for s in (40, 41, 42)]
    assert [r.id for r in studio.store.list()] == ["0003", "0002", "0001"]


def test_a_long_form_job_reports_the_steps_of_every_window(studio):
    plan = studio.plan(Settings(prompt="long", seconds=2.5, steps=2))
    steps = []
    result = studio.run(plan, on_step=steps.append)
    assert plan.windows == 3 and steps == [2] * 6 and result.samples == 20000


def test_a_cancelled_job_stops_and_writes_nothing(studio):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        studio.run(studio.plan(Settings(prompt="stop", seconds=0.25, steps=5)), cancel=cancel)
    assert studio.store.list() == []
    assert studio.run(studio.plan(Settings(prompt="go on", seconds=0.25, steps=2))).samples == 2000


def test_results_persist_and_a_half_written_one_is_never_listed(studio, tmp_path):
    kept = studio.run(studio.plan(Settings(prompt="kept", seconds=0.25, steps=2, seed=3)))
    (studio.store.root / "0002").mkdir()  # a job killed before its sidecar: not a result
    (studio.store.root / "0002" / "x.wav").write_bytes(b"half")
    broken = studio.store.root / "0003"
    broken.mkdir()
    (broken / "y.json").write_text("{not json")
    again = ResultStore(studio.store.root)  # a restart of sak ui
    assert [r.id for r in again.list()] == [kept.id]
    assert again.get(kept.id).settings == kept.settings
    assert studio.store.new_folder()[0] == "0004"


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(seconds=-1.0), "length: seconds must be a finite number > 0, got -1.0"),
        (dict(seconds=0.5, bars=2), "give a length in seconds or a number of bars, not both"),
        (dict(bars=2), "bars needs a tempo"),
        (dict(seconds=3.0, loop=True), r"loop cannot be combined with long-form generation \(seconds_total=3.0"),
        (dict(scheduler="nope"), "unknown scheduler 'nope'"),
        (dict(seed=-5), r"seed must be in \[0, 2\*\*64 - 1\], got -5"),
        (dict(steps=0), "num_inference_steps must be >= 1, got 0"),
        (dict(loudness=5.0), "loudness must be a number of LUFS in"),
        (dict(mode="inpaint"), "inpaint needs an input audio"),
        (dict(mode="continue", input="in"), "continue needs a length"),
        (dict(mode="continue", input="in", seconds=0.3), r"seconds \(0.3\) must be longer than the input \(0.600 s\)"),
        (dict(mode="inpaint", input="in", regions=[(0.2, 3.0)]), r"region \(0.2, 3\) ends after the clip"),
        (dict(mode="audio to audio", input="in", strength=1.5), r"strength must be in \[0, 1\], got 1.5"),
        (dict(mode="audio to audio", input="notes"), "cannot be read as audio"),
    ],
)
def test_a_bad_request_is_refused_with_the_librarys_message(values, message, studio, tmp_path):
    values = dict(values)
    source = values.pop("input", None)
    if source == "in":
        values["input_audio"] = studio.store.keep_input(tone(tmp_path / "in.wav", 0.6))
    elif source == "notes":
        (tmp_path / "notes.wav").write_text("not audio")
        values["input_audio"] = studio.store.keep_input(tmp_path / "notes.wav")
    with pytest.raises(ValueError, match=message):
        studio.plan(Settings(**{"prompt": "x", "steps": 2, **values}))


def test_sak_ui_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["ui"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "stable-audio-kit[ui]"' in err


def test_sak_ui_serves_this_machine_only_unless_told(gradio):
    import os

    from stable_audio_kit.cli import build_parser
    from stable_audio_kit.ui.app import launch_options

    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.outputs, args.model) == ("127.0.0.1", 7860, "sak-ui-outputs", None)
    options = launch_options(args.host, args.port, args.outputs)
    assert options["server_name"] == "127.0.0.1" and options["share"] is False
    assert options["run_history"] is False and options["mcp_server"] is False and options["footer_links"] == []
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def component(demo, elem_id):
    return next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)


def test_bpm_and_key_fields_only_for_a_model_that_takes_them(gradio, pipe, tiny_config, tmp_path):
    from stable_audio_kit.config import ModelConfig, load_config
    from stable_audio_kit.pipeline import build_pipeline
    from stable_audio_kit.ui.app import build_app

    plain = build_app(Studio(pipe, ResultStore(tmp_path / "a")))
    assert not component(plain, "bpm").visible and not component(plain, "key").visible
    assert plain.analytics_enabled is False

    overrides = ["conditioning.input_channels=[timing_mask,beat_grid]", "conditioning.film=[key]"]
    musical = build_pipeline(load_config(ModelConfig, Path(__file__).parents[2] / "configs" / "tiny.yaml", overrides))
    page = build_app(Studio(musical, ResultStore(tmp_path / "b")))
    assert component(page, "bpm").visible and component(page, "key").visible
    assert "F# minor" in [value for _, value in component(page, "key").choices]


def test_the_page_shows_refusals_and_failures_as_one_line(gradio):
    from stable_audio_kit.ui.app import field_number, split_regions, user_errors

    @user_errors
    def refused():
        raise ValueError("seconds_total must be in (0, 1.000], got 5")

    @user_errors
    def broken():
        raise RuntimeError("boom")

    with pytest.raises(gradio.Error, match=r"got 5'?$"):
        refused()
    with pytest.raises(gradio.Error, match=r"internal error \(RuntimeError: boom\); the server log has the details"):
        broken()
    assert split_regions("2.0:3.5, 6:7;8:9") == [(2.0, 3.5), (6.0, 7.0), (8.0, 9.0)]
    with pytest.raises(ValueError, match="region takes START:END in seconds, e.g. 2.0:3.5, got '2-3'"):
        split_regions("2-3")
    assert field_number(" ", "bpm") is None and field_number("96", "bpm") == 96.0
    with pytest.raises(ValueError, match="bars must be a whole number, got '1.5'"):
        field_number("1.5", "bars", int)


def test_a_distilled_unet_starts_at_its_own_steps_and_guidance(distilled_model_dir, tmp_path):
    from stable_audio_kit import load_pipeline

    studio = Studio(load_pipeline(distilled_model_dir, unet="distilled"), ResultStore(tmp_path / "outputs"))
    studio.model = str(distilled_model_dir)
    plan = studio.plan(Settings(prompt="a student tone", seconds=0.25, seed=2))
    assert (plan.settings.steps, plan.settings.cfg) == (4, 7.0)  # the sidecar records what was sampled
    result = studio.run(plan)
    argv = shlex.split(result.command)
    assert argv[argv.index("--unet") + 1] == "distilled"
    out = tmp_path / "cli.wav"
    assert main([*argv[1:-1], str(out)]) == 0
    np.testing.assert_array_equal(sf.read(result.wav, dtype="float32")[0], sf.read(out, dtype="float32")[0])
    for values, message in [
        (dict(scheduler="unipc"), "scheduler 'unipc' cannot sample the distilled U-Net"),
        (dict(cfg=3.0), "guidance_scale=3 but this distilled U-Net has guidance 7 baked in"),
        (dict(negative="hiss"), "negative_prompt 'hiss'"),
    ]:
        with pytest.raises(ValueError, match=message):
            studio.plan(Settings(prompt="x", seconds=0.25, **values))


@pytest.fixture(scope="module")
def auto_studio_pipes(distilled_model_dir):
    """The two pipelines `sak ui` loads under --unet auto for a model with a student: its own and the student."""
    from stable_audio_kit import load_pipeline

    return load_pipeline(distilled_model_dir), load_pipeline(distilled_model_dir, unet="distilled")


def test_with_a_student_a_request_samples_as_sak_generate_with_unet_auto(
    auto_studio_pipes, distilled_model_dir, tmp_path
):
    """`sak ui --unet auto`: the student for a request that sets none of steps, CFG, scheduler and negative prompt;
    the model's own U-Net, at its own values for the rest, for one that sets any, never a refusal. Each result's
    command names its U-Net and makes the same file; a result made again samples with the U-Net that made it."""
    base, student = auto_studio_pipes
    studio = Studio(base, ResultStore(tmp_path / "outputs"), str(distilled_model_dir), student)
    assert studio.own_sampling() == (4, 7.0)
    plan = studio.plan(Settings(prompt="a student tone", seconds=0.25, seed=2))
    assert (plan.settings.unet, plan.settings.steps, plan.settings.cfg) == ("distilled", 4, 7.0)
    for values, steps in [
        (dict(cfg=3.0), 15),
        (dict(steps=2), 2),
        (dict(steps=4, cfg=7.0), 4),  # the student's own values, asked for: the base U-Net's sampler at them
        (dict(scheduler="euler"), 15),
        (dict(negative="hiss"), 15),
    ]:
        settings = studio.plan(Settings(prompt="x", seconds=0.25, **values)).settings
        assert (settings.unet, settings.steps) == ("base", steps), values

    for settings in (
        Settings(prompt="a student tone", seconds=0.25, seed=2),
        Settings(prompt="a base tone", seconds=0.25, steps=2, seed=2),
    ):
        result = studio.run(studio.plan(settings))
        argv = shlex.split(result.command)
        assert argv[argv.index("--unet") + 1] == result.settings.unet
        out = tmp_path / f"cli_{result.settings.unet}.wav"
        assert main([*argv[1:-1], str(out)]) == 0
        np.testing.assert_array_equal(sf.read(result.wav, dtype="float32")[0], sf.read(out, dtype="float32")[0])
        # Made again from its sidecar (which names steps and guidance): the same U-Net, the same file.
        again = studio.run(studio.plan(ResultStore(studio.store.root).get(result.id).settings))
        assert again.settings == result.settings
        np.testing.assert_array_equal(sf.read(again.wav, dtype="float32")[0], sf.read(out, dtype="float32")[0])
    assert [r.settings.unet for r in studio.store.list()] == ["base", "base", "distilled", "distilled"]

    only_base = Studio(base, ResultStore(tmp_path / "outputs"))  # sak ui --unet base
    with pytest.raises(ValueError, match="samples with the distilled U-Net, which this page has not loaded"):
        only_base.plan(Settings(prompt="x", seconds=0.25, unet="distilled"))
    assert only_base.plan(Settings(prompt="x", seconds=0.25)).settings.unet == "base"


def test_the_page_starts_at_the_students_values_and_a_changed_field_asks_for_the_base(
    gradio, auto_studio_pipes, distilled_model_dir, tmp_path
):
    """The Steps and CFG fields start at the student's values; left there they ask nothing and the student samples;
    changed, they ask for the model's own U-Net, as `--cfg` does on the command line."""
    from stable_audio_kit.ui.app import Page, build_app, model_summary

    base, student = auto_studio_pipes
    studio = Studio(base, ResultStore(tmp_path / "outputs"), str(distilled_model_dir), student)
    demo = build_app(studio)
    assert component(demo, "steps").value == 4 and component(demo, "cfg").value == 7.0
    assert "the model's own U-Net (15 unless set)" in component(demo, "steps").info
    assert "its distilled student, 4 steps with guidance 7 baked in, while steps" in model_summary(studio)
    page = Page(studio)
    fields = dict(
        prompt="a tone",
        negative="",
        length="0.25",
        bars="",
        steps=4,
        cfg=7.0,
        seed=1,
        pick_seed=False,
        scheduler="",
        bpm="",
        key="",
        loudness="",
        normalize=True,
        loop=False,
        mode="text to audio",
        input_audio=None,
        strength=None,
        regions="",
    )
    untouched = page.settings(**fields)
    assert (untouched.steps, untouched.cfg) == (None, None)
    assert studio.plan(untouched).settings.unet == "distilled"
    changed = studio.plan(page.settings(**{**fields, "cfg": 3.0})).settings
    assert (changed.unet, changed.steps, changed.cfg) == ("base", 15, 3.0)
    assert studio.plan(page.settings(**{**fields, "negative": "hiss"})).settings.unet == "base"
    assert studio.plan(page.settings(**{**fields, "scheduler": "euler"})).settings.unet == "base"
