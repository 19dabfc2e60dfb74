"""Start-up time: from process start to ``sak --help``, a refused argument, ``import stable_audio_kit``, the first
sampling step and the written file of ``sak generate "a snare hit" --seconds 1`` (bundled model, defaults), cold
and through a warm ``sak serve``.

Every figure is one fresh process timed from just before it is started to its exit, as a shell starts it; the
best of ``--repeats`` runs. The first sampling step is the first U-Net forward of the generate run: that run is
``stable_audio_kit.cli.entry`` started as the ``sak`` script starts it, with a forward pre-hook that prints the
time (the hook needs torch imported first, which the command imports anyway). Times across processes are
compared on the system-wide monotonic clock. The cold runs are told not to ask a server (``SAK_NO_SERVER=1``). For
the warm rows the benchmark starts ``sak serve`` on a socket of its own, one server per thread count, waits until
it is ready, times ``sak generate`` from the shell against it and stops it; a baseline tree has no server, so
those rows are this tree's only.

``--baseline DIR`` also times another source tree (DIR holds a ``stable_audio_kit`` folder, e.g.
``git archive HEAD stable_audio_kit | tar -x -C DIR``), first on ``PYTHONPATH``; its runs alternate with this
tree's, so both see the same load on a shared machine, and the table gives the ratio.

    python benchmarks/startup.py [--repeats 5] [--threads 1 2] [--baseline DIR]

Prints a markdown table and writes it to benchmarks/results/startup.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmark runs from a checkout, installed or not

from stable_audio_kit.utils import atomic_write_text

RESULTS = REPO / "benchmarks" / "results" / "startup.md"
PROMPT = "a snare hit"
SAK = Path(sys.executable).with_name("sak")

# The generate run: `sak`'s own entry point, plus a hook on the first U-Net forward (the first sampling step).
GENERATE = """
import sys, time
import torch

def first_step(module, args):
    if type(module).__name__ == "UNet1DConditionModel":
        print(f"FIRST_STEP {time.monotonic():.6f}", file=sys.stderr, flush=True)
        handle.remove()

handle = torch.nn.modules.module.register_module_forward_pre_hook(first_step)
sys.argv = ["sak", *sys.argv[1:]]
from stable_audio_kit.cli import entry
entry()
"""

# (label, argv, expected exit code, goal in seconds or None)
COMMANDS = [
    ("`sak --help` exits", [str(SAK), "--help"], 0, 1.0),
    ("`sak generate` refuses `--steps 0`", [str(SAK), "generate", PROMPT, "--steps", "0"], 2, 1.0),
    ("`sak generate` refuses `--scheduler nope`", [str(SAK), "generate", PROMPT, "--scheduler", "nope"], 2, 1.0),
    ("`sak generate` refuses `--bpm -5` (an input's own check)", [str(SAK), "generate", PROMPT, "--bpm", "-5"], 2, 1.0),
    ("`import stable_audio_kit`", [sys.executable, "-c", "import stable_audio_kit"], 0, None),
    ("`import torch` (for reference)", [sys.executable, "-c", "import torch"], 0, None),
    (
        # What any diffusers pipeline costs to import: diffusers.utils.torch_utils imports torch._dynamo.
        "`import torch, diffusers.utils` (the floor of a cold generate), with Python's exit",
        [sys.executable, "-c", "import torch, diffusers.utils"],
        0,
        None,
    ),
    (
        # The same, ended as `sak generate` ends (os._exit): Python's teardown of these modules is the difference.
        "`import torch, diffusers.utils`, ended at once (`os._exit`, as `sak generate` ends)",
        [sys.executable, "-c", "import os, torch, diffusers.utils; os._exit(0)"],
        0,
        None,
    ),
    (
        "`from stable_audio_kit import StableAudioKitPipeline`",
        [sys.executable, "-c", "from stable_audio_kit import StableAudioKitPipeline"],
        0,
        None,
    ),
]
GENERATE_LABEL = f'`sak generate "{PROMPT}" --seconds 1`'
WARM_LABEL = f"{GENERATE_LABEL} through a warm `sak serve`"


def environment(source: Path, threads: int | None) -> dict[str, str]:
    """The environment of a run: ``source`` first on ``PYTHONPATH``, no progress bars, ``threads`` torch threads."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])))
    env.update(TQDM_DISABLE="1", PYTHONWARNINGS="ignore", SAK_NO_SERVER="1")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def timed(argv: list[str], env: dict[str, str], expect: int) -> tuple[float, float, str]:
    """(start on the monotonic clock, seconds from just before the process starts to its exit, its stderr)."""
    start = time.monotonic()
    # Run outside the checkout: `python -c` puts the working folder first on sys.path, before PYTHONPATH.
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    elapsed = time.monotonic() - start
    if result.returncode != expect:
        shown = argv[3:] if argv[1] == "-c" and len(argv) > 3 else argv[1:]  # not the generate run's script
        raise SystemExit(f"startup.py: {shown} exited {result.returncode}, expected {expect}:\n{result.stderr}")
    return start, elapsed, result.stderr


