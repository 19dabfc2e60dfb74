"""Speed levers of generation: steps, precision, Griffin-Lim iterations, frames sampled, torch.compile, batching,
a distilled student U-Net.

    python benchmarks/speed.py [--model DIR] [--threads 2] [--repeats 3] [--compile] [--quick] [--out FILE]

Measures a model directory (default: the bundled demo model, what `sak generate` runs) in six sections, one
table each. The directory loads once; if it holds a step-distilled student of its U-Net (``unet_distilled/``,
``sak train distill``), a second pipeline samples with it, sharing the first one's VAE, text encoder, tokenizer
and projection. Without one, the rows of the student are skipped with a note.

1. **Levers at 10 s of audio**: sampling, decoding and total time of each row of ``LEVERS`` against the
   baseline (50 steps, whole window, fp32, 32 Griffin-Lim iterations: what the pipeline did before the
   speed work). Edit ``LEVERS`` to add a row; the row equal to the current defaults is marked "(default)".
   The student samples in its own steps with its guidance baked in: one conditional forward a step.
2. **The curve from 0.5 s to the window** at the default settings, sampling the whole window or only the
   audio's frames plus the default tail, and the student at the defaults; the cost of a 1 s clip over a 10 s
   one (goal: at most 1/5).
3. **torch.compile** (``--compile``; takes minutes): first call (compiling), steady state, break-even.
4. **Batch throughput with mixed lengths** (the ``sak generate --prompts FILE`` case): ``REQUESTS`` run
   one call each over the whole window, one call each over their own frames, grouped by length, and grouped
   by length with the student.
5. **Threads**: the 10 s default row at 1 and 2 torch threads.
6. **One U-Net forward against frames**, in bfloat16 and float32: the fixed cost of a forward, which is why a short
   clip does not cost its share of a 10 s one.

Each figure is the best of ``--repeats`` runs, after one untimed 1-step call at each frame count, precision
and U-Net (first-call allocations; the student's takes its own steps, the only ones it samples in). Prints each
table as it is measured and writes them all to benchmarks/results/speed.md (or ``--out``). ``--quick`` (2 steps,
the student its own; 1 run, fewer rows and lengths) is a smoke test: it writes only to ``--out`` if given, never to
the results file.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from stable_audio_kit.assembly import DEFAULT_MODEL_DIR, with_student
from stable_audio_kit.distillation import DISTILLED_SUBFOLDER, distilled_settings
from stable_audio_kit.precision import autocast, native_bf16, resolve_precision
from stable_audio_kit.sampling import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS, TAIL_SECONDS, SamplingSettings
from stable_audio_kit.utils import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "speed.md"
PROMPT = "a calm piano melody in C major at 80 bpm"
CFG = DEFAULT_GUIDANCE_SCALE
SEED = 0
WHOLE = 100.0  # a tail at least the window's length: the whole window is sampled (the old behaviour)
QUICK_STEPS = 2
NO_STUDENT = (
    f"The distilled U-Net is not measured: this model directory holds no `{DISTILLED_SUBFOLDER}/` "
    "(`sak train distill`, then `sak export`)."
)

# What the pipeline did before the speed work; every lever below changes it.
BASELINE = SamplingSettings(
    steps=50, scheduler="dpmsolver++", tail_seconds=WHOLE, precision="fp32", griffin_lim_iters=32
)


# The distilled student at the defaults: its own steps and DDIM sampler, the default tail, precision and decoder.
STUDENT = replace(SamplingSettings(), unet="distilled")


def lever(**changes) -> SamplingSettings:
    return replace(BASELINE, **changes)


# (label, settings, kept by --quick). The first row is the baseline the others are compared with. A row of the
# distilled U-Net may name its steps as "{steps}".
LEVERS = [
    ("baseline", BASELINE, True),
    ("bf16", lever(precision="bf16"), True),
    ("25 steps", lever(steps=25), False),
    ("UniPC 15 steps", lever(scheduler="unipc", steps=15), False),
    ("GL 16", lever(griffin_lim_iters=16), False),
    ("GL 8", lever(griffin_lim_iters=8), True),
    ("bf16 + UniPC 15 steps", lever(precision="bf16", scheduler="unipc", steps=15), False),
    ("bf16 + UniPC 15 steps + GL 16", lever(precision="bf16", scheduler="unipc", steps=15, griffin_lim_iters=16), True),
    ("bf16 + UniPC 15 steps + GL 8", lever(precision="bf16", scheduler="unipc", steps=15, griffin_lim_iters=8), False),
    ("`SamplingSettings()`", SamplingSettings(), True),
    ("distilled ({steps} steps, no CFG batch)", lever(unet="distilled", steps=None, scheduler=None), True),
    ("distilled + bf16 + tail 3 s + GL 16", STUDENT, True),
]

CURVE_SECONDS = [0.5, 1, 2, 3, 5, 7.5, 10]
QUICK_CURVE_SECONDS = [0.5, 1, 10]

# (prompt, seconds): a mixed list as a `--prompts` file gives it; equal lengths share a sampled frame count.
# --quick keeps the first five (which hold one pair of equal lengths).
REQUESTS = [
    ("a rock drum groove at 100 bpm", 1.0),
    ("a calm piano melody in C major at 80 bpm", 2.0),
    ("rain on a tin roof", 10.0),
    ("a snare hit", 2.0),
    ("a kick drum", 0.5),
    ("an ambient synth pad in A minor", 5.0),
    ("a hi-hat pattern at 120 bpm", 1.0),
    ("a funky bass line in E minor at 110 bpm", 7.5),
    ("a hand clap", 2.0),
    ("an acoustic guitar strum in G major", 3.5),
    ("a jazz piano chord progression at 90 bpm", 5.0),
    ("birds singing in a forest", 10.0),
]


@dataclass
class Bench:
    """The loaded pipelines and how to time them: repeats, the model's own samplers and decoder settings.
    ``student`` is ``pipe`` with the distilled U-Net and its sampler (``None`` without one)."""

    pipe: object
    repeats: int
    quick: bool
    student: object = None
    own_schedulers: dict = field(default_factory=dict)
    own_griffin_lim: int | None = None
    warmed: set = field(default_factory=set)

    def __post_init__(self):
        pipes = {"base": self.pipe, "distilled": self.student}
        self.own_schedulers = {unet: pipe.scheduler for unet, pipe in pipes.items() if pipe is not None}
        self.own_griffin_lim = getattr(self.pipe.vae.config, "griffin_lim_iters", None)

    @property
    def student_steps(self) -> int | None:
        return None if self.student is None else distilled_settings(self.student.unet)[0]

    def has(self, settings: SamplingSettings) -> bool:
        """Whether this model has the U-Net ``settings`` sample with."""
        return settings.unet != "distilled" or self.student is not None

    def pipeline(self, settings: SamplingSettings):
        """The pipeline of the U-Net ``settings`` sample with."""
        if not self.has(settings):
            raise ValueError("this model directory holds no distilled U-Net")
        return self.student if settings.unet == "distilled" else self.pipe

    def settings(self, settings: SamplingSettings) -> SamplingSettings:
        """``settings`` as this run uses them: --quick takes few steps (the student only its own)."""
        return replace(settings, steps=QUICK_STEPS) if self.quick and settings.unet != "distilled" else settings

    def use(self, settings: SamplingSettings) -> None:
        """Put the pipeline of ``settings`` in them; what they leave to the model goes back to the model's own.
        The VAE is shared, so each call sets its Griffin-Lim iterations."""
        pipe = self.pipeline(settings)
        pipe.scheduler = self.own_schedulers[settings.unet]
        gl = self.own_griffin_lim if settings.griffin_lim_iters is None else settings.griffin_lim_iters
        replace(settings, griffin_lim_iters=gl).apply(pipe)

    def is_default(self, settings: SamplingSettings) -> bool:
        own = replace(SamplingSettings(), griffin_lim_iters=self.own_griffin_lim)
        gl = self.own_griffin_lim if settings.griffin_lim_iters is None else settings.griffin_lim_iters
        return replace(settings, griffin_lim_iters=gl) == own


def call(bench: Bench, requests: list[tuple[str, float]], settings: SamplingSettings, seed: int = SEED):
    """(sampling s, decoding s) of one pipeline call for ``requests`` (equal lengths: one batch), timed apart
    as `sak generate` runs them: sample, decode the frames sampled, trim to the length."""
    pipe, seconds = bench.pipeline(settings), requests[0][1]
    # The student has its guidance baked in: None is its own (any other value is refused).
    guidance = None if settings.unet == "distilled" else CFG
    prompts = [prompt for prompt, _ in requests]
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(requests))]
    one = len(requests) == 1
    t0 = time.perf_counter()
    latents = pipe(
        prompts[0] if one else prompts,
        seconds_total=seconds,
        guidance_scale=guidance,
        generator=generators[0] if one else generators,
        output_type="latent",
        **settings.call_options(),
    ).audios
    t1 = time.perf_counter()
    with torch.no_grad():  # as the pipeline decodes
        audio = pipe.decode_latents(latents)[..., : round(seconds * pipe.sample_rate)].float().numpy()
    t2 = time.perf_counter()
    assert audio.shape == (len(requests), pipe.audio_channels, round(seconds * pipe.sample_rate)), audio.shape
    return t1 - t0, t2 - t1


def warm(bench: Bench, seconds: float, settings: SamplingSettings) -> None:
    """One untimed 1-step call at each new frame count, precision and U-Net (the student's forward has a batch of
    1, not 2): kernel set-up stays out of the timing. The student takes only its own steps, so it warms with them."""
    frames = bench.pipe.sampled_frames(0.0, seconds, settings.tail_seconds)
    key = (frames, resolve_precision(settings.precision, "cpu"), settings.unet)
    if key not in bench.warmed:
        bench.warmed.add(key)
        call(bench, [(PROMPT, seconds)], replace(settings, steps=None if settings.unet == "distilled" else 1))


def best(bench: Bench, seconds: float, settings: SamplingSettings) -> tuple[float, float]:
    """(sampling s, decoding s) of the fastest of ``bench.repeats`` calls for ``seconds`` of audio."""
    bench.use(settings)
    warm(bench, seconds, settings)
    return min((call(bench, [(PROMPT, seconds)], settings) for _ in range(bench.repeats)), key=sum)


def describe(bench: Bench, settings: SamplingSettings) -> list[str]:
    """Table cells: steps, tail, precision (``auto`` with what it means here), Griffin-Lim iterations."""
    tail = settings.tail_seconds
    tail_cell = f"default ({TAIL_SECONDS:g} s)" if tail is None else "window" if tail >= WHOLE else f"{tail:g} s"
    precision = settings.precision
    if precision == "auto":
        precision = f"auto ({resolve_precision('auto', 'cpu')})"
    gl = settings.griffin_lim_iters
    gl_cell = f"{bench.own_griffin_lim} (model's)" if gl is None else str(gl)
    steps = bench.pipeline(settings).resolve_sampling(settings.steps)[0]  # None: the model's own
    return [str(steps), tail_cell, precision, gl_cell]


def levers_section(bench: Bench, seconds: float = 10.0) -> str:
    rows = [(label, settings) for label, settings, quick in LEVERS if quick or not bench.quick]
    skipped = any(not bench.has(settings) for _, settings in rows)
    rows = [(label, settings) for label, settings in rows if bench.has(settings)]
    lines = [
        "| row | steps | tail | precision | GL iters | sampling (s) | decoding (s) | total (s) | × real time "
        "| time / baseline |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = None
    for label, settings in rows:
        mark = " (default)" if bench.is_default(settings) else ""
        if settings.unet == "distilled":
            label = label.format(steps=bench.student_steps)
        settings = bench.settings(settings)
        sample, decode = best(bench, seconds, settings)
        total = sample + decode
        base = base or total
        cells = [f"{label}{mark}", *describe(bench, settings)]
        cells += [f"{sample:.2f}", f"{decode:.2f}", f"{total:.2f}", f"{seconds / total:.2f}", f"{total / base:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", NO_STUDENT]
    return "\n".join(lines)


def curve_section(bench: Bench) -> str:
    seconds_list = QUICK_CURVE_SECONDS if bench.quick else CURVE_SECONDS
    columns = {
        "whole window": replace(SamplingSettings(), tail_seconds=WHOLE),
        f"default tail ({TAIL_SECONDS:g} s)": SamplingSettings(),
        f"distilled ({bench.student_steps} steps, default tail)": STUDENT,
    }
    columns = {name: bench.settings(settings) for name, settings in columns.items() if bench.has(settings)}
    walls: dict[str, dict[float, float]] = {}
    for name, settings in columns.items():
        walls[name] = {s: sum(best(bench, s, settings)) for s in seconds_list}
    header = " | ".join(f"{name}: frames | wall (s) | wall per audio s" for name in columns)
    lines = ["| audio (s) | " + header + " |", "|---:|" + "---:|" * 3 * len(columns)]
    for s in seconds_list:
        cells = [f"{s:g}"]
        for name, settings in columns.items():
            wall = walls[name][s]
            cells += [str(bench.pipe.sampled_frames(0.0, s, settings.tail_seconds)), f"{wall:.2f}", f"{wall / s:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    ratios = ", ".join(f"{name} {walls[name][1] / walls[name][10]:.2f}" for name in columns)
    lines += ["", f"cost(1 s) / cost(10 s): {ratios} (goal: at most 0.20)."]
    if not bench.has(STUDENT):
        lines += ["", NO_STUDENT]
    return "\n".join(lines)


def dynamic_note(bench: Bench) -> str:
    """Whether ``torch.compile(dynamic=True)`` of the U-Net still fails; one untimed 1 s, 1-step call."""
    pipe, unet = bench.pipe, bench.pipe.unet
    settings = replace(SamplingSettings(), steps=1)
    bench.use(settings)
    pipe.unet = torch.compile(unet, dynamic=True)
    try:
        call(bench, [(PROMPT, 1.0)], settings)
    except Exception as err:  # the failure is what this reports
        inner = getattr(err, "inner_exception", None)  # BackendCompilerFailed wraps the backend's error
        cause = f" ({type(inner).__name__}: {inner})" if inner is not None else f": {err}"
        return f"`dynamic=True` fails on torch {torch.__version__}: {type(err).__name__}{cause[:300]}."
    finally:
        pipe.unet = unet
        torch._dynamo.reset()
    return f"`dynamic=True` compiles on torch {torch.__version__} (not timed here)."


def compile_section(bench: Bench, seconds: float = 10.0, other: float = 5.0) -> str:
    pipe, unet = bench.pipe, bench.pipe.unet
    note = dynamic_note(bench)
    settings = bench.settings(SamplingSettings())
    eager = sum(best(bench, seconds, settings))
    pipe.unet = torch.compile(unet, dynamic=False)
    try:
        first = sum(call(bench, [(PROMPT, seconds)], settings))
        steady = min(sum(call(bench, [(PROMPT, seconds)], settings)) for _ in range(bench.repeats))
        recompile = sum(call(bench, [(PROMPT, other)], settings))
    finally:
        pipe.unet = unet
        torch._dynamo.reset()
    gain = eager - steady
    even = f"after {math.ceil((first - steady) / gain)} calls of {seconds:g} s" if gain > 0 else "never (no gain)"
    lines = [
        "| U-Net (default settings) | wall (s) |",
        "|---|---:|",
        f"| eager, {seconds:g} s | {eager:.2f} |",
        f"| compiled (`dynamic=False`), first {seconds:g} s call (compiles) | {first:.2f} |",
        f"| compiled, steady state, {seconds:g} s | {steady:.2f} |",
        f"| compiled, first {other:g} s call after it (a new frame count recompiles) | {recompile:.2f} |",
        "",
        f"Break-even: {even}. {note} With `dynamic=False` every new clip length (sampled frame count) compiles again.",
    ]
    return "\n".join(lines)


def batch_pass(bench: Bench, groups: list[list[tuple[str, float]]], settings: SamplingSettings) -> float:
    """Wall seconds of one call per group, the fastest pass of ``bench.repeats``."""
    bench.use(settings)
    for group in groups:
        warm(bench, group[0][1], settings)
    return min(sum(sum(call(bench, group, settings)) for group in groups) for _ in range(bench.repeats))


def batch_section(bench: Bench) -> str:
    requests = REQUESTS[:5] if bench.quick else REQUESTS
    default = bench.settings(SamplingSettings())
    by_length: dict[tuple[int, float], list[tuple[str, float]]] = {}
    for prompt, seconds in requests:
        by_length.setdefault((bench.pipe.sampled_frames(0.0, seconds), seconds), []).append((prompt, seconds))
    modes = [
        ("(a) one call per request, whole window", [[r] for r in requests], replace(default, tail_seconds=WHOLE)),
        ("(b) one call per request, default tail", [[r] for r in requests], default),
    ]
    if len(by_length) < len(requests):
        modes.append(
            ("(c) one call per equal length (prompts as a list), default tail", list(by_length.values()), default)
        )
    if bench.has(STUDENT):
        modes.append(
            (
                f"({'abcd'[len(modes)]}) distilled ({bench.student_steps} steps), one call per equal length, "
                "default tail",
                list(by_length.values()),
                STUDENT,
            )
        )
    audio = sum(seconds for _, seconds in requests)
    lines = ["| mode | calls | wall (s) | audio s per wall s | vs (a) |", "|---|---:|---:|---:|---:|"]
    first = None
    for label, groups, settings in modes:
        wall = batch_pass(bench, groups, settings)
        first = first or wall
        lines.append(f"| {label} | {len(groups)} | {wall:.2f} | {audio / wall:.2f} | {first / wall:.2f}x |")
    lengths = ", ".join(f"{s:g}" for _, s in requests)
    lines += ["", f"{len(requests)} requests, {audio:g} s of audio in all; lengths (s): {lengths}."]
    if not bench.has(STUDENT):
        lines += ["", NO_STUDENT]
    return "\n".join(lines)


def threads_section(bench: Bench, threads: int, seconds: float = 10.0) -> str:
    settings = bench.settings(SamplingSettings())
    lines = [
        "| torch threads | sampling (s) | decoding (s) | total (s) | × real time |",
        "|---:|---:|---:|---:|---:|",
    ]
    totals = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        sample, decode = best(bench, seconds, settings)
        totals[n] = sample + decode
        lines.append(f"| {n} | {sample:.2f} | {decode:.2f} | {totals[n]:.2f} | {seconds / totals[n]:.2f} |")
    torch.set_num_threads(threads)
    fastest = min(totals, key=totals.get)
    load = os.getloadavg()[0]
    lines += ["", f"Fastest here: {fastest} thread(s), at a load average of {load:.1f} on {os.cpu_count()} CPUs."]
    return "\n".join(lines)


FORWARD_FRAMES = [32, 64, 128, 176, 256, 352]


def best_forward(unet, step, args: tuple, kwargs: dict, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` forwards of ``unet`` in the context ``step``, after one untimed."""
    runs = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with step:
            unet(*args, **kwargs)
        runs.append(time.perf_counter() - start)
    return min(runs[1:])


