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
from stable_audio_kit.ui import studio as studio_module
from stable_audio_kit.ui.history import ResultStore, Settings, result_stem
from stable_audio_kit.ui.pictures import Marks
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


@pytest.fixture
def pipeline_calls(monkeypatch):
    """How many variations each pipeline call of a test samples: the rows of the noise or generators it is given."""
    from stable_audio_kit.pipeline import StableAudioKitPipeline

    seen = []
    original = StableAudioKitPipeline.__call__

    def counted(self, *args, **kwargs):
        generator = kwargs.get("generator")
        seen.append(len(generator) if isinstance(generator, list) else len(kwargs.get("latents", [None])))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StableAudioKitPipeline, "__call__", counted)
    return seen


def float32_cpu(monkeypatch):
    """A CPU without native bfloat16: precision "auto" (the page's, and the CLI's default) is float32."""
    import stable_audio_kit.precision

    monkeypatch.setattr(stable_audio_kit.precision, "native_bf16", lambda device_type="cpu": False)


def assert_same_audio(got: np.ndarray, alone: np.ndarray, name: str) -> None:
    """The same audio to float rounding, 1e-4 of the peak alone (another seed's audio differs by about the peak)."""
    assert got.shape == alone.shape, name
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-4 * max(np.abs(alone).max(), 1e-6), err_msg=name)


TOGETHER = {
    # The student: no guidance, so in bfloat16 too.
    "student": dict(prompt="a student snare", seconds=0.4),
    "text, no guidance": dict(prompt="a snare without guidance", seconds=0.4, cfg=1.0, loudness=-20.0),
    "text with guidance, float32": dict(prompt="a guided snare", seconds=0.4, cfg=3.0, negative="hiss"),
    "audio to audio": dict(prompt="a brighter snare", mode="audio to audio", strength=0.6, cfg=1.0, steps=5),
    # Each variation re-noises the kept frames from its own generator at every step.
    "inpaint": dict(prompt="a new middle", mode="inpaint", regions=[(0.2, 0.4)], cfg=1.0),
    "continue": dict(prompt="and then", mode="continue", seconds=0.9, cfg=1.0),
}


@pytest.mark.parametrize("case", list(TOGETHER))
def test_variations_sampled_together_are_the_files_each_seed_gets_alone(
    case, pipe, distilled_model_dir, tiny_model_dir, tmp_path, monkeypatch, pipeline_calls
):
    """Variations that share one pipeline call are, each, the file its seed gets alone and the file its sidecar's
    `sak` command writes, to float rounding; the call reports each step once, and the results keep seed order."""
    from stable_audio_kit import load_pipeline

    if case == "student":
        model = distilled_model_dir
        studio = Studio(load_pipeline(model, unet="distilled"), ResultStore(tmp_path / "outputs"), str(model))
    else:
        model = tiny_model_dir
        studio = Studio(pipe, ResultStore(tmp_path / "outputs"), str(model))
    if case == "text with guidance, float32":
        float32_cpu(monkeypatch)
    values = dict(TOGETHER[case], seed=30)
    if case != "student":  # the student samples at its own 4 steps
        values.setdefault("steps", 3)
    if values.get("mode"):
        values["input_audio"] = studio.store.keep_input(tone(tmp_path / "in.wav", 0.6))
    plans = studio.variations(Settings(**values), 3)
    assert [[p.settings.seed for p in call] for call in studio.calls(plans)] == [[30, 31, 32]]
    steps = []
    results = studio.run_together(plans, on_step=steps.append)
    per_call = 3 if values.get("mode") else plans[0].settings.steps  # audio to audio: the last 0.6 of 5 steps
    assert pipeline_calls == [3] and steps == [per_call] * per_call
    assert [r.settings.seed for r in results] == [30, 31, 32]
    assert [r.id for r in studio.store.list()] == ["0003", "0002", "0001"]

    takes = [sf.read(r.wav, dtype="float32")[0] for r in results]
    assert np.abs(takes[0] - takes[1]).max() > 0.01 * np.abs(takes[0]).max(), "each variation has its own seed"
    alone = Studio(studio.pipe, ResultStore(tmp_path / "alone"), str(model))
    for result, plan, take in zip(results, plans, takes):
        assert_same_audio(take, sf.read(alone.run(plan).wav, dtype="float32")[0], result.wav.name)
        argv = shlex.split(json.loads(result.sidecar.read_text())["command"])
        out = tmp_path / f"cli_{result.settings.seed}.wav"
        assert main([*argv[1:-1], str(out)]) == 0
        assert_same_audio(take, sf.read(out, dtype="float32")[0], f"{result.wav.name} from its command")
    assert pipeline_calls == [3, 1, 1, 1, 1, 1, 1]


