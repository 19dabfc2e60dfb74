"""`sak generate --prompts`: rows of equal length are sampled in one pipeline call, and each row's files are those
it gets alone (to float tolerance: batched matmuls round differently), with its own seed and any --batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_kit import cli_generate
from stable_audio_kit.cli import main
from stable_audio_kit.conditioning import parse_prompt
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.prompt_lists import Job
from stable_audio_kit.schedulers import SCHEDULER_NAMES, deterministic_steps, make_scheduler

# diffusers' sigma-based schedulers call np.array(tensor, copy=False), which numpy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

# Three lengths: 0.25 s three times, 0.5 s twice, 0.75 s once (each row its own seed).
ROWS = [
    {"prompt": "soft piano", "seconds": 0.25, "seed": 11},
    {"prompt": "loud drums", "seconds": 0.5, "seed": 12},
    {"prompt": "strings", "seconds": 0.25, "seed": 13},
    {"prompt": "brass at 120 bpm", "seconds": 0.5, "seed": 14},
    {"prompt": "wind", "seconds": 0.25, "seed": 15},
    {"prompt": "rain", "seconds": 0.75, "seed": 16},
]


def write_rows(tmp_path, rows):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def calls(monkeypatch):
    """Each pipeline call of a test: its prompts, seconds and waveforms per prompt."""
    seen = []
    original = StableAudioKitPipeline.__call__

    def counted(self, prompt, *args, **kwargs):
        prompts = [prompt] if not isinstance(prompt, list) else prompt
        seen.append(
            {
                "prompts": [getattr(p, "text", p) for p in prompts],
                "seconds": kwargs.get("seconds_total"),
                "batch": kwargs.get("num_waveforms_per_prompt"),
            }
        )
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(StableAudioKitPipeline, "__call__", counted)
    return seen


def read(path):
    return sf.read(path, dtype="float32", always_2d=True)[0]


def assert_same_audio(got, alone, name):
    """The same audio to float tolerance: 1e-4 of the peak of the row alone (a file from other noise differs by about
    the peak)."""
    assert got.shape == alone.shape, name
    peak = max(np.abs(alone).max(), 1e-6)
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-4 * peak, err_msg=name)


def generate_alone(model, tmp_path, row, *extra):
    """The row as a single prompt (`sak generate PROMPT`), its files by waveform."""
    out = tmp_path / "alone" / f"{row['seed']}.wav"
    out.parent.mkdir(exist_ok=True)
    args = ["generate", row["prompt"], "--seconds", str(row["seconds"]), "--seed", str(row["seed"]), "-o", str(out)]
    assert main([*args, "--model", str(model), *extra]) == 0
    return sorted(out.parent.glob(f"{row['seed']}*.wav"))


@pytest.mark.parametrize(
    "model_fixture, settings",
    [
        ("tiny_model_dir", ["--steps", "2", "--precision", "fp32"]),  # the model's own sampler, DPM-Solver++ 2M
        ("distilled_model_dir", ["--precision", "bf16"]),  # --unet auto: the student's DDIM, no guidance
    ],
)
def test_grouped_rows_of_mixed_lengths_are_the_files_each_row_gets_alone(
    request, model_fixture, settings, tmp_path, calls
):
    model = request.getfixturevalue(model_fixture)
    common = ["--no-normalize", *settings]
    out = tmp_path / "outs"
    args = ["generate", "--prompts", str(write_rows(tmp_path, ROWS)), "--model", str(model), *common]
    assert main([*args, "-o", str(out)]) == 0
    assert [c["prompts"] for c in calls] == [
        ["soft piano", "strings", "wind"],
        ["loud drums", "brass at 120 bpm"],
        ["rain"],
    ], "one call per length, in the order of each call's first row"
    files = sorted(out.iterdir())
    assert len(files) == len(ROWS)
    for file, row in zip(files, ROWS):
        (alone,) = generate_alone(model, tmp_path, row, *common)
        assert_same_audio(read(file), read(alone), file.name)
    assert len(calls) == 3 + len(ROWS)


def test_batch_of_waveforms_in_a_group_is_what_each_row_gets_alone(tiny_model_dir, tmp_path, calls):
    rows = ROWS[:3]  # two of 0.25 s sampled together, one of 0.5 s
    common = ["--steps", "2", "--precision", "fp32", "--batch", "2", "--no-normalize"]
    out = tmp_path / "outs"
    args = ["generate", "--prompts", str(write_rows(tmp_path, rows)), "--model", str(tiny_model_dir), *common]
    assert main([*args, "-o", str(out)]) == 0
    assert [(c["prompts"], c["batch"]) for c in calls] == [(["soft piano", "strings"], 2), (["loud drums"], 2)]
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [
        "0000_soft_piano_0.wav",
        "0000_soft_piano_1.wav",
        "0001_loud_drums_0.wav",
        "0001_loud_drums_1.wav",
        "0002_strings_0.wav",
        "0002_strings_1.wav",
    ]
    for k, row in enumerate(rows):
        alone = generate_alone(tiny_model_dir, tmp_path, row, *common)
        assert len(alone) == 2
        for got, want in zip(files[2 * k : 2 * k + 2], alone):
            assert_same_audio(read(got), read(want), got.name)
    # The two waveforms of a row are two draws, not one twice.
    assert np.abs(read(files[0]) - read(files[1])).max() > 1e-3 * np.abs(read(files[0])).max()


def test_rows_with_a_workflow_another_negative_or_length_are_not_merged(tiny_model_dir, tmp_path, calls):
    rows = [
        {"prompt": "a", "seconds": 0.5},
        {"prompt": "b loop", "seconds": 0.5, "loop": "true"},  # a workflow: alone
        {"prompt": "c", "seconds": 0.5, "negative": "noise"},  # another negative prompt
        {"prompt": "d", "seconds": 0.5},
        {"prompt": "e", "seconds": 0.25},  # another length
        {"prompt": "f", "seconds": 0.5, "negative": "noise"},
        {"prompt": "g", "seconds": 2.5},  # long-form: alone
        {"prompt": "h", "seconds": 2.5},
    ]
    args = ["generate", "--prompts", str(write_rows(tmp_path, rows)), "--model", str(tiny_model_dir), "--steps", "1"]
    assert main([*args, "--precision", "fp32", "-o", str(tmp_path / "outs")]) == 0
    assert [c["prompts"] for c in calls] == [["a", "d"], ["b loop"], ["c", "f"], ["e"], ["g"], ["h"]]
    assert len(list((tmp_path / "outs").iterdir())) == len(rows)


@pytest.mark.parametrize(
    "settings, grouped",
    [
        (["--scheduler", "unipc", "--precision", "fp32"], True),
        (["--scheduler", "ddpm", "--precision", "fp32"], False),  # a step draws noise, for the whole batch
        (["--precision", "bf16"], False),  # bfloat16 rounding, amplified by guidance
        (["--precision", "bf16", "--cfg", "1"], True),  # no guidance
    ],
)
def test_rows_are_grouped_only_where_they_come_out_as_alone(tiny_model_dir, tmp_path, calls, settings, grouped):
    rows = [{"prompt": p, "seconds": 0.25} for p in "abc"]
    args = ["generate", "--prompts", str(write_rows(tmp_path, rows)), "--model", str(tiny_model_dir), "--steps", "2"]
    assert main([*args, *settings, "-o", str(tmp_path / "outs")]) == 0
    assert [c["prompts"] for c in calls] == ([["a", "b", "c"]] if grouped else [["a"], ["b"], ["c"]])


def test_groups_are_capped_and_keep_row_order(monkeypatch):
    monkeypatch.setattr(cli_generate, "MAX_GROUP_ROWS", 2)
    jobs = [Job(i, parse_prompt(f"p{i}"), s, i) for i, s in enumerate([1.0, 1.0, 0.5, 1.0, 1.0, 0.5, 1.0])]
    jobs[6].options = {"loop": True}
    groups = cli_generate.group_jobs(jobs, max_seconds=1.0)
    assert [[job.index for job in group] for group in groups] == [[0, 1], [2, 5], [3, 4], [6]]
    assert [[job.index for job in group] for group in cli_generate.group_jobs(jobs, 1.0, together=False)] == [
        [i] for i in range(7)
    ]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_deterministic_steps_is_what_a_step_does(name):
    """A sampler counted deterministic gives the same step whatever torch's global generator holds; DDPM's does
    not (the pipeline gives a step no generator)."""
    scheduler = make_scheduler(name, num_train_timesteps=100, beta_schedule="linear")
    sample, model_output = torch.randn(2, 4, 16), torch.randn(2, 4, 16)
    steps = []
    for seed in (0, 1):
        scheduler.set_timesteps(4)
        torch.manual_seed(seed)
        t = scheduler.timesteps[0]
        steps.append(scheduler.step(model_output, t, scheduler.scale_model_input(sample, t)).prev_sample)
    assert deterministic_steps(scheduler) == torch.equal(*steps)
    assert deterministic_steps(scheduler) == (name != "ddpm")
