"""``sak ui``: a local web page over the pipeline, for sound designers (Gradio, the ``[ui]`` extra).

Modules:

* :mod:`.app`: the Gradio page (:func:`build_app`); imports Gradio. :mod:`.serving`: its server (:func:`serve`).
* :mod:`.input_panel`: the input's picture, its regions field and the clicks that mark regions on it.
* :mod:`.studio`: what the page asks of the toolkit, without Gradio: a request checked as ``sak generate``
  checks it, run, delivered and kept (:class:`Studio`).
* :mod:`.history`: the results kept in the outputs folder, each with a JSON sidecar of its settings
  (:class:`ResultStore`, :class:`Settings`).
* :mod:`.pictures`: a result's waveform and spectrogram, with what its workflow kept and made marked; an input's
  waveform with its regions.

Importing this package imports none of them (so neither Gradio nor torch); each name is handed on from its
module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import build_app
    from .serving import serve
    from .history import ResultStore, Settings
    from .studio import Studio

_LAZY = {
    "build_app": ".app",
    "serve": ".serving",
    "ResultStore": ".history",
    "Settings": ".history",
    "Studio": ".studio",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ResultStore", "Settings", "Studio", "build_app", "serve"]
