"""Commands on models and runs: ``sak export``, ``sak extend``, ``sak info``, ``sak new-model`` folders,
``sak catalogue make``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import Row, check_cli_row, fill, run_cli

EXPORT = [
    Row(
        "not-a-run",
        ("export", "{inputs}/empty_dir", "{work}/out"),
        "is not a training run folder (run.json is missing)",
    ),
    Row("run-missing", ("export", "{work}/nope", "{work}/out"), "'{work}/nope' is not a training run folder"),
    Row("no-checkpoint", ("export", "{run_empty}", "{work}/out"), "no checkpoint  to export in"),
    Row("checkpoint-unknown", ("export", "{run}", "{work}/out", "--checkpoint", "step_99"), "no checkpoint step_99"),
    Row("output-exists", ("export", "{run}", "{inputs}/empty_dir"), "already exists; choose another or pass --force"),
    Row("output-in-proc", ("export", "{run}", "/proc/out"), "'/proc/out/model_index.json' cannot be written"),
    Row("base-missing", ("export", "{run}", "{work}/out", "--base", "{work}/nope"), "'{work}/nope' does not exist"),
    Row("base-damaged", ("export", "{run}", "{work}/out", "--base", "{m_zeroed_vae}"), "is zeroed"),
    Row("merge-lora-without-adapter", ("export", "{run}", "{work}/out", "--merge-lora"), "is not a LoRA run"),
    Row("run-json-corrupt", ("export", "{run_bad_json}", "{work}/out"), "run.json' is not valid JSON"),
    Row("run-kind-unknown", ("export", "{run_bad_kind}", "{work}/out"), "unknown run kind 'gan'"),
    Row("run-config-missing", ("export", "{run_no_config}", "{work}/out"), "config.yaml"),
]

EXTEND = [
    Row("model-missing", ("extend", "{work}/nope", "{work}/out", "--beat-grid"), "'{work}/nope' does not exist"),
    Row("model-damaged", ("extend", "{m_truncated_unet}", "{work}/out", "--beat-grid"), "is truncated"),
    Row("nothing", ("extend", "{model}", "{work}/out"), "nothing to add"),
    Row("input-unknown", ("extend", "{model}", "{work}/out", "--input", "mood"), "'mood'"),
    Row("output-exists", ("extend", "{model}", "{inputs}/empty_dir", "--key"), "already exists"),
    Row("numbers-range", ("extend", "{model}", "{work}/out", "--prompt-numbers", "--number-min", "0"), "min=0"),
    Row(
        "output-in-proc", ("extend", "{model}", "/proc/out", "--key"), "'/proc/out/model_index.json' cannot be written"
    ),
]

INFO = [
    Row("missing", ("info", "{work}/nope"), "model directory '{work}/nope' does not exist"),
    Row("truncated", ("info", "{m_truncated_unet}"), "is truncated"),
    Row("zeroed", ("info", "{m_zeroed_text_encoder}"), "is zeroed"),
    Row("missing-component", ("info", "{m_missing_unet}"), "missing component(s): unet"),
    Row("bad-tokenizer", ("info", "{m_bad_tokenizer_json}"), "tokenizer.json' is not valid JSON"),
]

CATALOGUE = [
    Row("clips-0", ("catalogue", "make", "{work}/cat", "--clips", "0"), "clips must be an integer >= 1, got 0"),
    Row("seed-negative", ("catalogue", "make", "{work}/cat", "--seed", "-1"), "seed must be a non-negative"),
    Row("rate", ("catalogue", "make", "{work}/cat", "--sample-rate", "100"), "got 100"),
    Row("max-seconds", ("catalogue", "make", "{work}/cat", "--max-seconds", "nan"), "max_seconds must be a finite"),
    Row("valid-fraction", ("catalogue", "make", "{work}/cat", "--valid-fraction", "1"), "valid_fraction must be in"),
    Row("transpositions", ("catalogue", "make", "{work}/cat", "--transpositions", "12"), "got 12"),
    Row("out-is-a-file", ("catalogue", "make", "{inputs}/afile.txt"), "is not a folder"),
    Row("soundfont-missing", ("catalogue", "make", "{work}/cat", "--soundfont", "{work}/no.sf2"), "is not a file"),
]


@pytest.fixture(scope="session")
def runs(finished_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {"run": finished_run}
    empty = root / "empty"
    empty.mkdir()
    (empty / "run.json").write_text(json.dumps({"kind": "unet"}))
    shutil.copy(finished_run / "config.yaml", empty / "config.yaml")
    out["run_empty"] = empty
    for name, change in {
        "bad_json": lambda p: (p / "run.json").write_text("{kind"),
        "bad_kind": lambda p: (p / "run.json").write_text('{"kind": "gan"}'),
        "no_config": lambda p: (p / "config.yaml").unlink(),
    }.items():
        shutil.copytree(finished_run, root / name)
        change(root / name)
        out[f"run_{name}"] = root / name
    return out


@pytest.fixture
def model_places(places, runs) -> dict:
    return {**places, **runs}


@pytest.mark.parametrize(
    "command,row",
    [pytest.param("export", row, id=f"export-{row.id}") for row in EXPORT]
    + [pytest.param("extend", row, id=f"extend-{row.id}") for row in EXTEND]
    + [pytest.param("info", row, id=f"info-{row.id}") for row in INFO]
    + [pytest.param("catalogue make", row, id=f"catalogue-{row.id}") for row in CATALOGUE],
)
def test_model_commands_refuse(command, row, model_places, unchanged, capsys, caplog):
    result = run_cli(fill(row.args, model_places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**model_places), row.code, row.stream), result, command)


def test_doctor_reports_without_failing(capsys, caplog):
    result = run_cli(["doctor", "--no-model"], capsys, caplog)
    assert result.code == 0 and "Traceback" not in result.err
    for name in ("torch", "diffusers", "transformers", "accelerate", "device", "threads", "FluidSynth", "SoundFont"):
        assert name in result.out
    assert "import time" in result.out
