"""Gradio pieces every drag demo page shares: the drawing panel, click positions, stopping a run, warnings, run
folders and output names, and serving the page."""

from __future__ import annotations

import argparse
import math
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import gradio as gr

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS

DISPLAY_LONG_SIDE = 512
"""The drawing panel shows the image magnified to at least this many pixels on its long side."""
RESULT_VIDEO_CLASS = "result-video"
"""Videos with this class autoplay muted and looped (see ``HEAD``)."""
HEAD = f"""<script>
new MutationObserver(() => document.querySelectorAll('.{RESULT_VIDEO_CLASS} video').forEach(video => {{
  if (!video.muted) {{ video.muted = true; video.play().catch(() => {{}}); }}
}})).observe(document.documentElement, {{subtree: true, childList: true, attributes: true}});
</script>"""
"""Browsers autoplay only muted videos: mute the result videos as they appear (the user can unmute)."""
STOPPED_MESSAGE = "Stopped: nothing was written. The models stay loaded; press Run to start again."


class RunStopped(Exception):
    """Raised inside a run when its session pressed Stop."""


class StopSignals:
    """One stop flag per browser session, so that **Stop** ends that session's run at its next check.

    The run calls :meth:`start` first and :meth:`check` between stages and after every denoising step; the
    Stop button calls :meth:`stop`. Nothing is written after a stop, so a stopped run leaves no file.
    """

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}

    def start(self, session_id: str) -> None:
        self._flags[session_id] = threading.Event()

    def stop(self, session_id: str) -> bool:
        """Flags the session's run; False when it has none running."""
        flag = self._flags.get(session_id)
        if flag is None:
            return False
        flag.set()
        return True

    def check(self, session_id: str) -> None:
        """Raises :class:`RunStopped` when the session's run was flagged."""
        flag = self._flags.get(session_id)
        if flag is not None and flag.is_set():
            raise RunStopped

    def finish(self, session_id: str) -> None:
        self._flags.pop(session_id, None)


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


def output_stem(name: str, kind: str) -> str:
    """The name downloads get: ``<image>_<kind>_<date-time>`` (``portrait_traj_20250101-120000``)."""
    return f"{name or 'image'}_{kind}_{datetime.now():%Y%m%d-%H%M%S}"


WARNING_SECONDS = 8


def show_warning(message: str | None) -> None:
    """A Gradio warning toast for ``message`` that fades after ``WARNING_SECONDS`` (nothing when it is None or
    empty)."""
    if message:
        gr.Warning(message, duration=WARNING_SECONDS)


def click_position(evt: gr.SelectData, scale: int = 1) -> tuple[float, float]:
    """``(x, y)`` image pixels of a click on the drawing panel, which shows the image magnified ``scale`` times:
    the pixel whose ``scale x scale`` block was clicked."""
    x, y = evt.index
    return float(math.floor(x / scale)), float(math.floor(y / scale))


def drawing_panel(label: str) -> gr.Image:
    """The image clicked to draw (tracks, brushes), created in the enclosing layout; it shows
    ``ui_state.drawing_view`` pictures at their own size (at least ``DISPLAY_LONG_SIDE`` on the long side)."""
    return gr.Image(label=label, format="png", interactive=False, buttons=[], elem_id="drawing-image")


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