EXCLUDED = {
    # One random shift a step for the whole call, or window after window.
    "loop": dict(prompt="a loop at 240 bpm", bars=1, loop=True),
    "long-form": dict(prompt="a long one", seconds=1.6),
    # A sampler whose every step draws noise; bfloat16 rounding carried by guidance.
    "ddpm": dict(prompt="a tone", seconds=0.4, scheduler="ddpm"),
    "bf16 with guidance": dict(prompt="a tone", seconds=0.4, cfg=3.0),
}


@pytest.mark.parametrize("case", list(EXCLUDED))
def test_variations_that_would_not_come_out_as_alone_are_sampled_one_by_one(
    case, studio, tmp_path, monkeypatch, pipeline_calls
):
    import stable_audio_kit.precision

    values = dict(EXCLUDED[case], steps=2, seed=50)
    values.setdefault("cfg", 1.0)  # no guidance: only the mode or the sampler keeps them apart
    if case == "bf16 with guidance":
        monkeypatch.setattr(stable_audio_kit.precision, "native_bf16", lambda device_type="cpu": True)
    if values.get("mode"):
        values["input_audio"] = studio.store.keep_input(tone(tmp_path / "in.wav", 0.6))
    plans = studio.variations(Settings(**values), 2)
    calls = studio.calls(plans)
    assert [[p.settings.seed for p in call] for call in calls] == [[50], [51]]
    with pytest.raises(ValueError, match="these 2 variations do not share a pipeline call"):
        studio.run_together(plans)
    assert [r.settings.seed for call in calls for r in studio.run_together(call)] == [50, 51]
    assert pipeline_calls == [1, 1]


def test_a_cancelled_shared_call_writes_none_of_its_variations(studio, pipeline_calls):
    plans = studio.variations(Settings(prompt="stop", seconds=0.25, steps=5, cfg=1.0, seed=3), 4)
    assert len(studio.calls(plans)) == 1
    cancel = threading.Event()
    steps = []

    def on_step(per_window):
        steps.append(per_window)
        cancel.set()  # after the first step of the four variations' call

    with pytest.raises(Cancelled, match="cancelled at step 2"):
        studio.run_together(plans, on_step=on_step, cancel=cancel)
    assert steps == [5] and pipeline_calls == [4] and studio.store.list() == []
    assert [r.settings.seed for r in studio.run_together(plans)] == [3, 4, 5, 6]


def test_the_page_counts_the_steps_of_a_shared_call_once(gradio, studio):
    """The progress bar of 3 variations in one call: its steps, not 3 times them; a cancel says the step it stopped
    at and shows no result."""
    from types import SimpleNamespace

    from stable_audio_kit.ui.app import Page

    page = Page(studio)
    plans = studio.variations(Settings(prompt="together", seconds=0.25, steps=4, cfg=1.0, seed=8), 3)
    shown = []
    outputs = list(page.run(plans, SimpleNamespace(session_hash="a"), lambda *a, **k: shown.append(a[0])))
    assert shown == [0.0, (1, 4), (2, 4), (3, 4), (4, 4)]
    assert [o[0] for o in outputs] == ["seeds 8-10: done"] and len(studio.store.list()) == 3

    def cancel_after_two(value, **_):
        if value == (2, 4):
            page.cancel(SimpleNamespace(session_hash="b"))

    outputs = list(page.run(plans, SimpleNamespace(session_hash="b"), cancel_after_two))
    assert [o[0] for o in outputs] == ["seeds 8-10: cancelled at step 2/4"] and len(studio.store.list()) == 3


def test_a_long_form_job_reports_the_steps_of_every_window(studio):
    plan = studio.plan(Settings(prompt="long", seconds=2.5, steps=2))
    steps = []
    result = studio.run(plan, on_step=steps.append)
    assert plan.windows == 3 and steps == [2] * 6 and result.samples == 20000


