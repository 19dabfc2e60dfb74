"""Catalogue scanning: sidecar files, metadata.csv/jsonl, missing files and malformed catalogues."""

from __future__ import annotations

import json
import logging

import pytest

from stable_audio_kit.data import AudioCropDataset, check_catalogue, scan_catalogue

from .helpers import SR, write_tone


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
