"""Training data: catalogues, the dry-run report, splits, audio and latent crops with their timing."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch.utils.data import DataLoader

from stable_audio_kit.data import (
    AudioCropDataset,
    CatalogueItem,
    LatentCropDataset,
    check_catalogue,
    collate,
    data_check_main,
    draw_offset,
    encode_catalogue,
    format_report,
    latent_catalogue,
    load_manifest,
    probe_file,
    scan_catalogue,
    split_catalogue,
)

SR = 1000


def write_tone(path: Path, seconds: float, sr: int = SR, channels: int = 1, subtype: str | None = None, amp=0.5):
    """A sine of ``seconds`` (rounded to whole samples) at ``sr``; returns the written ``(samples, channels)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    data = np.stack([amp * np.sin(2 * np.pi * (7 + c) * t) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, sr, subtype=subtype)
    return data


def write_ramp(path: Path, n: int, sr: int = SR) -> np.ndarray:
    """A float WAV whose sample ``i`` is ``i / n``, so a crop's content identifies its offset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(n) / n).astype(np.float32)
    sf.write(str(path), data, sr, subtype="FLOAT")
    return data


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


class FakeDist:
    def __init__(self, mean: torch.Tensor) -> None:
        self.mean = mean

    def mode(self) -> torch.Tensor:
        return self.mean


class FakeVAE(torch.nn.Module):
    """Strided average pooling with the VAE interface: ``(B, C, N) -> (B, 2C, N / hop)``."""

    hop_length = 10

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=0.5)
        self.calls: list[tuple[int, ...]] = []
        self.offset = offset  # what silence encodes to (a real VAE's biases make it nonzero)

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        assert not torch.is_grad_enabled()
        self.calls.append(tuple(x.shape))
        pooled = F.avg_pool1d(x, self.hop_length) + self.offset
        return SimpleNamespace(latent_dist=FakeDist(torch.cat([pooled, -pooled], dim=1)))


def fake_text_encode(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token count = words + 1, hidden size 3; padded to the longest caption of the batch."""
    lengths = [len(c.split()) + 1 for c in captions]
    longest = max(lengths)
    hidden = torch.zeros(len(captions), longest, 3)
    mask = torch.zeros(len(captions), longest, dtype=torch.bool)
    for row, n in enumerate(lengths):
        hidden[row, :n] = float(n)
        mask[row, :n] = True
    return hidden, mask


# ------------------------------------------------------------------------------------------------
# Catalogue formats


def test_sidecar_txt_and_json(tmp_path):
    write_tone(tmp_path / "b.wav", 0.2)
    (tmp_path / "b.txt").write_text("  warm pad  \n")
    write_tone(tmp_path / "sub" / "a.flac", 0.2)
    (tmp_path / "sub" / "a.json").write_text(json.dumps({"caption": "drum loop", "bpm": 120, "group": "g1"}))
    write_tone(tmp_path / "c.ogg", 0.2)
    write_tone(tmp_path / ".hidden.wav", 0.2)
    (tmp_path / "notes.txt").write_text("not a caption")

    items = scan_catalogue(tmp_path)
    assert [i.path for i in items] == ["b.wav", "c.ogg", "sub/a.flac"]
    assert items[0].caption == "warm pad" and items[0].extra == {}
    assert items[1].caption is None
    assert items[2].caption == "drum loop" and items[2].extra == {"bpm": 120, "group": "g1"}
    assert all(i.exists for i in items)
    assert scan_catalogue(tmp_path) == items


def test_metadata_csv_reports_missing_paths(tmp_path, caplog):
    write_tone(tmp_path / "a.wav", 0.2)
    write_tone(tmp_path / "sub" / "b.wav", 0.2)
    write_tone(tmp_path / "unlisted.wav", 0.2)
    (tmp_path / "metadata.csv").write_text(
        "path,caption,group,split\nsub/b.wav,bass line,g2,valid\n./a.wav,a piano,g1,\ngone.wav,lost,,\n"
    )
    with caplog.at_level(logging.WARNING):
        items = scan_catalogue(tmp_path)
    assert [i.path for i in items] == ["a.wav", "gone.wav", "sub/b.wav", "unlisted.wav"]
    a, gone, b, unlisted = items
    assert (a.caption, a.extra) == ("a piano", {"group": "g1", "split": ""})
    assert (b.caption, b.extra) == ("bass line", {"group": "g2", "split": "valid"})
    assert not gone.exists and "gone.wav" in caplog.text
    assert unlisted.caption is None and unlisted.exists

    report = check_catalogue(tmp_path, SR, 1, 1.0)
    assert report.missing_files == ["gone.wav"]
    assert "unlisted.wav" in report.missing_captions
    assert report.usable == 3
    with pytest.raises(ValueError, match="gone.wav"):
        AudioCropDataset(tmp_path, SR, 1, 1.0)


def test_metadata_jsonl(tmp_path):
    write_tone(tmp_path / "x.wav", 0.2)
    write_tone(tmp_path / "y.wav", 0.2)
    rows = [{"path": "y.wav", "caption": "why", "bpm": 90.5}, {"path": "x.wav", "caption": "ex", "tags": ["a", "b"]}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = scan_catalogue(tmp_path)
    assert [(i.path, i.caption, i.extra) for i in items] == [
        ("x.wav", "ex", {"tags": ["a", "b"]}),
        ("y.wav", "why", {"bpm": 90.5}),
    ]


def test_catalogue_errors(tmp_path):
    write_tone(tmp_path / "a.wav", 0.2)
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "a.json").write_text(json.dumps({"caption": "two"}))
    with pytest.raises(ValueError, match="different captions"):
        scan_catalogue(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"caption": "one", "bpm": 1}))
    assert scan_catalogue(tmp_path)[0].caption == "one"  # agreeing sources are fine

    (tmp_path / "metadata.csv").write_text("path,caption\na.wav,one\n")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"path": "a.wav", "caption": "one"}))
    with pytest.raises(ValueError, match="metadata.csv and metadata.jsonl"):
        scan_catalogue(tmp_path)
    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "metadata.csv").write_text("file,caption\na.wav,one\n")
    with pytest.raises(ValueError, match="'path' column"):
        scan_catalogue(tmp_path)
    (tmp_path / "metadata.csv").write_text("path,caption\n../a.wav,one\n")
    with pytest.raises(ValueError, match="relative"):
        scan_catalogue(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        scan_catalogue(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------
# Probing and the dry-run report


def test_probe_detects_truncated_and_garbage(tmp_path):
    for subtype in ("PCM_16", "PCM_24", "PCM_U8", "FLOAT"):
        path = tmp_path / f"{subtype}.wav"
        write_tone(path, 1.0, subtype=subtype)
        assert probe_file(path, decode=True).error is None
        truncate(path)
        # libsndfile itself opens the truncated file and reports fewer frames without complaint.
        assert sf.info(str(path)).frames > 0
        assert "truncated" in probe_file(path).error
    flac = tmp_path / "cut.flac"
    write_tone(flac, 1.0)
    truncate(flac)
    assert probe_file(flac, decode=True).error is not None
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + bytes(range(200)))
    assert probe_file(tmp_path / "junk.wav").error is not None
    assert probe_file(tmp_path / "missing.wav").error == "file not found"


@pytest.fixture
def odd_catalogue(tmp_path) -> Path:
    root = tmp_path / "odd"
    write_tone(root / "long.wav", 3.0)
    (root / "long.txt").write_text("a long tone")
    write_tone(root / "u8.wav", 1.0, subtype="PCM_U8")
    (root / "u8.json").write_text(json.dumps({"caption": "eight bit"}))
    write_tone(root / "s24.wav", 1.5, subtype="PCM_24")
    (root / "s24.txt").write_text("twenty-four bit")
    write_tone(root / "stereo48k.wav", 0.5, sr=48000, channels=2)
    (root / "stereo48k.txt").write_text("stereo at 48 kHz")
    write_tone(root / "trunc.wav", 1.0)
    (root / "trunc.txt").write_text("cut short")
    truncate(root / "trunc.wav")
    sf.write(str(root / "empty.wav"), np.zeros((0, 1), np.float32), SR)
    (root / "empty.txt").write_text("nothing")
    sf.write(str(root / "silent.wav"), np.zeros((1000, 1), np.float32), SR)
    (root / "silent.txt").write_text("silence")
    write_tone(root / "nocap.wav", 0.25)
    write_tone(root / "emptycap.wav", 0.25)
    (root / "emptycap.txt").write_text("   \n")
    return root


def test_check_catalogue_report(odd_catalogue, capsys):
    report = check_catalogue(odd_catalogue, SR, 1, 2.0)
    assert report.num_files == 9
    assert [p for p, _ in report.unreadable] == ["trunc.wav"]
    assert "truncated" in report.unreadable[0][1]
    assert report.zero_length == ["empty.wav"]
    assert report.silent == ["silent.wav"]
    assert report.missing_captions == ["emptycap.wav", "nocap.wav"]
    assert report.missing_files == [] and report.incompatible == []
    assert report.longer_than_window == ["long.wav"]
    assert report.sample_rates == {SR: 7, 48000: 1}
    assert report.channel_counts == {1: 7, 2: 1}
    assert report.unusable == ["empty.wav", "trunc.wav"]
    assert report.usable == 7
    expected_seconds = 3.0 + 1.0 + 1.5 + 0.5 + 1.0 + 0.25 + 0.25
    assert report.total_seconds == pytest.approx(expected_seconds)
    assert report.total_hours == pytest.approx(expected_seconds / 3600)
    assert report.durations["stereo48k.wav"] == 0.5
    assert sum(report.histogram_counts) == 7
    assert len(report.histogram_edges) == len(report.histogram_counts) + 1
    assert report.histogram_edges[0] == 0.0 and report.histogram_edges[-1] == 3.0

    text = format_report(report)
    for needle in ("trunc.wav", "truncated", "empty.wav", "nocap.wav", "silent.wav", "usable: 7", "48000 Hz"):
        assert needle in text
    assert data_check_main(str(odd_catalogue), SR, 1, 2.0) == 0
    assert "usable: 7" in capsys.readouterr().out


def test_check_incompatible_channels_and_exit_codes(tmp_path, capsys):
    write_tone(tmp_path / "three.wav", 0.5, channels=3)
    report = check_catalogue(tmp_path, SR, 2, 1.0)
    assert [p for p, _ in report.incompatible] == ["three.wav"] and report.usable == 0
    assert data_check_main(str(tmp_path), SR, 2, 1.0) == 1
    assert "No usable files" in capsys.readouterr().out
    assert data_check_main(str(tmp_path / "missing"), SR, 2, 1.0) == 2
    assert "not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert data_check_main(str(empty), SR, 2, 1.0) == 1


# ------------------------------------------------------------------------------------------------
# Splits


def _items(n: int, group_every: int = 0) -> list[CatalogueItem]:
    return [
        CatalogueItem(f"f{i:03d}.wav", "c", {"group": f"g{i // group_every}"} if group_every else {}) for i in range(n)
    ]


def test_split_is_deterministic_and_disjoint():
    items = _items(400)
    train, valid = split_catalogue(items, valid_fraction=0.2)
    assert {i.path for i in train}.isdisjoint(i.path for i in valid)
    assert len(train) + len(valid) == 400
    assert 40 < len(valid) < 120
    shuffled = list(items)
    random.Random(0).shuffle(shuffled)
    _, valid2 = split_catalogue(shuffled, valid_fraction=0.2)
    assert {i.path for i in valid2} == {i.path for i in valid}
    # Adding files never moves existing ones.
    _, valid3 = split_catalogue(items + _items(500)[400:], valid_fraction=0.2)
    assert {i.path for i in valid} <= {i.path for i in valid3}
    assert split_catalogue(items, valid_fraction=0.0)[1] == []
    with pytest.raises(ValueError, match="valid_fraction"):
        split_catalogue(items, valid_fraction=1.0)


def test_split_keeps_groups_together_and_honours_split_field():
    items = _items(300, group_every=3)
    train, valid = split_catalogue(items, valid_fraction=0.3)
    train_groups = {i.extra["group"] for i in train}
    valid_groups = {i.extra["group"] for i in valid}
    assert valid_groups and train_groups and train_groups.isdisjoint(valid_groups)

    items = _items(6, group_every=3)
    items[0].extra["split"] = "valid"  # pulls its group (items 0-2) into validation
    items[4].extra["split"] = "train"
    solo = CatalogueItem("solo.wav", "c", {"split": "valid"})
    train, valid = split_catalogue([*items, solo], valid_fraction=0.0)
    assert [i.path for i in valid] == ["f000.wav", "f001.wav", "f002.wav", "solo.wav"]
    assert [i.path for i in train] == ["f003.wav", "f004.wav", "f005.wav"]

    items[1].extra["split"] = "train"
    with pytest.raises(ValueError, match="conflicting splits"):
        split_catalogue(items)
    with pytest.raises(ValueError, match="expected one of"):
        split_catalogue([CatalogueItem("a.wav", None, {"split": "test"})])


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

    with caplog.at_level(logging.WARNING, logger="stable_audio_kit.data.core"):
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
# Pre-encoded latents


@pytest.fixture
def latent_catalogue_root(tmp_path) -> Path:
    root = tmp_path / "lat"
    write_ramp(root / "a.wav", 3000)
    (root / "a.txt").write_text("a ramp up")
    write_tone(root / "b.wav", 1.234)
    (root / "b.txt").write_text("b")
    write_tone(root / "c.wav", 0.4)
    write_tone(root / "d.wav", 0.403)
    (root / "d.txt").write_text("a four word caption")
    write_tone(root / "e.wav", 1.5, sr=2000, channels=2)
    (root / "e.txt").write_text("stereo")
    return root


def test_encode_catalogue_writes_shards_and_manifest(latent_catalogue_root, tmp_path):
    vae = FakeVAE()
    out = tmp_path / "latents"
    manifest_path = encode_catalogue(
        vae, latent_catalogue_root, out, SR, 1, shard_size=2, text_encode_fn=fake_text_encode
    )
    manifest = load_manifest(out)
    assert manifest_path == out / "index.json"
    assert manifest["sample_rate"] == SR and manifest["hop_length"] == 10 and manifest["latent_rate"] == 100.0
    assert manifest["latent_channels"] == 2 and manifest["scaling_factor"] == 0.5 and manifest["has_text"]
    assert manifest["shards"] == ["shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["shards"], "index.json"])  # no temp files
    by_path = {e["path"]: e for e in manifest["items"]}
    assert [e["path"] for e in manifest["items"]] == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    assert by_path["a.wav"]["seconds_total"] == 3.0 and by_path["a.wav"]["valid_frames"] == 300
    assert by_path["b.wav"]["seconds_total"] == 1.234 and by_path["b.wav"]["valid_frames"] == 124
    assert by_path["d.wav"]["num_samples"] == 403 and by_path["d.wav"]["valid_frames"] == 41
    assert by_path["e.wav"]["seconds_total"] == 1.5 and by_path["e.wav"]["num_samples"] == 1500
    assert by_path["c.wav"]["caption"] is None
    # Whole files are encoded, one per call with batch_size=1, padded to a multiple of the hop; then
    # a silent stretch, whose latent pads the crops.
    assert (1, 1, 3000) in vae.calls and (1, 1, 1240) in vae.calls and len(vae.calls) == 6
    assert manifest["version"] == 2 and manifest["silence_latent"] == [0.0, 0.0]

    with safe_open(str(out / by_path["a.wav"]["shard"]), framework="pt") as f:
        latents = f.get_tensor(f"{by_path['a.wav']['key']}.latents")
        meta = json.loads(f.metadata()["items"])
    ramp = torch.arange(3000, dtype=torch.float32) / 3000
    expected = 0.5 * ramp.view(300, 10).mean(dim=1)
    assert latents.shape == (2, 300)
    torch.testing.assert_close(latents[0], expected)
    assert {m["path"] for m in meta} == {"a.wav", "b.wav"}
    assert [i.path for i in latent_catalogue(out)] == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]

    with pytest.raises(ValueError, match="already exists"):
        encode_catalogue(vae, latent_catalogue_root, out, SR, 1)


def test_encode_unreadable_raises_or_skips(latent_catalogue_root, tmp_path, caplog):
    write_tone(latent_catalogue_root / "z_trunc.wav", 1.0)
    truncate(latent_catalogue_root / "z_trunc.wav")
    with pytest.raises(ValueError, match="z_trunc.wav"):
        encode_catalogue(FakeVAE(), latent_catalogue_root, tmp_path / "l1", SR, 1)
    assert not (tmp_path / "l1" / "index.json").exists()
    with caplog.at_level(logging.WARNING):
        encode_catalogue(FakeVAE(), latent_catalogue_root, tmp_path / "l2", SR, 1, skip_unreadable=True, batch_size=3)
    manifest = load_manifest(tmp_path / "l2")
    assert [s["path"] for s in manifest["skipped"]] == ["z_trunc.wav"] and "z_trunc.wav" in caplog.text
    assert len(manifest["items"]) == 5
    assert {e["path"]: e["valid_frames"] for e in manifest["items"]}["d.wav"] == 41


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


def test_old_latent_manifests_are_refused(latent_catalogue_root, tmp_path):
    out = tmp_path / "latents"
    encode_catalogue(FakeVAE(), latent_catalogue_root, out, SR, 1)
    manifest = json.loads((out / "index.json").read_text())
    del manifest["silence_latent"]
    manifest["version"] = 1
    (out / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="version 1.*re-encode"):
        LatentCropDataset(out, 0.5)


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
