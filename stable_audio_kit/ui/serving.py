"""Serving the ``sak ui`` page: the address, what the server may do, and the process around it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from .app import build_app
from .history import ResultStore
from .studio import Studio


def launch_options(host: str, port: int, outputs: str | Path) -> dict[str, Any]:
    """``Blocks.launch`` arguments: the given address only, no share link, nothing that calls out or records
    runs in the browser; files served from the outputs folder."""
    return dict(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        allowed_paths=[str(Path(outputs).resolve())],
        footer_links=[],
        run_history=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size="200mb",
        quiet=True,
    )


def serve(
    pipe,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    outputs: str | Path = "sak-ui-outputs",
    block: bool = True,
    student=None,
) -> gr.Blocks:
    """Serve the page for ``pipe`` at ``http://host:port``, keeping results in ``outputs``; with a ``student``
    (the model with its distilled U-Net), each request samples with the U-Net :meth:`Studio.choose_unet` picks. With
    ``block=False`` it returns at once, the server running in a thread (``demo.close()`` stops it)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's checks of its own address, once a launch
    studio = Studio(pipe, ResultStore(outputs), model, student)
    demo = build_app(studio)
    demo.launch(prevent_thread_lock=True, **launch_options(host, port, outputs))
    print(f"sak ui: serving {demo.local_url} (results in {studio.store.root}); Ctrl-C stops", flush=True)
    if block:
        demo.block_thread()
    return demo
