"""``sak train vae``: the loop learns, the discriminator starts on time, runs resume exactly after
kill -9, a NaN stops the run cleanly, and what training writes is what the pipeline loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers.optimization import get_scheduler
from safetensors.torch import load_file

from stable_audio_kit.train import vae as vae_trainer
from stable_audio_kit.train.common import NonFiniteLossError, checkpoint_dirs, load_run_config
from stable_audio_kit.train.config import VAETrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY_VAE = ROOT / "configs" / "train" / "tiny_vae.yaml"
SR = 8000


def write_catalogue(root: Path, train_seconds: list[float], valid_seconds: list[float] = ()) -> Path:
    """Chords at 8 kHz mono; ``metadata.csv`` fixes the split so that tests do not depend on the path hash."""
    root.mkdir(parents=True)
    rows = ["path,caption,split"]
    for split, durations in (("train", train_seconds), ("valid", valid_seconds)):
        for i, seconds in enumerate(durations):
            t = np.arange(round(seconds * SR)) / SR
            root_hz = 220.0 * 2 ** (i / 12)
            chord = sum(0.2 * np.sin(2 * np.pi * root_hz * ratio * t) for ratio in (1.0, 1.25, 1.5))
            name = f"{split}{i}.wav"
            sf.write(root / name, chord.astype(np.float32), SR)
            rows.append(f"{name},a chord,{split}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def overrides(model: Path, catalogue: Path, run_dir: Path, **extra) -> list[str]:
    base = {
        "model": model,
        "data.catalogue": catalogue,
        "run.output_dir": run_dir,
        "crop_seconds": 0.25,
        "stft_fft_sizes": "[256,128,64,32]",
        "disc_fft_sizes": "[256,128,64]",
        "disc_channels": 4,
        "data.batch_size": 1,
        "run.log_every": 1,
        "run.valid_every": 0,
        "scaling_batches": 1,
        "optim.warmup_steps": 0,
        "optim.lr_schedule": "constant",
    }
    return [f"{key}={value}" for key, value in {**base, **extra}.items()]


def config(*args, **extra) -> VAETrainConfig:
    return load_run_config(VAETrainConfig, TINY_VAE, overrides(*args, **extra))


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for path in sorted((run_dir / "logs" / "vae").glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0, "audio": 0, "images": 0})
        events.Reload()
        if tag in events.Tags()["scalars"]:
            out.update({e.step: e.value for e in events.Scalars(tag)})
    return out


def media_tags(run_dir: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = next((run_dir / "logs" / "vae").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(path), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    return {kind: events.Tags()[kind] for kind in ("audio", "images")}


def checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}"


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- learning
def test_loss_drops_when_overfitting_one_chord(tiny_model_dir, tmp_path):
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    cfg = config(
        tiny_model_dir,
        catalogue,
        tmp_path / "run",
        **{"run.max_steps": 15, "run.checkpoint_every": 100, "optim.lr": 3e-3, "adversarial": False},
    )
    vae_trainer.train(cfg)
    stft = scalars(tmp_path / "run", "train/stft")
    assert sorted(stft) == list(range(1, 16))
    first, last = np.mean([stft[s] for s in (1, 2, 3)]), np.mean([stft[s] for s in (13, 14, 15)])
    assert last < 0.75 * first, stft
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step_00000015"]


def test_discriminator_starts_after_adversarial_start_and_validation_is_logged(tiny_model_dir, tmp_path):
    catalogue = write_catalogue(tmp_path / "cat", [0.3, 0.4], valid_seconds=[0.3])
    run = tmp_path / "run"
    cfg = config(
        tiny_model_dir,
        catalogue,
        run,
        adversarial=True,
        adversarial_start=2,
        **{"run.max_steps": 4, "run.checkpoint_every": 1, "run.keep_checkpoints": 0, "run.valid_every": 2},
    )
    vae_trainer.train(cfg)
    # Autoencoder losses from step 1; the discriminator's only from step 3.
    assert sorted(scalars(run, "train/stft")) == [1, 2, 3, 4]
    assert sorted(scalars(run, "train/disc")) == [3, 4]
    assert sorted(scalars(run, "train/feature_matching")) == [3, 4]
    # Checkpoint models: model.safetensors is the autoencoder, model_1 the discriminator.
    vae = {s: load_file(checkpoint(run, s) / "model.safetensors") for s in (1, 2, 3)}
    disc = {s: load_file(checkpoint(run, s) / "model_1.safetensors") for s in (1, 2, 3)}
    assert not same_tensors(vae[1], vae[2])
    assert same_tensors(disc[1], disc[2])
    assert not same_tensors(disc[2], disc[3])
    # Its optimizer has not taken a step before step 3 (AdamW's weight decay would move it otherwise).
    opt_state = {s: torch.load(checkpoint(run, s) / "optimizer_1.bin", weights_only=False) for s in (2, 3)}
    assert opt_state[2]["state"] == {} and opt_state[3]["state"] != {}
    # Validation metrics at steps 2 and 4, with audio and spectrogram images.
    for name in ("si_sdr", "stft", "mel"):
        assert sorted(scalars(run, f"valid/{name}")) == [2, 4]
    media = media_tags(run)
    assert media["audio"] == ["valid/recon_0", "valid/target_0"]
    assert media["images"] == ["valid/log_mel_0"]


# --------------------------------------------------------------------------- resume
KILL_SCRIPT = """
import sys, time
import torch
torch.set_num_threads({threads})
import stable_audio_kit.train.vae as trainer
from stable_audio_kit.cli import main

