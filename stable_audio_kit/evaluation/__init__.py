"""Evaluation: generate from held-out captions and measure the audio (``sak evaluate``).

Modules:

* :mod:`.report`: the evaluation itself. Loads the held-out rows of a catalogue, generates the model,
  shuffled-caption and wrong-length columns, measures them beside the real clips, runs the probes
  and writes ``report.json``, ``report.md`` and the plots.
* :mod:`.probes`: ``key-swap`` and ``tempo-swap``, the same captions with the key or tempo rewritten
  and the same seeds (``PROBES``, ``--probes``).
* :mod:`.memorisation`: ``--memorisation``, near-copies of training clips: CLAP neighbours aligned in time.
* :mod:`.metrics`: signal metrics on audio arrays: duration adherence, tempo, percussive vs tonal,
  pitch register and key (librosa, the ``[eval]`` extra, imported when first used).
* :mod:`.embedding`: metrics on embedding sets: FAD, CLAP score, text-to-audio recall.
* :mod:`.plots`: the spectrogram grid and the duration-adherence plot (numpy and matplotlib).
* :mod:`.arrays`: validation of the audio and vectors the metrics and plots take.

Importing this package imports none of them (and so neither torch nor librosa); ``evaluate`` is
handed on from :mod:`.report` on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from .report import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
