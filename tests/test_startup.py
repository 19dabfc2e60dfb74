"""Start-up: importing the package, ``sak --help`` and a refused argument load neither torch, diffusers nor
transformers; the lazily handed-on names still resolve, and diffusers still finds what it looks up.

Each check runs in a fresh interpreter, since this test process has long imported everything. How long
start-up takes is measured in ``benchmarks/startup.py``, not here.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers")

REPORT = "import json, sys; print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"

# Runs `python -m stable_audio_kit.cli ARGS` in the same interpreter, then reports what it imported.
RUN_CLI = """
import runpy, sys
sys.argv = ["sak", *{args!r}]
try:
    runpy.run_module("stable_audio_kit.cli", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    print("exit", exit.code, file=sys.stderr)
"""


def heavy_modules_after(code: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """The heavy packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    script = f"{code}\n{REPORT.format(heavy=HEAVY)}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result


def test_import_loads_no_heavy_package():
    loaded, _ = heavy_modules_after("import stable_audio_kit")
    assert loaded == []


def test_subpackages_and_prompt_reading_load_no_heavy_package():
    code = (
        "import stable_audio_kit.conditioning, stable_audio_kit.data, stable_audio_kit.evaluation\n"
        "import stable_audio_kit.schedulers, stable_audio_kit.unet, stable_audio_kit.vae\n"
        "import stable_audio_kit.prompt_lists\n"
        "from stable_audio_kit.conditioning import parse_prompt\n"
        "from stable_audio_kit.schedulers import check_scheduler_name\n"
        "assert parse_prompt('drums at 120 bpm in F# minor').tempo == 120\n"
        "check_scheduler_name('unipc')"
    )
    loaded, _ = heavy_modules_after(code)
    assert loaded == []


def test_help_loads_no_heavy_package():
    loaded, result = heavy_modules_after(RUN_CLI.format(args=["--help"]))
    assert loaded == []
    assert "generate" in result.stdout and "exit 0" in result.stderr


def test_generate_help_loads_no_heavy_package():
    loaded, result = heavy_modules_after(RUN_CLI.format(args=["generate", "--help"]))
    assert loaded == []
    assert "--unet {auto,base,distilled}" in result.stdout and "exit 0" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "a snare hit", "--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["generate", "a snare hit", "--scheduler", "nope"], "unknown scheduler 'nope'"),
        (["generate", "a snare hit", "--seconds", "-1"], "-1"),
        (["generate", "a snare hit", "-o", "out.mp3"], "out.mp3"),
        (["generate", "a snare hit", "--seed", "-1"], "--seed"),
        (["generate", "a snare hit", "--device", "tpu"], "unknown device 'tpu'"),
        (["generate", "a snare hit", "--format", "nope"], "'nope'"),
        (["generate", "--steps", "x"], "invalid int value: 'x'"),
        (["generate", "a snare hit", "--unet", "fast"], "argument --unet: invalid choice: 'fast'"),
        (
            ["generate", "a snare hit", "--unet", "distilled", "--scheduler", "unipc"],
            "--scheduler 'unipc' cannot sample the distilled U-Net",
        ),
    ],
)
def test_refused_argument_loads_no_heavy_package(args, message):
    loaded, result = heavy_modules_after(RUN_CLI.format(args=args))
    assert loaded == []
    assert "exit 2" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_unet_auto_picks_is_decided_before_torch_loads(tiny_model_dir, tmp_path):
    """`--unet auto` looks for the student before anything heavy loads: a damaged one is named at once."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "unet_distilled").mkdir()
    (model / "unet_distilled" / "config.json").write_text('{"_class_name": "UNet1DConditionModel"}')
    args = ["generate", "a snare hit", "--model", str(model), "-o", str(tmp_path / "x.wav")]
    loaded, result = heavy_modules_after(RUN_CLI.format(args=args))
    assert loaded == []
    assert "exit 2" in result.stderr and "is not a distilled student's config" in result.stderr
    assert "Traceback" not in result.stderr


def test_lazy_names_resolve_to_their_modules():
    import stable_audio_kit
    from stable_audio_kit import (
        AudioVAE,
        ConditioningProjection,
        SpectralAudioVAE,
        StableAudioKitPipeline,
        UNet1DConditionModel,
        build_pipeline,
    )
    from stable_audio_kit.conditioning.projection import ConditioningProjection as projection_class
    from stable_audio_kit.pipeline import StableAudioKitPipeline as pipeline_class
    from stable_audio_kit.unet.unet_1d_condition import UNet1DConditionModel as unet_class
    from stable_audio_kit.vae.autoencoder import AudioVAE as audio_vae_class
    from stable_audio_kit.vae.spectral import SpectralAudioVAE as spectral_class

    assert (AudioVAE, SpectralAudioVAE, ConditioningProjection) == (audio_vae_class, spectral_class, projection_class)
    assert (StableAudioKitPipeline, UNet1DConditionModel) == (pipeline_class, unet_class)
    assert callable(build_pipeline)
    assert set(stable_audio_kit.__all__) <= set(dir(stable_audio_kit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        stable_audio_kit.nope  # noqa: B018


@pytest.mark.parametrize(
    "module",
    ["stable_audio_kit", "stable_audio_kit.conditioning", "stable_audio_kit.data", "stable_audio_kit.vae"],
)
def test_every_public_name_resolves(module):
    import importlib

    package = importlib.import_module(module)
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_diffusers_finds_the_base_class_on_the_modules_saved_pipelines_name():
    """diffusers resolves a component as ``getattr(module, class_name)`` and its loading method through
    ``getattr(module, "ModelMixin")`` on the module model_index.json names; other names must be absent, not
    raise anything but AttributeError (it probes them with ``getattr(module, name, None)``)."""
    import importlib

    from diffusers.models.modeling_utils import ModelMixin

    for module, cls in [
        ("stable_audio_kit.conditioning", "ConditioningProjection"),
        ("stable_audio_kit.conditioning.projection", "ConditioningProjection"),
        ("stable_audio_kit.unet.unet_1d_condition", "UNet1DConditionModel"),
        ("stable_audio_kit.vae.spectral", "SpectralAudioVAE"),
        ("stable_audio_kit.vae.autoencoder", "AudioVAE"),
    ]:
        library = importlib.import_module(module)
        assert library.ModelMixin is ModelMixin, module
        assert issubclass(getattr(library, cls), ModelMixin)
        assert getattr(library, "SchedulerMixin", None) is None


def test_scheduler_registry_is_complete():
    from stable_audio_kit.schedulers import SCHEDULER_NAMES, SCHEDULERS

    assert tuple(SCHEDULERS) == SCHEDULER_NAMES
