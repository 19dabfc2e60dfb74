"""How much of a caption's tempo and key a model's text conditioning carries: ridge probes from the text states.

    python scripts/text_probe.py MODEL_DIR CATALOGUE_DIR

Tempo: for each caption of the catalogue that names its BPM, the prompt's token states (the layer the
U-Net gets, masked mean over the tokens) go into a ridge regression of log BPM, fitted on the train
split and scored on the held-out one. Printed beside it: the same probe on the states after the
model's projection (with its prompt-number embedding, if it has one) and a constant guess (the
training median); each probe reports the best of four ridge strengths. The demo's CLAP text tower
scores little better than the guess: it learns each number token as its own symbol
(configs/demo/README.md).

Key: for each caption that names its key ("G# minor"), one-vs-rest ridge classifiers of the tonic
(12 classes) and the mode (2) on the same text states, against the most common class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def scores(predicted_bpm: np.ndarray, bpm: np.ndarray) -> tuple[float, float]:
    error = np.abs(predicted_bpm / bpm - 1)
    return float(np.median(error)), float((error <= 0.05).mean())


def ridge(x_train, y_train, x_test, lam: float) -> np.ndarray:
    a = np.c_[x_train, np.ones(len(x_train))]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y_train)
    return np.c_[x_test, np.ones(len(x_test))] @ w


def class_probe(x: np.ndarray, labels: list[str], train: np.ndarray) -> tuple[float, float]:
    """Held-out accuracy of the best of four one-vs-rest ridge classifiers, and of the majority class."""
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    targets = np.eye(len(classes))[y]
    best = max(
        float((ridge(x[train], targets[train], x[~train], lam).argmax(1) == y[~train]).mean())
        for lam in (0.1, 1, 10, 100)
    )
    return best, float((y[~train] == np.bincount(y[train]).argmax()).mean())


def mean_states(pipe, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Masked means of the text states and of the projected context, ``(N, D)`` each."""
    text, projected = [], []
    with torch.no_grad():
        for i in range(0, len(captions), 64):
            batch = captions[i : i + 64]
            states, mask = pipe.encode_prompt(batch, torch.device("cpu"))
            numbers = pipe.encode_prompt_numbers(batch, torch.device("cpu"))
            out = pipe.projection(states, mask, 0.0, 10.0, numbers).encoder_hidden_states[:, : states.shape[1]]
            weights = mask.float().unsqueeze(-1)
            text.append(((states * weights).sum(1) / weights.sum(1)).numpy())
            projected.append(((out * weights).sum(1) / weights.sum(1)).numpy())
    return np.concatenate(text), np.concatenate(projected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("catalogue", type=Path)
    args = parser.parse_args()

    from stable_audio_kit import StableAudioKitPipeline

    rows = [json.loads(line) for line in (args.catalogue / "metadata.jsonl").read_text().splitlines() if line]
    keyed = [r for r in rows if r.get("tonic") and r.get("mode") and r["key"] in r["caption"]]
    rows = [r for r in rows if r.get("bpm") and f"{r['bpm']} BPM".lower() in r["caption"].lower()]
    if not rows:
        raise SystemExit(f"text_probe: no caption of {str(args.catalogue)!r} names its BPM")
    pipe = StableAudioKitPipeline.from_pretrained(args.model)
    bpm = np.array([r["bpm"] for r in rows], dtype=np.float64)
    train = np.array([r["split"] == "train" for r in rows])
    text, projected = mean_states(pipe, [r["caption"] for r in rows])
    y = np.log(bpm)
    lines = ["| features | median relative error | within 5 % |", "|---|---|---|"]
    guess = np.full((~train).sum(), np.exp(np.median(y[train])))
    lines.append("| constant guess (training median) | {:.3f} | {:.3f} |".format(*scores(guess, bpm[~train])))
    for name, feats in (("text states", text), ("projected context", projected)):
        fits = [np.exp(ridge(feats[train], y[train], feats[~train], lam)) for lam in (0.01, 0.1, 1, 10)]
        best = min((scores(fit, bpm[~train]) for fit in fits), key=lambda s: s[0])
        lines.append(f"| {name} (ridge probe) | {best[0]:.3f} | {best[1]:.3f} |")
    print(f"{train.sum()} training and {(~train).sum()} held-out captions that name a BPM\n")
    print("\n".join(lines))

    if keyed:
        train = np.array([r["split"] == "train" for r in keyed])
        text, _ = mean_states(pipe, [r["caption"] for r in keyed])
        text = (text - text[train].mean(0)) / (text[train].std(0) + 1e-6)
        lines = ["| from the text states | probe accuracy | most common class |", "|---|---|---|"]
        for name, field in (("tonic (12 classes)", "tonic"), ("mode (major/minor)", "mode")):
            lines.append("| {} | {:.3f} | {:.3f} |".format(name, *class_probe(text, [r[field] for r in keyed], train)))
        print(f"\n{train.sum()} training and {(~train).sum()} held-out captions that name their key\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
