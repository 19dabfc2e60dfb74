import os
import stat

import pytest

from stable_audio_kit.utils import atomic_dir, atomic_path, atomic_write_text


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_file_gets_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files: what is renamed into place must be readable as an open()ed file is."""
    atomic_write_text(tmp_path / "out.txt", "hello")
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~current_umask()


def test_atomic_dir_gets_the_usual_permissions(tmp_path):
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
