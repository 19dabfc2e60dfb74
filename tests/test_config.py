from pathlib import Path

import pytest

from stable_audio_kit.config import ModelConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["tiny.yaml", "stable_audio_1.yaml"])
def test_shipped_model_configs_load(name):
    cfg = load_config(ModelConfig, CONFIGS / name)
    assert cfg.vae.encoder_hidden_size == 2 * cfg.vae.latent_channels


def test_overrides_and_typos(tmp_path):
    cfg = load_config(ModelConfig, CONFIGS / "tiny.yaml", ["sample_rate=16000", "unet.layers_per_block=2"])
    assert cfg.sample_rate == 16000 and cfg.unet.layers_per_block == 2
    with pytest.raises(ValueError, match="unet.layer_per_block|layer_per_block"):
        load_config(ModelConfig, CONFIGS / "tiny.yaml", ["unet.layer_per_block=2"])
    with pytest.raises(ValueError, match="sample_rate"):
        load_config(ModelConfig, CONFIGS / "tiny.yaml", ["sample_rate=fast"])
    with pytest.raises(ValueError, match="not of the form key=value"):
        load_config(ModelConfig, CONFIGS / "tiny.yaml", ["sample_rate"])
    with pytest.raises(ValueError, match="does not exist"):
        load_config(ModelConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vae:\n  latent_chanels: 3\n")
    with pytest.raises(ValueError, match="latent_chanels"):
        load_config(ModelConfig, bad)


@pytest.mark.parametrize("path", sorted((CONFIGS / "demo").glob("*.yaml")), ids=lambda p: p.name)
def test_demo_recipe_configs_load_into_their_schemas(path):
    # Every config tools/train_demo.sh passes to `sak train` (and the model config) is complete but for
    # the paths the script gives, and has no misspelt key.
    from stable_audio_kit.train import distill as distill_trainer
    from stable_audio_kit.train import unet as unet_trainer
    from stable_audio_kit.train import vae as vae_trainer
    from stable_audio_kit.train.common import load_run_config
    from stable_audio_kit.train.config import ClapTrainConfig, DistillTrainConfig, UNetTrainConfig, VAETrainConfig

    if path.name == "model.yaml":
        assert load_config(ModelConfig, path).vae.architecture == "spectral"
        return
    paths = ["model=m", "data.catalogue=c", "run.output_dir=r"]
    if path.name.startswith("unet"):
        unet_trainer.check_config(load_run_config(UNetTrainConfig, path, [*paths, "latents=l"]))
    elif path.name == "distill.yaml":
        distill_trainer.check_config(load_run_config(DistillTrainConfig, path, [*paths, "latents=l"]), 1000)
    elif path.name.startswith("vae"):
        vae_trainer.check_config(load_run_config(VAETrainConfig, path, paths))
    else:
        assert path.name == "clap.yaml"
        load_run_config(ClapTrainConfig, path, paths)
    assert path.read_text().startswith("# Demo model, step ")
    assert path.name in (CONFIGS.parent / "tools" / "train_demo.sh").read_text()
