# Copied from MOFA-Video-Traj/demo/demo_page.py
"""Gradio layout pieces every drag demo page shares: header, drawing panel, result players, run buttons, the
common advanced settings, and serving the page. Each is created inside the enclosing ``gr.Blocks`` layout."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS
from utils.memory import MEMORY_PRESETS

DISPLAY_LONG_SIDE = 512
"""The drawing panel shows the image magnified to at least this many pixels on its long side."""
CLICK_MODES = ["Trajectory points", "Motion brush"]
"""What a click on the drawing panel adds (a demo may add more modes after these)."""
PREVIEW_HEIGHT = 320
RESULT_VIDEO_CLASS = "result-video"
"""Videos with this class autoplay muted and looped (see ``HEAD``)."""
HEAD = f"""<script>
new MutationObserver(() => document.querySelectorAll('.{RESULT_VIDEO_CLASS} video').forEach(video => {{
  if (!video.muted) {{ video.muted = true; video.play().catch(() => {{}}); }}
}})).observe(document.documentElement, {{subtree: true, childList: true, attributes: true}});
</script>"""
"""Browsers autoplay only muted videos: mute the result videos as they appear (the user can unmute)."""
CSS = """
#tiny-banner {background: #fff4e5; border: 1px solid #f0a020; border-radius: 8px; padding: 6px 12px;}
.fit-image img {width: 100%; height: 100%; object-fit: contain;}
"""


def page_header(title: str, summary: str, banner: str | None, instructions: str) -> None:
    """Title and summary, the tiny-mode banner (Markdown, or None) and the closed **How to use** accordion."""
    gr.Markdown(f"# {title}\n{summary}")
    if banner:
        gr.Markdown(banner, elem_id="tiny-banner")
    with gr.Accordion("How to use", open=False):
        gr.Markdown(instructions)


def drawing_panel(label: str) -> gr.Image:
    """The image clicked to draw (tracks, brushes); it shows ``demo_state.drawing_view`` pictures at their own
    size (at least ``DISPLAY_LONG_SIDE`` on the long side)."""
    return gr.Image(label=label, format="png", interactive=False, buttons=[], elem_id="drawing-image")


def click_mode_choice(modes: list[str]) -> gr.Radio:
    """What a click on the drawing panel adds, trajectory points first."""
    return gr.Radio(modes, value=modes[0], label="Clicks add", elem_id="click-mode")


DRAWING_ACTIONS = ("Add Trajectory", "Undo Last Click", "Delete Last Trajectory", "Reset All", "Clear Motion Brush")
"""The drawing actions every drag demo has, in the order :func:`drawing_buttons` returns their buttons."""


def drawing_buttons(*extra: str) -> list[gr.Button]:
    """The buttons of :data:`DRAWING_ACTIONS` and then of the ``extra`` labels, two to a row."""
    labels = [*DRAWING_ACTIONS, *extra]
    buttons = []
    for start in range(0, len(labels), 2):
        with gr.Row():
            buttons += [gr.Button(label) for label in labels[start : start + 2]]
    return buttons


def run_buttons() -> tuple[gr.Button, gr.Button]:
    """**Run** and **Stop**, side by side."""
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="run-button")
        stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
    return run, stop


def result_video(label: str, elem_id: str) -> gr.Video:
    """A result player: autoplays muted and looped."""
    return gr.Video(label=label, interactive=False, autoplay=True, loop=True, elem_id=elem_id,
                    elem_classes=RESULT_VIDEO_CLASS)  # fmt: skip


def preview_image(label: str, elem_id: str | None = None, **kwargs) -> gr.Image:
    """A read-only picture fitted into a ``PREVIEW_HEIGHT`` box (flow preview, hint image)."""
    return gr.Image(label=label, interactive=False, height=PREVIEW_HEIGHT, elem_classes="fit-image", elem_id=elem_id,
                    **kwargs)  # fmt: skip


def steps_slider(default_steps: int) -> gr.Slider:
    return gr.Slider(1, 100, value=default_steps, step=1, label="Denoising Steps", elem_id="steps")


def seed_number() -> gr.Number:
    return gr.Number(42, precision=0, label="Seed")


def scale_slider(value: float, label: str) -> gr.Slider:
    """An adapter's conditioning scale, 0 to 1."""
    return gr.Slider(0, 1, value=value, step=0.01, label=label)


def memory_choice(memory: str) -> gr.Dropdown:
    return gr.Dropdown(list(MEMORY_PRESETS), value=memory, label="Memory Preset")


def fast_mode_checkbox(label: str) -> gr.Checkbox:
    return gr.Checkbox(False, label=label)


def temporal_context_choice() -> gr.Radio:
    """The advanced setting that picks :mod:`models.temporal_context` (original by default)."""
    return gr.Radio(
        list(TEMPORAL_CONTEXTS),
        value=DEFAULT_TEMPORAL_CONTEXT,
        label="Temporal context",
        info="original: diffusers 0.24, as the released results; per_video: today's diffusers",
        elem_id="temporal-context",
    )


def serve_page(build_page: Callable[[Path], gr.Blocks], args: argparse.Namespace, css: str) -> None:
    """Create ``args.output_dir``, build the page writing its runs there and serve it (``--host``, ``--port``,
    ``--share``, files under the output folder allowed) until the server stops."""
    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    build_page(output_dir).queue().launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        allowed_paths=[str(output_dir)],
        css=css,
        head=HEAD,
    )
