"""``sak serve`` and the generate commands' client side (stable_audio_kit.server): a request through the server
writes what the command writes in-process, errors read the same, the client runs in-process when no server
answers, and nothing one request sets (scheduler, LoRA adapters, Griffin-Lim iterations) reaches the next.

The server runs in a thread of this process on a socket in tmp_path; the client is ``main([...])``."""

from __future__ import annotations

import copy
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_kit import cli_generate, server
from stable_audio_kit.cli import answer_request, main

GENERATE = ["generate", "a tone", "--seconds", "0.3", "--steps", "2", "--seed", "3", "--no-normalize"]


@pytest.fixture
def socket_path(tmp_path, monkeypatch) -> Path:
    """The clients' socket (SAK_SOCKET), in tmp_path; the models `sak serve` keeps are forgotten after the test."""
    path = tmp_path / "run" / "serve.sock"
    monkeypatch.setenv(server.SOCKET_ENV, str(path))
    monkeypatch.delenv(server.NO_SERVER_ENV, raising=False)
    monkeypatch.setattr(cli_generate, "_kept", {})
    monkeypatch.chdir(tmp_path)
    return path


@contextmanager
def serving(path: Path, **kwargs):
    """A server answering on ``path`` in a thread; yields its log lines."""
    log: list[str] = []
    sock = server.listen(path)
    stop = threading.Event()
    kwargs = {"handle": answer_request, "stop": stop, "log": log.append, **kwargs}
    thread = threading.Thread(target=server.serve, args=(sock,), kwargs=kwargs)
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        thread.join(10)
        server.close(sock, path)


def samples(path: Path) -> np.ndarray:
    return sf.read(path)[0]


def test_generate_through_the_server_writes_what_in_process_writes(tiny_model_dir, socket_path, capsys):
    args = [*GENERATE, "--model", str(tiny_model_dir)]
    with serving(socket_path) as log:
        assert main([*args, "-o", "served.wav"]) == 0
        served = capsys.readouterr()
        assert len(log) == 1 and "-o served.wav -> 0 in" in log[0]
        assert main([*args, "-o", "here.wav", "--no-server"]) == 0
        here = capsys.readouterr()
        assert len(log) == 1
    np.testing.assert_array_equal(samples(Path("served.wav")), samples(Path("here.wav")))
    assert served.out == "served.wav\n"  # relative to the client's folder, as in-process
    assert "INFO stable_audio_kit: wrote served.wav (0.300 s, seed 3)" in served.err
    assert "sampling: 100%" in served.err and "\r" not in served.err  # the progress bar as it ended
    assert here.out == "here.wav\n"


def test_a_user_error_reads_as_in_process_and_the_server_keeps_serving(tiny_model_dir, socket_path, capsys):
    bad = [*GENERATE, "--model", str(tiny_model_dir), "-o", "out.mp3"]
    assert main([*bad, "--no-server"]) == 2
    expected = capsys.readouterr().err
    assert expected.startswith("sak generate: error: output file 'out.mp3'") and expected.count("\n") == 1
    with serving(socket_path) as log:
        assert main(bad) == 2
        assert capsys.readouterr().err == expected
        assert main(["generate", "x", "--steps", "0", "--model", str(tiny_model_dir)]) == 2
        assert capsys.readouterr().err.startswith("sak generate: error: ")
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "good.wav"]) == 0
    assert [line.split(" -> ")[1][0] for line in log] == ["2", "2", "0"]
    assert Path("good.wav").is_file()


def test_no_server_answering_runs_in_process(tiny_model_dir, socket_path, capsys):
    assert not socket_path.exists()
    assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "a.wav"]) == 0
    socket_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:  # a socket file nothing listens on
        gone.bind(str(socket_path))
    assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "b.wav"]) == 0
    assert "sak:" not in capsys.readouterr().err  # nothing to say: there is no server
    np.testing.assert_array_equal(samples(Path("a.wav")), samples(Path("b.wav")))


