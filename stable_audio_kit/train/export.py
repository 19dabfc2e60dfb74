"""``sak export``: a run's trained components put into a pipeline directory (or a LoRA run's adapter folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..utils import atomic_write_text
from .common import latest_checkpoint, run_kind


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    checkpoint: str | None = None,
    overwrite: bool = False,
    base: str | Path | None = None,
    merge_lora: bool = False,
) -> Path:
    """Write a pipeline directory: the run's base model with the trained components put in.

    ``checkpoint`` names a ``step_…`` folder; the default is the newest. ``base`` puts the trained
    components into another pipeline directory than the run's own ``model`` (e.g. the VAE of one run
    into the output of a CLAP run). A full CLAP model (``clap/``, read by ``sak evaluate``) is carried
    over from a CLAP run's checkpoint, or else from the base directory.

    A distillation run exports the base model with its student in ``unet_distilled/``, whose ``teacher.json``
    names the base U-Net (:func:`~stable_audio_kit.students.write_teacher_record`); a base whose U-Net is not the
    run's teacher is refused (:mod:`stable_audio_kit.distillation`). A LoRA run (``lora.rank > 0``) exports its
    adapter folder alone (:mod:`stable_audio_kit.lora`), or with ``merge_lora`` a pipeline directory with the
    adapter added into the base weights.
    """
    from ..pipeline import StableAudioKitPipeline
    from ..utils import atomic_dir

    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    ckpt = (run_dir / "checkpoints" / checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None or not ckpt.is_dir():
        raise ValueError(f"no checkpoint {checkpoint or ''} to export in {str(run_dir)!r}")
    if Path(out_dir).exists() and not overwrite:
        raise ValueError(f"output folder {str(out_dir)!r} already exists; choose another or pass --force")
    adapter = ckpt / "export" / "lora"
    if merge_lora and not adapter.is_dir():
        raise ValueError(f"{str(run_dir)!r} is not a LoRA run (lora.rank > 0): --merge-lora has no adapter to merge")
    if adapter.is_dir() and not merge_lora:
        if base is not None:
            raise ValueError("a LoRA run exports its adapter alone; --base applies with --merge-lora")
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            for file in adapter.iterdir():
                shutil.copy2(file, Path(tmp) / file.name)
            _write_training_info(Path(tmp), kind, run_dir, ckpt)
        return Path(out_dir)
    base_dir = Path(base) if base is not None else Path(cfg.model)
    pipe = StableAudioKitPipeline.from_pretrained(base_dir)
    if adapter.is_dir():
        from ..lora import merge

        pipe.load_lora_weights(adapter)  # refuses a base the adapter was not trained on
        merge(pipe)
    else:
        components = load_exported_components(kind, ckpt / "export")
        if kind != "distill":  # a student goes beside the teacher's U-Net, not in its place
            pipe = StableAudioKitPipeline(**{**pipe.components, **components})
    if kind == "distill":  # ... beside the U-Net it was distilled from, which its teacher.json names
        from ..lora import weights_sha256

        teacher = weights_sha256(pipe.unet)
        recorded = run_dir / "teacher.json"  # written by the run (train/distill.py)
        if recorded.is_file() and json.loads(recorded.read_text()).get("unet_sha256") != teacher:
            raise ValueError(
                f"the U-Net of {str(base_dir)!r} is not the teacher the run {str(run_dir)!r} distilled its student "
                "from (its weights' sha256 differs from the run's teacher.json): export into the model it was "
                "distilled from"
            )
    clap_src = ckpt / "export" / "clap" if kind == "clap" else base_dir / "clap"
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        if kind == "distill":
            from ..students import write_teacher_record
            from ..distillation import DISTILLED_SUBFOLDER

            student_dir = Path(tmp) / DISTILLED_SUBFOLDER
            components["unet"].save_pretrained(student_dir, safe_serialization=True)
            write_teacher_record(student_dir, Path(tmp) / "unet", teacher)
        if clap_src.is_dir():
            shutil.copytree(clap_src, Path(tmp) / "clap")
        _write_training_info(Path(tmp), kind, run_dir, ckpt, merged_lora=adapter.is_dir())
    return Path(out_dir)


def _write_training_info(folder: Path, kind: str, run_dir: Path, ckpt: Path, **extra: Any) -> None:
    """``training.json``: which run and checkpoint an exported folder comes from."""
    trained = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    info = {"kind": kind, "run": str(run_dir), "checkpoint": ckpt.name, "step": trained}
    info.update({key: value for key, value in extra.items() if value})
    atomic_write_text(folder / "training.json", json.dumps(info, indent=2))


def _exported_loaders() -> dict[str, dict[str, Any]]:
    """For each run kind, the components it trains and the function that loads each from a folder."""
    from transformers import AutoTokenizer, ClapTextModelWithProjection

    from ..conditioning import ConditioningProjection
    from ..unet import UNet1DConditionModel
    from ..vae import load_vae_folder

    return {
        "unet": {"unet": UNet1DConditionModel.from_pretrained, "projection": ConditioningProjection.from_pretrained},
        # A student: `export_run` writes it into unet_distilled/ beside the teacher's U-Net.
        "distill": {"unet": UNet1DConditionModel.from_pretrained},
        "vae": {"vae": load_vae_folder},  # the class (Oobleck or spectral) is read from config.json
        "clap": {
            "text_encoder": ClapTextModelWithProjection.from_pretrained,
            "tokenizer": AutoTokenizer.from_pretrained,
        },
    }


def load_exported_components(kind: str, folder: Path) -> dict[str, Any]:
    """The components a ``kind`` run trained, loaded from a checkpoint's ``export/`` folder."""
    loaders = _exported_loaders()
    if kind not in loaders:
        raise ValueError(f"unknown run kind {kind!r}; valid kinds: {sorted(loaders)}")
    out = {}
    for name, load in loaders[kind].items():
        if (folder / name).is_dir():
            out[name] = load(folder / name)
    if not out:
        raise ValueError(f"checkpoint export folder {str(folder)!r} holds none of {sorted(loaders[kind])}")
    return out
