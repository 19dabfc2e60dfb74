"""A VAE from outside: a diffusers AutoencoderOobleck folder (Stable Audio Open's ``vae/`` layout, tiny random
weights) as the VAE of a new model (``vae.pretrained``), and its latent scale measured on a catalogue
(``sak encode --calibrate``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers import AutoencoderOobleck
from omegaconf import OmegaConf

from stable_audio_kit.cli import main
from stable_audio_kit.pipeline import StableAudioKitPipeline
from stable_audio_kit.vae import AudioVAE

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
SR = 8000  # configs/tiny.yaml: 8 kHz mono, 4 latent channels, a 1 s window


@pytest.fixture(scope="module")
def oobleck_dir(tmp_path_factory) -> Path:
    """What Stable Audio Open's ``vae/`` holds (config.json + diffusion_pytorch_model.safetensors), tiny."""
    torch.manual_seed(0)
    vae = AutoencoderOobleck(
        encoder_hidden_size=8,
        downsampling_ratios=[4, 8],
        channel_multiples=[1, 2],
        decoder_channels=4,
        decoder_input_channels=4,
        audio_channels=1,
        sampling_rate=SR,
    )
    path = tmp_path_factory.mktemp("sao") / "vae"
    vae.save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["_class_name"] == "AutoencoderOobleck"
    return path


