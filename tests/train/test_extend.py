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
    assert new.projection.config.prompt_numbers and new.projection.config.prompt_number_max == 500.0
    assert new.unet.config.beat_grid_channel
    assert new.unet.conv_in.in_channels == old.unet.conv_in.in_channels + 4
    assert new.unet.config.key_conditioning and (new.unet.key_embedding.weight == 0).all()
    np.testing.assert_array_equal(generate(new), generate(old))
    np.testing.assert_array_equal(generate(new), generate(new, bpm=150.0))
    np.testing.assert_array_equal(generate(new), generate(new, key="F# minor"))
    for name, module in (("projection", old.projection), ("unet", old.unet)):
        extended = getattr(new, name).state_dict()
        for key, value in module.state_dict().items():
            if key == "conv_in.weight":
                torch.testing.assert_close(extended[key][:, : value.shape[1]], value)
                assert (extended[key][:, value.shape[1] :] == 0).all()
            else:
                torch.testing.assert_close(extended[key], value)
    assert {k for k in new.unet.state_dict() if k not in old.unet.state_dict()} == {
        "key_embedding.weight",
        "key_embedding.bias",
    }
    assert (out / "clap" / "marker.txt").read_text() == "the scoring CLAP"


def test_extend_refuses_before_writing(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="nothing to add"):
        extend_model(tiny_model_dir, tmp_path / "a")
    once = extend_model(tiny_model_dir, tmp_path / "once", beat_grid=True)
    with pytest.raises(ValueError, match="reads a beat grid already"):
        extend_model(once, tmp_path / "b", beat_grid=True)
    keyed = extend_model(once, tmp_path / "keyed", key=True)
    with pytest.raises(ValueError, match="reads the key already"):
        extend_model(keyed, tmp_path / "b", key=True)
    with pytest.raises(ValueError, match="already exists"):
        extend_model(tiny_model_dir, once, beat_grid=True)
    with pytest.raises(ValueError, match="does not exist"):
        extend_model(tmp_path / "missing", tmp_path / "c", beat_grid=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyed", "once"]


def test_sak_extend(tiny_model_dir, tmp_path, capsys):
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "ext"), "--prompt-numbers"]) == 0
    assert "with prompt numbers" in capsys.readouterr().out
    assert StableAudioKitPipeline.from_pretrained(tmp_path / "ext").projection.config.prompt_numbers
    assert main(["extend", str(tmp_path / "ext"), str(tmp_path / "again"), "--prompt-numbers"]) == 2
    assert "embeds prompt numbers already" in capsys.readouterr().err
    assert main(["extend", str(tiny_model_dir), str(tmp_path / "none")]) == 2
    assert "nothing to add" in capsys.readouterr().err
    assert main(["extend", str(tmp_path / "ext"), str(tmp_path / "keyed"), "--key"]) == 0
    assert "with a key input" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "keyed")]) == 0
    assert "key (the prompt's key, or --key)" in capsys.readouterr().out
