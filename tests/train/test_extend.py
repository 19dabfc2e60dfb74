import shutil

import numpy as np
import pytest
import torch

from stable_audio_kit import StableAudioKitPipeline
from stable_audio_kit.cli import main
from stable_audio_kit.train.extend import extend_model


def generate(pipe, prompt="rock drums at 96 bpm", **kwargs):
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt, seconds_total=0.4, num_inference_steps=3, generator=torch.Generator().manual_seed(0), **kwargs
    ).audios


def test_extended_model_generates_the_same_until_trained(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "clap").mkdir()
    (model / "clap" / "marker.txt").write_text("the scoring CLAP")
    out = extend_model(model, tmp_path / "ext", prompt_numbers=True, prompt_number_max=500.0, beat_grid=True, key=True)
    old, new = StableAudioKitPipeline.from_pretrained(model), StableAudioKitPipeline.from_pretrained(out)
    assert new.projection.routes["add_to_prompt"] == ["prompt_numbers"]
    assert new.projection.config.options["prompt_numbers"]["max_value"] == 500.0
    assert new.projection.routes["input_channels"] == ["beat_grid"] and new.projection.routes["film"] == ["key"]
    assert new.unet.conv_in.in_channels == old.unet.conv_in.in_channels + 4
    assert new.unet.film_dim == 24 and (new.unet.film_embedding.weight == 0).all()
    # "The same": equal up to floating-point summation order (a wider convolution may sum in another order).
    np.testing.assert_allclose(generate(new), generate(old), rtol=0, atol=1e-5)
    np.testing.assert_allclose(generate(new), generate(new, bpm=150.0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(generate(new), generate(new, key="F# minor"), rtol=0, atol=1e-5)
    for name, module in (("projection", old.projection), ("unet", old.unet)):
        extended = getattr(new, name).state_dict()
        for key, value in module.state_dict().items():
            if key == "conv_in.weight":
                torch.testing.assert_close(extended[key][:, : value.shape[1]], value)
                assert (extended[key][:, value.shape[1] :] == 0).all()
            else:
                torch.testing.assert_close(extended[key], value)
    assert {k for k in new.unet.state_dict() if k not in old.unet.state_dict()} == {
        "film_embedding.weight",
        "film_embedding.bias",
    }
    assert (out / "clap" / "marker.txt").read_text() == "the scoring CLAP"


def test_extend_refuses_before_writing(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="nothing to add"):
        extend_model(tiny_model_dir, tmp_path / "a")
    once = extend_model(tiny_model_dir, tmp_path / "once", beat_grid=True)
    with pytest.raises(ValueError, match="has the 'beat_grid' input already"):
        extend_model(once, tmp_path / "b", beat_grid=True)
    keyed = extend_model(once, tmp_path / "keyed", key=True)
    with pytest.raises(ValueError, match="has the 'key' input already"):
        extend_model(keyed, tmp_path / "b", key=True)
    with pytest.raises(ValueError, match="already exists"):
        extend_model(tiny_model_dir, once, beat_grid=True)
    with pytest.raises(ValueError, match="does not exist"):
        extend_model(tmp_path / "missing", tmp_path / "c", beat_grid=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyed", "once"]


def test_sak_extend(tiny_model_dir, tmp_path, capsys):
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "ext"), "--prompt-numbers"]) == 0
    assert "with the input(s) prompt_numbers" in capsys.readouterr().out
    assert "prompt_numbers" in StableAudioKitPipeline.from_pretrained(tmp_path / "ext").projection.conditioners
    assert main(["extend", str(tmp_path / "ext"), str(tmp_path / "again"), "--prompt-numbers"]) == 2
    assert "has the 'prompt_numbers' input already" in capsys.readouterr().err
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "none")]) == 2
    assert "nothing to add" in capsys.readouterr().err
    assert main(["extend", str(tmp_path / "ext"), str(tmp_path / "keyed"), "--key"]) == 0
    assert "with the input(s) key" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "keyed")]) == 0
    assert "key (the prompt's key, or key=)" in capsys.readouterr().out


def test_extend_with_any_registered_input_and_refusals(tiny_model_dir, tmp_path, capsys):
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "ext"), "--input", "timing_mask", "--input", "key"]) == 0
    ext = StableAudioKitPipeline.from_pretrained(tmp_path / "ext")
    assert ext.projection.routes["input_channels"] == ["timing_mask"] and ext.unet.extra_channels == 1
    np.testing.assert_allclose(
        generate(ext), generate(StableAudioKitPipeline.from_pretrained(tiny_model_dir)), atol=1e-5
    )
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "a"), "--input", "melody"]) == 2
    assert "unknown conditioning input 'melody'; valid names" in capsys.readouterr().err
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "b"), "--input", "seconds_start"]) == 2
    assert "cannot be added at zero" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
