"""``sak evaluate``: generate from held-out captions and measure with independent signal analysis.

Every metric is reported three ways, side by side:

- **model**: the model given each held-out caption and its length;
- **real**: the held-out clips themselves (the ceiling);
- **shuffled**: the model given another clip's caption with this clip's length (the floor, which
  shows how much the text matters). Each is measured against the *original* clip's parameters.

The shuffled-caption floor keeps the lengths, so on the duration rows it is no floor at all. A fourth
column gives those rows theirs: **wrong lengths**, the model given each clip's own caption with
another clip's ``seconds_total``, measured against the clip's own length (``timing_floor=False``
skips it and its generations).

Probes (``probes=["key-swap", "tempo-swap"]``, see :mod:`.probes`) add rows of their own: the same
held-out captions with one span rewritten (the key, the tempo), generated with the same seeds.

The catalogue is a folder with ``metadata.jsonl`` as written by ``sak catalogue make``: rows with
``path``, ``caption``, ``split``, ``seconds`` and, where the prompt names them, ``bpm``, ``kind``,
``register``, ``tonic``/``mode``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import load_audio
from ..sampling import PIPELINE_UNETS, SamplingSettings, check_unet_name
from ..utils import atomic_write_text
from . import embedding, metrics, plots
from .probes import PROBES, parse_probes

logger = logging.getLogger(__name__)

CONDITIONS = ("model", "real", "shuffled")
TIMING_FLOOR = "wrong_lengths"


@dataclass
class Clip:
    """One evaluated waveform: ``window`` is the untrimmed model window (or the real clip padded)."""

    audio: np.ndarray  # (channels, samples), exactly the requested length
    window: np.ndarray  # (channels, window samples)


def load_heldout(catalogue: str | Path, n: int | None) -> list[dict[str, Any]]:
    """The first ``n`` held-out rows of a catalogue's ``metadata.jsonl`` (all when ``n`` is None)."""
    path = Path(catalogue) / "metadata.jsonl"
    if not path.is_file():
        raise ValueError(f"catalogue {str(catalogue)!r} has no metadata.jsonl")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(path)}:{number}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{str(path)}:{number}: each line must be a JSON object, got {line.strip()[:80]!r}")
        if row.get("split") == "valid":
            for key, kind in (("path", str), ("caption", str), ("seconds", (int, float))):
                if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                    raise ValueError(f"{str(path)}:{number}: a held-out row needs {key!r}, got {row.get(key)!r}")
            if not math.isfinite(row["seconds"]) or row["seconds"] <= 0:
                raise ValueError(f"{str(path)}:{number}: seconds must be a finite number > 0, got {row['seconds']!r}")
        rows.append(row)
    held = [r for r in rows if r.get("split") == "valid"]
    if not held:
        raise ValueError(f"catalogue {str(catalogue)!r} has no held-out (split == 'valid') rows")
    if n is not None:
        if n < 1:
            raise ValueError(f"--n must be >= 1, got {n}")
        held = held[:n]
    if len(held) < 2:
        raise ValueError(f"evaluation needs at least 2 held-out clips (for shuffled captions and FAD), got {len(held)}")
    return held


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point, so every clip gets another clip's caption."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm.tolist()


def generate_clips(
    pipe,
    captions: Sequence[str],
    seconds: Sequence[float],
    seed: int,
    steps: int,
    guidance_scale: float,
    progress: Callable | None = None,
    **options: Any,
) -> list[Clip]:
    """Generate each caption at its length; keep the whole decoded latents (the window, or the frames sampled)
    for duration adherence. ``options`` go to the pipeline call (``tail_seconds``, ``precision``)."""
    clips = []
    items = list(zip(captions, seconds))
    for i, (caption, secs) in enumerate(progress(items) if progress else items):
        latents = pipe(
            caption,
            seconds_total=secs,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(seed + i),
            output_type="latent",
            **options,
        ).audios
        window = pipe.decode_latents(latents)[0].float().cpu().numpy()
        clips.append(Clip(window[:, : round(secs * pipe.sample_rate)], window))
    return clips


def real_clips(
    catalogue: Path, rows: Sequence[dict], sample_rate: int, channels: int, window_samples: int
) -> list[Clip]:
    clips = []
    for row in rows:
        audio = load_audio(catalogue / row["path"], sample_rate, channels)
        window = np.zeros((channels, max(window_samples, audio.shape[-1])), dtype=np.float32)
        window[:, : audio.shape[-1]] = audio
        clips.append(Clip(audio, window))
    return clips


