"""Audio and latent crops with their timing, and batching them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from stable_audio_kit.data import (
    AudioCropDataset,
    LatentCropDataset,
    collate,
    draw_offset,
    encode_catalogue,
    load_manifest,
)

from .helpers import SR, FakeVAE, fake_text_encode, write_ramp, write_tone


# ------------------------------------------------------------------------------------------------
# Audio crops


@pytest.fixture
def ramp_catalogue(tmp_path) -> tuple[Path, np.ndarray]:
    root = tmp_path / "ramp"
    ramp = write_ramp(root / "a_long.wav", 3000)
    (root / "a_long.txt").write_text("a ramp")
    write_tone(root / "b_short.wav", 0.4)
    return root, ramp


def test_crop_timing_matches_hand_computation(ramp_catalogue):
    root, ramp = ramp_catalogue
    ds = AudioCropDataset(root, SR, 1, 1.0, seed=123)
    assert len(ds) == 2 and ds.window_samples == 1000

    for epoch in range(3):
        ds.set_epoch(epoch)
        offset = int(np.random.default_rng([123, epoch, 0]).integers(2001))  # 3000 - 1000 + 1 starts
        item = ds[0]
        assert item["seconds_total"] == 3.0
        assert item["seconds_start"] == offset / 1000
        assert item["audio"].shape == (1, 1000) and item["audio"].dtype == torch.float32
        np.testing.assert_array_equal(item["audio"][0].numpy(), ramp[offset : offset + 1000])
        assert bool(item["padding_mask"].all())
        assert item["caption"] == "a ramp" and item["path"] == "a_long.wav"

    fixed = ds.load_crop(0, 1500)
    assert fixed["seconds_start"] == 1.5
    assert fixed["audio"][0, 0].item() == pytest.approx(0.5)
    assert ds.load_crop(0, 2000)["audio"][0, -1].item() == ramp[2999]

    short = ds[1]
    assert short["seconds_start"] == 0.0 and short["seconds_total"] == 0.4
    assert short["padding_mask"].shape == (1000,) and short["padding_mask"].dtype == torch.bool
    assert int(short["padding_mask"].sum()) == 400 and bool(short["padding_mask"][:400].all())
    assert bool((short["audio"][:, 400:] == 0).all()) and float(short["audio"][:, :400].abs().max()) > 0.4
    assert short["caption"] == ""


def test_crop_offset_multiple(ramp_catalogue):
    root, _ = ramp_catalogue
    ds = AudioCropDataset(root, SR, 1, 1.0, seed=5, offset_multiple=7)
    for epoch in range(20):
        ds.set_epoch(epoch)
        expected = 7 * int(np.random.default_rng([5, epoch, 0]).integers(2000 // 7 + 1))
        assert ds.sample_offset(0) == expected
        assert expected % 7 == 0 and expected <= 2000
        assert ds[0]["seconds_start"] == expected / SR
    assert draw_offset(0, 0, 0, length=100, window=100, multiple=7) == 0


def test_crops_are_reproducible_and_resumable(ramp_catalogue):
    root, _ = ramp_catalogue
    ds = AudioCropDataset(root, SR, 1, 1.0, seed=9)
    per_epoch = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        per_epoch.append(ds[0]["seconds_start"])
    assert len(set(per_epoch)) > 1  # a new epoch gives new crops

    resumed = AudioCropDataset(root, SR, 1, 1.0, seed=9)
    resumed.set_epoch(2)
    again = resumed[0]
    assert again["seconds_start"] == per_epoch[2]
    ds.set_epoch(2)
    assert torch.equal(again["audio"], ds[0]["audio"])

    other_seed = AudioCropDataset(root, SR, 1, 1.0, seed=10)
    assert other_seed[0]["seconds_start"] == int(np.random.default_rng([10, 0, 0]).integers(2001)) / SR
    assert per_epoch[0] != other_seed[0]["seconds_start"]

    val = AudioCropDataset(root, SR, 1, 1.0, seed=9, train=False)
    for epoch in range(3):
        val.set_epoch(epoch)
        assert val[0]["seconds_start"] == 0.0
        assert val[0]["audio"][0, 0].item() == 0.0
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)
    with pytest.raises(IndexError):
        ds[2]


def test_resample_and_mix_48k_stereo(tmp_path):
    source = write_tone(tmp_path / "st.wav", 0.5, sr=48000, channels=2)
    ds = AudioCropDataset(tmp_path, 16000, 1, 1.0, train=False)
    item = ds[0]
    assert item["audio"].shape == (1, 16000)
    assert int(item["padding_mask"].sum()) == 8000
    assert item["seconds_total"] == 0.5 and item["seconds_start"] == 0.0
    expected = source.mean(axis=1)[::3]  # both channels are low sines, so decimation is exact enough
    np.testing.assert_allclose(item["audio"][0, 100:7900].numpy(), expected[100:7900], atol=2e-3)

    up = AudioCropDataset(tmp_path, 16000, 2, 0.25, seed=1)
    crop = up[0]
    assert crop["audio"].shape == (2, 4000) and bool(crop["padding_mask"].all())
    offset = round(crop["seconds_start"] * 16000)
    assert offset == int(np.random.default_rng([1, 0, 0]).integers(8000 - 4000 + 1))


@pytest.mark.parametrize(("subtype", "tol"), [("PCM_U8", 1 / 64), ("PCM_24", 1e-6)])
def test_reads_8_and_24_bit(tmp_path, subtype, tol):
    data = write_tone(tmp_path / "x.wav", 0.3, subtype=subtype)
    item = AudioCropDataset(tmp_path, SR, 1, 0.5, train=False)[0]
    assert item["seconds_total"] == 0.3 and int(item["padding_mask"].sum()) == 300
    np.testing.assert_allclose(item["audio"][0, :300].numpy(), data[:, 0], atol=tol)


def test_unreadable_files_raise_or_are_skipped(odd_catalogue, caplog):
    with pytest.raises(ValueError) as err:
        AudioCropDataset(odd_catalogue, SR, 1, 1.0)
    assert "trunc.wav" in str(err.value) and "empty.wav" in str(err.value) and "skip_unreadable" in str(err.value)

    with caplog.at_level(logging.WARNING, logger="stable_audio_kit.data.check"):
        ds = AudioCropDataset(odd_catalogue, SR, 1, 1.0, skip_unreadable=True)
    assert [p for p, _ in ds.skipped] == ["empty.wav", "trunc.wav"]
    assert "trunc.wav" in caplog.text
    assert len(ds) == 7 and "trunc.wav" not in [i.path for i in ds.items]
    assert ds[ds.items.index(next(i for i in ds.items if i.path == "nocap.wav"))]["caption"] == ""


def test_getitem_never_substitutes(ramp_catalogue):
    root, _ = ramp_catalogue
    ds = AudioCropDataset(root, SR, 1, 1.0)
    (root / "a_long.wav").unlink()
    with pytest.raises((RuntimeError, OSError, ValueError)):
        ds[0]
    assert ds[1]["path"] == "b_short.wav"


def test_collate_audio_batches(ramp_catalogue):
    root, _ = ramp_catalogue
    loader = DataLoader(AudioCropDataset(root, SR, 1, 1.0), batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["audio"].shape == (2, 1, 1000) and batch["padding_mask"].shape == (2, 1000)
    assert batch["seconds_total"].dtype == torch.float32
    assert batch["seconds_total"].tolist() == pytest.approx([3.0, 0.4])
    assert batch["path"] == ["a_long.wav", "b_short.wav"] and batch["caption"] == ["a ramp", ""]
    with pytest.raises(ValueError, match="empty"):
        collate([])


# ------------------------------------------------------------------------------------------------
# Latent crops


def test_latent_crops_match_audio_crops(latent_catalogue_root, tmp_path):
    """The pre-encoded path reports the same seconds_start/seconds_total and masks as the raw path."""
    hop = FakeVAE.hop_length
    out = tmp_path / "latents"
    encode_catalogue(FakeVAE(), latent_catalogue_root, out, SR, 1, text_encode_fn=fake_text_encode)
    audio_ds = AudioCropDataset(latent_catalogue_root, SR, 1, 0.5, seed=7, offset_multiple=hop)
    latent_ds = LatentCropDataset(out, 0.5, seed=7)
    assert latent_ds.window_frames == 50 and len(latent_ds) == len(audio_ds) == 5

    seen_offsets = set()
    for epoch in range(4):
        audio_ds.set_epoch(epoch)
        latent_ds.set_epoch(epoch)
        for index in range(len(audio_ds)):
            a, z = audio_ds[index], latent_ds[index]
            assert a["path"] == z["path"] and a["caption"] == z["caption"]
            assert z["seconds_start"] == a["seconds_start"]
            assert z["seconds_total"] == a["seconds_total"]
            # The audio mask downsampled to latent frames: a frame is real if any of its samples is.
            frame_mask = a["padding_mask"].view(50, hop).any(dim=1)
            assert torch.equal(z["padding_mask"], frame_mask)
            assert z["latents"].shape == (2, 50)
            pooled = 0.5 * F.avg_pool1d(a["audio"][None], hop)[0, 0]
            torch.testing.assert_close(z["latents"][0], pooled)
            assert bool((z["latents"][:, ~z["padding_mask"]] == 0).all())
            seen_offsets.add((index, round(a["seconds_start"] * SR)))
    assert all(offset % hop == 0 for _, offset in seen_offsets)
    assert len({o for i, o in seen_offsets if i == 0}) > 1

    # Hand-computed: file a (3000 samples), window 500 samples = 50 frames.
    latent_ds.set_epoch(0)
    frames = int(np.random.default_rng([7, 0, 0]).integers((3000 - 500) // hop + 1))
    assert latent_ds.sample_offset(0) == frames
    assert latent_ds[0]["seconds_start"] == frames * hop / SR
    crop = latent_ds.load_crop(0, 120)
    assert crop["seconds_start"] == 1.2 and crop["seconds_total"] == 3.0
    short = latent_ds[2]  # c.wav: 0.4 s -> 40 of 50 frames real
    assert short["seconds_start"] == 0.0 and short["seconds_total"] == 0.4 and int(short["padding_mask"].sum()) == 40
    assert int(latent_ds[3]["padding_mask"].sum()) == 41  # d.wav: 403 samples, last frame partly real

    val = LatentCropDataset(out, 0.5, train=False)
    assert all(val[i]["seconds_start"] == 0.0 for i in range(len(val)))
    subset = LatentCropDataset(out, 0.5, paths=["d.wav", "a.wav"])
    assert [e["path"] for e in subset.entries] == ["d.wav", "a.wav"]
    with pytest.raises(ValueError, match="zz.wav"):
        LatentCropDataset(out, 0.5, paths=["zz.wav"])


def test_latent_crops_pad_with_the_latent_of_silence(latent_catalogue_root, tmp_path):
    """Past a file's end the crop holds what the VAE makes of silence, as the audio path would."""
    out = tmp_path / "latents"
    encode_catalogue(FakeVAE(offset=0.25), latent_catalogue_root, out, SR, 1)
    assert load_manifest(out)["silence_latent"] == [0.125, -0.125]  # 0.5 * (silence + offset), and negated
    short = LatentCropDataset(out, 0.5)[2]  # c.wav: 0.4 s -> 40 of 50 frames real
    tail = short["latents"][:, ~short["padding_mask"]]
    assert tail.shape == (2, 10) and bool((tail[0] == 0.125).all()) and bool((tail[1] == -0.125).all())
    assert not bool((short["latents"][0, short["padding_mask"]] == 0.125).all())


def test_collate_latents_pads_cached_text(latent_catalogue_root, tmp_path):
    out = tmp_path / "latents"
    encode_catalogue(FakeVAE(), latent_catalogue_root, out, SR, 1, text_encode_fn=fake_text_encode)
    ds = LatentCropDataset(out, 0.5)
    assert ds[3]["text_hidden"].shape == (5, 3) and int(ds[3]["text_mask"].sum()) == 5  # 4 words + 1
    batch = collate([ds[2], ds[3]])
    assert batch["latents"].shape == (2, 2, 50) and batch["padding_mask"].shape == (2, 50)
    assert batch["text_hidden"].shape == (2, 5, 3) and batch["text_mask"].dtype == torch.bool
    assert batch["text_mask"].sum(dim=1).tolist() == [1, 5]
    assert batch["seconds_total"].tolist() == pytest.approx([0.4, 0.403])
    assert batch["caption"] == ["", "a four word caption"]
