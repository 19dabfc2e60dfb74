import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    assert main(["new-model", str(ROOT / "configs" / "tiny.yaml"), str(out)]) == 0
    return out


def test_new_model_generate_info_end_to_end(tmp_path):
    """The user's path, through the installed console script."""
    model = tmp_path / "m"
    run = lambda *a: subprocess.run(["sak", *a], capture_output=True, text=True, cwd=tmp_path)  # noqa: E731
    r = run("new-model", str(ROOT / "configs" / "tiny.yaml"), str(model), "seed=1")
    assert r.returncode == 0, r.stderr
    assert (model / "model_index.json").is_file() and (model / "model_config.yaml").is_file()
    r = run(
        "generate",
        "a calm piano melody",
        "--seconds",
        "0.37",
        "--steps",
        "2",
        "--seed",
        "1",
        "--model",
        str(model),
        "-o",
        "out.flac",
    )
    assert r.returncode == 0, r.stderr
    audio, sr = sf.read(tmp_path / "out.flac")
    assert sr == 8000 and len(audio) == round(0.37 * 8000)
    r = run("info", str(model))
    assert r.returncode == 0, r.stderr
    for text in (
        "8000 Hz",
        "channels:         1",
        "latent rate:      250.000",
        "maximum length:   1.000 s",
        "conditioning:     text, seconds_start/seconds_total\n",
        "unet",
    ):
        assert text in r.stdout