def measure(clips: Sequence[Clip], rows: Sequence[dict], sample_rate: int) -> dict[str, Any]:
    """Per-clip signal measurements against each row's requested parameters."""
    per_clip = []
    for clip, row in zip(clips, rows):
        want = round(row["seconds"] * sample_rate)
        m: dict[str, Any] = {
            "path": row["path"],
            "exact_length": int(clip.audio.shape[-1] == want),
            "silence_onset": metrics.silence_onset(clip.window, sample_rate),
        }
        m["duration_error"] = m["silence_onset"] - row["seconds"]
        mono = clip.audio.mean(axis=0)
        if not np.any(mono):
            mono = mono + 1e-9  # all-zero audio: the analysers need a finite, non-empty signal
        if row.get("bpm") and row.get("kind") in ("percussive", "mixed"):
            est = metrics.estimate_tempo(mono, sample_rate)
            m["tempo_bpm"] = est
            m["tempo_ok"] = int(metrics.tempo_match(est, row["bpm"]))
        if row.get("kind") in ("percussive", "tonal"):
            ratio = metrics.percussive_ratio(mono, sample_rate)
            m["percussive_ratio"] = ratio
            guess = "percussive" if ratio >= metrics.BINARY_THRESHOLD else "tonal"
            m["kind_ok"] = int(guess == row["kind"])
        if row.get("register") and row.get("kind") == "tonal":
            f0 = metrics.median_f0(mono, sample_rate)
            m["median_midi"] = float(metrics.hz_to_midi(f0)) if math.isfinite(f0) else float("nan")
            m["register_ok"] = int(math.isfinite(f0) and metrics.register_of(m["median_midi"]) == row["register"])
        if row.get("tonic") and row.get("mode") and row.get("kind") in ("tonal", "mixed"):
            est_key = metrics.estimate_key(mono, sample_rate)
            match = metrics.key_match(est_key, (row["tonic"], row["mode"]))
            m["key"] = " ".join(est_key) if est_key else None
            m["key_ok"] = int(bool(match["exact"]))
            m["key_score"] = float(match["score"])
        per_clip.append(m)
    return {"clips": per_clip, "summary": summarise(per_clip)}


def measure_timing(clips: Sequence[Clip], rows: Sequence[dict], sample_rate: int) -> dict[str, Any]:
    """Only the duration rows: where each window falls silent against its row's ``seconds``."""
    per_clip = []
    for clip, row in zip(clips, rows):
        onset = metrics.silence_onset(clip.window, sample_rate)
        per_clip.append(
            {
                "path": row["path"],
                "requested_seconds": clip.audio.shape[-1] / sample_rate,
                "silence_onset": onset,
                "duration_error": onset - row["seconds"],
            }
        )
    summary = summarise(per_clip)
    return {"clips": per_clip, "summary": {k: v for k, v in summary.items() if k == "n" or k in TIMING_ROWS}}


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summarise(per_clip: list[dict]) -> dict[str, Any]:
    def col(key):
        return [c[key] for c in per_clip if key in c]

    errors = col("duration_error")
    return {
        "n": len(per_clip),
        "exact_length": _mean(col("exact_length")),
        "duration_within_0.5s": _mean([float(abs(e) <= 0.5) for e in errors]),
        "duration_mean_abs_error_s": _mean([abs(e) for e in errors]),
        "tempo_within_5pct": _mean(col("tempo_ok")),
        "tempo_n": len(col("tempo_ok")),
        "percussive_vs_tonal": _mean(col("kind_ok")),
        "percussive_vs_tonal_n": len(col("kind_ok")),
        "register": _mean(col("register_ok")),
        "register_n": len(col("register_ok")),
        "key_exact": _mean(col("key_ok")),
        "key_score": _mean(col("key_score")),
        "key_n": len(col("key_ok")),
    }


def embedding_metrics(
    embedder,
    clips: Sequence[Clip],
    captions: Sequence[str],
    real_emb: np.ndarray | None,
    sample_rate: int,
    kinds: Sequence[str] | None = None,
) -> dict[str, float]:
    """CLAP score, text->audio recall@1/@5 and FAD on CLAP audio embeddings.

    With ``kinds`` (the requested kind of every clip, aligned with ``real_emb``'s rows), also
    ``fad_clap_by_kind``: the FAD of the clips asked for each kind against the real clips of that
    kind, averaged with the clip counts as weights (kinds with fewer than 2 clips left out).
    """
    audio_emb = embedder.embed_audio([c.audio for c in clips], sample_rate)
    text_emb = embedder.embed_text(list(captions))
    out = {"clap_score": embedding.clap_score(audio_emb, text_emb)}
    out.update(embedding.retrieval_recall(text_emb, audio_emb, ks=(1, 5)))
    if real_emb is not None:
        out["fad_clap"] = embedding.frechet_distance(audio_emb, real_emb)
        if kinds is not None:
            out["fad_clap_by_kind"] = embedding.fad_by_group(audio_emb, real_emb, kinds)
    return out


