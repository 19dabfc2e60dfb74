"""A distilled student U-Net in the pipeline: its own steps and guidance by default, one conditional forward a
step, the DDIM sampler it was distilled for, every workflow, and a loud refusal of what it cannot do; loading it
from a pipeline directory's ``unet_distilled/``."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from stable_audio_kit import StableAudioKitPipeline, load_pipeline
from stable_audio_kit.assembly import describe_pipeline
from stable_audio_kit.distillation import ddim_step, is_student_scheduler, student_scheduler, student_timesteps
from stable_audio_kit.schedulers import swap_scheduler


@pytest.fixture(scope="module")
def student_pipe(tiny_pipeline, tiny_student):
    p = tiny_pipeline
    pipe = StableAudioKitPipeline(
        p.vae, p.text_encoder, p.tokenizer, p.projection, tiny_student, student_scheduler(p.scheduler.config)
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def forwards(student_pipe):
    """The batch size of every U-Net forward of the test."""
    batches = []
    handle = student_pipe.unet.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    yield batches
    handle.remove()


def generate(pipe, prompt="a calm piano melody", seed=0, **kwargs):
    kwargs.setdefault("seconds_total", 0.5)
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **kwargs).audios


def test_defaults_are_the_students_own_one_conditional_forward_a_step(student_pipe, forwards):
    audio = generate(student_pipe, ["piano", "drums"], num_waveforms_per_prompt=2, seconds_total=0.3)
    assert audio.shape == (4, student_pipe.audio_channels, round(0.3 * student_pipe.sample_rate))
    assert forwards == [4, 4, 4, 4]  # 4 steps, no unconditional half: batch = the waveforms
    assert student_pipe.resolve_sampling() == (4, 7.0)
    assert not student_pipe.runs_unconditional(7.0)


def test_its_own_values_given_explicitly_are_accepted(student_pipe):
    a = generate(student_pipe, num_inference_steps=4, guidance_scale=7.0)
    np.testing.assert_array_equal(a, generate(student_pipe))


def test_a_base_unet_keeps_its_defaults(tiny_pipeline):
    assert tiny_pipeline.resolve_sampling() == (15, 7.0)
    assert tiny_pipeline.resolve_sampling(3, 1.0) == (3, 1.0)
    assert tiny_pipeline.runs_unconditional(7.0) and not tiny_pipeline.runs_unconditional(1.0)


def test_the_student_samples_as_a_loop_of_ddim_steps(student_pipe):
    pipe = student_pipe
    frames = int(pipe.unet.config.sample_size)
    latents = torch.randn(1, pipe.unet.config.in_channels, frames, generator=torch.Generator().manual_seed(5))
    out = pipe("a tone", seconds_total=0.5, latents=latents, output_type="latent", precision="fp32").audios

    request, _, _ = pipe.check_call("a tone", seconds_total=0.5, latents=latents)
    inputs = pipe.encode_conditioning(request, torch.device("cpu")).unet_inputs()
    times = student_timesteps(4, pipe.scheduler.config.num_train_timesteps)
    x = latents.clone()
    with torch.no_grad():
        for t, prev in zip(times[:-1], times[1:]):
            velocity = pipe.unet(x, torch.tensor(t), **inputs).sample
            x = ddim_step(x, velocity, torch.tensor([t]), torch.tensor([prev]), pipe.scheduler.alphas_cumprod)
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(num_inference_steps=15), ["num_inference_steps=15", "exactly 4 steps"]),
        (dict(guidance_scale=3.0), ["guidance_scale=3", "guidance 7 baked in", "load the pipeline's own U-Net"]),
        (dict(guidance_scale=1.0), ["guidance_scale=1 ", "baked in"]),
        (dict(negative_prompt="hiss"), ["negative_prompt 'hiss'", "no unconditional half"]),
        (dict(negative_prompt=["hiss", "hum"], prompt=["a", "b"]), ["'hiss', 'hum'"]),
        (dict(num_inference_steps=15, seconds_total=2.5), ["num_inference_steps=15"]),  # long-form
        (dict(negative_prompt="hiss", seconds_total=2.5), ["negative_prompt 'hiss'"]),
        (dict(num_inference_steps=0), ["num_inference_steps must be >= 1, got 0"]),
    ],
)
def test_what_a_student_cannot_do_is_refused_before_work(student_pipe, forwards, kwargs, fragments):
    prompt = kwargs.pop("prompt", "a prompt")
    with pytest.raises(ValueError) as err:
        generate(student_pipe, prompt, **kwargs)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert forwards == []


def leading_ddim(scheduler):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler.config, timestep_spacing="leading")


@pytest.mark.parametrize(
    "make",
    [lambda s: swap_scheduler(s, "unipc"), lambda s: swap_scheduler(s, "dpmsolver++"), leading_ddim],
    ids=["unipc", "dpmsolver++", "ddim-leading"],
)
def test_another_scheduler_is_refused_with_the_fix(student_pipe, forwards, make):
    student = student_pipe.scheduler
    student_pipe.scheduler = make(student)
    try:
        with pytest.raises(ValueError, match=r"pipe\.scheduler = student_scheduler\(pipe\.scheduler\.config\)") as err:
            generate(student_pipe)
        assert type(student_pipe.scheduler).__name__ in str(err.value)
        assert forwards == []
    finally:
        student_pipe.scheduler = student
    assert is_student_scheduler(student_pipe.scheduler)


def test_every_workflow_runs_on_the_students_timesteps(student_pipe, forwards):
    pipe, rate = student_pipe, student_pipe.sample_rate
    source = (0.3 * np.sin(2 * np.pi * 330 * np.arange(rate // 2) / rate)).astype(np.float32)[None]

    a2a = generate(pipe, init_audio=source, strength=0.5)
    assert a2a.shape == (1, 1, rate // 2) and forwards == [1, 1]  # the last int(4 * 0.5) of the 4 steps
    forwards.clear()
    inpainted = generate(pipe, inpaint_audio=source, regions=[(0.2, 0.3)])
    assert inpainted.shape == (1, 1, rate // 2) and forwards == [1] * 4
    np.testing.assert_allclose(inpainted[0, :, :1000], source[:, :1000], atol=1e-6)  # outside the region: the input
    forwards.clear()
    loop = generate(pipe, loop=True, seconds_total=0.4)
    assert loop.shape == (1, 1, round(0.4 * rate)) and forwards == [1] * 4
    forwards.clear()
    long = generate(pipe, seconds_total=2.5)
    assert long.shape == (1, 1, round(2.5 * rate)) and forwards == [1] * 12  # 3 windows of 4 steps
    assert np.isfinite(long).all()


def test_load_pipeline_distilled(distilled_model_dir, student_pipe):
    pipe = load_pipeline(distilled_model_dir, unet="distilled")
    assert pipe.unet.config.distilled_steps == 4 and pipe.unet.config.distilled_guidance_scale == 7.0
    assert is_student_scheduler(pipe.scheduler) and pipe.unet.dtype == torch.float32
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(generate(pipe), generate(student_pipe), rtol=0, atol=2e-6)

    base = load_pipeline(distilled_model_dir)  # the default: the directory's own U-Net and scheduler
    assert base.unet.config.distilled_steps is None
    assert type(base.scheduler).__name__ == "DPMSolverMultistepScheduler"
    # "auto" is the CLI's and the page's choice, made before they load: the loader takes the U-Net it names.
    with pytest.raises(ValueError, match="unet must be one of base, distilled, got 'auto'"):
        load_pipeline(distilled_model_dir, unet="auto")


def test_the_diffusers_override_idiom(distilled_model_dir):
    from stable_audio_kit import UNet1DConditionModel

    unet = UNet1DConditionModel.from_pretrained(distilled_model_dir, subfolder="unet_distilled")
    pipe = StableAudioKitPipeline.from_pretrained(distilled_model_dir, unet=unet)
    with pytest.raises(ValueError, match="DPMSolverMultistepScheduler"):  # the student's sampler is not set yet
        pipe("x", seconds_total=0.25)
    pipe.scheduler = student_scheduler(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    assert pipe("x", seconds_total=0.25).audios.shape == (1, 1, 2000)


def test_load_pipeline_refusals(tiny_model_dir, tmp_path, distilled_model_dir):
    with pytest.raises(ValueError) as err:
        load_pipeline(tiny_model_dir, unet="distilled")
    message = str(err.value)
    assert str(tiny_model_dir) in message and "holds no distilled U-Net" in message and "sak train distill" in message
    with pytest.raises(ValueError, match="unet must be one of base, distilled, got 'fast'"):
        load_pipeline(tiny_model_dir, unet="fast")
    with pytest.raises(ValueError, match="does not exist"):
        load_pipeline(tmp_path / "nowhere", unet="distilled")

    broken = shutil.copytree(distilled_model_dir, tmp_path / "broken")
    (broken / "unet_distilled" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is truncated"):
        load_pipeline(broken, unet="distilled")
    config = broken / "unet_distilled" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "distilled_steps": None}))
    with pytest.raises(ValueError, match="not a distilled student's config"):
        load_pipeline(broken, unet="distilled")


def test_an_unknown_unet_is_refused_before_torch_is_imported():
    code = (
        "import sys, stable_audio_kit\n"
        "try:\n"
        "    stable_audio_kit.load_pipeline('nowhere', unet='fast')\n"
        "except ValueError as err:\n"
        "    print(err)\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unet must be one of base, distilled, got 'fast'", "[]"]


def test_describe_pipeline_names_the_student(distilled_model_dir, tiny_model_dir, tiny_pipeline):
    pipe = load_pipeline(distilled_model_dir, unet="distilled")
    text = describe_pipeline(pipe, distilled_model_dir)
    assert (
        "distilled U-Net:  unet_distilled/, 4 steps, guidance 7 baked in (sampled by default, --unet auto; --unet base "
        "for the model's own)"
    ) in text
    assert "unet:             a distilled student: 4 steps, guidance 7 baked in" in text
    assert "distilled" not in describe_pipeline(tiny_pipeline, tiny_model_dir)


def test_with_student_shares_every_component_but_the_unet_and_the_sampler(distilled_model_dir):
    from stable_audio_kit.assembly import load_pipeline, with_student
    from stable_audio_kit.distillation import is_student_scheduler

    pipe = load_pipeline(distilled_model_dir)
    student = with_student(pipe, distilled_model_dir)
    for name in ("vae", "text_encoder", "tokenizer", "projection"):
        assert getattr(student, name) is getattr(pipe, name), name
    assert student.unet.config.distilled_steps == 4 and pipe.unet.config.distilled_steps is None
    assert is_student_scheduler(student.scheduler) and not is_student_scheduler(pipe.scheduler)
    # The same audio as the student loaded on its own.
    alone = load_pipeline(distilled_model_dir, unet="distilled")
    kwargs = dict(seconds_total=0.2, output_type="np")
    a = student("a tone", generator=torch.Generator().manual_seed(0), **kwargs).audios
    b = alone("a tone", generator=torch.Generator().manual_seed(0), **kwargs).audios
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_with_student_names_a_directory_without_one(tiny_model_dir):
    from stable_audio_kit.assembly import load_pipeline, with_student

    with pytest.raises(ValueError, match="unet_distilled"):
        with_student(load_pipeline(tiny_model_dir), tiny_model_dir)


# --------------------------------------------------------------------------- the student's teacher
STALE = "its distilled U-Net (unet_distilled/) was distilled from other weights than unet/ holds"


def test_a_student_names_its_teacher_and_loads_beside_it(distilled_model_dir):
    from stable_audio_kit.students import auto_student, file_sha256, student_is_stale
    from stable_audio_kit.lora import weights_sha256

    record = json.loads((distilled_model_dir / "unet_distilled" / "teacher.json").read_text())
    weights = distilled_model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    assert record["files"] == {weights.name: {"sha256": file_sha256(weights), "bytes": weights.stat().st_size}}
    assert record["unet_sha256"] == weights_sha256(load_pipeline(distilled_model_dir).unet)
    assert not student_is_stale(distilled_model_dir) and auto_student(distilled_model_dir)
    assert load_pipeline(distilled_model_dir, unet="distilled").unet.config.distilled_steps == 4


def test_a_student_of_other_weights_than_unet_is_refused_when_asked_for(stale_student_dir, caplog):
    from stable_audio_kit.assembly import with_student
    from stable_audio_kit.students import auto_student, describe_distilled, student_is_stale

    assert student_is_stale(stale_student_dir)
    base = load_pipeline(stale_student_dir)  # the model's own U-Net loads as ever
    for load in (
        lambda: load_pipeline(stale_student_dir, unet="distilled"),
        lambda: with_student(base, stale_student_dir),
    ):
        with pytest.raises(ValueError) as err:
            load()
        assert str(stale_student_dir) in str(err.value) and STALE in str(err.value)
        assert "sak train distill" in str(err.value) and "remove unet_distilled/" in str(err.value)
    # --unet auto: one warning naming the directory, and the model's own U-Net.
    caplog.clear()
    assert not auto_student(stale_student_dir)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(stale_student_dir) in warnings[0].getMessage()
    assert "sampling with the base U-Net" in warnings[0].getMessage()
    assert "STALE: distilled from other weights than unet/ holds" in describe_distilled(stale_student_dir)


def test_the_same_teacher_saved_in_another_dtype_still_matches(distilled_model_dir, tmp_path):
    """Other bytes, the same weights: the tensor-content hash decides, as weights_sha256 of the loaded U-Net. The
    teacher is stored in float16 (as the bundled model's), recorded, then saved again in float32 and in float16."""
    from stable_audio_kit import UNet1DConditionModel
    from stable_audio_kit.students import file_sha256, student_is_stale, write_teacher_record
    from stable_audio_kit.lora import weights_sha256

    model = shutil.copytree(distilled_model_dir, tmp_path / "model")
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    teacher = UNet1DConditionModel.from_pretrained(model / "unet").half()
    teacher.save_pretrained(model / "unet")
    write_teacher_record(model / "unet_distilled", model / "unet", weights_sha256(teacher))
    recorded = file_sha256(weights)
    for dtype in (torch.float32, torch.float16):
        UNet1DConditionModel.from_pretrained(model / "unet").to(dtype).save_pretrained(model / "unet")
        assert (file_sha256(weights) != recorded) == (dtype == torch.float32)  # float32: the file differs
        assert not student_is_stale(model)
    assert load_pipeline(model, unet="distilled").unet.config.distilled_steps == 4


def test_a_student_without_a_teacher_record_loads_as_before(distilled_model_dir, tmp_path, caplog):
    """Exported before teacher.json: which U-Net it was distilled from is unknown, so nothing is checked."""
    from stable_audio_kit.students import auto_student, describe_distilled

    model = shutil.copytree(distilled_model_dir, tmp_path / "model")
    (model / "unet_distilled" / "teacher.json").unlink()
    caplog.set_level("DEBUG", logger="stable_audio_kit")
    assert auto_student(model)
    assert [r.levelname for r in caplog.records if "teacher.json" in r.getMessage()] == ["DEBUG"]
    assert load_pipeline(model, unet="distilled").unet.config.distilled_steps == 4
    assert "STALE" not in describe_distilled(model)


def test_a_damaged_teacher_record_is_named(distilled_model_dir, tmp_path):
    model = shutil.copytree(distilled_model_dir, tmp_path / "model")
    record = model / "unet_distilled" / "teacher.json"
    for text, message in (("{", "is not valid JSON"), ('{"unet_sha256": "x"}', "is not a student's teacher record")):
        record.write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            load_pipeline(model, unet="distilled")
        assert str(record) in str(err.value)
