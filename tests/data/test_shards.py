"""Latent shards: encoding a catalogue, the manifest, and refusing old manifests."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors import safe_open

from stable_audio_kit.data import LatentCropDataset, encode_catalogue, latent_catalogue, load_manifest

from .helpers import SR, FakeVAE, fake_text_encode, truncate, write_tone


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


def test_old_latent_manifests_are_refused(latent_catalogue_root, tmp_path):
    out = tmp_path / "latents"
    encode_catalogue(FakeVAE(), latent_catalogue_root, out, SR, 1)
    manifest = json.loads((out / "index.json").read_text())
    del manifest["silence_latent"]
    manifest["version"] = 1
    (out / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="version 1.*re-encode"):
        LatentCropDataset(out, 0.5)