def forward_section(bench: Bench) -> str:
    """One conditional U-Net forward (batch 1, the student's if there is one) at frame counts up to the window, in
    bfloat16 and float32: the fixed cost of a forward that short clips cannot shrink (the floor under section 2)."""
    settings = STUDENT if bench.has(STUDENT) else SamplingSettings()
    pipe = bench.pipeline(settings)
    captured = {}

    def capture(module, args, kwargs):
        captured.setdefault("call", (args, kwargs))

    bench.use(settings)
    handle = pipe.unet.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        call(bench, [(PROMPT, pipe.max_seconds)], replace(settings, steps=None if settings.unet == "distilled" else 1))
    finally:
        handle.remove()
    args, kwargs = captured["call"]
    window = args[0].shape[-1]
    frames = [f for f in FORWARD_FRAMES if f < window] + [window]
    if bench.quick:
        frames = [frames[0], window]
    session = {name: autocast(name, "cpu") for name in ("bf16", "fp32")}
    times: dict[str, dict[int, float]] = {name: {} for name in session}
    with torch.no_grad():
        for n in frames:
            sample = args[0][:1, :, :n]
            # Inputs laid out along the frames (channel conditioning) are cut to the same length.
            cut = {
                k: v[..., :n] if torch.is_tensor(v) and v.dim() == 3 and v.shape[-1] == window else v
                for k, v in kwargs.items()
            }
            for name, (outer, step) in session.items():
                with outer:
                    times[name][n] = best_forward(pipe.unet, step, (sample, *args[1:]), cut, max(bench.repeats, 5))
    which = f"the distilled U-Net ({bench.student_steps} steps)" if settings.unet == "distilled" else "the U-Net"
    lines = [
        "| frames | audio (s) | bf16 (ms) | fp32 (ms) | bf16 / bf16 at the window |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in frames:
        bf16, fp32 = times["bf16"][n], times["fp32"][n]
        seconds = n * pipe.vae.hop_length / pipe.sample_rate
        lines.append(
            f"| {n} | {seconds:.2f} | {1e3 * bf16:.1f} | {1e3 * fp32:.1f} | {bf16 / times['bf16'][window]:.2f} |"
        )
    lines += [
        "",
        f"One conditional forward of {which}, batch 1, best of {max(bench.repeats, 5)}. A clip samples its audio's "
        f"frames plus the {TAIL_SECONDS:g} s tail, so a 1 s clip runs {bench.pipe.sampled_frames(0.0, 1.0)} frames.",
    ]
    return "\n".join(lines)


def load_student(pipe, folder: Path):
    """``pipe`` with the distilled U-Net of the model directory ``folder`` (:func:`with_student`: the other
    components are ``pipe``'s objects); ``None`` if ``folder`` has no ``unet_distilled/``. A damaged student is an
    error, not a skipped row."""
    if not (folder / DISTILLED_SUBFOLDER).is_dir():
        return None
    student = with_student(pipe, folder)
    student.set_progress_bar_config(disable=True)
    return student


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="pipeline directory (default: the bundled model); its unet_distilled/, if any, adds the distilled rows",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (section 5 also runs 1 and 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each figure; the best counts")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (takes minutes)")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK_STEPS} steps, 1 run, fewer rows")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: benchmarks/results/speed.md)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    out = args.out or (None if args.quick else RESULTS)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    from stable_audio_kit import StableAudioKitPipeline

    folder = args.model or DEFAULT_MODEL_DIR
    pipe = StableAudioKitPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    bench = Bench(pipe, args.repeats, args.quick, student=load_student(pipe, folder))

    sections = [
        ("1. Levers at 10 s of audio", lambda: levers_section(bench)),
        ("2. Cost from 0.5 s to the window (default settings)", lambda: curve_section(bench)),
        ("3. torch.compile of the U-Net", lambda: compile_section(bench) if args.compile else "Not run (`--compile`)."),
        ("4. Batch throughput with mixed lengths (one model load)", lambda: batch_section(bench)),
        ("5. Threads (10 s, default settings)", lambda: threads_section(bench, args.threads)),
        ("6. One U-Net forward against frames", lambda: forward_section(bench)),
    ]
    body = []
    for title, measure in sections:
        text = f"## {title}\n\n{measure()}\n"
        print(text, flush=True)
        body.append(text)
    load_end = os.getloadavg()[0]

    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    bf16 = native_bf16()
    quick = f" **--quick: {QUICK_STEPS} steps, 1 run, fewer rows; a smoke test, not a result.**" if args.quick else ""
    # The directory's name, not where it lies on this machine.
    model = "the bundled demo model" if args.model is None else f"the model `{folder.resolve().name}`"
    command = (f" --model {folder.resolve().name}" if args.model is not None else "") + (
        " --compile" if args.compile else ""
    )
    warmed = "an untimed 1-step call at each frame count and precision"
    if bench.student is not None:
        steps, guidance = distilled_settings(bench.student.unet)
        student = (
            f" The distilled rows sample with its step-distilled student (`{DISTILLED_SUBFOLDER}/`): {steps} DDIM "
            f"steps, guidance {guidance:g} baked in (one forward of 1 a step, no CFG batch)."
        )
        warmed = "an untimed call at each frame count, precision and U-Net (1 step; the student's own steps)"
    else:
        student = f" No distilled student (`{DISTILLED_SUBFOLDER}/`) in this model directory: its rows are skipped."
    header = (
        "# Speed\n\n"
        f"`python benchmarks/speed.py{command}`: {model} (U-Net "
        f"{params:.2f}M parameters, {pipe.sample_rate} Hz, a {pipe.max_seconds:g} s window of "
        f"{pipe.unet.config.sample_size} latent frames, {type(bench.own_schedulers['base']).__name__}), CFG {CFG:g} "
        f'(one batched forward of 2 a step), seed {SEED}, "{PROMPT}".{student} Defaults of the model\'s own U-Net '
        f"(`SamplingSettings()`, the rows marked default): {DEFAULT_STEPS} steps, a {TAIL_SECONDS:g} s tail, precision "
        f"auto, {bench.own_griffin_lim} Griffin-Lim iterations; `sak generate` samples with the student when the "
        "model has one (`--unet auto`), at the same tail, precision and iterations. Each figure is "
        f"the best of {args.repeats} run(s) after {warmed}; times "
        f"include prompt encoding. {args.threads} torch threads (section 5 varies them); {cpu_name()}, "
        f"{os.cpu_count()} CPUs, bf16 native: {'yes' if bf16 else 'no'} (so auto = {'bf16' if bf16 else 'fp32'}); "
        f"torch {torch.__version__}; load average {load_start:.1f} at the start and {load_end:.1f} at the end "
        f"(other jobs share the cores when it exceeds the CPU count).{quick}\n\n"
        "× real time = seconds of audio per second of wall time. GL = Griffin-Lim iterations of the decoder.\n\n"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, header + "\n".join(body))
        print(f"wrote {out}")
    else:
        print("--quick writes no file without --out")


if __name__ == "__main__":
    main()
