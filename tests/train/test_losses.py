"""The VAE trainer's losses: auraloss reconstruction, the MS-STFT discriminator, GAN and feature
matching losses, and the validation distances."""

from __future__ import annotations

import pytest
import torch
from auraloss.freq import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss

from stable_audio_kit.train.losses import (
    magnitude_loss,
    MelDistance,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    mel_filterbank,
    reconstruction_loss,
    si_sdr,
)

FFTS = [256, 128, 64]


def _tones(batch: int, channels: int, samples: int = 1024, sr: int = 8000) -> torch.Tensor:
    t = torch.arange(samples) / sr
    freqs = torch.tensor([220.0, 330.0, 440.0, 550.0])[: batch * channels].reshape(batch, channels, 1)
    return 0.5 * torch.sin(2 * torch.pi * freqs * t)


def test_reconstruction_loss_is_auraloss_mrstft_for_mono_and_sum_and_difference_for_stereo():
    assert isinstance(reconstruction_loss(1, FFTS), MultiResolutionSTFTLoss)
    stereo = reconstruction_loss(2, FFTS)
    assert isinstance(stereo, SumAndDifferenceSTFTLoss)
    x = _tones(2, 2)
    assert stereo(x, x).item() == pytest.approx(0.0, abs=1e-6)
    # Swapping left and right only negates the side signal: invisible to sum-and-difference
    # magnitudes, while a per-channel loss sees two wrong channels.
    swapped = x.flip(1)
    assert stereo(swapped, x).item() == pytest.approx(0.0, abs=1e-5)
    assert reconstruction_loss(1, FFTS)(swapped, x).item() > 0.1
    with pytest.raises(ValueError, match="audio_channels"):
        reconstruction_loss(3, FFTS)


@pytest.mark.parametrize("channels", [1, 2])
def test_discriminator_shapes_and_gradients(channels):
    disc = MultiScaleSTFTDiscriminator(channels, FFTS, channels=4)
    audio = _tones(2, channels, samples=1000).requires_grad_()
    logits, features = disc(audio)
    assert len(logits) == len(features) == len(FFTS)
    for n_fft, out, feats in zip(FFTS, logits, features):
        frames = (1000 - n_fft) // (n_fft // 4) + 1
        bins = n_fft // 2 + 1
        assert len(feats) == 5
        assert feats[0].shape == (2, 4, frames, bins)
        # Three stride-2 convolutions along frequency.
        for _ in range(3):
            bins = (bins - 1) // 2 + 1
        assert out.shape == (2, 1, frames, bins)
    sum(out.mean() for out in logits).backward()
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())
    with pytest.raises(ValueError, match=">= 256 samples"):
        disc(_tones(1, channels, samples=200))


def test_feature_matching_is_zero_for_identical_inputs_only():
    disc = MultiScaleSTFTDiscriminator(1, FFTS, channels=4)
    x = _tones(2, 1)
    _, real = disc(x)
    _, same = disc(x.clone())
    _, other = disc(0.5 * x)
    assert feature_matching_loss(real, same).item() == 0.0
    assert feature_matching_loss(real, other).item() > 0.0


def test_gan_losses():
    high, low = [torch.full((2, 1, 3, 3), 2.0)], [torch.full((2, 1, 3, 3), -2.0)]
    # Hinge: zero once real logits are >= 1 and fake ones <= -1; the generator wants fake >= 1.
    assert discriminator_loss(high, low, "hinge").item() == 0.0
    assert discriminator_loss(low, high, "hinge").item() == pytest.approx(6.0)
    assert generator_loss(high, "hinge").item() == 0.0
    assert generator_loss(low, "hinge").item() == pytest.approx(3.0)
    ones, zeros = [torch.ones(2, 1, 3, 3)], [torch.zeros(2, 1, 3, 3)]
    assert discriminator_loss(ones, zeros, "lsgan").item() == 0.0
    assert generator_loss(ones, "lsgan").item() == 0.0
    with pytest.raises(ValueError, match="valid names"):
        generator_loss(ones, "wgan")


def test_mel_distance_and_si_sdr():
    bank = mel_filterbank(8000, 256, 32)
    assert bank.shape == (32, 129)
    assert bank.min() >= 0 and bank.max() <= 1
    x = _tones(2, 1)
    mel = MelDistance(8000, 256, 32)
    assert mel(x, x).item() == 0.0
    # Halving the level moves every (non-floor) log-mel value by ln 2.
    assert 0.6 < mel(0.5 * x, x).item() <= torch.log(torch.tensor(2.0)).item() + 1e-4
    # SI-SDR ignores the scale; noise lowers it.
    assert si_sdr(0.5 * x, x).item() > 60
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert 5 < si_sdr(noisy, x).item() < 30


def test_magnitude_loss_weighs_loud_bins_and_ignores_inaudible_ones():
    torch.manual_seed(0)
    target = torch.full((2, 1, 33, 10), -9.0)  # |X| ~ 1e-4: under the 1e-2 floor
    target[:, :, 8] = 3.0  # one loud harmonic
    assert magnitude_loss(target, target) == 0
    # Changing inaudible bins by a factor of e^2 costs almost nothing ...
    quiet = target.clone()
    quiet[:, :, 20:] -= 2.0
    assert magnitude_loss(quiet, target) < 0.01
    # ... missing the loud bin costs a lot, most of it spectral convergence (about 1: the whole norm).
    missing = target.clone()
    missing[:, :, 8] = -9.0
    assert magnitude_loss(missing, target) > 1.0
    # Silence as the target does not blow the ratio up, and the gradient reaches the prediction.
    predicted = torch.zeros(1, 1, 33, 4, requires_grad=True)
    loss = magnitude_loss(predicted, torch.full((1, 1, 33, 4), -20.0))
    loss.backward()
    assert torch.isfinite(loss) and loss < 20 and predicted.grad.abs().sum() > 0
