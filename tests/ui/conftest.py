"""The page's fixtures: ``sak ui`` serving the tiny model in a subprocess, and Debian's Chromium driven by Playwright.

Without Gradio, Playwright or Chromium these tests are skipped with the reason, except in CI (the ``CI``
environment variable set), where a missing piece fails them: CI installs all three as the README says.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path(os.environ.get("SAK_CHROMIUM", "/usr/bin/chromium"))
# Headless, and nothing of Chromium's own that calls out: no updates, sync, field trials or first-run pages.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A microphone that plays a test tone, granted without asking: recording an init audio.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
LOCAL_HOSTS = {"127.0.0.1"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail in CI, which must run these tests."""
    if in_ci():
        pytest.fail(f"{reason}; CI must run the page's tests (install them as .ci/run does)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    outputs: Path
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        """The process runs and answers."""
        if self.process.poll() is not None:
            return False
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return response.status == 200

    def results(self) -> list[Path]:
        return sorted(p for p in self.outputs.iterdir() if p.is_dir() and p.name.isdigit())


def need_gradio() -> None:
    if importlib.util.find_spec("gradio") is None:
        missing('Gradio is not installed (pip install -e ".[ui]")')


@pytest.fixture(scope="session")
def gradio():
    """The installed Gradio (the ``[ui]`` extra), imported in this process."""
    need_gradio()
    import gradio

    return gradio


def serve_page(model_dir: Path, work: Path):
    """``sak ui --model DIR --port FREE --outputs TMP`` in a subprocess, as a user starts it; stopped after."""
    need_gradio()
    outputs, log = work / "outputs", work / "server.log"
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_TEMP_DIR": str(work / "gradio")}
    command = [sys.executable, "-m", "stable_audio_kit.cli", "ui", "--model", str(model_dir)]
    command += ["--port", str(port), "--outputs", str(outputs)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env)
    server = Server(f"http://127.0.0.1:{port}/", outputs, process, log)
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            pytest.fail(f"sak ui exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            if server.alive():
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"sak ui did not answer in 240 s:\n{log.read_text()}", pytrace=False)
        time.sleep(0.5)
    yield server
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def ui_server(tiny_model_dir, tmp_path_factory) -> Server:
    """``sak ui`` serving the tiny model."""
    yield from serve_page(tiny_model_dir, tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="session")
def ui_student_server(distilled_model_dir, tmp_path_factory) -> Server:
    """``sak ui`` serving the tiny model with its distilled student (``--unet auto``, the default, loads both)."""
    yield from serve_page(distilled_model_dir, tmp_path_factory.mktemp("ui_student"))


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect

    expect.set_options(timeout=90_000)  # a job on a busy 2-core machine; the page answers long before
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, server: Server):
    """A fresh browser session on ``server``'s page. Afterwards: every request it made went to this machine."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1050}, accept_downloads=True, permissions=["microphone"]
    )
    context.set_default_timeout(90_000)
    tab = context.new_page()
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    tab.goto(server.url)
    tab.wait_for_selector("#generate")
    yield tab
    context.close()
    outside = [url for url in requests if urlparse(url).scheme in ("http", "https", "ws", "wss")]
    outside = [url for url in outside if urlparse(url).hostname not in LOCAL_HOSTS]
    assert not outside, f"the page made requests off this machine: {outside}"
    assert server.alive(), f"the server died:\n{server.log.read_text()}"


@pytest.fixture
def page(browser, ui_server):
    yield from open_page(browser, ui_server)


@pytest.fixture
def student_page(browser, ui_student_server):
    yield from open_page(browser, ui_student_server)
