"""Wall time and peak memory of chunked VAE encode/decode at the Stable Audio Open VAE size.

The VAE is ``AudioVAE()`` with its default arguments (``AutoencoderOobleck``'s: 44.1 kHz stereo,
64 latent channels, 2048x downsampling; ~156M parameters, random weights: speed and memory do not
depend on the values) with the default 30 s chunks and 2 s overlap. Each measurement runs in a fresh
subprocess so its peak RSS (``ru_maxrss``) belongs to that measurement alone; torch's allocator is
invisible to tracemalloc, and the peak of a long-lived process only ever goes up.

    python benchmarks/vae_chunked.py                      # 10/30/95 s chunked, 95 s whole
    python benchmarks/vae_chunked.py --seconds 10 --whole  # a quick run

Prints a markdown table and writes it to ``benchmarks/results/vae_chunked.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmark runs from a checkout, installed or not

from stable_audio_kit.utils import atomic_write_text

NUM_THREADS = 2


def peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


def worker(op: str, seconds: float, chunked: bool) -> dict:
    """Run one encode or decode in this process and return its measurements."""
    import torch

    from stable_audio_kit.vae import AudioVAE

    torch.set_num_threads(NUM_THREADS)
    torch.manual_seed(0)
    vae = AudioVAE().eval()
    if not chunked:
        vae.disable_tiling()
    num_samples = round(seconds * vae.config.sampling_rate)
    num_frames = vae.latent_length(num_samples)
    if op == "encode":
        inputs = torch.randn(1, vae.config.audio_channels, num_samples)
    else:
        inputs = torch.randn(1, vae.latent_channels, num_frames)
    # Both directions chunk on the same latent grid, so they make the same number of network calls.
    chunk, overlap = vae.tile_latent_min_length, vae.tile_latent_overlap
    windows = math.ceil(num_frames / (chunk - 2 * overlap)) if chunked and num_frames > chunk else 1
    baseline = peak_rss_gib()  # torch, the model and the input

    start = time.perf_counter()
    with torch.no_grad():
        if op == "encode":
            out = vae.encode(inputs).latent_dist.mode()
        else:
            out = vae.decode(inputs).sample
    wall = time.perf_counter() - start
    return {
        "op": op,
        "seconds": seconds,
        "chunked": chunked,
        "windows": windows,
        "chunk_frames": chunk,
        "overlap_frames": overlap,
        "output_shape": list(out.shape),
        "wall_s": wall,
        "baseline_gib": baseline,
        "peak_gib": peak_rss_gib(),
        "load_1min": os.getloadavg()[0],
    }


def measure(op: str, seconds: float, chunked: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", op, str(seconds), "1" if chunked else "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {op} {seconds} s failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    header = ["op", "audio (s)", "chunked", "windows", "output shape", "wall (s)", "x real time"]
    header += ["peak RSS (GiB)", "peak − base (GiB)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['op']} | {r['seconds']:g} | {'yes' if r['chunked'] else 'no'} | {r['windows']} "
            f"| {tuple(r['output_shape'])} | {r['wall_s']:.1f} | {r['wall_s'] / r['seconds']:.2f} "
            f"| {r['peak_gib']:.2f} | {r['peak_gib'] - r['baseline_gib']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0, 95.0], help="chunked lengths")
    parser.add_argument("--whole", type=float, nargs="*", default=[95.0], help="unchunked lengths, for contrast")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "vae_chunked.md")
    parser.add_argument("--worker", nargs=3, metavar=("OP", "SECONDS", "CHUNKED"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        op, seconds, chunked = args.worker
        print(json.dumps(worker(op, float(seconds), chunked == "1")))
        return

    cases = [(s, True) for s in args.seconds] + [(s, False) for s in args.whole]
    rows = []
    for seconds, chunked in cases:
        for op in ("encode", "decode"):
            row = measure(op, seconds, chunked)
            rows.append(row)
            print(
                f"{op} {seconds:g} s chunked={chunked}: {row['wall_s']:.1f} s, peak {row['peak_gib']:.2f} GiB",
                file=sys.stderr,
                flush=True,
            )

    import torch

    loads = ", ".join(f"{r['load_1min']:.1f}" for r in rows)
    setup = (
        "Stable Audio Open VAE size (`AudioVAE()` defaults: 44.1 kHz stereo, 64 latent channels, 2048x, random"
        f" weights), chunks of 30 s with 2 s overlap ({rows[0]['chunk_frames']} latent frames,"
        f" {rows[0]['overlap_frames']} of them overlap on each side), batch 1, fp32, `torch.no_grad()`,"
        f" {NUM_THREADS} threads, one fresh process per row."
    )
    notes = [
        "- *windows*: network calls (1 = the input fits in one chunk and is processed whole).",
        (
            "- *peak RSS*: the process's `ru_maxrss`; *baseline*: the peak before the call (torch, the model's"
            " weights and the input), so *peak − base* is what the call itself needed."
        ),
        "- *x real time*: wall seconds per second of audio.",
        (
            f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()},"
            f" {os.cpu_count()} CPUs; 1-minute load average at the end of each row: {loads}"
            " (other jobs shared the machine, so wall times are upper bounds)."
        ),
    ]
    report = "\n".join(["# AudioVAE chunked encode/decode", "", setup, "", table(rows), "", *notes, ""])
    print(report)
    atomic_write_text(args.out, report)


if __name__ == "__main__":
    main()