def test_a_continuation_beyond_the_window_counts_only_the_windows_past_its_input(studio, tmp_path):
    # A 1.6 s input continued to 2.2 s on the 1 s window: the windows lying inside the input are not sampled, so
    # the job has 2 windows where plain long-form of 2.2 s has 3.
    source = studio.store.keep_input(tone(tmp_path / "in.wav", 1.6))
    plan = studio.plan(Settings(prompt="and on", mode="continue", seconds=2.2, steps=2, input_audio=source))
    assert studio.plan(Settings(prompt="and on", seconds=2.2, steps=2)).windows == 3
    steps = []
    result = studio.run(plan, on_step=steps.append)
    assert plan.windows == 2 and steps == [2] * 4 and result.samples == 17600


PICTURE_MARKS = {
    "text": (dict(seconds=0.4), Marks()),
    "audio to audio": (dict(mode="audio to audio", strength=0.5), Marks()),
    "inpaint": (dict(mode="inpaint", regions=[(0.2, 0.4), (0.5, 0.55)]), Marks(regenerated=((0.2, 0.4), (0.5, 0.55)))),
    "continue": (dict(mode="continue", seconds=0.9), Marks(regenerated=((0.6, 0.9),), join=0.6)),
    "continue beyond the window": (dict(mode="continue", seconds=2.2), Marks(regenerated=((0.6, 2.2),), join=0.6)),
    "loop": (dict(seconds=1.0, loop=True), Marks(loop=True)),
}


@pytest.mark.parametrize("case", list(PICTURE_MARKS))
def test_a_results_picture_is_drawn_with_what_its_workflow_kept_and_made(case, studio, tmp_path, monkeypatch):
    # Inpainting passes its regions, a continuation its input's length (0.6 s) as the join, a loop its flag;
    # text-to-audio and audio-to-audio nothing. Kept as if sampled: 1 s of a tone, the picture drawn for real.
    values, marks = PICTURE_MARKS[case]
    if values.get("mode"):
        values = dict(values, input_audio=studio.store.keep_input(tone(tmp_path / "in.wav", 0.6)))
    drawn, draw = [], studio_module.result_png
    monkeypatch.setattr(
        studio_module, "result_png", lambda *args, marks: drawn.append(marks) or draw(*args, marks=marks)
    )
    plan = studio.plan(Settings(prompt="marked", steps=2, **values))
    sampled = 0.3 * np.sin(2 * np.pi * 330 * np.arange(8000, dtype=np.float32) / 8000)[None]
    result = studio.keep(plan, sampled, 8000)
    assert drawn == [marks] and result.picture.stat().st_size > 0


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
    from stable_audio_kit.ui.serving import launch_options

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
    from stable_audio_kit.ui.app import field_number, user_errors
    from stable_audio_kit.ui.input_panel import split_regions

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


