"""AudioVAE: shapes, length arithmetic, save/load, chunking, gradients, validation."""

from __future__ import annotations

import pytest
import torch

from stable_audio_kit.vae import AudioVAE

# 800 Hz mono, hop 8 (100 latent frames/s), 4 latent channels: about 9k parameters.
TINY = {
    "encoder_hidden_size": 8,
    "downsampling_ratios": [2, 4],
    "channel_multiples": [1, 2],
    "decoder_channels": 8,
    "decoder_input_channels": 4,
    "audio_channels": 1,
    "sampling_rate": 800,
}


# diffusers' Oobleck still uses the deprecated torch.nn.utils.weight_norm; that is not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tensors are tiny: a second thread only adds synchronisation, which gets slow when other
    # jobs share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_vae(**overrides) -> AudioVAE:
    torch.manual_seed(0)
    return AudioVAE(**{**TINY, **overrides}).eval()


@pytest.mark.parametrize("audio_channels", [1, 2])
def test_shapes(audio_channels):
    vae = tiny_vae(audio_channels=audio_channels)
    assert vae.hop_length == 8
    assert vae.latent_channels == 4
    assert vae.latent_rate == pytest.approx(100.0)
    x = torch.randn(2, audio_channels, 333)  # not a multiple of the hop
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=torch.Generator().manual_seed(0))
        assert z.shape == (2, 4, 41)
        assert posterior.mode().shape == (2, 4, 41)
        assert vae.decode(z).sample.shape == (2, audio_channels, 41 * 8)