def test_generate_is_seeded(model_dir, tmp_path):
    for name in ("a.wav", "b.wav"):
        assert (
            main(
                [
                    "generate",
                    "x",
                    "--seconds",
                    "0.2",
                    "--steps",
                    "2",
                    "--seed",
                    "5",
                    "--model",
                    str(model_dir),
                    "-o",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    np.testing.assert_array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0])


def test_generate_batch_writes_numbered_files(model_dir, tmp_path):
    assert (
        main(
            [
                "generate",
                "x",
                "--seconds",
                "0.2",
                "--steps",
                "1",
                "--batch",
                "3",
                "--model",
                str(model_dir),
                "-o",
                str(tmp_path / "take.wav"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take_0.wav", "take_1.wav", "take_2.wav"]


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
def test_generate_from_prompt_file(model_dir, tmp_path, fmt):
    rows = [("soft piano", 0.25, 1), ("loud drums", 0.5, 2), ("strings", 0.125, 3)]
    src = tmp_path / f"prompts.{fmt}"
    if fmt == "txt":
        src.write_text("\n".join(r[0] for r in rows) + "\n\n")
    elif fmt == "csv":
        src.write_text("prompt,seconds,seed\n" + "".join(f"{p},{s},{k}\n" for p, s, k in rows))
    else:
        src.write_text("".join(json.dumps({"prompt": p, "seconds": s, "seed": k}) + "\n" for p, s, k in rows))
    out = tmp_path / "out"
    assert (
        main(
            [
                "generate",
                "--prompts",
                str(src),
                "--seconds",
                "0.3",
                "--steps",
                "1",
                "--model",
                str(model_dir),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["0000_soft_piano.wav", "0001_loud_drums.wav", "0002_strings.wav"]
    lengths = [sf.info(f).frames for f in files]
    assert lengths == ([2400] * 3 if fmt == "txt" else [2000, 4000, 1000])


@pytest.mark.parametrize(
    "args, match",
    [
        (["generate", "x", "--seconds", "0"], "seconds must be a finite number > 0, got '0'"),
        (["generate", "x", "--seconds", "nan"], "got 'nan'"),
        (["generate", "x", "--seconds", "-2"], "got '-2'"),
        (["generate", "x", "--seconds", "5", "--loop"], "loop cannot be combined with long-form generation"),
        (["generate", "x", "--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["generate", "x", "--cfg", "inf"], "--cfg must be finite"),
        (["generate", "x", "-o", "out.mp3"], "must end in one of"),
        (["generate", "x", "-o", "{file}/out.wav"], "cannot be written"),
        (["generate"], "give one of a PROMPT, --prompts FILE or --schedule FILE"),
        (["generate", "--prompts", "missing.txt"], "prompt file 'missing.txt' does not exist"),
        (["generate", "x", "--scheduler", "nope"], "unknown scheduler 'nope'"),
        (["generate", "x", "--bpm", "0"], "--bpm must be a finite number > 0, got 0.0"),
        (["generate", "x", "--bpm", "nan"], "--bpm must be a finite number > 0, got nan"),
        (["generate", "x", "--bpm", "120"], "bpm=120.0 given but this model has no input that reads it"),
        (["generate", "x", "--key", "H major"], "--key must name a major or minor key such as"),
        (["generate", "x", "--key", "C major"], "key='C major' given but this model has no input that reads it"),
    ],
)
def test_generate_bad_input(model_dir, tmp_path, monkeypatch, capsys, args, match):
    blocker = tmp_path.parent / f"{tmp_path.name}_a_file"
    blocker.write_text("not a folder")
    args = [a.replace("{file}", str(blocker)) for a in args]
    monkeypatch.chdir(tmp_path)
    code = main([*args, "--model", str(model_dir)])
    assert code == 2
    assert match in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_generate_bad_prompt_file_rows(model_dir, tmp_path, capsys):
    src = tmp_path / "p.jsonl"
    src.write_text('{"prompt": "ok", "seconds": 0.2}\n{"prompt": "bad", "seconds": "soon"}\n')
    assert main(["generate", "--prompts", str(src), "--model", str(model_dir), "-o", str(tmp_path / "o")]) == 2
    assert "p.jsonl:2: seconds must be a number, got 'soon'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_new_model_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample_rate: 8000\nunet:\n  block_out_chanels: [8]\n")
    assert main(["new-model", str(bad), str(tmp_path / "m")]) == 2
    assert "block_out_chanels" in capsys.readouterr().err
    assert main(["new-model", str(ROOT / "configs" / "tiny.yaml"), str(tmp_path / "m"), "unet.layers_per_block=x"]) == 2
    assert not (tmp_path / "m").exists()


def test_new_model_refuses_existing_folder(model_dir, capsys):
    assert main(["new-model", str(ROOT / "configs" / "tiny.yaml"), str(model_dir)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_info_bad_dir(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "stable_audio_kit.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "generate" in r.stdout


def test_generate_at_a_bpm_with_a_beat_grid_model(tmp_path, capsys):
    model = tmp_path / "m"
    assert main(["new-model", str(ROOT / "configs" / "tiny.yaml"), str(model), "unet.beat_grid_channel=true"]) == 0
    args = ["generate", "drums", "--seconds", "0.3", "--steps", "2", "--seed", "0", "--model", str(model)]
    assert main([*args, "--bpm", "90", "-o", str(tmp_path / "a.wav")]) == 0
    assert main([*args, "--bpm", "150", "-o", str(tmp_path / "b.wav")]) == 0
    a, b = sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0]
    assert len(a) == len(b) == round(0.3 * 8000)
    assert not np.allclose(a, b), "the tempo reaches the (untrained, so randomly weighted) grid inputs"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("drums at 90 bpm\ndrums at 9000 bpm\n")
    out = str(tmp_path / "out")
    assert main(["generate", "--prompts", str(prompts), "--seconds", "0.2", "--model", str(model), "-o", out]) == 2
    assert "names a tempo of 9000 bpm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "no row is generated before every tempo is checked"
    assert main(["info", str(model)]) == 0
    assert "conditioning:     text, seconds_start/seconds_total, beat grid" in capsys.readouterr().out


def test_sak_script_ends_at_once_after_generating_with_output_flushed(tiny_model_dir, tmp_path):
    # `python -m stable_audio_kit.cli` runs what the `sak` script runs (cli.entry): after a generate command that
    # loaded torch the process ends with os._exit, so what it printed must have been flushed and its file closed.
    out = tmp_path / "out.wav"
    base = [sys.executable, "-m", "stable_audio_kit.cli", "generate", "a tone", "--model", str(tiny_model_dir)]
    env = {**os.environ, "SAK_NO_SERVER": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*base, "--seconds", "0.3", "--steps", "2", "-o", str(out)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert sf.info(out).frames == round(0.3 * sf.info(out).samplerate)
    # Refused after the model loaded (torch imported): the message still reaches the terminal, with code 2.
    refused = subprocess.run(
        [*base, "--griffin-lim-iters", "8", "-o", str(tmp_path / "x.wav")], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("sak generate: error: this model's VAE (AudioVAE)")
    assert not (tmp_path / "x.wav").exists()


def test_generate_inpaint_continue_with_the_distilled_unet(distilled_model_dir, tmp_path, capsys):
    """`--unet distilled`: the student in unet_distilled/ at its own steps and guidance, sample for sample what
    ``load_pipeline(dir, unet="distilled")`` gives; `sak info` names it."""
    import torch

    from stable_audio_kit import load_pipeline

    common = ["--model", str(distilled_model_dir), "--unet", "distilled", "--seed", "3", "--no-normalize"]
    assert main(["generate", "a tone", "--seconds", "0.3", *common, "-o", str(tmp_path / "g.wav")]) == 0
    audio, rate = sf.read(tmp_path / "g.wav", dtype="float32")
    pipe = load_pipeline(distilled_model_dir, unet="distilled")
    pipe.set_progress_bar_config(disable=True)
    expected = pipe("a tone", seconds_total=0.3, generator=torch.Generator().manual_seed(3)).audios[0, 0]
    np.testing.assert_allclose(audio, expected, rtol=0, atol=1e-6)

    t = np.arange(4000) / 8000
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 8000)
    inpaint = ["inpaint", str(tmp_path / "in.wav"), "a new middle", "--region", "0.2:0.3"]
    assert main([*inpaint, *common, "-o", str(tmp_path / "i.wav")]) == 0
    assert sf.info(tmp_path / "i.wav").frames == 4000
    more = ["continue", str(tmp_path / "in.wav"), "and then", "--seconds", "0.8"]
    assert main([*more, *common, "-o", str(tmp_path / "c.wav")]) == 0
    assert sf.info(tmp_path / "c.wav").frames == 6400

    capsys.readouterr()
    assert main(["info", str(distilled_model_dir)]) == 0
    info = capsys.readouterr().out
    assert "distilled U-Net:  unet_distilled/, 4 steps, guidance 7 baked in (sampled by default, --unet auto" in info


STUDENT_SAID = "sampling with the distilled U-Net (4 steps, guidance 7 baked in); --unet base for the model's own"


def test_unet_auto_is_the_student_unless_an_option_asks_for_the_base(distilled_model_dir, tmp_path, caplog):
    """The default `--unet auto`: a model with a student samples with it, saying so in one INFO line; an option
    only the model's own U-Net samples with (--cfg, --steps, --scheduler, --negative, a prompt list's negative)
    gets the base U-Net, sample for sample `--unet base` with it, and says nothing."""
    from stable_audio_kit import UNet1DConditionModel

    common = ["--seconds", "0.3", "--model", str(distilled_model_dir), "--seed", "3", "--no-normalize"]
    forwards = []  # of each run, the U-Net forwards, by the distilled_steps of the U-Net (None: the base U-Net)
    original = UNet1DConditionModel.forward

    def run(*extra: str, prompts: Path | None = None) -> tuple[np.ndarray, list[str]]:
        out = tmp_path / f"run{len(forwards)}"
        what = ["--prompts", str(prompts)] if prompts else ["a tone"]
        caplog.clear()
        calls = []

        def counted(self, *args, **kwargs):
            calls.append(self.config.distilled_steps)
            return original(self, *args, **kwargs)

        UNet1DConditionModel.forward = counted
        try:
            with caplog.at_level("INFO", logger="stable_audio_kit"):
                assert main(["generate", *what, *common, *extra, "-o", str(out if prompts else f"{out}.wav")]) == 0
        finally:
            UNet1DConditionModel.forward = original
        forwards.append(calls)
        audio = sf.read(next(out.glob("*.wav")) if prompts else f"{out}.wav", dtype="float32")[0]
        return audio, [r.getMessage() for r in caplog.records if "distilled U-Net" in r.getMessage()]

    auto, said = run()
    assert said == [STUDENT_SAID] and forwards[-1] == [4] * 4  # the student's 4 steps, one forward each
    student, said = run("--unet", "distilled")
    assert said == [] and forwards[-1] == [4] * 4  # asked for by name: nothing to say
    np.testing.assert_array_equal(auto, student)
    for option in (["--cfg", "3"], ["--steps", "2"], ["--scheduler", "euler"], ["--negative", "hiss"]):
        got, said = run(*option)
        assert said == [] and forwards[-1] and set(forwards[-1]) == {None}, option  # the base U-Net only
        base, _ = run("--unet", "base", *option)
        np.testing.assert_array_equal(got, base)
    rows = tmp_path / "rows.csv"
    rows.write_text("prompt,negative\na tone,\na bell,hiss\n")
    _, said = run(prompts=rows)
    assert said == [] and set(forwards[-1]) == {None}  # one row's negative prompt: the whole list on the base U-Net
    rows.write_text("prompt\na tone\na bell\n")
    _, said = run(prompts=rows)
    assert said == [STUDENT_SAID] and set(forwards[-1]) == {4}


STALE_SAID = "its distilled U-Net (unet_distilled/) was distilled from other weights than unet/ holds"


def test_a_stale_student_gives_way_under_auto_and_is_refused_by_name(stale_student_dir, tmp_path, caplog, capsys):
    """A student distilled from other weights than unet/ holds (unet/ replaced since): `--unet auto` samples with
    the base U-Net after one warning naming the directory; `--unet distilled` is one error line before anything
    samples; `sak info` says the student is stale."""
    common = ["a tone", "--seconds", "0.3", "--model", str(stale_student_dir), "--seed", "3", "--no-normalize"]
    with caplog.at_level("INFO", logger="stable_audio_kit"):
        assert main(["generate", *common, "-o", str(tmp_path / "auto.wav")]) == 0
    said = [r for r in caplog.records if "distilled" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"]
    assert said[0].getMessage().startswith(f"model directory '{stale_student_dir}': {STALE_SAID}; sampling with the")
    assert main(["generate", *common, "--unet", "base", "-o", str(tmp_path / "base.wav")]) == 0
    auto, base = (sf.read(tmp_path / f"{name}.wav", dtype="float32")[0] for name in ("auto", "base"))
    np.testing.assert_array_equal(auto, base)

    capsys.readouterr()
    assert main(["generate", *common, "--unet", "distilled", "-o", str(tmp_path / "asked.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sak generate: error: model directory '{stale_student_dir}': {STALE_SAID}: re-run")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "asked.wav").exists()

    assert main(["info", str(stale_student_dir)]) == 0
    assert "baked in, STALE: distilled from other weights than unet/ holds" in capsys.readouterr().out


def test_sak_ui_auto_leaves_a_stale_student_out(stale_student_dir, distilled_model_dir, tmp_path, monkeypatch):
    """`sak ui --unet auto` loads a model's student beside its own U-Net, but not one of other weights."""
    pytest.importorskip("gradio")
    served = []
    monkeypatch.setattr(
        "stable_audio_kit.ui.serve", lambda pipe, model, student, **kw: served.append(student), raising=False
    )
    for model in (distilled_model_dir, stale_student_dir):
        assert main(["ui", "--model", str(model), "--outputs", str(tmp_path / "outputs")]) == 0
    assert served[0].unet.config.distilled_steps == 4 and served[1] is None
    assert main(["ui", "--model", str(stale_student_dir), "--unet", "distilled", "--outputs", str(tmp_path)]) == 2
