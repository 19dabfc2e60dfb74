"""Put a distilled student of the bundled U-Net into the package: stable_audio_kit/pretrained/demo/unet_distilled.

    python tools/bundle_distilled.py RUN_DIR [--checkpoint step_...] [--out stable_audio_kit/pretrained/demo]

RUN_DIR is a `sak train distill` run whose teacher is the bundled model (configs/demo/distill.yaml). The run's
EMA student (newest checkpoint unless --checkpoint) is stored in float16 like the rest of the bundle, without the
`_name_or_path` that `from_pretrained` records; the folder is written beside the target and renamed into place.
The student must have been distilled from the U-Net the bundle holds now: its weights at the start of the run were
the teacher's, so the run's config must name the bundled model and the teacher's weights must be unchanged since
(checked against the run's `teacher.json`, the sha256 of the teacher's U-Net weights the run recorded). The
student's own `unet_distilled/teacher.json` names that teacher, so the toolkit never pairs it with another U-Net.
The model card (README.md of the bundle) gets a section on the student, replacing an earlier one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
HEADING = "## The distilled student: `unet_distilled/`"


def card_section(run: Path, step: int) -> str:
    """What the card says about the student: how it samples, how it was distilled, how to load it."""
    cfg = OmegaConf.load(run / "config.yaml")
    return "\n".join(
        [
            HEADING,
            "",
            f"A step-distilled student of this U-Net: it samples in {cfg.steps} DDIM steps with classifier-free "
            f"guidance {cfg.guidance_scale:g} baked into one conditional forward a step. It was distilled with "
            f"`sak train distill` (`configs/demo/distill.yaml`) from {cfg.teacher_steps} guided "
            f"{cfg.teacher_scheduler} steps of this U-Net on {cfg.trajectories} teacher paths conditioned on "
            f"training crops: {step} steps, EMA weights. `sak generate` samples with it unless a request sets "
            "steps, a sampler, guidance, a negative prompt or a LoRA (`--unet auto`); in Python, "
            '`load_pipeline(unet="distilled")`. Its quality and speed against this U-Net\'s own defaults are in the '
            "toolkit's README (Speed). `unet_distilled/teacher.json` names this U-Net's weights (their sha256): "
            "beside other weights in `unet/`, the student is not used.",
            "",
        ]
    )


def with_section(card: str, section: str) -> str:
    """``card`` with ``section`` in place of an earlier one, else before "## Measured scores" (or at the end)."""
    if HEADING in card:
        before, rest = card.split(HEADING, 1)
        after = rest.split("\n## ", 1)
        return before + section + ("\n## " + after[1] if len(after) > 1 else "")
    if "\n## Measured scores" in card:
        before, after = card.split("\n## Measured scores", 1)
        return before + "\n" + section + "\n## Measured scores" + after
    return card.rstrip("\n") + "\n\n" + section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "stable_audio_kit" / "pretrained" / "demo")
    args = parser.parse_args()

    from stable_audio_kit.students import write_teacher_record
    from stable_audio_kit.distillation import DISTILLED_SUBFOLDER
    from stable_audio_kit.lora import weights_sha256
    from stable_audio_kit.train.common import latest_checkpoint, run_kind
    from stable_audio_kit.unet import UNet1DConditionModel
    from stable_audio_kit.utils import atomic_dir, atomic_write_text

    if run_kind(args.run) != "distill":
        raise SystemExit(f"bundle_distilled: {str(args.run)!r} is not a `sak train distill` run")
    ckpt = args.run / "checkpoints" / args.checkpoint if args.checkpoint else latest_checkpoint(args.run)
    if ckpt is None or not (ckpt / "export" / "unet").is_dir():
        raise SystemExit(f"bundle_distilled: no exported student in {str(args.run)!r}")
    teacher = UNet1DConditionModel.from_pretrained(args.out / "unet")
    recorded = json.loads((args.run / "teacher.json").read_text())["unet_sha256"]
    if weights_sha256(teacher) != recorded:
        raise SystemExit(
            f"bundle_distilled: the U-Net in {str(args.out)!r} is not the teacher this run distilled (sha256 differs)"
        )
    student = UNet1DConditionModel.from_pretrained(ckpt / "export" / "unet")
    target = args.out / DISTILLED_SUBFOLDER
    with atomic_dir(target, overwrite=True) as tmp:
        student.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
        config = json.loads((Path(tmp) / "config.json").read_text())
        config.pop("_name_or_path", None)
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_teacher_record(tmp, args.out / "unet", recorded)  # the student names its teacher (student_is_stale)
    card = args.out / "README.md"
    if card.is_file():
        trained = json.loads((ckpt / "trainer_state.json").read_text())["step"]
        atomic_write_text(card, with_section(card.read_text(), card_section(args.run, trained)))
    steps, guidance = student.config.distilled_steps, student.config.distilled_guidance_scale
    size = sum(p.stat().st_size for p in target.iterdir()) / 2**20
    print(f"bundled the {steps}-step student (guidance {guidance:g}) from {ckpt.name}: {size:.1f} MB in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