PAGE_FIELDS = dict(
    prompt="a tone",
    negative="",
    length="0.25",
    bars="",
    steps="",
    cfg="",
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


def test_blank_steps_and_cfg_sample_with_the_student_and_a_typed_value_is_sampled_as_typed(
    gradio, auto_studio_pipes, distilled_model_dir, tmp_path
):
    """Steps and CFG scale start blank: the U-Net's own values, and with every field that chooses the U-Net blank,
    the student. A typed value is sampled as typed (the student's own 4 too), with the model's own U-Net, as `--steps`
    is on the command line. The line under the fields says, as they change, what the next run samples with: the
    U-Net, steps and guidance the checked request records."""
    from stable_audio_kit.ui.app import Page, build_app, model_summary

    base, student = auto_studio_pipes
    studio = Studio(base, ResultStore(tmp_path / "outputs"), str(distilled_model_dir), student)
    demo = build_app(studio)
    assert not component(demo, "steps").value and not component(demo, "cfg").value
    assert "4 steps, the distilled U-Net** (guidance 7 baked in)" in component(demo, "next-run").value
    assert "its distilled student, 4 steps with guidance 7 baked in, while steps" in model_summary(studio)
    page = Page(studio)
    for values, asked, sampled in [
        (dict(), (None, None), ("distilled", 4, 7.0)),
        (dict(cfg="3"), (None, 3.0), ("base", 15, 3.0)),
        (dict(steps="4"), (4, None), ("base", 4, 7.0)),  # the student's own steps, typed: as typed, by the base U-Net
        (dict(steps=" 8 ", cfg="3.5"), (8, 3.5), ("base", 8, 3.5)),
        (dict(cfg="7"), (None, 7.0), ("base", 15, 7.0)),
        (dict(negative="hiss"), (None, None), ("base", 15, 7.0)),
        (dict(scheduler="euler"), (None, None), ("base", 15, 7.0)),
    ]:
        fields = {**PAGE_FIELDS, **values}
        settings = page.settings(**fields)
        assert (settings.steps, settings.cfg) == asked, values
        planned = studio.plan(settings).settings
        assert (planned.unet, planned.steps, planned.cfg) == sampled, values
        unet, steps, cfg = sampled
        line = page.next_run(fields["steps"], fields["cfg"], fields["negative"], fields["scheduler"])
        if unet == "distilled":
            assert line == "Next run: **4 steps, the distilled U-Net** (guidance 7 baked in)"
        else:
            assert line.startswith(f"Next run: **{steps} steps, the model's own U-Net**, CFG scale {cfg:g} ("), values
            assert line.endswith("blank: the distilled U-Net, 4 steps)")
    assert page.next_run("0", "", "", "") == "Next run: **num_inference_steps must be >= 1, got 0**"
    assert page.next_run("2.5", "", "", "") == "Next run: **steps must be a whole number, got '2.5'**"
    with pytest.raises(ValueError, match="CFG scale must be a number, got 'high'"):
        page.settings(**{**PAGE_FIELDS, "cfg": "high"})

    only_base = Page(Studio(base, ResultStore(tmp_path / "a")))  # sak ui --unet base
    assert only_base.next_run("", "", "", "") == "Next run: **15 steps, the model's own U-Net**, CFG scale 7"
    only_student = Page(Studio(student, ResultStore(tmp_path / "b")))  # sak ui --unet distilled
    assert only_student.next_run("", "", "", "") == "Next run: **4 steps, the distilled U-Net** (guidance 7 baked in)"
    assert "num_inference_steps=2" in only_student.next_run("2", "", "", "")


def test_a_sidecar_records_the_unet_and_steps_and_an_old_one_is_read_as_made(
    gradio, auto_studio_pipes, distilled_model_dir, tmp_path
):
    """A new sidecar names the U-Net that sampled and its steps and guidance. One written before settings named the
    U-Net is read as made with the one its command names (`sak ui --unet distilled` wrote those), else the model's
    own (the only one there was), and regenerates the same file."""
    from stable_audio_kit.ui.app import describe_result

    base, student = auto_studio_pipes
    studio = Studio(base, ResultStore(tmp_path / "outputs"), str(distilled_model_dir), student)
    made = {}
    for name, values in [("student", dict()), ("base", dict(cfg=3.0)), ("base 2 steps", dict(steps=2))]:
        result = studio.run(studio.plan(Settings(prompt=name, seconds=0.25, seed=9, **values)))
        recorded = json.loads(result.sidecar.read_text())["settings"]
        made[name] = result, (recorded["unet"], recorded["steps"], recorded["cfg"])
    assert made["student"][1] == ("distilled", 4, 7.0)
    assert made["base"][1] == ("base", 15, 3.0)
    assert made["base 2 steps"][1] == ("base", 2, 7.0)

    for name, command_names_unet, unet in [("student", True, "distilled"), ("base", False, "base")]:
        result = made[name][0]
        old = json.loads(result.sidecar.read_text())
        del old["settings"]["unet"]
        if not command_names_unet:  # written by sak ui before the student existed
            argv = shlex.split(old["command"])
            del argv[argv.index("--unet") : argv.index("--unet") + 2]
            old["command"] = shlex.join(argv)
        result.sidecar.write_text(json.dumps(old))
        loaded = ResultStore(studio.store.root).get(result.id)
        assert loaded.settings.unet == unet and loaded.settings == result.settings, name
        shown = {"distilled": "its distilled student", "base": "the model's own"}[unet]
        assert f"| U-Net | {shown} |" in describe_result(loaded)
        again = studio.run(studio.plan(loaded.settings))
        assert again.settings == result.settings
        np.testing.assert_array_equal(sf.read(again.wav, dtype="float32")[0], sf.read(result.wav, dtype="float32")[0])
        assert json.loads(again.sidecar.read_text())["settings"]["unet"] == unet

    only_student = Studio(student, ResultStore(studio.store.root))  # sak ui --unet distilled: refuses, names the fix
    with pytest.raises(ValueError, match="samples with the base U-Net, which this page has not loaded"):
        only_student.plan(only_student.store.get(made["base"][0].id).settings)
