"""The distillation trainer on the tiny model: the teacher's paths and the student's targets are right, the student
learns them, a resume is exact and samples no path twice, and the export holds the student beside the teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from stable_audio_kit.students import file_sha256, student_is_stale
from stable_audio_kit.lora import weights_sha256
from stable_audio_kit.distillation import DISTILLED_SUBFOLDER, ddim_step, velocity_target
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.train import distill as trainer
from stable_audio_kit.train.common import load_run_config
from stable_audio_kit.train.export import export_run
from stable_audio_kit.train.config import DistillTrainConfig
from stable_audio_kit.unet import UNet1DConditionModel

from .test_unet_trainer import write_catalogue

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = ROOT / "configs" / "train" / "tiny_distill.yaml"


@pytest.fixture(autouse=True)
def fresh_accelerate():
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def reset_accelerate() -> None:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    return write_catalogue(tmp_path_factory.mktemp("distill") / "audio", [0.3, 0.55, 0.8, 0.2, 1.1, 0.6])


def make_cfg(model: Path, catalogue: Path, out: Path, *overrides: str) -> DistillTrainConfig:
    base = [f"model={model}", f"data.catalogue={catalogue}", f"run.output_dir={out}"]
    return load_run_config(DistillTrainConfig, TINY_RUN, [*base, *overrides])


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir, catalogue, tmp_path_factory) -> Path:
    reset_accelerate()
    out = tmp_path_factory.mktemp("reference") / "run"
    trainer.train(make_cfg(tiny_model_dir, catalogue, out))
    reset_accelerate()
    return out


def test_a_path_is_the_teachers_sampler_kept_at_the_students_timesteps(tiny_model_dir, catalogue, reference_run):
    cfg = make_cfg(tiny_model_dir, catalogue, reference_run)
    chunk = torch.load(trainer.chunk_path(reference_run, "train", 0), weights_only=False)
    states, items = chunk["states"], chunk["items"]
    assert states.shape[:2] == (cfg.trajectory_batch, cfg.steps + 1)
    # The same call of the pipeline, from the same noise, with the teacher's own scheduler and steps.
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = trainer.swap_scheduler(pipe.scheduler, cfg.teacher_scheduler)
    again = trainer.sample_paths(pipe, cfg, items, states[:, 0])
    torch.testing.assert_close(again, states, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(states[:, 0], states[:, -1])  # the teacher moved


def test_the_target_velocity_lands_a_ddim_step_on_the_teachers_next_latents(tiny_model_dir, catalogue, reference_run):
    cfg = make_cfg(tiny_model_dir, catalogue, reference_run)
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    grid = trainer.teacher_grid(pipe, cfg)
    states, items = trainer.load_paths(reference_run, "train", cfg.trajectories, cfg.trajectory_batch)
    batch = trainer.pair_batch(pipe, states, items, grid, [0, 1, 2], [0, 1, 1], torch.device("cpu"))
    prev = torch.tensor([grid[1], grid[2], grid[2]])
    landed = ddim_step(batch["sample"], batch["target"], batch["timesteps"], prev, pipe.scheduler.alphas_cumprod)
    torch.testing.assert_close(landed, torch.stack([states[0, 1], states[1, 2], states[2, 2]]), rtol=1e-4, atol=1e-4)
    assert batch["timesteps"].tolist() == [grid[0], grid[1], grid[1]]


def test_the_student_learns_the_teachers_paths(tiny_model_dir, catalogue, tmp_path):
    # Overfit four paths: the student's whole 2-step sample gets closer to the teacher's end than the teacher's
    # own U-Net taking those 2 DDIM steps (the step-0 baseline).
    cfg = make_cfg(
        tiny_model_dir,
        catalogue,
        tmp_path / "run",
        "run.max_steps=60",
        "run.checkpoint_every=60",
        "run.valid_every=0",
        "optim.lr=2e-3",
        "ema_decay=0.0",
    )
    run = trainer.train(cfg)
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    grid = trainer.teacher_grid(pipe, cfg)
    states, items = trainer.load_paths(run, "train", cfg.trajectories, cfg.trajectory_batch)
    teacher = trainer.ConditionedDenoiser(pipe.projection, trainer.student_unet(pipe.unet, cfg))
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    student = UNet1DConditionModel.from_pretrained(ckpt / "export" / "unet")
    loss_before, error_before = trainer.validate(teacher, pipe, states, items, grid, 4, torch.device("cpu"))
    learned = trainer.ConditionedDenoiser(pipe.projection, student)
    loss_after, error_after = trainer.validate(learned, pipe, states, items, grid, 4, torch.device("cpu"))
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
    assert error_after < 0.7 * error_before, (error_before, error_after)


def test_a_resumed_run_equals_an_uninterrupted_one_and_samples_only_missing_paths(
    tiny_model_dir, catalogue, reference_run, tmp_path, monkeypatch
):
    # The run stopped after its step-3 checkpoint, while the second chunk of paths was being written.
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    shutil.rmtree(out / "checkpoints" / "step_00000006")
    trainer.chunk_path(out, "train", 1).unlink()
    calls = []
    sample_paths = trainer.sample_paths

    def counted(*args, **kwargs):
        calls.append(1)
        return sample_paths(*args, **kwargs)

    monkeypatch.setattr(trainer, "sample_paths", counted)
    trainer.train(make_cfg(tiny_model_dir, catalogue, out), resume=True)
    assert len(calls) == 1
    name = "step_00000006"
    for file in ("export/unet/diffusion_pytorch_model.safetensors", "model.safetensors"):
        a, b = load_file(reference_run / "checkpoints" / name / file), load_file(out / "checkpoints" / name / file)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"{file} {key}")


def test_export_puts_the_student_beside_the_teachers_unet(tiny_model_dir, catalogue, reference_run, tmp_path):
    out = export_run(reference_run, tmp_path / "model")
    student = UNet1DConditionModel.from_pretrained(out / DISTILLED_SUBFOLDER)
    assert (student.config.distilled_steps, student.config.distilled_guidance_scale) == (2, 3.0)
    teacher = UNet1DConditionModel.from_pretrained(out / "unet")
    assert teacher.config.distilled_steps is None
    original = UNet1DConditionModel.from_pretrained(Path(tiny_model_dir) / "unet")
    for (name, a), b in zip(teacher.state_dict().items(), original.state_dict().values()):
        assert torch.equal(a, b), name
    assert json.loads((out / "training.json").read_text())["kind"] == "distill"
    # The run recorded which weights it distilled (tools/bundle_distilled.py refuses a student of another teacher).
    recorded = json.loads((reference_run / "teacher.json").read_text())["unet_sha256"]
    assert recorded == weights_sha256(original) != weights_sha256(student)
    # The student names its teacher too: the U-Net beside it, whose file it records.
    named = json.loads((out / DISTILLED_SUBFOLDER / "teacher.json").read_text())
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"
    assert named["unet_sha256"] == recorded
    assert named["files"] == {weights.name: {"sha256": file_sha256(weights), "bytes": weights.stat().st_size}}
    assert not student_is_stale(out)


def test_export_refuses_a_base_whose_unet_is_not_the_teacher(reference_run, stale_student_dir, tmp_path):
    with pytest.raises(ValueError, match="is not the teacher the run .* distilled its student from"):
        export_run(reference_run, tmp_path / "model", base=stale_student_dir)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("teacher_steps=5", "teacher_steps=5 must be a multiple of steps=2"),
        ("steps=0", "steps must be an integer >= 1, got 0"),
        ("guidance_scale=0.5", "guidance_scale must be >= 1"),
        ("teacher_scheduler=nope", "unknown scheduler 'nope'"),
        ("teacher_precision=fp8", "fp8"),
        ("data.window_seconds=0.1", "data.window_seconds must stay null"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(tiny_model_dir, catalogue, tmp_path, override, message):
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", override)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        trainer.train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_teacher_whose_timesteps_miss_the_students_is_refused(tiny_model_dir, catalogue, tmp_path):
    # Heun takes two evaluations a step: its timesteps are not one per step.
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", "teacher_scheduler=heun")
    with pytest.raises(ValueError, match="do not pass through the student's"):
        trainer.train(cfg)
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run2", "steps=3", "teacher_steps=6")
    with pytest.raises(ValueError, match="steps: steps must be >= 1 and divide the 1000 training timesteps, got 3"):
        trainer.train(cfg)


def test_the_velocity_target_inverts_the_ddim_step():
    alphas = torch.linspace(0.999, 0.01, 1000)
    x, v = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    t, prev = torch.tensor([999, 500, 10]), torch.tensor([500, 10, -1])
    landed = ddim_step(x, v, t, prev, alphas)
    torch.testing.assert_close(velocity_target(x, landed, t, prev, alphas), v, rtol=1e-5, atol=1e-5)
    # The last step ends on the clean latents: x0 = alpha x - sigma v.
    a = alphas[10].sqrt()
    torch.testing.assert_close(landed[2], a * x[2] - (1 - alphas[10]).sqrt() * v[2], rtol=1e-5, atol=1e-5)


def test_paths_cached_under_other_settings_are_refused(tiny_model_dir, catalogue, reference_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_run / "trajectories", out / "trajectories")
    cfg = make_cfg(tiny_model_dir, catalogue, out, "guidance_scale=5.0")
    with pytest.raises(ValueError, match=r"sampled with other settings \(guidance_scale: 3.0 -> 5.0\)"):
        trainer.train(cfg)


def test_a_student_can_start_from_an_earlier_student(tiny_model_dir, catalogue, reference_run, tmp_path):
    # Progressive distillation: a 1-step student starts from the 2-step one and keeps the teacher's targets.
    earlier = reference_run / "checkpoints" / "step_00000006" / "export" / "unet"
    out = tmp_path / "run"
    cfg = make_cfg(
        tiny_model_dir, catalogue, out, "steps=1", f"student_init={earlier}", "run.max_steps=2", "run.valid_every=0"
    )
    pipe = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    start = trainer.initial_unet(pipe.unet, cfg).state_dict()
    saved = load_file(earlier / "diffusion_pytorch_model.safetensors")
    assert start.keys() == saved.keys()
    for name in saved:
        assert torch.equal(start[name], saved[name]), name
    trainer.train(cfg)
    student = UNet1DConditionModel.from_pretrained(out / "checkpoints" / "step_00000002" / "export" / "unet")
    assert student.config.distilled_steps == 1


def test_a_student_init_of_another_architecture_is_refused(tiny_model_dir, catalogue, tmp_path, tiny_config):
    other = tmp_path / "other"
    unet = UNet1DConditionModel.from_pretrained(Path(tiny_model_dir) / "unet")
    UNet1DConditionModel.from_config({**unet.config, "layers_per_block": 2, "_use_default_values": []}).save_pretrained(
        other
    )
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", f"student_init={other}")
    with pytest.raises(ValueError, match="is not a U-Net of the teacher's architecture"):
        trainer.train(cfg)
    cfg = make_cfg(tiny_model_dir, catalogue, tmp_path / "run", f"student_init={tmp_path}")
    with pytest.raises(ValueError, match="is not a U-Net folder"):
        trainer.train(cfg)
    assert not (tmp_path / "run").exists()
