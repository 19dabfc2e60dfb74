"""Copy a trained demo model into the package (stable_audio_kit/pretrained/demo) with its model card.

    python tools/bundle_demo.py WORK_DIR [--out stable_audio_kit/pretrained/demo] [--max-mb 60]

WORK_DIR is the folder `tools/train_demo.sh` filled: `final/` (the exported pipeline with its
`clap/`), `report/report.md` (from `sak evaluate`), `catalogue/metadata.jsonl`,
`runs/{clap,vae,unet,unet_numbers,unet_beats,unet_keys,vae_decoder}`, `catalogue_t/metadata.jsonl` (the
catalogue with transposed copies) and, if present, `vae_decoder_pitch.md` or `vae_pitch.md` (from
`tools/vae_pitch_check.py`).
A component retrained on top of the bundled model's others (say a new U-Net with the bundled CLAP and
VAE) needs only its own run: the card keeps what the bundled card said about the missing runs and the
VAE pitch check.
Weights are stored in float16 to keep the package small; `StableAudioKitPipeline.from_pretrained`
computes in float32. The folder is written beside the target and renamed into place.
The bundle names no local folder: the card and `evaluation.md` name the model and the catalogue instead
of the folders they were read from, the configs lose the `_name_or_path` that `from_pretrained` records,
and bundling stops if a path of WORK_DIR, the repository or the home folder is left in the card.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# The sampler and the Griffin-Lim iterations the bundled model ships with: with the default step count
# (stable_audio_kit.sampling.DEFAULT_STEPS) the fastest setting whose `sak evaluate` metrics stay within
# noise of 50 DPM-Solver++ steps with 32 iterations (benchmarks/results/speed_quality.md).
BUNDLED_SAMPLING = {"scheduler": "unipc", "griffin_lim_iters": 16}
SHIPPED_SAMPLING_NOTE = (
    "It samples with UniPC at 15 steps and decodes with 16 Griffin-Lim iterations: the fastest setting whose "
    "`sak evaluate` metrics stay within noise of the 50 DPM-Solver++ steps and 32 iterations the scores below "
    "were measured with (the toolkit's README, Speed)."
)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def catalogue_name(work: Path) -> str:
    """The catalogue as the command that renders it, e.g. ``"the demo catalogue (`sak catalogue make ...`)"``."""
    text = (work / "catalogue" / "metadata.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line]
    return f"the demo catalogue (`sak catalogue make --clips {len(rows)} --seed {rows[0]['seed']}`)"


def public_report(report_md: str, catalogue: str) -> str:
    """`sak evaluate`'s report.md with its header naming the bundled model and ``catalogue`` instead of the
    local folders the evaluation read them from."""
    lines = []
    for line in report_md.splitlines():
        if line.startswith("model: "):
            line = "model: the bundled model  "
        elif line.startswith("catalogue: "):
            held_out = re.search(r"\((\d+) held-out clips\)", line)
            if held_out is None:
                raise ValueError(f"report.md: no held-out clip count in {line!r}")
            line = f"catalogue: {catalogue}, {held_out.group(1)} held-out clips  "
        lines.append(line)
    return "\n".join(lines) + "\n"


def strip_name_or_path(folder: Path) -> None:
    """Drop ``_name_or_path`` (the local folder a component was loaded from) from every config in ``folder``."""
    for path in folder.rglob("*.json"):
        text = path.read_text()
        if '"_name_or_path"' not in text:
            continue
        config = json.loads(text)
        if isinstance(config, dict) and "_name_or_path" in config:
            del config["_name_or_path"]
            path.write_text(json.dumps(config, indent=2) + "\n")


def check_no_local_paths(text: str, name: str, folders: list[Path]) -> None:
    """Stop if ``text`` (what goes into the package as ``name``) names a path inside one of ``folders``."""
    for folder in folders:
        if str(folder) not in ("/", ".") and f"{folder}/" in text:
            raise SystemExit(
                f"bundle_demo: {name} would name the local folder {str(folder)!r}; re-make the file it comes from "
                "(a `vae_pitch_check.py` table needs `--label`)"
            )


def run_summary(run_dir: Path, previous_card: str = "") -> str:
    """``"N steps (`name` run)"`` from the run's newest checkpoint. A component reused from the bundled
    model (its run folder is not in WORK_DIR) keeps what the bundled card says about it."""
    from stable_audio_kit.train.common import latest_checkpoint

    if not run_dir.is_dir():
        for line in previous_card.splitlines():
            if line.startswith("- ") and f"(`{run_dir.name}` run)" in line:
                return line.rsplit(": ", 1)[-1]  # "- what was trained (...): N steps (`name` run)"
        raise ValueError(f"run {str(run_dir)!r} is missing and the bundled model card does not describe it")
    last = latest_checkpoint(run_dir)
    if last is None:
        raise ValueError(f"run {str(run_dir)!r} has no checkpoint")
    step = json.loads((last / "trainer_state.json").read_text())["step"]
    return f"{step} steps (`{run_dir.name}` run)"


def optional_run(run_dir: Path, previous_card: str = "") -> str | None:
    """:func:`run_summary` of a recipe step that an older model may not have had; ``None`` without it."""
    if not run_dir.is_dir() and f"(`{run_dir.name}` run)" not in previous_card:
        return None
    return run_summary(run_dir, previous_card)


def limitations(summary: dict) -> list[str]:
    """Card lines naming what the evaluation shows the model does not do (from report.json)."""
    from stable_audio_kit.evaluation.report import LOWER_IS_BETTER, REPORT_ROWS, TIMING_FLOOR, TIMING_ROWS

    model, real = summary["model"], summary["real"]
    # The duration rows have their own floor (wrong lengths) when the report has it; the shuffled
    # captions keep the lengths, so they are no floor there.
    floors = {key: ("shuffled", "shuffled captions") for key, _ in REPORT_ROWS if key not in TIMING_ROWS}
    if TIMING_FLOOR in summary:
        floors.update({key: (TIMING_FLOOR, "wrong lengths") for key in TIMING_ROWS})
    weak = []
    for key, name in REPORT_ROWS:
        # FAD compares sets; the shuffled captions are the same set of prompts (the report says so).
        # FAD within each requested kind is the row that can tell them apart.
        if key not in floors or key in ("exact_length", "fad_clap"):
            continue
        column, floor_name = floors[key]
        m, f = model.get(key), summary[column].get(key)
        if m is None or f is None:
            continue
        better = f - m if key in LOWER_IS_BETTER else m - f
        if better < 0.05:
            ceiling = "" if real.get(key) is None else f", real clips {real[key]:.3f}"
            weak.append(f"{name}: {m:.3f} ({floor_name} {f:.3f}{ceiling})")
    lines = ["## Limitations", ""]
    if weak:
        lines.append("Not clearly better than its floor (by less than 0.05):")
        lines += [f"- {w}" for w in weak]
    else:
        lines.append("Every metric is at least 0.05 better than its floor.")
    if model.get("fad_clap") is not None and summary["shuffled"].get("fad_clap") is not None:
        lines += [
            "",
            f"FAD against the real clips is {model['fad_clap']:.3f} (shuffled captions "
            f"{summary['shuffled']['fad_clap']:.3f}). Shuffling the captions keeps the set of prompts, so FAD "
            "cannot tell the two apart: it says how close the generated set is to the real one, not whether "
            "each clip follows its text"
            + (
                f". FAD within each requested kind can: {model['fad_clap_by_kind']:.3f} against "
                f"{summary['shuffled']['fad_clap_by_kind']:.3f}."
                if model.get("fad_clap_by_kind") is not None and summary["shuffled"].get("fad_clap_by_kind") is not None
                else "."
            ),
        ]
    within = model.get("duration_within_0.5s")
    if within is not None:
        floor_within = summary.get(TIMING_FLOOR, {}).get("duration_within_0.5s")
        lines += [
            "",
            f"It falls silent within 0.5 s of `seconds_total` in {within:.0%} of the clips (real clips "
            f"{real.get('duration_within_0.5s', float('nan')):.0%}"
            + (f", given another clip's length {floor_within:.0%}" if floor_within is not None else "")
            + "); the shuffled-caption floor keeps the requested lengths, so it is no floor there.",
        ]
    lines += [
        "",
        "It is a 9M-parameter U-Net trained for under four hours on a CPU: every output has exactly the requested "
        'length, and with a tempo in the prompt ("at 96 bpm") it plays on that beat grid, but expect the right '
        "kind of sound (drums or tonal, register) more often than the right notes, and the key named in the "
        "prompt only some of the time.",
        "",
    ]
    return lines


def model_card(work: Path, pipe, report_md: str, sizes: dict[str, float], previous_card: str = "") -> str:
    rows = [json.loads(line) for line in (work / "catalogue" / "metadata.jsonl").read_text().splitlines() if line]
    train = [r for r in rows if r["split"] == "train"]
    hours = sum(r["seconds"] for r in train) / 3600
    transposed = []
    if (work / "catalogue_t" / "metadata.jsonl").is_file():
        text_t = (work / "catalogue_t" / "metadata.jsonl").read_text()
        rows_t = [json.loads(line) for line in text_t.splitlines() if line]
        copies = [r for r in rows_t if r.get("transposed_from") is not None]
        transposed = [
            "",
            f"The last two steps below trained on the same catalogue with `--transpositions 2`: {len(copies)} more "
            f"training clips ({sum(r['seconds'] for r in copies) / 3600:.2f} h), every tonal training clip again in "
            "two other keys of its mode, with the caption's key changed to match.",
        ]
    params = {
        n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("vae", "text_encoder", "projection", "unet")
    }
    lines = [
        "# stable-audio-kit demo model",
        "",
        f"A small timing-conditioned text-to-audio model: {pipe.sample_rate} Hz, {pipe.audio_channels} channel(s), "
        f"up to {pipe.max_seconds:.2f} s. It is the default of `sak generate` and "
        "`StableAudioKitPipeline.from_pretrained()`. " + SHIPPED_SAMPLING_NOTE,
        "",
        "## Training data",
        "",
        f"The procedural MIDI catalogue of `sak catalogue make --clips {len(rows)} --seed {rows[0]['seed']}`: "
        f"{len(train)} training clips ({hours:.2f} h) rendered with FluidSynth through the TimGM6mb General MIDI "
        "SoundFont, captioned in the style of MidiCaps (instruments, tempo, key and mode, register, dynamics, "
        f"texture, mood); {len(rows) - len(train)} held-out clips from other compositions for evaluation. "
        "It knows only what that catalogue holds: GM instruments and drum grooves, 60-160 bpm, 1-10 s.",
        *transposed,
        "",
        "## Training",
        "",
        "Trained on a 2-core CPU with the toolkit's own commands (`tools/train_demo.sh` in the source repository, "
        "configs in `configs/demo/`, the recipe and what each step measured in `docs/demo-model.md`):",
        "",
        f"- CLAP (text tower {params['text_encoder']:,} parameters): "
        f"{run_summary(work / 'runs' / 'clap', previous_card)}",
        f"- VAE (`{type(pipe.vae).__name__}`, {params['vae']:,} parameters, {pipe.vae.hop_length}x downsampling to "
        f"{pipe.vae.latent_channels} latent channels): {run_summary(work / 'runs' / 'vae', previous_card)}",
        f"- U-Net ({params['unet']:,} parameters, EMA weights) and timing projection: "
        f"{run_summary(work / 'runs' / 'unet', previous_card)}",
        *(
            [
                "- then the same with the prompt's numbers embedded by value (`prompt_numbers`): "
                f"{run_summary(work / 'runs' / 'unet_numbers', previous_card)}"
            ]
            if pipe.projection.config.get("prompt_numbers", False)
            else []
        ),
        *(
            [
                "- then the same with the beat grid of the prompt's tempo as four more input channels "
                f"(`beat_grid_channel`): {run_summary(work / 'runs' / 'unet_beats', previous_card)}"
            ]
            if pipe.unet.config.get("beat_grid_channel", False)
            else []
        ),
        *(
            [
                "- then the same with the prompt's key (scale and tonic) in the FiLM embedding (`key_conditioning`), "
                f"on the catalogue with transposed copies: {keys}"
            ]
            if (keys := optional_run(work / "runs" / "unet_keys", previous_card))
            else []
        ),
        *(
            [
                "- and, beside it, the VAE's decoder alone (`train_encoder: false`: encoder and latents unchanged) "
                f"on the same catalogue: {decoder}"
            ]
            if (decoder := optional_run(work / "runs" / "vae_decoder", previous_card))
            else []
        ),
        "",
        "Weights are stored in float16 (" + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes.items()) + ").",
        "",
        "## Measured scores",
        "",
        report_md.split("\n", 1)[1].strip(),
        "",
        *limitations(json.loads((work / "report" / "report.json").read_text())["summary"]),
    ]
    pitch = work / "vae_decoder_pitch.md"
    if not pitch.is_file():
        pitch = work / "vae_pitch.md"
    heading = "## How well the VAE keeps pitch"
    if pitch.is_file():  # tools/vae_pitch_check.py on the VAE alone
        lines += [heading, "", pitch.read_text().strip(), ""]
    elif heading in previous_card:  # the VAE is the bundled one: its check still holds
        lines += [heading, "", previous_card.split(heading, 1)[1].split("\n## ", 1)[0].strip(), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "stable_audio_kit" / "pretrained" / "demo")
    parser.add_argument("--max-mb", type=float, default=60.0)
    args = parser.parse_args()

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.sampling import SamplingSettings
    from stable_audio_kit.utils import atomic_dir

    shipped = SamplingSettings(**BUNDLED_SAMPLING)

    final, report = args.work / "final", args.work / "report" / "report.md"
    for need in (final, report, args.work / "catalogue" / "metadata.jsonl"):
        if not need.exists():
            raise SystemExit(f"bundle_demo: {str(need)!r} is missing; run tools/train_demo.sh {args.work} first")
    pipe = StableAudioKitPipeline.from_pretrained(final)
    shipped.apply(pipe)  # the sampler and decode the bundle ships with (README, "Speed")
    previous_card = (args.out / "README.md").read_text() if (args.out / "README.md").is_file() else ""
    evaluation = public_report(report.read_text(), catalogue_name(args.work))
    local = [args.work, args.work.resolve(), REPO, Path.home()]
    with atomic_dir(args.out, overwrite=True) as tmp:
        pipe.to(torch.float16).save_pretrained(tmp)
        if (final / "clap").is_dir():
            from stable_audio_kit.clap_audio import ClapAudioEmbedder

            embedder = ClapAudioEmbedder.from_pretrained(final / "clap")
            embedder.model.to(torch.float16)
            embedder.save_pretrained(tmp / "clap")
        strip_name_or_path(tmp)
        sizes = {p.name: folder_mb(p) for p in sorted(tmp.iterdir()) if p.is_dir()}
        total = folder_mb(tmp)
        if total > args.max_mb:
            raise SystemExit(f"bundle_demo: the model takes {total:.1f} MB, over --max-mb {args.max_mb}")
        pipe = pipe.to(torch.float32)
        card = model_card(args.work, pipe, evaluation, sizes, previous_card)
        for name, text in (("the model card", card), ("evaluation.md", evaluation)):
            check_no_local_paths(text, name, local)
        (tmp / "README.md").write_text(card)
        (tmp / "evaluation.md").write_text(evaluation)
    print(f"bundled {total:.1f} MB into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
