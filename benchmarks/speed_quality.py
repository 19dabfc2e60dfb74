"""Quality against speed: `sak evaluate` of each speed setting on the same held-out prompts and seeds.

    python benchmarks/speed_quality.py --catalogue CATALOGUE --work DIR [--model DIR] [--n 80] [--only NAME ...]
        [--out FILE]

Each row of SETTINGS is one `sak evaluate` run (CFG 7, seed 0 unless the row says otherwise, no timing floor)
of a model directory (``--model``, default the bundled model) on the first N held-out clips of a demo catalogue
(`sak catalogue make CATALOGUE --clips 2000 --seed 0`), written to WORK/NAME; a row whose report already exists
is read, not run again, so the script resumes (keep one WORK per model). The row of the distilled U-Net samples
with the directory's step-distilled student (``unet_distilled/``, its own steps and guidance); it is skipped
with a note for a directory without one. Two rows of the 50-step whole-window baseline with different seeds
give the noise: a setting is "within noise" when every metric lies inside the two baselines' spread widened by
half of it.
Prints a markdown table (the load average is that of the collation; each run's own time is in its log) and
writes it to benchmarks/results/speed_quality.md, or ``--out`` (a partial re-run need not replace the table).
The matching timings are benchmarks/speed.py's.

Runs take one torch thread each; run two at once on two cores with `--only`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

from stable_audio_kit.assembly import DEFAULT_MODEL_DIR
from stable_audio_kit.students import distilled_config

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "speed_quality.md"

GL32, GL16, GL8 = ["--griffin-lim-iters", "32"], ["--griffin-lim-iters", "16"], ["--griffin-lim-iters", "8"]
# (name, what it changes, `sak evaluate` speed arguments). The two baselines are the pipeline before the speed
# work: 50 steps of DPM-Solver++ 2M over the whole window in float32, 32 Griffin-Lim iterations.
# Every speed setting is given, so the rows keep their meaning when the model's own sampler or decoder changes.
BASELINE = ["--steps", "50", "--scheduler", "dpmsolver++", "--tail", "100", "--precision", "fp32", *GL32]
DPM = ["--scheduler", "dpmsolver++"]
UNIPC = ["--scheduler", "unipc", "--precision", "bf16", "--steps"]
UNIPC_FP32 = ["--scheduler", "unipc", "--precision", "fp32", "--steps"]
SETTINGS = [
    ("base50", "baseline: 50 steps, whole window, fp32, GL 32", BASELINE),
    ("base50s1", "baseline, seed 1 (the noise)", [*BASELINE, "--seed", "1"]),
    ("crop50", "tail 1 s", [*DPM, "--steps", "50", "--tail", "1", "--precision", "fp32", *GL32]),
    ("crop50t05", "tail 0.5 s", [*DPM, "--steps", "50", "--tail", "0.5", "--precision", "fp32", *GL32]),
    ("bf50", "tail 1 s + bf16", [*DPM, "--steps", "50", "--tail", "1", "--precision", "bf16", *GL32]),
    ("bf25", "tail 1 s + bf16 + 25 steps", [*DPM, "--steps", "25", "--tail", "1", "--precision", "bf16", *GL32]),
    ("bf20", "tail 1 s + bf16 + 20 steps", [*DPM, "--steps", "20", "--tail", "1", "--precision", "bf16", *GL32]),
    ("bf15", "tail 1 s + bf16 + 15 steps", [*DPM, "--steps", "15", "--tail", "1", "--precision", "bf16", *GL32]),
    ("bf10", "tail 1 s + bf16 + 10 steps", [*DPM, "--steps", "10", "--tail", "1", "--precision", "bf16", *GL32]),
    ("unipc15", "tail 1 s + bf16 + 15 steps UniPC", [*UNIPC, "15", "--tail", "1", *GL32]),
    ("bf25t2", "tail 2 s + bf16 + 25 steps", [*DPM, "--steps", "25", "--tail", "2", "--precision", "bf16", *GL32]),
    ("bf25t3", "tail 3 s + bf16 + 25 steps", [*DPM, "--steps", "25", "--tail", "3", "--precision", "bf16", *GL32]),
    (
        "bf25gl16",
        "tail 3 s + bf16 + 25 steps + GL 16",
        [*DPM, "--steps", "25", "--tail", "3", "--precision", "bf16", *GL16],
    ),
    (
        "bf25gl8",
        "tail 3 s + bf16 + 25 steps + GL 8",
        [*DPM, "--steps", "25", "--tail", "3", "--precision", "bf16", *GL8],
    ),
    ("unipc20", "tail 3 s + bf16 + 20 steps UniPC", [*UNIPC, "20", "--tail", "3", *GL32]),
    ("uni15t3g16", "tail 3 s + bf16 + 15 steps UniPC + GL 16", [*UNIPC, "15", "--tail", "3", *GL16]),
    ("uni12t3g16", "tail 3 s + bf16 + 12 steps UniPC + GL 16", [*UNIPC, "12", "--tail", "3", *GL16]),
    ("uni10t3g16", "tail 3 s + bf16 + 10 steps UniPC + GL 16", [*UNIPC, "10", "--tail", "3", *GL16]),
    ("uni50", "50 UniPC steps, whole window, fp32, GL 16", [*UNIPC_FP32, "50", "--tail", "100", *GL16]),
    ("uni50s1", "the same, seed 1", [*UNIPC_FP32, "50", "--tail", "100", *GL16, "--seed", "1"]),
    ("default", "the base U-Net at its defaults: 15 steps UniPC + tail 3 s + bf16 + GL 16", ["--unet", "base"]),
    (
        "distilled",
        "**the defaults** (no speed argument): the distilled U-Net, 8 steps with guidance 7 baked in + tail 3 s + "
        "bf16 + GL 16",
        ["--unet", "distilled"],
    ),
]
NOISE = ("base50", "base50s1")
# Metrics that are fractions of clips (and the summary key counting their clips), and means of a per-clip value.
FRACTIONS = {"duration_within_0.5s", "tempo_within_5pct", "percussive_vs_tonal", "register", "recall@1", "recall@5"}
COUNTS = {"tempo_within_5pct": "tempo_n", "percussive_vs_tonal": "percussive_vs_tonal_n", "register": "register_n"}
PER_CLIP = {"duration_mean_abs_error_s": "duration_error", "key_score": "key_score"}

# (summary key, column, higher is better)
METRICS = [
    ("duration_within_0.5s", "duration ±0.5 s", True),
    ("duration_mean_abs_error_s", "duration MAE (s) ↓", False),
    ("tempo_within_5pct", "tempo ±5 %", True),
    ("percussive_vs_tonal", "perc./tonal", True),
    ("register", "register", True),
    ("key_score", "key score", True),
    ("clap_score", "CLAP score", True),
    ("recall@1", "R@1", True),
    ("recall@5", "R@5", True),
    ("fad_clap", "FAD ↓", False),
    ("fad_clap_by_kind", "FAD by kind ↓", False),
]


def run(name: str, args: list[str], catalogue: str, work: Path, n: int, model: Path | None) -> None:
    out = work / name
    if (out / "report.json").exists():
        return
    cmd = [sys.executable, "-m", "stable_audio_kit.cli", "evaluate", "--catalogue", catalogue, "--n", str(n)]
    cmd += ["--model", str(model.resolve())] if model is not None else []
    cmd += ["--no-timing-floor", "-o", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(work / f"{name}.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def standard_error(report: dict, key: str) -> float:
    """The standard error of one run's value of ``key``: binomial for a fraction, from the per-clip values for a
    mean, 0 for CLAP score and FAD (set statistics without per-clip values; the seeds' spread stands for them)."""
    summary = report["summary"]["model"]
    count = summary.get(COUNTS.get(key, "n")) or report["n"]
    if key in FRACTIONS:
        p = summary[key]
        return math.sqrt(p * (1 - p) / count)
    if key in PER_CLIP:
        values = [abs(c[PER_CLIP[key]]) for c in report["clips"]["model"] if c.get(PER_CLIP[key]) is not None]
        return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return 0.0


def tolerance(reports: dict[str, dict], key: str) -> tuple[float, float] | None:
    """``(worst baseline value, tolerance)``: a setting is within noise on ``key`` unless it is worse than the worse
    baseline by more than the larger of the two baselines' spread and two standard errors of a difference."""
    base = [reports[n] for n in NOISE if n in reports and reports[n]["summary"]["model"].get(key) is not None]
    if len(base) < 2:
        return None
    values = [r["summary"]["model"][key] for r in base]
    se = max(standard_error(r, key) for r in base)
    return values, max(max(values) - min(values), 2 * math.sqrt(2) * se)


def model_name(model: str | Path | None) -> str:
    """How the written table names a model directory: "the bundled model" or its folder's name (not where it lies on
    this machine). ``model`` is a ``--model`` value or a report's ``"model"``."""
    if model is None or str(model).startswith("(bundled"):
        return "the bundled model"
    return f"`{Path(model).resolve().name}`"


def table(work: Path) -> tuple[list[str], int | None, dict[str, str]]:
    """The markdown rows of the reports in ``work``, their number of clips, and the model each report evaluated."""
    reports, n = {}, None
    for name, _, _ in SETTINGS:
        path = work / name / "report.json"
        if path.exists():
            reports[name] = json.loads(path.read_text())
            n = reports[name]["n"]
    summaries = {name: report["summary"]["model"] for name, report in reports.items()}
    lines = [
        "| setting | " + " | ".join(column for _, column, _ in METRICS) + " | within noise |",
        "|---|" + "---:|" * len(METRICS) + "---|",
    ]
    for name, what, _ in SETTINGS:
        if name not in summaries:
            continue
        cells, outside = [], []
        for key, column, higher in METRICS:
            value = summaries[name].get(key)
            band = tolerance(reports, key)
            mark = ""
            if value is not None and band is not None and name not in NOISE:
                values, tol = band
                worse = value < min(values) - tol if higher else value > max(values) + tol
                if worse:
                    mark, outside = " ✗", [*outside, column]
            cells.append("–" if value is None else f"{value:.3f}{mark}")
        verdict = "(noise)" if name in NOISE else ("yes" if not outside else "no")
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {verdict} |")
    models = {name: model_name(report.get("model")) for name, report in reports.items()}
    return lines, n, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--only", nargs="*", default=None, help="run only these settings (names of SETTINGS)")
    parser.add_argument("--collate", action="store_true", help="only read the reports that exist")
    parser.add_argument(
        "--model", type=Path, default=None, help="pipeline directory to evaluate (default: the bundled model)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="table file (default: %(default)s)")
    args = parser.parse_args()
    names = {name for name, _, _ in SETTINGS}
    unknown = sorted(set(args.only or []) - names)
    if unknown:
        raise SystemExit(f"speed_quality.py: unknown settings {unknown}; known: {sorted(names)}")
    if args.model is not None and not args.model.is_dir():
        raise SystemExit(f"speed_quality.py: model directory {str(args.model)!r} does not exist")
    student = distilled_config(args.model or DEFAULT_MODEL_DIR) is not None
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.collate:
        for name, _, setting in SETTINGS:
            if args.only is not None and name not in args.only:
                continue
            if "distilled" in setting and not student:
                print(f"speed_quality.py: skipping {name}: {model_name(args.model)} holds no unet_distilled/")
                continue
            run(name, setting, args.catalogue, args.work, args.n, args.model)

    from stable_audio_kit.utils import atomic_write_text

    lines, n, models = table(args.work)
    model = model_name(args.model)
    others = [f"{name} ({other})" for name, other in models.items() if other != model]
    mixed = f" Rows of another model than {model}: {', '.join(others)}." if others else ""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    command = " --model " + args.model.resolve().name if args.model is not None else ""
    cfg = "CFG 7 (the distilled U-Net: its own, baked in)" if "distilled" in models else "CFG 7"
    text = "\n".join(
        [
            "# Quality against speed",
            "",
            f"`python benchmarks/speed_quality.py{command}`: `sak evaluate` of {model} on the first {n} held-out "
            f"clips of the demo catalogue (`sak catalogue make --clips 2000 --seed 0`), {cfg}, seed 0, each setting on "
            "the same prompts and seeds, one torch thread a run. A ✗ marks a metric worse than the worse of the two "
            "baselines (seeds 0 and 1) by more than the larger of their spread and two standard errors of a "
            "difference (binomial for fractions, per-clip for means; CLAP score and FAD have only the spread). "
            "Load average at collation: "
            f"{load}. Timings: `benchmarks/results/speed.md`.{mixed}",
            "",
            *lines,
            "",
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
