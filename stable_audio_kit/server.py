"""``sak serve``: a warm process that answers ``sak generate``, ``sak inpaint`` and ``sak continue`` from the shell.

A cold ``sak generate`` spends most of its time before the first sampling step: importing torch, diffusers
and transformers (diffusers' ``DiffusionPipeline`` imports every model diffusers has) and loading the model.
``sak serve`` pays that once, as Gradle's daemon or emacsclient do, and keeps the model loaded; the command from
the shell then only imports this standard-library module, hands its arguments over and prints the answer.

The protocol, over a Unix domain socket, one connection a request: the client sends one JSON line
``{"version", "argv", "cwd"}`` and the server answers with one JSON line ``{"version", "code", "stdout",
"stderr"}``, or with ``{"version"}`` alone when the versions differ, and the client then runs the command
itself. Requests are answered one at a time, in the order they connect; while one runs, the others wait in
the socket's queue. Timeouts apply to connecting and handing over the request, never to the generation.

Imports only the standard library: the client side runs before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shlex
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__

# Environment: a socket path for the client and the server (default: default_socket()), and "1" to never ask one.
SOCKET_ENV = "SAK_SOCKET"
NO_SERVER_ENV = "SAK_NO_SERVER"
# The commands a server answers: they share one command function (cli_generate.cmd_generate).
SERVED_COMMANDS = ("generate", "inpaint", "continue")
# Seconds to connect and hand a request over (either side); a server busy with another request still accepts
# the connection into its queue at once, so this never cuts a queued or running request short.
HANDSHAKE_SECONDS = 2.0
# Seconds between checks of a stop event while the server waits for a request.
POLL_SECONDS = 0.2
MAX_REQUEST_BYTES = 1 << 20


class ServerGone(OSError):
    """The server took the request but closed the connection without an answer (it was stopped or died)."""


def default_socket() -> Path:
    """``$SAK_SOCKET``, else ``$XDG_RUNTIME_DIR/stable-audio-kit/serve.sock``, else
    ``<tempdir>/stable-audio-kit-<uid>/serve.sock``."""
    if os.environ.get(SOCKET_ENV):
        return Path(os.environ[SOCKET_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "stable-audio-kit" / "serve.sock"
    return Path(tempfile.gettempdir()) / f"stable-audio-kit-{os.getuid()}" / "serve.sock"


def server_disabled() -> bool:
    """True if ``SAK_NO_SERVER`` is set (to anything but ``0``)."""
    return os.environ.get(NO_SERVER_ENV, "") not in ("", "0")


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _receive(sock: socket.socket, limit: int | None = None) -> dict[str, Any] | None:
    """The JSON line the peer sends; ``None`` if it closes first. ``ValueError`` for a malformed or too long one."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            if data:
                raise ValueError("the message ends before its newline")
            return None
        data += chunk
        if limit is not None and len(data) > limit:
            raise ValueError(f"the message is longer than {limit} bytes")
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("the message is not a JSON object")
    return message


def _connect(path: Path) -> socket.socket | None:
    """A socket connected to the server on ``path`` (handshake timeout set), or ``None`` if nothing answers there."""
    if not hasattr(socket, "AF_UNIX"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        sock.connect(str(path))
    except OSError:  # no socket file, no server behind it (refused), its queue full (timeout), a path too long
        sock.close()
        return None
    return sock


# --------------------------------------------------------------------------- client
def ask(path: Path, message: dict[str, Any]) -> dict[str, Any] | None:
    """Send ``message`` to the server on ``path`` and wait for its answer, however long the command takes.
    ``None`` if nothing answers there; ``ServerGone`` if it took the request and closed without an answer."""
    sock = _connect(path)
    if sock is None:
        return None
    with sock:
        try:
            _send(sock, message)
        except OSError:  # it closed as we spoke (stopping): as if nothing answered
            return None
        sock.settimeout(None)  # the generation takes what it takes
        try:
            reply = _receive(sock)
        except (OSError, ValueError) as err:
            raise ServerGone(f"the server on {path} broke off ({err})") from None
    if reply is None:
        raise ServerGone(f"the server on {path} stopped before answering")
    return reply


def run_on_server(args: Any) -> int | None:
    """Hand a ``sak`` command to a running ``sak serve``: the command's exit code, its output printed; or ``None``
    to run it in this process, when nothing answers, ``--no-server`` or ``SAK_NO_SERVER=1`` is given, the server
    runs another version (said in one line), or the command was not started from the shell (``args`` has no
    ``argv``: tests and the server itself call the command functions directly).

    Asks once per command: ``sak inpaint`` and ``sak continue`` end in ``cmd_generate``, which asks again."""
    argv = getattr(args, "argv", None)
    if argv is None or getattr(args, "no_server", False) or server_disabled():
        return None
    args.no_server = True
    path = default_socket()
    try:
        if path.stat().st_uid != os.getuid():  # another user's socket is not ours to hand our files to
            return None
        cwd = os.getcwd()
    except OSError:
        return None
    try:
        reply = ask(path, {"version": __version__, "argv": list(argv), "cwd": cwd})
    except ServerGone as err:
        print(f"sak: {err}; generating in this process", file=sys.stderr)
        return None
    if reply is None:
        return None
    if reply.get("version") != __version__ or not isinstance(reply.get("code"), int):
        print(
            f"sak: the server on {path} runs stable-audio-kit {reply.get('version')}, this is {__version__}; "
            "generating in this process (restart sak serve)",
            file=sys.stderr,
        )
        return None
    sys.stderr.write(reply.get("stderr", ""))  # the progress and log lines come before the path, as in-process
    sys.stderr.flush()
    sys.stdout.write(reply.get("stdout", ""))
    sys.stdout.flush()
    return reply["code"]


# --------------------------------------------------------------------------- server
def answers(path: Path) -> bool:
    """True if a server accepts connections on ``path`` (a busy one too: it queues them)."""
    sock = _connect(path)
    if sock is None:
        return False
    sock.close()
    return True


def listen(path: Path) -> socket.socket:
    """A socket listening on ``path``, only for this user (the socket 0600, a folder it creates 0700). A socket file
    whose server is gone is replaced; ``ValueError`` if a server answers there or the path is another file."""
    if not hasattr(socket, "AF_UNIX"):
        raise ValueError("sak serve needs Unix domain sockets, which this system lacks")
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True)
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ValueError(f"{str(path)!r} exists and is not a socket; give --socket another path")
        if answers(path):
            raise ValueError(f"a server already answers on {str(path)!r}; stop it first, or give --socket another path")
        path.unlink()  # its server is gone
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # the socket file is created 0600: no moment where another user could connect
    try:
        sock.bind(str(path))
        sock.listen(16)
    except OSError as err:
        sock.close()
        if err.filename is None:
            err.filename = str(path)
        raise
    finally:
        os.umask(umask)
    return sock


