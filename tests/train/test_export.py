"""`sak export --base`: a run's trained components put into another pipeline directory."""

import shutil

import torch

from stable_audio_kit import StableAudioKitPipeline
from stable_audio_kit.cli import main
from stable_audio_kit.train import vae as vae_trainer

from .test_vae_trainer import config, write_catalogue


def test_export_into_another_base_carries_clap_folder(tmp_path, tiny_model_dir, tiny_pipeline):
    catalogue = write_catalogue(tmp_path / "cat", [0.5, 0.6])
    run_dir = tmp_path / "run"
    vae_trainer.train(config(tiny_model_dir, catalogue, run_dir, **{"run.max_steps": 1, "run.checkpoint_every": 1}))

    # Another base: the tiny model with a different U-Net and a clap/ folder beside the components.
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    unet = StableAudioKitPipeline.from_pretrained(other).unet
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(1.0)
    shutil.rmtree(other / "unet")
    unet.save_pretrained(other / "unet")
    (other / "clap").mkdir()
    (other / "clap" / "config.json").write_text("{}")

    out = tmp_path / "out"
    assert main(["export", str(run_dir), str(out), "--base", str(other)]) == 0
    exported = StableAudioKitPipeline.from_pretrained(out)
    vae_ckpt = exported.vae.from_pretrained(run_dir / "checkpoints" / "step_00000001" / "export" / "vae")
    for a, b in zip(exported.vae.state_dict().values(), vae_ckpt.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(exported.unet.parameters(), unet.parameters()):
        assert torch.equal(a, b)  # from --base, not from the run's own model
    assert (out / "clap" / "config.json").is_file()
    # Without --base the run's own model is the base; its missing clap/ is simply not there.
    assert main(["export", str(run_dir), str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "clap").exists()
    assert main(["export", str(run_dir), str(out)]) == 2  # refuses to overwrite without --force