def test_no_server_flag_and_environment_run_in_process(tiny_model_dir, socket_path, monkeypatch):
    with serving(socket_path) as log:
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "a.wav", "--no-server"]) == 0
        monkeypatch.setenv(server.NO_SERVER_ENV, "1")
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "b.wav"]) == 0
        assert log == []
        monkeypatch.setenv(server.NO_SERVER_ENV, "0")
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "c.wav"]) == 0
        assert len(log) == 1


def test_inpaint_and_continue_go_through_the_server(tiny_model_dir, socket_path, capsys):
    common = ["--steps", "2", "--seed", "1", "--model", str(tiny_model_dir), "--no-normalize"]
    assert main(["generate", "a tone", "--seconds", "0.5", *common, "-o", "in.wav", "--no-server"]) == 0
    with serving(socket_path) as log:
        assert main(["inpaint", "in.wav", "a tone", "--region", "0.1:0.2", *common, "-o", "inpainted.wav"]) == 0
        assert main(["continue", "in.wav", "a tone", "--seconds", "0.8", *common, "-o", "continued.wav"]) == 0
    assert [line.split()[2] for line in log] == ["inpaint", "continue"]
    assert len(samples(Path("continued.wav"))) == round(0.8 * 8000)
    assert main(["inpaint", "in.wav", "a tone", "--region", "0.1:0.2", *common, "-o", "here.wav"]) == 0
    np.testing.assert_array_equal(samples(Path("inpainted.wav")), samples(Path("here.wav")))


def test_a_second_server_on_the_socket_is_refused(tiny_model_dir, socket_path, capsys):
    with serving(socket_path):
        assert main(["serve", "--socket", str(socket_path), "--model", str(tiny_model_dir)]) == 2
        err = capsys.readouterr().err
        assert (
            err == f"sak serve: error: a server already answers on {str(socket_path)!r}; stop it first, or give "
            "--socket another path\n"
        )
        assert socket_path.exists()


def test_a_stale_socket_is_replaced_and_another_file_is_not(tiny_model_dir, socket_path):
    socket_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:  # a server killed without cleaning up
        gone.bind(str(socket_path))
    with serving(socket_path) as log:
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "a.wav"]) == 0
        assert len(log) == 1
    assert not socket_path.exists()  # a server removes its socket when it stops
    socket_path.write_text("not a socket")
    with pytest.raises(ValueError, match="exists and is not a socket"):
        server.listen(socket_path)


def test_the_socket_folder_is_private(tmp_path):
    path = tmp_path / "new" / "serve.sock"
    sock = server.listen(path)
    try:
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        server.close(sock, path)


