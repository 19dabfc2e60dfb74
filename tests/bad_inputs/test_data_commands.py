"""Catalogues and the commands that read them: ``sak data check``, ``sak encode``, ``sak evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import SR, Row, check_cli_row, fill, params, run_cli, write_bad_samples, write_tone

CHECK = ("data", "check", "--sample-rate", "8000", "--channels", "1", "--window", "1")

DATA_CHECK = [
    Row("missing", (*CHECK, "{work}/nope"), "catalogue root '{work}/nope' is not a folder"),
    Row("is-a-file", (*CHECK, "{inputs}/afile.txt"), "afile.txt' is not a folder"),
    Row("model-and-config", ("data", "check", "{cat_good}", "--model", "{model}", "--config", "x.yaml"), "not both"),
    Row("model-missing", ("data", "check", "{cat_good}", "--model", "{work}/nope"), "'{work}/nope' does not exist"),
    Row("model-damaged", ("data", "check", "{cat_good}", "--model", "{m_zeroed_vae}"), "is zeroed"),
    Row("config-missing", ("data", "check", "{cat_good}", "--config", "{work}/nope.yaml"), "does not exist"),
    Row("config-list", ("data", "check", "{cat_good}", "--config", "{cats}/list.yaml"), "mapping of keys"),
    Row("sample-rate-0", ("data", "check", "{cat_good}", "--sample-rate", "0"), "sample_rate must be a positive"),
    Row("channels-0", ("data", "check", "{cat_good}", "--channels", "0"), "channels must be a positive integer, got 0"),
    Row(
        "window-0", ("data", "check", "{cat_good}", "--window", "0"), "window_seconds must be a positive number, got 0"
    ),
    Row("window-nan", ("data", "check", "{cat_good}", "--window", "nan"), "got nan"),
    Row("window-word", ("data", "check", "{cat_good}", "--window", "long"), "invalid float value: 'long'"),
    Row("metadata-no-path", (*CHECK, "{cat_no_path_column}"), "metadata.csv must have a 'path' column"),
    Row("metadata-bad-json", (*CHECK, "{cat_bad_jsonl}"), "metadata.jsonl line 2 is not valid JSON"),
    Row("metadata-absolute", (*CHECK, "{cat_absolute}"), "must be relative to the catalogue root"),
    Row("metadata-both", (*CHECK, "{cat_both_metadata}"), "keep only one"),
    Row("metadata-duplicate", (*CHECK, "{cat_duplicate}"), "lists 'a.wav' more than once"),
    Row("sidecar-bad-json", (*CHECK, "{cat_bad_sidecar}"), "sidecar"),
    Row("sidecar-caption-number", (*CHECK, "{cat_number_caption}"), "caption must be a string, got 5"),
    Row("bad-split", (*CHECK, "{cat_bad_split}"), "has split 'test'"),
    # Reports, not errors: the bad files are listed by name, with why.
    Row("report-nan", (*CHECK, "{cat_nan}"), "nan.wav: non-finite samples (NaN or inf)", 0, "out"),
    Row("report-inf", (*CHECK, "{cat_nan}"), "inf.wav: non-finite samples (NaN or inf)", 0, "out"),
    Row("report-not-silent", (*CHECK, "{cat_all_nan}"), "No usable files", 1, "out"),
    Row("report-truncated", (*CHECK, "{cat_unreadable}"), "cut.wav: truncated", 0, "out"),
    Row("report-empty", (*CHECK, "{inputs}/empty_dir"), "No usable files", 1, "out"),
]

ENCODE = ("encode", "{cat_good}", "--model", "{model}", "-o", "{work}/latents")
ENCODE_ROWS = [
    Row("model-missing", ("encode", "{cat_good}", "--model", "{work}/nope", "-o", "{work}/l"), "does not exist"),
    Row("model-damaged", ("encode", "{cat_good}", "--model", "{m_truncated_unet}", "-o", "{work}/l"), "truncated"),
    Row("catalogue-missing", ("encode", "{work}/nope", "--model", "{model}", "-o", "{work}/l"), "'{work}/nope'"),
    Row("output-in-proc", ("encode", "{cat_good}", "--model", "{model}", "-o", "/proc/latents"), "cannot be written"),
    Row("output-has-shards", ("encode", "{cat_good}", "--model", "{model}", "-o", "{shards}"), "already holds encoded"),
    Row("device", (*ENCODE, "--device", "tpu"), "unknown device 'tpu'"),
    Row("shard-size-0", (*ENCODE, "--shard-size", "0"), "--shard-size must be >= 1, got 0"),
    Row("nan-file", ("encode", "{cat_nan}", "--model", "{model}", "-o", "{work}/l"), "nan.wav (unreadable: non-finite"),
    Row("truncated-file", ("encode", "{cat_unreadable}", "--model", "{model}", "-o", "{work}/l"), "cut.wav (unread"),
    Row("hint", ("encode", "{cat_unreadable}", "--model", "{model}", "-o", "{work}/l"), "--skip-unreadable"),
]

EVAL = ("evaluate", "--model", "{model}", "--steps", "1", "-o", "{work}/report", "--catalogue")
EVALUATE_ROWS = [
    Row("no-metadata", (*EVAL, "{cat_good}"), "has no metadata.jsonl"),
    Row("no-held-out", (*EVAL, "{eval_no_valid}"), "has no held-out (split == 'valid') rows"),
    Row("one-held-out", (*EVAL, "{eval_one}"), "at least 2 held-out clips"),
    Row("bad-json", (*EVAL, "{eval_bad_json}"), "metadata.jsonl:2: invalid JSON"),
    Row("row-without-seconds", (*EVAL, "{eval_no_seconds}"), "a held-out row needs 'seconds', got None"),
    Row("row-nan-seconds", (*EVAL, "{eval_nan_seconds}"), "seconds must be a finite number > 0, got nan"),
    Row("n-0", (*EVAL, "{eval_good}", "--n", "0"), "--n must be >= 1, got 0"),
    Row("steps-0", (*EVAL, "{eval_good}", "--steps", "0"), "--steps must be an integer >= 1, got 0"),
    Row("tail-negative", (*EVAL, "{eval_good}", "--tail", "-0.5"), "--tail must be >= 0, got -0.5"),
    Row("cfg-nan", (*EVAL, "{eval_good}", "--cfg", "nan"), "--cfg must be finite, got nan"),
    Row("seed-negative", (*EVAL, "{eval_good}", "--seed", "-1"), "--seed must be in [0, 2**64 - 1], got -1"),
    Row("probe-unknown", (*EVAL, "{eval_good}", "--probes", "mood-swap"), "'mood-swap'"),
    Row("probe-n-0", (*EVAL, "{eval_good}", "--probe-n", "0"), "--probe-n must be an integer >= 1, got 0"),
    Row("device", (*EVAL, "{eval_good}", "--device", "gpu"), "unknown device 'gpu'"),
    Row(
        "output-in-proc",
        ("evaluate", "--model", "{model}", "-o", "/proc/report", "--catalogue", "{eval_good}"),
        "'/proc/report/report.json' cannot be written",
    ),
    Row("model-missing", (*EVAL[:1], "--model", "{work}/nope", "-o", "{work}/r", "--catalogue", "{eval_good}"), "nope"),
    Row("clip-too-long", (*EVAL, "{eval_long}"), "beyond the model's maximum 1.000 s"),
]


def _catalogue(root: Path, files: dict, metadata: dict | None = None) -> Path:
    root.mkdir(parents=True)
    for name, write in files.items():
        write(root / name)
    for name, text in (metadata or {}).items():
        (root / name).write_text(text)
    return root


def _tone(caption="a tone", split="train"):
    return lambda path: write_tone(path, 0.4, caption=caption, split=split)


def _plain(path):
    sf.write(str(path), np.zeros(800, np.float32), SR)


def _held_out(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="session")
def data_catalogues(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("data_catalogues")

    def cut(path):
        _tone()(path)
        path.write_bytes(path.read_bytes()[:200])

    good = {f"t{i}.wav": _tone() for i in range(3)} | {"v0.wav": _tone(split="valid")}
    clip = {"path": "a.wav", "caption": "a tone", "seconds": 0.1, "split": "valid"}
    cats = {
        "good": (good, None),
        "nan": (
            {
                **good,
                "nan.wav": lambda p: write_bad_samples(p, np.nan),
                "inf.wav": lambda p: write_bad_samples(p, np.inf),
            },
            None,
        ),
        "all_nan": ({"nan.wav": lambda p: write_bad_samples(p, np.nan)}, None),
        "unreadable": ({**good, "cut.wav": cut}, None),
        "no_path_column": ({"a.wav": _plain}, {"metadata.csv": "file,caption\na.wav,hello\n"}),
        "bad_jsonl": ({"a.wav": _plain}, {"metadata.jsonl": '{"path": "a.wav"}\n{"path": \n'}),
        "absolute": ({"a.wav": _plain}, {"metadata.jsonl": '{"path": "/etc/passwd"}\n'}),
        "both_metadata": (
            {"a.wav": _plain},
            {"metadata.jsonl": '{"path": "a.wav"}\n', "metadata.csv": "path\na.wav\n"},
        ),
        "duplicate": ({"a.wav": _plain}, {"metadata.csv": "path,caption\na.wav,x\na.wav,y\n"}),
        "bad_sidecar": ({"a.wav": _plain}, {"a.json": "{caption: oops"}),
        "number_caption": ({"a.wav": _plain}, {"a.json": '{"caption": 5}'}),
        "bad_split": ({"a.wav": _plain}, {"a.json": '{"caption": "x", "split": "test"}'}),
        "list": ({}, {"list.yaml": "- 1\n"}),
        "eval_good": (
            {"a.wav": _plain, "b.wav": _plain},
            {"metadata.jsonl": _held_out([clip, {**clip, "path": "b.wav"}])},
        ),
        "eval_no_valid": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([{**clip, "split": "train"}])}),
        "eval_one": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([clip])}),
        "eval_bad_json": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([clip]) + "{oops\n"}),
        "eval_no_seconds": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([{**clip, "seconds": None}] * 2)}),
        "eval_nan_seconds": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([clip]).replace("0.1", "NaN") * 2}),
        "eval_long": ({"a.wav": _plain}, {"metadata.jsonl": _held_out([clip, {**clip, "seconds": 5.0}])}),
    }
    out = {name: _catalogue(base / name, files, meta) for name, (files, meta) in cats.items()}
    out["cats"] = out.pop("list")
    shards = base / "shards"
    shards.mkdir()
    (shards / "index.json").write_text("{}")
    out["shards"] = shards
    return out


@pytest.fixture
def data_places(places, data_catalogues) -> dict:
    named = {
        ("" if k in ("cats", "shards") or k.startswith("eval_") else "cat_") + k: v for k, v in data_catalogues.items()
    }
    return {**places, **named}


@pytest.mark.parametrize("row", params(DATA_CHECK))
def test_data_check_refuses_or_reports(row, data_places, unchanged, capsys, caplog):
    result = run_cli(fill(row.args, data_places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**data_places), row.code, row.stream), result, "data check")


@pytest.mark.parametrize("row", params(ENCODE_ROWS))
def test_encode_refuses(row, data_places, unchanged, capsys, caplog):
    result = run_cli(fill(row.args, data_places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**data_places), row.code, row.stream), result, "encode")


@pytest.mark.parametrize("row", params(EVALUATE_ROWS))
def test_evaluate_refuses(row, data_places, unchanged, capsys, caplog):
    pytest.importorskip("librosa")
    result = run_cli(fill(row.args, data_places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**data_places), row.code, row.stream), result, "evaluate")


def test_encode_skips_non_finite_files_naming_them(data_places, work, capsys, caplog):
    """With --skip-unreadable the non-finite files are left out, logged and listed in the manifest."""
    out = work / "latents"
    args = ["encode", str(data_places["cat_nan"]), "--model", str(data_places["model"]), "-o", str(out)]
    assert run_cli([*args, "--skip-unreadable"], capsys, caplog).code == 0
    skipped = {entry["path"]: entry["reason"] for entry in json.loads((out / "index.json").read_text())["skipped"]}
    assert set(skipped) == {"nan.wav", "inf.wav"} and all("non-finite" in r for r in skipped.values())
    assert "nan.wav" in caplog.text
