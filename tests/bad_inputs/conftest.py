"""The bad-input corpus: one parametrized table per surface, each row an input the toolkit must refuse.

Every row states the input, the exit code (CLI) or exception type (Python), a fragment of the message that
names the bad value, and the corpus checks two things more for all of them: no traceback, and no file left
behind (the working folder and the inputs are as they were). CLI rows run in-process through
``stable_audio_kit.cli.main`` against the tiny model (``tiny_model_dir``); a subprocess per row is too slow.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate.state import AcceleratorState, GradientState

from stable_audio_kit.cli import main

SR = 8000


@dataclass(frozen=True)
class Row:
    """One bad input: ``args`` (CLI argv or call kwargs, with ``{placeholders}`` filled from the ``places``
    fixture), what it must end in (exit ``code`` or exception type), and a ``fragment`` of the message."""

    id: str
    args: tuple | dict
    fragment: str
    code: int | type = 2
    stream: str = "err"  # where the fragment appears: "err" (an error), "out" (a report), "log" (a warning)


def params(rows: list[Row]) -> list:
    ids = [row.id for row in rows]
    assert len(ids) == len(set(ids)), "row ids are unique"
    return [pytest.param(row, id=row.id) for row in rows]


@pytest.fixture(autouse=True)
def fresh_accelerate():
    """Accelerate keeps process-wide singletons; every row starts from none."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    torch.set_num_threads(1)