# Higher is better for every row but the ones listed here.
LOWER_IS_BETTER = {"duration_mean_abs_error_s", "fad_clap", "fad_clap_by_kind"}
# Rows that measure the timing conditioning: the shuffled-caption floor keeps every clip's seconds_total,
# so on these rows the floor should match the model rather than fall below it.
TIMING_ROWS = {"duration_within_0.5s", "duration_mean_abs_error_s"}
REPORT_ROWS = [
    ("exact_length", "exact length"),
    ("duration_within_0.5s", "duration within ±0.5 s"),
    ("duration_mean_abs_error_s", "duration mean abs error (s)"),
    ("tempo_within_5pct", "tempo within 5 %"),
    ("percussive_vs_tonal", "percussive vs tonal correct"),
    ("register", "register correct"),
    ("key_exact", "key and mode exact"),
    ("key_score", "key score (MIREX)"),
    ("clap_score", "CLAP score"),
    ("recall@1", "text→audio recall@1"),
    ("recall@5", "text→audio recall@5"),
    ("fad_clap", "FAD (CLAP embeddings)"),
    ("fad_clap_by_kind", "FAD within each requested kind"),
]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def sampling_note(sampling: dict[str, Any] | None) -> str:
    """The speed settings that differ from the model's own and the pipeline's defaults, for the report's header."""
    if not sampling:
        return ""
    named = {"scheduler": "scheduler {}", "tail_seconds": "tail {} s", "griffin_lim_iters": "{} Griffin-Lim iterations"}
    parts = [text.format(sampling[key]) for key, text in named.items() if sampling.get(key) is not None]
    if sampling.get("unet", "base") != "base":  # the model's own goes without saying
        asked = sampling.get("unet_asked")
        parts.insert(0, f"{sampling['unet']} U-Net" + (f" ({asked})" if asked not in (None, sampling["unet"]) else ""))
    if sampling.get("precision", "auto") != "auto":
        parts.append(f"precision {sampling['precision']}")
    return (", " + ", ".join(parts)) if parts else ""


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "# stable-audio-kit evaluation",
        "",
        f"model: `{report['model']}`  ",
        f"catalogue: `{report['catalogue']}` ({report['n']} held-out clips)  ",
        f"sampling: {report['steps']} steps, CFG {report['guidance_scale']}, seed {report['seed']}"
        + sampling_note(report.get("sampling")),
        "",
    ]
    columns = [*CONDITIONS, TIMING_FLOOR] if TIMING_FLOOR in s else list(CONDITIONS)
    header = "| metric | model | real (ceiling) | shuffled captions (floor) |"
    lines += [
        header + (" wrong lengths (timing floor) |" if TIMING_FLOOR in s else ""),
        "|---" * len(columns) + "|---|",
    ]
    for key, label in REPORT_ROWS:
        if all(s[c].get(key) is None for c in CONDITIONS):
            continue
        arrow = " ↓" if key in LOWER_IS_BETTER else ""
        lines.append(f"| {label}{arrow} | " + " | ".join(_fmt(s[c].get(key)) for c in columns) + " |")
    counts = s["model"]
    lines += [
        "",
        f"Counts: tempo prompts {counts.get('tempo_n', 0)}, "
        f"percussive/tonal prompts {counts.get('percussive_vs_tonal_n', 0)}, "
        f"register prompts {counts.get('register_n', 0)}, key prompts {counts.get('key_n', 0)}.",
        "Duration adherence is measured on the untrimmed window: where the audio falls silent for good "
        f"(frame RMS below {metrics.SILENCE_THRESHOLD_DBFS:.0f} dBFS) compared with `seconds_total`. "
        "The shuffled-caption floor keeps each clip's `seconds_total`, so it shows what the text adds: on the "
        "duration rows it measures the timing conditioning, as the model's column does.",
    ]
    if s["shuffled"].get("fad_clap") is not None:
        lines.append(
            "FAD compares sets, and shuffling the captions leaves the set of prompts as it was: the floor's FAD "
            "differs from the model's only through which length each caption is generated at, so that row cannot "
            "show that the text matters. FAD within each requested kind can: it compares what was generated for "
            "the percussive, tonal and mixed prompts with the real clips of that kind (weighted mean)."
        )
    if TIMING_FLOOR in s:
        lines.append(
            "The wrong-lengths column is the floor of the duration rows: each clip's own caption with another "
            "held-out clip's `seconds_total`, measured against its own (a partner of about the same length "
            "still counts)."
        )
    if report.get("probes"):
        lines += ["", *render_probes(report["probes"])]
    if report.get("memorisation"):
        from .memorisation import render_memorisation

        lines += ["", *render_memorisation(report["memorisation"])]
    return "\n".join(lines) + "\n"


