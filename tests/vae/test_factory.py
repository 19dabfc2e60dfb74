"""The VAE registry: building each architecture from a model config, loading a saved folder as its class."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from diffusers.models.modeling_utils import ModelMixin
from omegaconf import OmegaConf

import stable_audio_kit
from stable_audio_kit.config import ModelConfig
from stable_audio_kit.vae import VAE_ARCHITECTURES, AudioVAE, SpectralAudioVAE, build_vae, load_vae_folder

# diffusers' Oobleck still uses the deprecated torch.nn.utils.weight_norm; that is not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")


def model_config(*overrides: str):
    cfg = OmegaConf.structured(ModelConfig)
    tiny = [
        "sample_rate=800",
        "audio_channels=1",
        "vae.encoder_hidden_size=8",
        "vae.latent_channels=4",
        "vae.downsampling_ratios=[2,4]",
        "vae.channel_multiples=[1,2]",
        "vae.decoder_channels=8",
    ]
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(tiny + list(overrides)))


def test_build_vae_from_model_config():
    vae = build_vae(model_config("vae.scaling_factor=0.5", "vae.chunk_seconds=1.0", "vae.overlap_seconds=0.1"))
    assert isinstance(vae, AudioVAE)
    assert vae.config.sampling_rate == 800 and vae.config.audio_channels == 1
    assert vae.config.decoder_input_channels == vae.latent_channels == 4
    assert vae.config.downsampling_ratios == [2, 4] and type(vae.config.downsampling_ratios[0]) is int
    assert vae.config.scaling_factor == 0.5
    assert (vae.tile_latent_min_length, vae.tile_latent_overlap) == (100, 10)
    with torch.no_grad():
        # The encoder's output is split into mean and scale: 2 * latent_channels channels.
        assert vae.encoder(torch.randn(1, 1, 80)).shape == (1, 8, 10)
        assert vae.encode(torch.randn(1, 1, 80)).latent_dist.mode().shape == (1, 4, 10)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["vae.latent_channels=3"], "vae.encoder_hidden_size"),
        (["audio_channels=3"], "audio_channels"),
        (["vae.downsampling_ratios=[2,0]"], "downsampling_ratios"),
        (["vae.channel_multiples=[1,2,4]"], "channel_multiples"),
        (["vae.chunk_seconds=1.0", "vae.overlap_seconds=0.5"], "overlap_seconds"),
    ],
)
def test_build_vae_bad_config(overrides, match):
    with pytest.raises(ValueError, match=match):
        build_vae(model_config(*overrides))


def test_build_vae_spectral_from_model_config():
    cfg = OmegaConf.structured(ModelConfig)
    cfg.sample_rate, cfg.audio_channels = 8000, 2
    spectral = {
        "architecture": "spectral",
        "latent_channels": 4,
        "n_fft": 64,
        "stft_hop": 16,
        "latent_stride": 2,
        "hidden_channels": 16,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "scaling_factor": 0.5,
    }
    cfg = OmegaConf.merge(cfg, {"vae": spectral})
    vae = build_vae(OmegaConf.to_object(cfg))
    assert isinstance(vae, SpectralAudioVAE)
    assert (vae.hop_length, vae.latent_channels, vae.config.audio_channels) == (32, 4, 2)
    assert vae.config.scaling_factor == 0.5


def test_build_vae_names_an_unknown_architecture():
    cfg = OmegaConf.to_object(OmegaConf.structured(ModelConfig))
    cfg.vae.architecture = "mel"
    with pytest.raises(
        ValueError, match=re.escape("vae.architecture must be one of ['oobleck', 'spectral'], got 'mel'")
    ):
        build_vae(cfg)


def test_load_vae_folder_picks_the_class_and_names_bad_ones(tmp_path):
    oobleck = AudioVAE(
        encoder_hidden_size=8,
        downsampling_ratios=[2, 4],
        channel_multiples=[1, 2],
        decoder_channels=8,
        decoder_input_channels=4,
        audio_channels=1,
        sampling_rate=800,
    )
    oobleck.save_pretrained(tmp_path / "oobleck")
    assert type(load_vae_folder(tmp_path / "oobleck")) is AudioVAE
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    with pytest.raises(ValueError, match="AutoencoderKL"):
        load_vae_folder(tmp_path / "other")
    with pytest.raises(ValueError, match="cannot read config.json"):
        load_vae_folder(tmp_path / "missing")


def test_registry_names_every_vae_class():
    assert VAE_ARCHITECTURES == {"oobleck": AudioVAE, "spectral": SpectralAudioVAE}


@pytest.mark.parametrize("cls", [AudioVAE, SpectralAudioVAE])
def test_saved_class_names_resolve_where_model_index_json_points(cls):
    # save_pretrained records a VAE in model_index.json as [its module, class name], and loading looks the class
    # and its loadable base classes (ModelMixin) up on that module; the package exports the class names too.
    module = sys.modules[cls.__module__]
    assert getattr(module, cls.__name__) is cls
    assert module.ModelMixin is ModelMixin
    assert getattr(stable_audio_kit, cls.__name__) is cls