def test_default_socket(monkeypatch, tmp_path):
    monkeypatch.delenv(server.SOCKET_ENV, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert server.default_socket() == tmp_path / "stable-audio-kit" / "serve.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert server.default_socket().name == "serve.sock"
    assert server.default_socket().parent.name.startswith("stable-audio-kit-")


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A LoRA adapter of the model in ``model_dir`` with random non-zero weights."""
    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.lora import LoraAdapter, LoraSpec, add_adapters

    pipe = StableAudioKitPipeline.from_pretrained(model_dir)
    components, spec = {"unet": pipe.unet, "projection": pipe.projection}, LoraSpec(rank=2)
    adapted = add_adapters(components, spec)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "lora_" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    LoraAdapter.from_modules(components, spec, adapted).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def spectral_model_dir(tiny_config, tmp_path_factory) -> Path:
    """The tiny model with a Griffin-Lim (spectral) decoder."""
    from stable_audio_kit import build_pipeline

    cfg = copy.deepcopy(tiny_config)
    for key, value in {"architecture": "spectral", "n_fft": 64, "stft_hop": 16, "hidden_channels": 16}.items():
        setattr(cfg.vae, key, value)
    folder = tmp_path_factory.mktemp("spectral") / "model"
    build_pipeline(cfg).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("setting", ["scheduler", "lora", "griffin_lim_iters"])
def test_what_a_request_sets_does_not_reach_the_next(setting, tiny_model_dir, spectral_model_dir, socket_path):
    model = spectral_model_dir if setting == "griffin_lim_iters" else tiny_model_dir
    extra = {
        "scheduler": ["--scheduler", "ddim"],
        "lora": ["--lora", str(make_adapter(tiny_model_dir, Path("adapter")))] if setting == "lora" else [],
        "griffin_lim_iters": ["--griffin-lim-iters", "1"],
    }[setting]
    args = [*GENERATE, "--model", str(model)]
    with serving(socket_path) as log:
        assert main([*args, "-o", "first.wav"]) == 0
        assert main([*args, *extra, "-o", "set.wav"]) == 0
        assert main([*args, "-o", "after.wav"]) == 0
    assert len(log) == 3
    assert len(cli_generate._kept) == 1  # one model, loaded once
    assert np.abs(samples(Path("set.wav")) - samples(Path("first.wav"))).max() > 1e-4  # the setting did something
    np.testing.assert_array_equal(samples(Path("after.wav")), samples(Path("first.wav")))
    assert main([*args, "-o", "here.wav", "--no-server"]) == 0
    np.testing.assert_array_equal(samples(Path("after.wav")), samples(Path("here.wav")))


def test_a_model_folder_that_changed_is_loaded_again(tiny_config, tiny_pipeline, socket_path, tmp_path):
    from stable_audio_kit import build_pipeline

    model = tmp_path / "model"
    tiny_pipeline.save_pretrained(model)
    with serving(socket_path):
        assert main([*GENERATE, "--model", str(model), "-o", "a.wav"]) == 0
        cfg = copy.deepcopy(tiny_config)
        cfg.seed = 1
        build_pipeline(cfg).save_pretrained(model)  # other weights in the same folder
        assert main([*GENERATE, "--model", str(model), "-o", "b.wav"]) == 0
        assert main([*GENERATE, "--model", str(model), "-o", "c.wav", "--no-server"]) == 0
    np.testing.assert_array_equal(samples(Path("b.wav")), samples(Path("c.wav")))
    assert np.abs(samples(Path("a.wav")) - samples(Path("b.wav"))).max() > 1e-4


def test_a_server_of_another_version_is_not_used(tiny_model_dir, socket_path, capsys):
    with serving(socket_path, handle=lambda message: {"version": "0.0.0-other"}):
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "a.wav"]) == 0
    err = capsys.readouterr().err
    assert "sak: the server on" in err and "runs stable-audio-kit 0.0.0-other" in err and "in this process" in err
    assert Path("a.wav").is_file()
    assert answer_request({"version": "0.0.0-other", "argv": GENERATE, "cwd": "."}) == {"version": server.__version__}


def test_a_server_that_stops_before_answering_leaves_the_client_to_run_in_process(tiny_model_dir, socket_path, capsys):
    sock = server.listen(socket_path)

    def take_and_drop():
        conn, _ = sock.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=take_and_drop)
    thread.start()
    try:
        assert main([*GENERATE, "--model", str(tiny_model_dir), "-o", "a.wav"]) == 0
    finally:
        thread.join(10)
        server.close(sock, socket_path)
    assert "stopped before answering; generating in this process" in capsys.readouterr().err
    assert Path("a.wav").is_file()


def test_idle_server_stops(tmp_path):
    sock = server.listen(tmp_path / "serve.sock")
    start = time.monotonic()
    try:
        assert server.serve(sock, answer_request, idle_seconds=0.3, log=pytest.fail).startswith("no request for")
    finally:
        server.close(sock, tmp_path / "serve.sock")
    assert 0.3 <= time.monotonic() - start < 3


def test_sak_serve_loads_serves_and_stops_when_idle(tiny_model_dir, socket_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_generate, "_kept", None)  # sak serve keeps models; the fixture forgets them after
    args = ["serve", "--socket", str(socket_path), "--model", str(tiny_model_dir), "--idle-minutes", "0.005"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"sak serve: ready on {socket_path} (model loaded in ")
    assert out[-1] == "sak serve: no request for 0.005 min, stopping"
    assert not socket_path.exists()
    assert list(cli_generate._kept) and list(cli_generate._kept)[0][0] == str(tiny_model_dir.resolve())
    assert main(["serve", "--socket", str(socket_path), "--idle-minutes", "-1"]) == 2
    assert "--idle-minutes must be a number >= 0" in capsys.readouterr().err


def test_the_kept_models_are_told_apart_by_their_unet(distilled_model_dir, socket_path, capsys):
    # Without --steps 2: each U-Net samples with its own steps.
    args = [*(a for a in GENERATE if a not in ("--steps", "2")), "--model", str(distilled_model_dir)]
    with serving(socket_path) as log:
        assert main([*args, "--unet", "base", "-o", "base.wav"]) == 0
        assert main([*args, "--unet", "distilled", "-o", "student.wav"]) == 0
        assert main([*args, "--unet", "distilled", "--cfg", "3", "-o", "refused.wav"]) == 2
        assert main([*args, "--unet", "base", "-o", "base_again.wav"]) == 0
        capsys.readouterr()
        assert main([*args, "-o", "auto.wav"]) == 0  # --unet auto: the student, said in the client's terminal
        assert "INFO stable_audio_kit: sampling with the distilled U-Net (4 steps" in capsys.readouterr().err
        assert main([*args, "--cfg", "3", "-o", "auto_cfg.wav"]) == 0  # auto: the base U-Net, no refusal
    assert len(log) == 6 and not Path("refused.wav").exists()
    kept = {key[-1]: pipe for key, (pipe, *_) in cli_generate._kept.items()}
    assert sorted(kept) == ["base", "distilled"]
    assert kept["base"].unet.config.distilled_steps is None and kept["distilled"].unet.config.distilled_steps == 4
    np.testing.assert_array_equal(samples(Path("base_again.wav")), samples(Path("base.wav")))
    np.testing.assert_array_equal(samples(Path("auto.wav")), samples(Path("student.wav")))
    assert main([*args, "--unet", "distilled", "-o", "here.wav", "--no-server"]) == 0
    np.testing.assert_array_equal(samples(Path("student.wav")), samples(Path("here.wav")))
    assert main([*args, "--unet", "base", "--cfg", "3", "-o", "base_cfg.wav", "--no-server"]) == 0
    np.testing.assert_array_equal(samples(Path("auto_cfg.wav")), samples(Path("base_cfg.wav")))


def test_sak_serve_loads_what_a_default_generate_samples_with(distilled_model_dir, socket_path, monkeypatch):
    """`--unet auto`: a model with a student is served warm for a `sak generate` without options."""
    monkeypatch.setattr(cli_generate, "_kept", None)
    args = ["serve", "--socket", str(socket_path), "--model", str(distilled_model_dir), "--idle-minutes", "0.001"]
    assert main(args) == 0
    assert [key[-1] for key in cli_generate._kept] == ["distilled"]


def test_sak_serve_samples_a_stale_students_model_with_its_own_unet(
    stale_student_dir, socket_path, monkeypatch, capsys
):
    """A student distilled from other weights than unet/ holds: `sak serve` (--unet auto) keeps the model's own
    U-Net warm, and a served `sak generate` says why in the client's terminal."""
    args = ["serve", "--socket", str(socket_path), "--model", str(stale_student_dir), "--idle-minutes", "0.001"]
    assert main(args) == 0
    assert [key[-1] for key in cli_generate._kept] == ["base"]
    stale = f"WARNING stable_audio_kit: model directory '{stale_student_dir}': its distilled U-Net (unet_distilled/)"
    capsys.readouterr()
    with serving(socket_path) as log:
        # Without --steps 2, which alone makes --unet auto the base U-Net.
        request = [*(a for a in GENERATE if a not in ("--steps", "2")), "--model", str(stale_student_dir)]
        assert main([*request, "-o", "auto.wav"]) == 0
    assert len(log) == 1 and capsys.readouterr().err.count(stale) == 1
    assert [key[-1] for key in cli_generate._kept] == ["base"]
