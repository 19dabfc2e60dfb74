"""Probing files and the dry-run report of a catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stable_audio_kit.data import check_catalogue, data_check_main, format_report, probe_file

from .helpers import SR, truncate, write_tone


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
    with pytest.raises(ValueError, match="not a folder"):  # the CLI prints it and exits with 2
        data_check_main(str(tmp_path / "missing"), SR, 2, 1.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert data_check_main(str(empty), SR, 2, 1.0) == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("decode", [False, True])
def test_non_finite_samples_are_found_by_every_probe(tmp_path, bad, subtype, decode):
    """Float files are always decoded: a NaN or inf sample makes the file unusable, with the frame named."""
    data = np.zeros((SR, 1), dtype=np.float64)
    data[SR // 2] = bad
    sf.write(str(tmp_path / "x.wav"), data, SR, subtype=subtype)
    probe = probe_file(tmp_path / "x.wav", decode=decode)
    assert probe.error is not None and "non-finite" in probe.error and f"frame {SR // 2}" in probe.error


def test_non_finite_file_is_unreadable_in_the_report_and_in_training(tmp_path):
    from stable_audio_kit.data import AudioCropDataset

    write_tone(tmp_path / "good.wav", 0.5)
    data = np.zeros((SR // 2, 1), dtype=np.float32)
    data[3] = np.nan
    sf.write(str(tmp_path / "nan.wav"), data, SR, subtype="FLOAT")
    report = check_catalogue(tmp_path, SR, 1, 1.0)
    assert [path for path, _ in report.unreadable] == ["nan.wav"] and report.silent == []
    assert "nan.wav: non-finite samples" in format_report(report)
    with pytest.raises(ValueError, match=r"nan.wav \(unreadable: non-finite samples.*data.skip_unreadable=true"):
        AudioCropDataset(tmp_path, SR, 1, 0.25)
    kept = AudioCropDataset(tmp_path, SR, 1, 0.25, skip_unreadable=True)
    assert [item.path for item in kept.items] == ["good.wav"] and kept.skipped[0][0] == "nan.wav"