def snapshot(root: Path) -> dict[str, int]:
    """Every file and folder under ``root`` with its size (folders: -1)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in sorted(root.rglob("*"))}


def write_tone(path: Path, seconds: float = 0.5, sr: int = SR, caption: str | None = "a tone", **meta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sr)) / sr
    sf.write(str(path), (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr, subtype="FLOAT")
    if caption is not None:
        path.with_suffix(".json").write_text(json.dumps({"caption": caption, **meta}))
    return path


def write_bad_samples(path: Path, value: float, caption: str | None = "a broken tone", **meta) -> Path:
    """A float WAV with one NaN or infinite sample in the middle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((SR // 2, 1), dtype=np.float32)
    data[1234] = value
    sf.write(str(path), data, SR, subtype="FLOAT")
    if caption is not None:
        path.with_suffix(".json").write_text(json.dumps({"caption": caption, **meta}))
    return path


def damaged_copy(model: Path, dest: Path, damage) -> Path:
    shutil.copytree(model, dest)
    damage(dest)
    return dest


def _truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


@pytest.fixture(scope="session")
def damaged_models(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Copies of the tiny model, each damaged in one way a user meets (an interrupted copy, a bad edit)."""
    root = tmp_path_factory.mktemp("damaged")
    unet_weights = "unet/diffusion_pytorch_model.safetensors"

    def edit_json(rel: str, change):
        def damage(path: Path):
            data = json.loads((path / rel).read_text())
            change(data)
            (path / rel).write_text(json.dumps(data))

        return damage

    damages = {
        "truncated_unet": lambda p: _truncate(p / unet_weights),
        "zeroed_vae": lambda p: _zero(p / "vae/diffusion_pytorch_model.safetensors"),
        "zeroed_text_encoder": lambda p: _zero(p / "text_encoder/model.safetensors"),
        "garbage_projection": lambda p: (p / "projection/diffusion_pytorch_model.safetensors").write_bytes(
            b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"
        ),
        "short_unet": lambda p: _truncate(p / unet_weights, (p / unet_weights).stat().st_size - 16),
        "empty_unet_weights": lambda p: (p / unet_weights).write_bytes(b""),
        "missing_unet": lambda p: shutil.rmtree(p / "unet"),
        "missing_index": lambda p: (p / "model_index.json").unlink(),
        "bad_index_json": lambda p: (p / "model_index.json").write_text("{not json"),
        "bad_unet_config": lambda p: (p / "unet/config.json").write_text('{"in_channels": 4,'),
        "bad_tokenizer_json": lambda p: _truncate(p / "tokenizer/tokenizer.json", 50),
        "mismatched_latents": edit_json("unet/config.json", lambda d: d.update(in_channels=7, out_channels=7)),
    }
    return {name: damaged_copy(tiny_model_dir, root / name, damage) for name, damage in damages.items()}


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The row's working folder (also the current directory): outputs go here and nothing may stay."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


class CLIResult:
    def __init__(self, code: int, out: str, err: str, log: str) -> None:
        self.code, self.out, self.err, self.log = code, out, err, log


def run_cli(argv: list[str], capsys, caplog) -> CLIResult:
    caplog.clear()
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return CLIResult(code, captured.out, captured.err, caplog.text)


def error_lines(err: str) -> list[str]:
    """stderr without progress bars and argparse's usage lines."""
    lines = []
    for line in err.replace("\r", "\n").splitlines():
        if not line.strip() or "it/s]" in line or "|" in line or line.startswith(("usage:", " " * 10)):
            continue
        lines.append(line)
    return lines


def check_cli_row(row: Row, result: CLIResult, command: str) -> None:
    """The row's exit code, its fragment in the right stream, no traceback, and at most two lines of error."""
    where = {"err": result.err, "out": result.out, "log": result.log + result.err}[row.stream]
    assert result.code == row.code, f"exit {result.code}, expected {row.code}\nstderr: {result.err[-2000:]}"
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert row.fragment in where, f"{row.fragment!r} not in {row.stream}: {where[-2000:]}"
    if row.stream == "err":
        lines = error_lines(result.err)
        assert lines and lines[-1].startswith(f"sak {command}: error: "), lines
        assert len(lines) <= 2, f"more than two lines of error: {lines}"


def fill(args, places: dict) -> list[str]:
    return [str(a).format(**places) for a in args]


PROMPT_FILES = {
    "empty.txt": "",
    "blank.txt": "\n   \n\n",
    "noprompt.csv": "text,seconds\na piano,0.5\n",
    "header_only.csv": "prompt,seconds\n",
    "open_quote_at_end.csv": 'prompt,seconds\na piano,0.5\n"rock drums,0.5\n',
    "open_quote_mid.csv": 'prompt,seconds\n"a piano,0.5\nrock drums,0.5\nstrings",0.5\n',
    "stray_quote.csv": 'prompt,seconds\n"a"b,0.5\n',
    "extra_cells.csv": "prompt,seconds\na piano,0.5,7\n",
    "bad_seconds.csv": "prompt,seconds\na piano,abc\n",
    "zero_seconds.csv": "prompt,seconds\na piano,0\n",
    "nan_seconds.csv": "prompt,seconds\na piano,nan\n",
    "negative_seed.csv": "prompt,seconds,seed\na piano,0.5,-1\n",
    "huge_seed.csv": "prompt,seconds,seed\na piano,0.5,18446744073709551616\n",
    "word_seed.csv": "prompt,seconds,seed\na piano,0.5,seven\n",
    "empty_prompt.csv": "prompt,seconds\n,0.5\n",
    "bad.jsonl": '{"prompt": "a piano"\n',
    "list.jsonl": '["a piano", 0.5]\n',
    "number_prompt.jsonl": '{"prompt": 5, "seconds": 0.5}\n',
    "no_prompt.jsonl": '{"seconds": 0.5}\n',
    "negative_seconds.jsonl": '{"prompt": "a piano", "seconds": -2}\n',
    "bool_seed.jsonl": '{"prompt": "a piano", "seconds": 0.5, "seed": true}\n',
    "word_seconds.jsonl": '{"prompt": "a piano", "seconds": "long"}\n',
    "two.txt": "a piano\nrock drums\n",
    "negative.csv": "prompt,negative\na piano,\nrock drums,hiss\n",
}


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    """Files the rows point at; the corpus checks that no row changes them."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "afile.txt").write_text("not a folder")
    (root / "adir.wav").mkdir()
    (root / "empty_dir").mkdir()
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    for name, text in PROMPT_FILES.items():
        (root / name).write_text(text)
    write_tone(root / "good.wav", caption=None)
    write_bad_samples(root / "nan.wav", np.nan, caption=None)
    write_bad_samples(root / "inf.wav", np.inf, caption=None)
    sf.write(str(root / "empty.wav"), np.zeros((0, 1), np.float32), SR)
    (root / "notaudio.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return root


@pytest.fixture
def places(tiny_model_dir, distilled_model_dir, damaged_models, inputs, work) -> dict:
    models = {"model": tiny_model_dir, "distilled": distilled_model_dir}
    return {**models, "inputs": inputs, "work": work, **{f"m_{k}": v for k, v in damaged_models.items()}}


@pytest.fixture
def unchanged(tiny_model_dir, distilled_model_dir, damaged_models, inputs, work):
    """Asserts after the row that nothing was left in the working folder and no input was changed."""
    watched = [work, inputs, tiny_model_dir, distilled_model_dir, *damaged_models.values()]
    before = [snapshot(p) for p in watched]
    yield
    after = [snapshot(p) for p in watched]
    for path, old, new in zip(watched, before, after):
        assert new == old, f"{path} changed: added {sorted(set(new) - set(old))}, removed {sorted(set(old) - set(new))}"


TINY_UNET_RUN = Path(__file__).resolve().parents[2] / "configs" / "train" / "tiny_unet.yaml"


@pytest.fixture(scope="session")
def finished_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A two-step U-Net run with its checkpoint at step 2, made once by ``sak train``."""
    root = tmp_path_factory.mktemp("finished")
    for i in range(4):
        write_tone(root / "audio" / f"t{i}.wav", 0.4, split="train")
    write_tone(root / "audio" / "v0.wav", 0.4, split="valid")
    args = ["train", "unet", str(TINY_UNET_RUN), f"model={tiny_model_dir}", f"data.catalogue={root / 'audio'}"]
    args += [f"run.output_dir={root / 'run'}", "data.window_seconds=0.25", "run.max_steps=2", "run.valid_every=0"]
    assert main([*args, "run.tensorboard=false"]) == 0
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return root / "run"