def close(sock: socket.socket, path: Path) -> None:
    """Stop listening and remove the socket file, unless another server has since put its own there."""
    sock.close()
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(path.lstat().st_mode) and not answers(path):
            path.unlink()


def terminal_text(text: str) -> str:
    """``text`` as a terminal shows it once written: of each line rewritten with carriage returns (a progress
    bar), only its last state; a line a bar cleared is left out."""
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
            if not line:
                continue
        lines.append(line)
    return "\n".join(lines)


@contextlib.contextmanager
def _captured():
    """stdout, stderr and the ``stable_audio_kit`` log lines (INFO and up) of one request, into two buffers
    (``out``, ``err``)."""
    from .utils import LOG_FORMAT

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("stable_audio_kit")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the request's lines go to its client, not to the server's terminal
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def answer(
    message: dict[str, Any],
    parse: Callable[[list[str]], tuple[Any, list[str]]],
    run: Callable[[Any, list[str]], int],
) -> dict[str, Any]:
    """Run one request as ``sak`` would in the client's folder: ``{"version", "code", "stdout", "stderr"}``.

    ``parse`` is ``sak``'s own parser (argv to ``(args, unknown)``) and ``run`` its runner
    (:func:`stable_audio_kit.cli.run`), so errors read as they do in-process (``sak generate: error: ...``, code
    2); ``sak serve`` passes them in (:func:`stable_audio_kit.cli.answer_request`). Only :data:`SERVED_COMMANDS`
    are run."""
    if message.get("version") != __version__:
        return {"version": __version__}
    argv, cwd = message.get("argv"), message.get("cwd")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not isinstance(cwd, str):
        return {"version": __version__, "code": 2, "stdout": "", "stderr": "sak serve: error: malformed request\n"}
    home = os.getcwd()
    code = 1
    with _captured() as (out, err):
        try:
            os.chdir(cwd)
            args, unknown = parse(argv)
            if args.verbose:
                logging.getLogger("stable_audio_kit").setLevel(logging.DEBUG)
            if args.command not in SERVED_COMMANDS:
                print(f"sak serve: error: serves {', '.join(SERVED_COMMANDS)}, not {args.command}", file=sys.stderr)
                code = 2
            else:
                args.no_server = True  # this is the server
                code = run(args, unknown)
        except SystemExit as exit:  # argparse: a bad argument (the client checked them already), --help
            code = exit.code if isinstance(exit.code, int) else 2
        except OSError as error:  # the client's folder is gone, or this server may not enter it
            print(f"sak serve: error: {error}", file=sys.stderr)
            code = 2
        except Exception:  # --verbose re-raises; in-process the traceback ends the run with code 1
            traceback.print_exc()
            code = 1
        finally:
            os.chdir(home)
    return {"version": __version__, "code": code, "stdout": out.getvalue(), "stderr": terminal_text(err.getvalue())}


def serve(
    sock: socket.socket,
    handle: Callable[[dict[str, Any]], dict[str, Any]],
    idle_seconds: float | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> str:
    """Answer requests on the listening ``sock`` one at a time with ``handle`` (a message to its reply: :func:`answer`
    with the CLI's parser and runner), logging one line each, until no request came for
    ``idle_seconds`` (``None``: never) or ``stop`` is set. Returns why it stopped."""
    last = time.monotonic()
    while not (stop is not None and stop.is_set()):
        wait = POLL_SECONDS if stop is not None else None
        if idle_seconds is not None:
            left = idle_seconds - (time.monotonic() - last)
            if left <= 0:
                return f"no request for {idle_seconds / 60:g} min, stopping"
            wait = left if wait is None else min(wait, left)
        sock.settimeout(wait)
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(HANDSHAKE_SECONDS)
            try:
                message = _receive(conn, MAX_REQUEST_BYTES)
            except (OSError, ValueError):
                continue  # a client that broke off or sent garbage
            if message is None:
                continue  # a probe (answers()): connected and closed
            conn.settimeout(None)
            start = time.monotonic()
            reply = handle(message)
            what = shlex.join(message.get("argv") or []) if "code" in reply else f"version {message.get('version')}"
            log(f"sak serve: {what} -> {reply.get('code', 'refused')} in {time.monotonic() - start:.2f} s")
            try:
                _send(conn, reply)
            except OSError:  # the client is gone (interrupted); what the command wrote stays written
                pass
        last = time.monotonic()
    return "stopped"