@pytest.fixture(scope="module")
def model_dir(oobleck_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "m"
    assert main(["new-model", str(TINY_CONFIG), str(out), f"vae.pretrained={oobleck_dir}"]) == 0
    return out


def write_catalogue(root: Path) -> Path:
    """Four training clips of exactly the window (so a crop is the whole file) at different levels, one valid clip."""
    rng = np.random.default_rng(0)
    rows = []
    for i, level in enumerate([0.05, 0.1, 0.3, 0.6, 0.2]):
        split = "valid" if i == 4 else "train"
        path = f"{split}/clip{i}.wav"
        (root / split).mkdir(parents=True, exist_ok=True)
        t = np.arange(SR) / SR
        audio = level * (np.sin(2 * np.pi * (110 + 50 * i) * t) + 0.3 * rng.standard_normal(SR))
        sf.write(root / path, audio.astype(np.float32), SR, subtype="FLOAT")
        rows.append({"path": path, "caption": f"clip {i}", "split": split})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_new_model_takes_the_pretrained_vae(oobleck_dir, model_dir):
    pipe = StableAudioKitPipeline.from_pretrained(model_dir)
    assert type(pipe.vae) is AudioVAE
    original = AutoencoderOobleck.from_pretrained(oobleck_dir)
    for (name, want), have in zip(original.state_dict().items(), pipe.vae.state_dict().values()):
        assert torch.equal(want, have), name
    # A plain AutoencoderOobleck has no latent scale nor chunking: the model config gives them.
    assert pipe.vae.config.scaling_factor == 1.0 and pipe.vae.config.chunk_seconds == 4.0
    assert pipe.unet.config.in_channels == 4
    saved = OmegaConf.load(model_dir / "model_config.yaml")
    assert saved.vae.pretrained == str(oobleck_dir)
    audio = pipe("a tone", seconds_total=0.5, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert audio.audios.shape == (1, 1, SR // 2)


def test_a_toolkit_vae_keeps_its_own_scale(model_dir, tmp_path):
    vae = AudioVAE.from_pretrained(model_dir / "vae")
    vae.register_to_config(scaling_factor=0.7, chunk_seconds=2.0)
    vae.save_pretrained(tmp_path / "vae")
    out = tmp_path / "m2"
    assert main(["new-model", str(TINY_CONFIG), str(out), f"vae.pretrained={tmp_path / 'vae'}"]) == 0
    loaded = StableAudioKitPipeline.from_pretrained(out).vae
    assert loaded.config.scaling_factor == 0.7 and loaded.config.chunk_seconds == 2.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sample_rate=16000", "has 8000 where the model config's sample_rate is 16000; set sample_rate=8000"),
        ("audio_channels=2", "has 1 where the model config's audio_channels is 2"),
        ("vae.latent_channels=8", "has 4 where the model config's vae.latent_channels is 8"),
        ("vae.architecture=spectral", "holds a AutoencoderOobleck \\('oobleck' architecture\\) but vae.architecture"),
    ],
)
def test_a_vae_that_does_not_fit_the_config_is_refused(oobleck_dir, tmp_path, capsys, override, message):
    out = tmp_path / "m"
    assert main(["new-model", str(TINY_CONFIG), str(out), f"vae.pretrained={oobleck_dir}", override]) == 2
    err = capsys.readouterr().err
    assert f"vae.pretrained '{oobleck_dir}'" in err and err.count("\n") == 1
    assert re.search(message, err), err
    assert not out.exists()


def test_a_folder_that_is_not_a_vae_is_refused(model_dir, oobleck_dir, tmp_path, capsys):
    def refused(folder, message):
        assert main(["new-model", str(TINY_CONFIG), str(tmp_path / "m"), f"vae.pretrained={folder}"]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "m").exists()

    refused(tmp_path / "nowhere", "is not a local folder")
    refused(model_dir / "unet", "holds a 'UNet1DConditionModel'; expected one of")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "is not a saved VAE: cannot read config.json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((oobleck_dir / "config.json").read_text())
    refused(broken, "the weights cannot be loaded")


@torch.no_grad()
def test_encode_calibrate_sets_unit_variance(model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(model_dir, model)
    catalogue = write_catalogue(tmp_path / "cat")
    assert main(["encode", str(catalogue), "--model", str(model), "--calibrate"]) == 0
    assert "scaling_factor 1 ->" in capsys.readouterr().out

    # The expected factor, computed here: the four training clips are window-long, so their crops are the files.
    vae = AutoencoderOobleck.from_pretrained(model / "vae")
    latents = [
        vae.encode(torch.from_numpy(sf.read(catalogue / f"train/clip{i}.wav", dtype="float32")[0])[None, None])
        .latent_dist.mode()
        .flatten()
        for i in range(4)
    ]
    expected = 1.0 / torch.cat(latents).std().item()
    scale = json.loads((model / "vae" / "config.json").read_text())["scaling_factor"]
    assert scale == pytest.approx(expected, rel=1e-5)
    assert OmegaConf.load(model / "model_config.yaml").vae.scaling_factor == pytest.approx(expected, rel=1e-5)
    pipe = StableAudioKitPipeline.from_pretrained(model)
    assert pipe.vae.config.scaling_factor == scale
    scaled = torch.cat(latents) * scale
    assert scaled.std().item() == pytest.approx(1.0, rel=1e-5)

    # With -o the shards are encoded with the new factor in the same run.
    assert main(["encode", str(catalogue), "--model", str(model), "--calibrate", "-o", str(tmp_path / "shards")]) == 0
    manifest = json.loads((tmp_path / "shards" / "index.json").read_text())
    assert manifest["scaling_factor"] == pytest.approx(scale, rel=1e-5)


def test_encode_calibrate_bad_input(model_dir, tmp_path, capsys):
    catalogue = write_catalogue(tmp_path / "cat")
    before = (model_dir / "vae" / "config.json").read_text()
    assert main(["encode", str(catalogue), "--model", str(model_dir)]) == 2
    assert "give -o/--output FOLDER for the shards, or --calibrate" in capsys.readouterr().err
    assert main(["encode", str(catalogue), "--model", str(model_dir), "--calibrate", "--calibrate-clips", "0"]) == 2
    assert "--calibrate-clips must be >= 1, got 0" in capsys.readouterr().err
    only_valid = tmp_path / "valid_only"
    only_valid.mkdir()
    (only_valid / "a.wav").write_bytes((catalogue / "valid" / "clip4.wav").read_bytes())
    (only_valid / "metadata.jsonl").write_text(json.dumps({"path": "a.wav", "caption": "x", "split": "valid"}) + "\n")
    assert main(["encode", str(only_valid), "--model", str(model_dir), "--calibrate"]) == 2
    assert "has no training clips to calibrate on" in capsys.readouterr().err
    assert (model_dir / "vae" / "config.json").read_text() == before