real_save = trainer.save_checkpoint

def save_then_hang(accelerator, run_dir, state, export, keep):
    path = real_save(accelerator, run_dir, state, export, keep)
    if state.step == 2:
        print("CHECKPOINT-2", flush=True)
        time.sleep(600)
    return path

trainer.save_checkpoint = save_then_hang
sys.exit(main(["train", "vae", {config!r}, *{overrides!r}]))
"""


def test_kill_9_after_checkpoint_then_resume_matches_uninterrupted_run(tiny_model_dir, tmp_path):
    # Three training files, batch 1, two micro-batches a step: the epoch ends inside step 2, the
    # discriminator runs from step 2, and validation runs at step 2, so every kind of state crosses the kill.
    catalogue = write_catalogue(tmp_path / "cat", [0.3, 0.5, 0.4], valid_seconds=[0.3])
    extra = {
        "adversarial": True,
        "adversarial_start": 1,
        "run.max_steps": 4,
        "run.checkpoint_every": 2,
        "run.grad_accum": 2,
        "run.valid_every": 2,
        "optim.lr_schedule": "cosine",
        "optim.warmup_steps": 1,
    }
    reference = tmp_path / "reference"
    vae_trainer.train(config(tiny_model_dir, catalogue, reference, **extra))
    # One LR-schedule step per optimizer step (not per micro-batch): the logged LRs are diffusers' cosine
    # schedule over 4 steps; the discriminator's runs over the 3 steps it trains.
    for tag, steps in (("train/lr", 4), ("train/disc_lr", 3)):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        schedule = get_scheduler("cosine", optimizer, num_warmup_steps=1, num_training_steps=steps)
        expected = []
        for _ in range(steps):
            optimizer.step()
            schedule.step()
            expected.append(schedule.get_last_lr()[0])
        logged = scalars(reference, tag)
        assert [logged[s] for s in sorted(logged)] == pytest.approx(expected), tag

    run = tmp_path / "run"
    script = tmp_path / "kill_me.py"
    args = overrides(tiny_model_dir, catalogue, run, **extra)
    script.write_text(KILL_SCRIPT.format(threads=torch.get_num_threads(), config=str(TINY_VAE), overrides=args))
    log = tmp_path / "kill_me.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            for line in proc.stdout:
                if line.startswith("CHECKPOINT-2"):
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert [p.name for p in checkpoint_dirs(run)] == ["step_00000002"]

    vae_trainer.train(config(tiny_model_dir, catalogue, run, **extra), resume=True)
    for name in ("model.safetensors", "model_1.safetensors", "export/vae/diffusion_pytorch_model.safetensors"):
        assert same_tensors(load_file(checkpoint(run, 4) / name), load_file(checkpoint(reference, 4) / name)), name
    state = json.loads((checkpoint(run, 4) / "trainer_state.json").read_text())
    assert state == json.loads((checkpoint(reference, 4) / "trainer_state.json").read_text())
    exported = [json.loads((checkpoint(r, 4) / "export/vae/config.json").read_text()) for r in (run, reference)]
    assert exported[0]["scaling_factor"] == exported[1]["scaling_factor"]


# --------------------------------------------------------------------------- failure
class NaNOnCall(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, bad_call: int):
        super().__init__()
        self.inner, self.bad_call, self.calls = inner, bad_call, 0

    def forward(self, input, target):
        self.calls += 1
        loss = self.inner(input, target)
        return loss * float("nan") if self.calls == self.bad_call else loss


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    run = tmp_path / "run"
    extra = {"run.max_steps": 5, "run.checkpoint_every": 1, "run.keep_checkpoints": 0, "adversarial": False}
    real = vae_trainer.reconstruction_loss
    monkeypatch.setattr(vae_trainer, "reconstruction_loss", lambda *a: NaNOnCall(real(*a), bad_call=3))
    with pytest.raises(NonFiniteLossError, match=r"non-finite stft loss \(nan\) at step 3.*step_00000002"):
        vae_trainer.train(config(tiny_model_dir, catalogue, run, **extra))
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000001", "step_00000002"]
    last = checkpoint(run, 2)
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 2
    weights = load_file(last / "export/vae/diffusion_pytorch_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    # The checkpoint is whole: the run resumes from it.
    monkeypatch.setattr(vae_trainer, "reconstruction_loss", real)
    vae_trainer.train(config(tiny_model_dir, catalogue, run, **extra), resume=True)
    assert checkpoint_dirs(run)[-1].name == "step_00000005"


# --------------------------------------------------------------------------- CLI, export, config
def test_cli_train_then_export_loads_the_trained_vae_with_its_latent_scale(tiny_model_dir, tmp_path, capsys):
    from stable_audio_kit.cli import main
    from stable_audio_kit.pipeline import StableAudioKitPipeline
    from stable_audio_kit.vae import AudioVAE

    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    run, out = tmp_path / "run", tmp_path / "exported"
    assert (
        main(["train", "vae", str(TINY_VAE), *overrides(tiny_model_dir, catalogue, run, **{"run.max_steps": 2})]) == 0
    )
    assert main(["export", str(run), str(out)]) == 0
    pipe = StableAudioKitPipeline.from_pretrained(out)
    base = StableAudioKitPipeline.from_pretrained(tiny_model_dir)
    trained = AudioVAE.from_pretrained(checkpoint(run, 2) / "export" / "vae")
    assert same_tensors(pipe.vae.state_dict(), trained.state_dict())
    assert not same_tensors(pipe.vae.state_dict(), base.vae.state_dict())
    assert same_tensors(pipe.unet.state_dict(), base.unet.state_dict())
    # scaling_factor = 1 / std of the posterior-mode latents of the (single, whole-file) training crop.
    audio, _ = sf.read(catalogue / "train0.wav", dtype="float32")
    with torch.no_grad():
        latents = pipe.vae.encode(torch.from_numpy(audio)[None, None]).latent_dist.mode()
    assert pipe.vae.config.scaling_factor != 1.0
    assert (latents * pipe.vae.config.scaling_factor).std().item() == pytest.approx(1.0, rel=1e-4)


def test_spectral_vae_trains_with_the_discriminator_and_exports(tiny_config, tmp_path):
    # The same trainer drives SpectralAudioVAE (vae.architecture: spectral); export keeps its class.
    import copy

    from stable_audio_kit import SpectralAudioVAE, build_pipeline
    from stable_audio_kit.cli import main
    from stable_audio_kit.pipeline import StableAudioKitPipeline

    cfg = copy.deepcopy(tiny_config)
    for key, value in {"architecture": "spectral", "n_fft": 64, "stft_hop": 16, "hidden_channels": 16}.items():
        setattr(cfg.vae, key, value)
    build_pipeline(cfg).save_pretrained(tmp_path / "base")
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    run, out = tmp_path / "run", tmp_path / "exported"
    extra = {"run.max_steps": 4, "adversarial": True, "adversarial_start": 2, "optim.lr": 3e-3}
    assert main(["train", "vae", str(TINY_VAE), *overrides(tmp_path / "base", catalogue, run, **extra)]) == 0
    assert sorted(scalars(run, "train/disc")) == [3, 4]
    assert main(["export", str(run), str(out)]) == 0
    pipe = StableAudioKitPipeline.from_pretrained(out)
    trained = SpectralAudioVAE.from_pretrained(checkpoint(run, 4) / "export" / "vae")
    assert isinstance(pipe.vae, SpectralAudioVAE)
    assert same_tensors(pipe.vae.state_dict(), trained.state_dict())
    assert pipe.vae.config.scaling_factor != 1.0


def spectral_base(tiny_config, folder: Path) -> Path:
    import copy

    from stable_audio_kit import build_pipeline

    cfg = copy.deepcopy(tiny_config)
    for key, value in {"architecture": "spectral", "n_fft": 64, "stft_hop": 16, "hidden_channels": 16}.items():
        setattr(cfg.vae, key, value)
    build_pipeline(cfg).save_pretrained(folder)
    return folder


def test_magnitude_loss_alone_trains_the_spectral_decoder_without_griffin_lim(tiny_config, tmp_path, monkeypatch):
    # magnitude_weight with stft_weight 0 and no discriminator: the loss is the L1 distance of the predicted
    # log-magnitudes, it falls, and the waveform (Griffin-Lim) is never synthesised during training.
    from stable_audio_kit.vae import spectral

    base = spectral_base(tiny_config, tmp_path / "base")
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    calls = []
    real = spectral.SpectralDecoder.synthesize
    monkeypatch.setattr(spectral.SpectralDecoder, "synthesize", lambda self, out: calls.append(1) or real(self, out))
    extra = {"run.max_steps": 30, "magnitude_weight": 1.0, "stft_weight": 0.0, "adversarial": False, "optim.lr": 1e-2}
    run = vae_trainer.train(config(base, catalogue, tmp_path / "run", **extra))
    losses = scalars(run, "train/magnitude")
    assert sorted(losses) == list(range(1, 31))
    assert np.mean([losses[s] for s in range(26, 31)]) < 0.7 * np.mean([losses[s] for s in range(1, 6)])
    assert not scalars(run, "train/stft")
    assert calls == []  # validation would synthesise, but it is off here


def test_train_encoder_false_trains_the_decoder_and_keeps_the_latents(tiny_config, tmp_path):
    # Decoder-only fine-tuning: the encoder's weights and the scaling factor come out bit-identical (so a
    # U-Net trained on the base model's latents still fits), while the decoder moves and its loss falls.
    from stable_audio_kit import SpectralAudioVAE

    base = spectral_base(tiny_config, tmp_path / "base")
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    extra = {"run.max_steps": 20, "magnitude_weight": 1.0, "stft_weight": 0.0, "optim.lr": 1e-2}
    run = vae_trainer.train(config(base, catalogue, tmp_path / "run", train_encoder=False, **extra))
    before = SpectralAudioVAE.from_pretrained(base / "vae")
    after = SpectralAudioVAE.from_pretrained(checkpoint(run, 20) / "export" / "vae")
    assert same_tensors(before.encoder.state_dict(), after.encoder.state_dict())
    assert not same_tensors(before.decoder.state_dict(), after.decoder.state_dict())
    assert after.config.scaling_factor == before.config.scaling_factor
    losses = scalars(run, "train/magnitude")
    assert np.mean([losses[s] for s in range(16, 21)]) < 0.8 * np.mean([losses[s] for s in range(1, 6)])
    # The same run with the encoder trained does move it, and refits the scale.
    run = vae_trainer.train(config(base, catalogue, tmp_path / "run2", **{**extra, "run.max_steps": 2}))
    both = SpectralAudioVAE.from_pretrained(checkpoint(run, 2) / "export" / "vae")
    assert not same_tensors(before.encoder.state_dict(), both.encoder.state_dict())
    assert both.config.scaling_factor != before.config.scaling_factor


def test_magnitude_and_stft_losses_are_both_logged_when_both_weigh(tiny_config, tmp_path):
    base = spectral_base(tiny_config, tmp_path / "base")
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    extra = {"run.max_steps": 2, "magnitude_weight": 0.5, "stft_weight": 1.0, "adversarial": False}
    run = vae_trainer.train(config(base, catalogue, tmp_path / "run", **extra))
    assert sorted(scalars(run, "train/magnitude")) == sorted(scalars(run, "train/stft")) == [1, 2]


def test_magnitude_loss_needs_a_spectral_vae(tiny_model_dir, tmp_path):
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    with pytest.raises(ValueError, match="magnitude_weight=1.0 needs a spectral VAE.*AudioVAE"):
        vae_trainer.train(config(tiny_model_dir, catalogue, tmp_path / "run", magnitude_weight=1.0))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"kl_wieght": 1e-3}, "kl_wieght"),
        ({"adversarial_loss": "wgan"}, "valid names"),
        ({"data.window_seconds": 1.0}, "crop_seconds"),
        ({"crop_seconds": 0.02}, "stft_fft_sizes"),
        ({"kl_weight": -1.0}, "kl_weight must be >= 0"),
        ({"magnitude_weight": -1.0}, "magnitude_weight must be >= 0"),
        ({"stft_weight": 0.0}, "nothing would train the decoder"),
    ],
)
def test_bad_configs_are_rejected_before_the_run_folder_is_made(tiny_model_dir, tmp_path, extra, message):
    catalogue = write_catalogue(tmp_path / "cat", [0.25])
    with pytest.raises(ValueError, match=message):
        vae_trainer.train(config(tiny_model_dir, catalogue, tmp_path / "run", **extra))
    assert not (tmp_path / "run").exists()


def test_cli_reports_a_config_typo(tiny_model_dir, tmp_path, capsys):
    from stable_audio_kit.cli import main

    args = overrides(tiny_model_dir, tmp_path, tmp_path / "run", kl_wieght=1)
    assert main(["train", "vae", str(TINY_VAE), *args]) == 2
    assert "kl_wieght" in capsys.readouterr().err


def test_shipped_tiny_config_is_complete_but_for_paths():
    cfg = load_run_config(VAETrainConfig, TINY_VAE, ["model=m", "data.catalogue=c", "run.output_dir=r"])
    vae_trainer.check_config(cfg)
    assert cfg.adversarial and cfg.adversarial_start < cfg.run.max_steps
    assert textwrap.dedent(TINY_VAE.read_text()).startswith("#")
