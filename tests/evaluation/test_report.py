"""`sak evaluate` end to end on a tiny model and a synthetic held-out set with known answers."""

import json

import pytest

pytest.importorskip("librosa")

from stable_audio_kit.cli import main
from stable_audio_kit.evaluation.report import derangement, load_heldout, render_markdown


def test_heldout_rows_and_derangement(catalogue):
    rows = load_heldout(catalogue, None)
    assert [r["path"] for r in rows] == ["valid/a.wav", "valid/b.wav", "valid/c.wav"]
    assert len(load_heldout(catalogue, 2)) == 2
    with pytest.raises(ValueError, match="at least 2 held-out clips"):
        load_heldout(catalogue, 1)
    for seed in range(20):
        perm = derangement(5, seed)
        assert sorted(perm) == list(range(5)) and all(p != i for i, p in enumerate(perm))


def test_evaluate_writes_report(catalogue, model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--model", str(model_dir), "--catalogue", str(catalogue), "--steps", "2", "-o", str(out)])
    assert code == 0
    for name in ("report.json", "report.md", "spectrograms.png", "duration.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 3 and sorted(report["shuffle"]) == [0, 1, 2]
    model, real = report["summary"]["model"], report["summary"]["real"]
    assert model["exact_length"] == 1.0 and real["exact_length"] == 1.0
    # The ceiling column measures the known signals correctly: this checks the measurement itself.
    assert real["tempo_within_5pct"] == 1.0 and real["tempo_n"] == 1
    assert real["percussive_vs_tonal"] == 1.0 and real["percussive_vs_tonal_n"] == 3
    assert real["register"] == 1.0 and real["register_n"] == 2
    assert real["duration_within_0.5s"] == 1.0
    assert "| exact length | 1.000 | 1.000 | 1.000 | – |" in (out / "report.md").read_text()
    assert "percussive vs tonal correct" in capsys.readouterr().out
    # The timing floor: own captions with the partner's length, measured against the clip's own length.
    wrong = report["clips"]["wrong_lengths"]
    requested = [c["requested_seconds"] for c in wrong]
    assert requested == pytest.approx([[3.5, 0.7, 0.5][j] for j in report["shuffle"]], abs=1 / 8000)
    for clip, own in zip(wrong, [3.5, 0.7, 0.5]):
        assert clip["duration_error"] == pytest.approx(clip["silence_onset"] - own)
    assert set(report["summary"]["wrong_lengths"]) == {"n", "duration_within_0.5s", "duration_mean_abs_error_s"}
    assert "wrong lengths (timing floor)" in (out / "report.md").read_text()
    out2 = tmp_path / "no_floor"
    args = ["evaluate", "--model", str(model_dir), "--catalogue", str(catalogue), "--steps", "1", "--n", "2"]
    assert main([*args, "--no-timing-floor", "-o", str(out2)]) == 0
    assert "wrong_lengths" not in json.loads((out2 / "report.json").read_text())["summary"]
    assert "| exact length | 1.000 | 1.000 | 1.000 |\n" in (out2 / "report.md").read_text()


def test_evaluate_bad_input(catalogue, model_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(model_dir), "--catalogue", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    assert "has no metadata.jsonl" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--catalogue",
                str(catalogue),
                "--steps",
                "0",
                "-o",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "r").exists()


def test_report_markdown_columns_and_notes():
    def summary(**values):
        return {"n": 2, "exact_length": 1.0, **values}

    report = {
        "model": "m",
        "catalogue": "c",
        "n": 2,
        "steps": 1,
        "guidance_scale": 7.0,
        "seed": 0,
        "summary": {
            "model": summary(**{"duration_within_0.5s": 0.9, "fad_clap": 0.06}),
            "real": summary(**{"duration_within_0.5s": 1.0, "fad_clap": None}),
            "shuffled": summary(**{"duration_within_0.5s": 0.85, "fad_clap": 0.07}),
            "wrong_lengths": {"n": 2, "duration_within_0.5s": 0.1},
        },
    }
    text = render_markdown(report)
    assert "| duration within ±0.5 s | 0.900 | 1.000 | 0.850 | 0.100 |" in text
    assert "| FAD (CLAP embeddings) ↓ | 0.060 | – | 0.070 | – |" in text
    assert "FAD compares sets" in text and "wrong-lengths column" in text
    del report["summary"]["wrong_lengths"]
    report["summary"]["shuffled"]["fad_clap"] = None
    text = render_markdown(report)
    assert "| duration within ±0.5 s | 0.900 | 1.000 | 0.850 |\n" in text
    assert "FAD compares sets" not in text and "wrong-lengths" not in text


def test_evaluate_with_the_distilled_unet_records_it(catalogue, model_dir, tmp_path, capsys, caplog):
    import shutil

    from stable_audio_kit import UNet1DConditionModel

    model = shutil.copytree(model_dir, tmp_path / "m")
    unet = UNet1DConditionModel.from_pretrained(model, subfolder="unet")
    config = {k: v for k, v in unet.config.items() if k != "_use_default_values"}
    student = UNet1DConditionModel.from_config({**config, "distilled_steps": 2, "distilled_guidance_scale": 5.0})
    student.load_state_dict(unet.state_dict())
    student.save_pretrained(model / "unet_distilled")

    args = ["evaluate", "--model", str(model), "--catalogue", str(catalogue), "--n", "2", "--no-timing-floor"]
    assert main([*args, "--unet", "distilled", "-o", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["steps"] == 2 and report["guidance_scale"] == 5.0  # the student's own, as sampled
    assert report["sampling"]["unet"] == "distilled" and report["sampling"]["steps"] == 2
    assert report["sampling"]["unet_asked"] == "distilled"
    assert "sampling: 2 steps, CFG 5.0, seed 0, distilled U-Net\n" in (tmp_path / "r" / "report.md").read_text()

    # The default --unet auto: the student (the same report, the choice recorded beside it); with --cfg (or
    # --steps, --scheduler) the model's own U-Net, no refusal.
    with caplog.at_level("INFO", logger="stable_audio_kit"):
        assert main([*args, "-o", str(tmp_path / "auto")]) == 0
    assert "sampling with the distilled U-Net (2 steps, guidance 5 baked in)" in caplog.text
    auto = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert auto["sampling"] == {**report["sampling"], "unet_asked": "auto"}
    assert auto["summary"] == report["summary"]
    assert "sampling: 2 steps, CFG 5.0, seed 0, distilled U-Net (auto)" in (tmp_path / "auto" / "report.md").read_text()
    assert main([*args, "--cfg", "3", "--steps", "2", "-o", str(tmp_path / "base")]) == 0
    base = json.loads((tmp_path / "base" / "report.json").read_text())
    assert base["sampling"]["unet"] == "base" and base["sampling"]["unet_asked"] == "auto"
    assert base["guidance_scale"] == 3.0 and "U-Net" not in (tmp_path / "base" / "report.md").read_text().split("\n")[4]

    capsys.readouterr()
    assert main([*args, "--unet", "distilled", "--cfg", "7", "-o", str(tmp_path / "refused")]) == 2
    assert "guidance_scale=7 but this distilled U-Net has guidance 5 baked in" in capsys.readouterr().err
    assert main([*args, "--unet", "distilled", "--model", str(model_dir), "-o", str(tmp_path / "none")]) == 2
    assert "holds no distilled U-Net" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists() and not (tmp_path / "none").exists()
