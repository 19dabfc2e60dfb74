"""``sak`` under a multi-process launch, instrumented for tests/train/test_distributed.py.

    torchrun --nproc_per_node 2 tests/train/dist_check.py RECORD_DIR train unet RUN.yaml key=value ...

Runs ``stable_audio_kit.cli.main`` with the remaining arguments, after wrapping two of the U-Net
trainer's steps so that every process writes, into RECORD_DIR:

- ``batches-rank{R}.json``: ``[[step, [paths of the batch]], ...]`` for every training batch it drew;
- ``weights-rank{R}-step{N}.safetensors``: its online (trainable) weights at every checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from stable_audio_kit import cli
from stable_audio_kit.train import unet as trainer


def main() -> int:
    record_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    record_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    drawn: list = []
    trained: dict = {}

    original_batches = trainer.batches

    def recording_batches(accelerator, loader, dataset, state):
        for batch in original_batches(accelerator, loader, dataset, state):
            drawn.append([state.step, list(batch["path"])])
            (record_dir / f"batches-rank{rank}.json").write_text(json.dumps(drawn))
            yield batch

    original_loss = trainer.diffusion_loss

    def remembering_loss(model, *args, **kwargs):
        trained.setdefault("model", model)  # the first call is a training step, with the wrapped model
        return original_loss(model, *args, **kwargs)

    original_save = trainer.save_checkpoint

    def saving(accelerator, run_dir, state, export, keep):
        path = original_save(accelerator, run_dir, state, export, keep)
        weights = accelerator.unwrap_model(trained["model"]).state_dict()
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in weights.items()},
            str(record_dir / f"weights-rank{rank}-step{state.step}.safetensors"),
        )
        return path

    trainer.batches = recording_batches
    trainer.diffusion_loss = remembering_loss
    trainer.save_checkpoint = saving
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
