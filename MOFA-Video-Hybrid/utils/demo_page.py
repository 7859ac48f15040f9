# Copied from MOFA-Video-Traj/utils/demo_page.py
"""Gradio pieces every drag demo page shares: the click targets, warnings, click positions, run folders and
serving the page."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import gradio as gr

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS


def new_run_dir(output_dir: Path) -> Path:
    """A fresh, uniquely named folder for one run's files (``<output_dir>/<date-time>-<id>``)."""
    run_dir = Path(output_dir) / f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    return run_dir


def temporal_context_choice() -> gr.Radio:
    """The advanced setting that picks :mod:`models.temporal_context` (original by default)."""
    return gr.Radio(
        list(TEMPORAL_CONTEXTS),
        value=DEFAULT_TEMPORAL_CONTEXT,
        label="Temporal context",
        info="original: diffusers 0.24, as the released results; per_video: today's diffusers",
        elem_id="temporal-context",
    )


def show_warning(message: str | None) -> None:
    """A Gradio warning toast for ``message`` (nothing when it is None or empty)."""
    if message:
        gr.Warning(message)


def click_position(evt: gr.SelectData) -> tuple[float, float]:
    """``(x, y)`` pixels of a click on an image."""
    x, y = evt.index
    return float(x), float(y)


def drag_click_targets() -> tuple[gr.Image, gr.Image]:
    """``(trajectory_image, brush_image)``, created in the enclosing layout: the images clicked to add
    trajectory points and to stamp the motion brush."""
    trajectory_image = gr.Image(
        label="Add Trajectory Here", format="png", interactive=False, elem_id="trajectory-image"
    )
    brush_image = gr.Image(label="Add Motion Brush Here", format="png", interactive=False, elem_id="brush-image")
    return trajectory_image, brush_image


def serve_page(build_page: Callable[[Path], gr.Blocks], args: argparse.Namespace, css: str) -> None:
    """Create ``args.output_dir``, build the page writing its runs there and serve it (``--host``, ``--port``,
    ``--share``, files under the output folder allowed) until the server stops."""
    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    build_page(output_dir).queue().launch(
        server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(output_dir)], css=css
    )