def test_encode_is_deterministic():
    vae = tiny_vae()
    x = torch.randn(1, 1, 200)
    with torch.no_grad():
        a = vae.encode(x).latent_dist
        b = vae.encode(x).latent_dist
        assert torch.equal(a.mode(), b.mode())
        assert torch.equal(a.sample(torch.Generator().manual_seed(1)), b.sample(torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("ratios", [[2, 4], [4, 2, 2], [3, 2], [2, 1, 3]])
def test_latent_length_matches_encoder(ratios):
    vae = tiny_vae(downsampling_ratios=ratios, channel_multiples=[1] * len(ratios))
    vae.disable_tiling()
    with torch.no_grad():
        for n in range(vae.min_samples, 120):
            assert vae.encode(torch.randn(1, 1, n)).latent_dist.mode().shape[-1] == vae.latent_length(n), n
    if all(r % 2 == 0 for r in ratios):
        assert all(vae.latent_length(n) == n // vae.hop_length for n in range(vae.hop_length, 500))
    # The shortest accepted input is exact: one sample less fails in the network itself.
    if vae.min_samples > 1:
        with pytest.raises(RuntimeError):
            vae.encoder(torch.randn(1, 1, vae.min_samples - 1))


def test_too_short_or_misshaped_input_raises():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="too few"):
        vae.latent_length(7)
    with pytest.raises(ValueError, match="num_samples"):
        vae.latent_length(0)
    with pytest.raises(ValueError, match="too few"):
        vae.encode(torch.randn(1, 1, 7))
    with pytest.raises(ValueError, match=r"\(batch, 1, samples\)"):
        vae.encode(torch.randn(1, 2, 64))
    with pytest.raises(ValueError, match=r"\(batch, 4, frames\)"):
        vae.decode(torch.randn(1, 8, 10))


def test_save_load_round_trip(tmp_path):
    vae = tiny_vae(scaling_factor=0.7, chunk_seconds=0.5, overlap_seconds=0.05)
    vae.save_pretrained(tmp_path / "vae")
    loaded = AudioVAE.from_pretrained(tmp_path / "vae").eval()
    assert isinstance(loaded, AudioVAE)
    for key in ("scaling_factor", "chunk_seconds", "overlap_seconds", "downsampling_ratios", "sampling_rate"):
        assert loaded.config[key] == vae.config[key], key
    assert loaded.use_tiling
    assert (loaded.tile_latent_min_length, loaded.tile_latent_overlap) == (50, 5)
    x = torch.randn(2, 1, 901)  # long enough to be chunked
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        assert torch.equal(loaded.encode(x).latent_dist.mode(), z)
        assert torch.equal(loaded.decode(z).sample, vae.decode(z).sample)


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("ratios", [[2, 4], [3, 2]])
def test_chunked_length_equals_unchunked(ratios):
    # 0.05 s chunks with 0.01 s overlap: 40-sample windows, so nearly every input is chunked and the
    # chunk and overlap are not multiples of anything in particular.
    vae = tiny_vae(downsampling_ratios=ratios, channel_multiples=[1, 2], chunk_seconds=0.05, overlap_seconds=0.01)
    enc_calls, dec_calls = count_calls(vae.encoder), count_calls(vae.decoder)
    with torch.no_grad():
        for n in range((vae.tile_latent_min_length + 1) * vae.hop_length, 300, 5):
            x = torch.randn(1, 1, n)
            vae.enable_tiling()
            enc_calls[0] = dec_calls[0] = 0
            z_tiled = vae.encode(x).latent_dist.mode()
            y_tiled = vae.decode(z_tiled).sample
            assert enc_calls[0] > 1 and dec_calls[0] > 1, "chunking did not trigger"
            vae.disable_tiling()
            z = vae.encode(x).latent_dist.mode()
            assert z_tiled.shape == z.shape == (1, 4, vae.latent_length(n)), n
            assert y_tiled.shape == vae.decode(z).sample.shape, n


@pytest.mark.parametrize("num_samples", [1001, 1999, 2345])
def test_chunked_values_match_unchunked(num_samples):
    # With an overlap (0.25 s = 200 samples) wider than this network's receptive field, chunking is
    # exact up to float rounding everywhere; a chunk off the latent grid would differ by O(1).
    vae = tiny_vae(chunk_seconds=0.7, overlap_seconds=0.25)
    x = torch.randn(2, 1, num_samples)
    with torch.no_grad():
        z_tiled = vae.encode(x).latent_dist.mode()
        y_tiled = vae.decode(z_tiled).sample
        vae.disable_tiling()
        z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
    torch.testing.assert_close(z_tiled, z, rtol=1e-4, atol=1e-5 * z.abs().max().item())
    torch.testing.assert_close(y_tiled, y, rtol=1e-4, atol=1e-5 * y.abs().max().item())


@pytest.mark.parametrize("chunked", [False, True])
def test_gradient_flow(chunked):
    vae = tiny_vae(chunk_seconds=0.1, overlap_seconds=0.02).train()
    if not chunked:
        vae.disable_tiling()
    x = torch.randn(2, 1, 250, requires_grad=True)
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=torch.Generator().manual_seed(0))
    loss = vae.decode(z).sample.pow(2).mean() + 1e-3 * posterior.kl()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in vae.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"audio_channels": 3}, "audio_channels"),
        ({"audio_channels": 0}, "audio_channels"),
        ({"downsampling_ratios": [2, -4]}, "downsampling_ratios"),
        ({"downsampling_ratios": []}, "downsampling_ratios"),
        ({"channel_multiples": [1]}, "channel_multiples"),
        ({"encoder_hidden_size": 6}, "encoder_hidden_size"),
        ({"decoder_channels": 0}, "decoder_channels"),
        ({"sampling_rate": 0}, "sampling_rate"),
        ({"scaling_factor": 0.0}, "scaling_factor"),
        ({"scaling_factor": float("nan")}, "scaling_factor"),
        ({"chunk_seconds": -1.0}, "chunk_seconds"),
        ({"overlap_seconds": 0.0}, "overlap_seconds"),
        ({"chunk_seconds": 1.0, "overlap_seconds": 0.5}, "overlap_seconds"),
        # 2 * overlap < chunk in seconds, but at hop 8 that leaves no frame of a chunk's own.
        ({"chunk_seconds": 0.02, "overlap_seconds": 0.005}, "chunk_seconds"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioVAE(**{**TINY, **kwargs})