def generate(env: dict[str, str], out: Path) -> tuple[float, float]:
    """(seconds to the first sampling step, seconds to the written file) of one `sak generate` run."""
    out.unlink(missing_ok=True)
    start, elapsed, stderr = timed(
        [sys.executable, "-c", GENERATE, "generate", PROMPT, "--seconds", "1", "-o", str(out)], env, 0
    )
    marks = re.findall(r"FIRST_STEP ([0-9.]+)", stderr)  # the progress bar may share its line
    if not marks or not out.is_file():
        raise SystemExit(f"startup.py: the generate run took no step or wrote no file:\n{stderr}")
    return float(marks[0]) - start, elapsed


def start_server(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """A ``sak serve`` on a socket in ``folder``, ready (the bundled model loaded), and the environment of a client
    that asks it."""
    folder.mkdir(parents=True)
    env = {key: value for key, value in env.items() if key != "SAK_NO_SERVER"}
    env["SAK_SOCKET"] = str(folder / "serve.sock")
    log = folder / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(SAK), "serve", "--idle-minutes", "0"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder
        )
    deadline = time.monotonic() + 600
    while "sak serve: ready" not in log.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"startup.py: sak serve did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return server, env


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()


def warm_generate(env: dict[str, str], out: Path) -> float:
    """Seconds from just before ``sak generate`` starts to its exit, answered by the server ``env`` names."""
    out.unlink(missing_ok=True)
    _, elapsed, stderr = timed([str(SAK), "generate", PROMPT, "--seconds", "1", "-o", str(out)], env, 0)
    if not out.is_file() or "in this process" in stderr:
        raise SystemExit(f"startup.py: the server did not write the file:\n{stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command; the best counts")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads of the generate runs")
    parser.add_argument("--baseline", type=Path, default=None, help="another source tree to time alongside")
    args = parser.parse_args()
    if not SAK.is_file():
        raise SystemExit(f"startup.py: no `sak` script beside {sys.executable}; install the package (pip install -e .)")
    if args.baseline is not None and not (args.baseline / "stable_audio_kit" / "__init__.py").is_file():
        raise SystemExit(f"startup.py: {args.baseline} holds no stable_audio_kit package")
    trees = {"this tree": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = [(label, goal) for label, _, _, goal in COMMANDS]
    for threads in args.threads:
        rows += [
            (f"{GENERATE_LABEL}: first sampling step, {threads} thread(s)", None),
            (f"{GENERATE_LABEL}: file written, {threads} thread(s)", 2.5),
            (f"{WARM_LABEL}: file written, {threads} thread(s)", 2.5),
        ]
    best: dict[tuple[str, str], float] = {}

    def keep(label: str, tree: str, seconds: float) -> None:
        best[label, tree] = min(seconds, best.get((label, tree), float("inf")))

    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    servers = {}
    try:
        for source in trees.values():  # warm-up: compiled bytecode and the file cache
            generate(environment(source, 1), work / "warmup.wav")
        for threads in args.threads:  # this tree's servers, each answering once before it is timed
            servers[threads] = start_server(environment(REPO, threads), work / f"serve-{threads}")
            warm_generate(servers[threads][1], work / "warmup.wav")
        for _ in range(args.repeats):
            for tree, source in trees.items():
                for label, argv, expect, _ in COMMANDS:
                    keep(label, tree, timed(argv, environment(source, None), expect)[1])
                for threads in args.threads:
                    first, written = generate(environment(source, threads), work / f"{threads}.wav")
                    keep(f"{GENERATE_LABEL}: first sampling step, {threads} thread(s)", tree, first)
                    keep(f"{GENERATE_LABEL}: file written, {threads} thread(s)", tree, written)
                    if source == REPO:
                        warm = warm_generate(servers[threads][1], work / f"warm-{threads}.wav")
                        keep(f"{WARM_LABEL}: file written, {threads} thread(s)", tree, warm)
    finally:
        for server, _ in servers.values():
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    load_end = os.getloadavg()[0]

    columns = [f"{tree} (s)" for tree in trees] + (["baseline / this tree"] if args.baseline else [])
    lines = [
        "| from process start to | goal (s) | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for label, goal in rows:
        times = [best.get((label, tree)) for tree in trees]  # a baseline tree has no `sak serve`
        cells = [f"{t:.2f}" if t is not None else "" for t in times]
        if args.baseline:
            cells.append(f"{times[1] / times[0]:.1f}x" if None not in times else "")
        lines.append(f"| {label} | {f'< {goal:g}' if goal else ''} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    import torch

    text = (
        "# Start-up time\n\n"
        f"`python benchmarks/startup.py`: each figure is the best of {args.repeats} fresh processes, timed from just "
        "before the process starts to its exit, or to the first U-Net forward for the first sampling step. "
        f"{GENERATE_LABEL} uses the bundled model at the default settings on the given number "
        "of torch threads (OMP_NUM_THREADS); cold, it runs in its own process (SAK_NO_SERVER=1); warm, a `sak serve` "
        "started by the benchmark with that many threads, the model loaded, answers it and the figure is the "
        "client's, from the shell. The other commands do no tensor work. "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}; "
        f"load average {load_start:.1f} at the start and {load_end:.1f} at the end (other jobs share the cores when "
        "it exceeds the core count)."
        + (f" The baseline is the source tree in `{args.baseline}`." if args.baseline else "")
        + f"\n\n{table}\n"
    )
    atomic_write_text(RESULTS, text)


if __name__ == "__main__":
    main()