def render_probes(probes: dict[str, Any]) -> list[str]:
    """The probes' rows as one markdown table: each metric as written, swapped, and its chance or target."""
    lines = [
        "## Probes",
        "",
        "The same held-out captions generated twice with the same seed: as written, and with one span rewritten.",
        "",
        "| probe | clips | metric | as written | swapped | chance / target |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, probe in probes.items():
        for row in probe["rows"].values():
            cells = [f"{name} ({probe['change']})", str(probe["n"]), row["label"]]
            cells += [_fmt(row[column]) for column in ("as_written", "swapped", "reference")]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def evaluate(
    model: str | Path | None,
    catalogue: str | Path,
    out_dir: str | Path,
    n: int | None = None,
    clap: str | Path | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    timing_floor: bool = True,
    probes: str | Sequence[str] | None = None,
    probe_n: int = 40,
    memorisation: str | Path | None = None,
    memorisation_top_k: int | None = None,
    memorisation_threshold: float | None = None,
    scheduler: str | None = None,
    tail_seconds: float | None = None,
    precision: str = "auto",
    griffin_lim_iters: int | None = None,
    unet: str = "base",
    unet_asked: str | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation and write ``report.json``, ``report.md``, ``spectrograms.png`` and
    ``duration.png`` into ``out_dir``. ``clap`` is a CLAP model folder for the embedding metrics
    (default: ``<model>/clap`` if it exists); without one those rows are left out. ``timing_floor``
    adds the wrong-lengths column of the duration rows (one more generation per clip). ``probes``
    names probes of :data:`.probes.PROBES` ("key-swap,tempo-swap"), each run on up to ``probe_n`` of
    all the held-out clips (two generations per clip); their rows go to ``report["probes"]``. ``memorisation``
    names the training catalogue to check the model's clips (and, as a control, the real held-out clips) against
    for near-copies (:mod:`.memorisation`; it needs the CLAP), into ``report["memorisation"]``. ``scheduler``,
    ``tail_seconds``, ``precision``, ``griffin_lim_iters`` and ``unet`` (the model directory's own U-Net or its
    distilled student) are the speed settings (:class:`~stable_audio_kit.sampling.SamplingSettings`), recorded in
    ``report["sampling"]``, with ``unet_asked``, the ``--unet`` that chose ``unet`` (``"auto"``: by
    :func:`~stable_audio_kit.sampling.choose_unet`; ``None``: ``unet`` itself); ``steps`` and ``guidance_scale``
    (``None``: the model's own) are recorded as sampled."""
    from tqdm.auto import tqdm

    from ..assembly import DEFAULT_MODEL_DIR, check_distilled_dir, load_pipeline

    catalogue = Path(catalogue)
    out_dir = Path(out_dir)
    rows = load_heldout(catalogue, n)
    check_unet_name(unet, PIPELINE_UNETS)  # "auto" is the command's to resolve, before it calls this
    sampling = SamplingSettings(steps, scheduler, tail_seconds, precision, griffin_lim_iters, unet).check()
    if sampling.unet == "distilled":
        check_distilled_dir(model if model is not None else DEFAULT_MODEL_DIR)
    # The probes pick their clips and rewrite their captions before any model loads, so an unknown
    # probe or a catalogue with nothing to probe fails at once.
    planned = [PROBES[name](load_heldout(catalogue, None), probe_n, seed) for name in parse_probes(probes)]
    check = None
    if memorisation is not None:
        from .memorisation import MemorisationCheck

        check = MemorisationCheck.plan(memorisation, memorisation_top_k, memorisation_threshold)
    metrics.require_librosa()  # fail now, not after generating, if the [eval] extra is missing
    pipe = load_pipeline(model, unet=sampling.unet).to(device)
    pipe.set_progress_bar_config(disable=True)
    sampling.apply(pipe)
    # The model's own steps and guidance for a None, checked (a distilled student's refusals) before any clip.
    steps, guidance_scale = pipe.check_sampling(steps, guidance_scale)
    sampling.steps = steps
    options = {"tail_seconds": sampling.tail_seconds, "precision": sampling.precision}
    lengths = [(r["path"], r["seconds"]) for r in rows] + [(s.path, s.seconds) for p in planned for s in p.swaps]
    too_long = [(path, secs) for path, secs in lengths if secs > pipe.max_seconds]
    if too_long:
        path, secs = too_long[0]
        raise ValueError(f"clip {path!r} lasts {secs} s, beyond the model's maximum {pipe.max_seconds:.3f} s")
    embedder = _load_embedder(clap, model)
    if check is not None and embedder is None:
        raise ValueError("the memorisation check needs a CLAP model: pass --clap DIR (or put one in <model>/clap)")
    out_dir.mkdir(parents=True, exist_ok=True)

    sr = pipe.sample_rate
    captions = [r["caption"] for r in rows]
    seconds = [r["seconds"] for r in rows]
    perm = derangement(len(rows), seed)
    bar = (lambda it, desc: tqdm(it, desc=desc, unit="clip")) if progress else (lambda it, desc: it)
    conditions = {
        "model": generate_clips(
            pipe, captions, seconds, seed, steps, guidance_scale, lambda it: bar(it, "model"), **options
        ),
        "real": real_clips(catalogue, rows, sr, pipe.audio_channels, pipe.window_samples),
        "shuffled": generate_clips(
            pipe,
            [captions[j] for j in perm],
            seconds,
            seed,
            steps,
            guidance_scale,
            lambda it: bar(it, "shuffled"),
            **options,
        ),
    }
    report: dict[str, Any] = {
        "model": str(model) if model else "(bundled default model)",
        "catalogue": str(catalogue),
        "n": len(rows),
        "steps": steps,
        "sampling": {**sampling.as_dict(), "unet_asked": unet_asked or sampling.unet},
        "guidance_scale": guidance_scale,
        "seed": seed,
        "shuffle": perm,
        "summary": {},
        "clips": {},
        "probes": {},
    }
    real_emb = embedder.embed_audio([c.audio for c in conditions["real"]], sr) if embedder else None
    kinds = [r["kind"] for r in rows] if all(r.get("kind") for r in rows) else None
    for name, clips in conditions.items():
        measured = measure(clips, rows, sr)
        summary = measured["summary"]
        if embedder is not None:
            summary.update(
                embedding_metrics(embedder, clips, captions, real_emb if name != "real" else None, sr, kinds)
            )
            if name == "real":
                summary["fad_clap"] = None
                summary.pop("fad_clap_by_kind", None)
        report["summary"][name] = summary
        report["clips"][name] = measured["clips"]
    if timing_floor:
        wrong = generate_clips(
            pipe,
            captions,
            [seconds[j] for j in perm],
            seed,
            steps,
            guidance_scale,
            lambda it: bar(it, TIMING_FLOOR),
            **options,
        )
        measured = measure_timing(wrong, rows, sr)
        report["summary"][TIMING_FLOOR] = measured["summary"]
        report["clips"][TIMING_FLOOR] = measured["clips"]
    for probe in planned:
        report["probes"][probe.name] = probe.run(
            pipe, steps, guidance_scale, lambda it, p=probe: bar(it, p.name), **options
        )
    if check is not None:
        from .memorisation import CheckedClip

        clip_sets = {
            "model": [
                CheckedClip(f"model_{i:04d}", clip.audio, caption, group=row.get("kind"))
                for i, (clip, caption, row) in enumerate(zip(conditions["model"], captions, rows))
            ],
            "real": [
                CheckedClip(
                    row["path"], clip.audio, row["caption"], str((catalogue / row["path"]).resolve()), row.get("kind")
                )
                for clip, row in zip(conditions["real"], rows)
            ],
        }
        report["memorisation"] = check.run(embedder, clip_sets, sr, out_dir, bar)

    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=float))
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    shown = min(len(rows), 12)
    plots.spectrogram_grid_png(
        [c.audio for c in conditions["model"][:shown]], sr, captions[:shown], out_dir / "spectrograms.png"
    )
    measured_onsets = [c["silence_onset"] for c in report["clips"]["model"]]
    plots.duration_plot_png(seconds, measured_onsets, out_dir / "duration.png")
    return report


def _load_embedder(clap: str | Path | None, model: str | Path | None):
    from ..pipeline import DEFAULT_MODEL_DIR

    candidates = [Path(clap)] if clap else [Path(model or DEFAULT_MODEL_DIR) / "clap"]
    for path in candidates:
        if path.is_dir():
            from ..clap_audio import ClapAudioEmbedder

            return ClapAudioEmbedder.from_pretrained(path)
    if clap:
        raise ValueError(f"CLAP folder {str(clap)!r} does not exist")
    logger.warning("no CLAP model found (pass --clap DIR); CLAP score, recall and FAD are left out")
    return None
