# Copied from MOFA-Video-Traj/demo/demo_handlers.py
"""Event handling every drag demo shares: clicks on the drawing panel, undo, uploads, a stoppable run with its
progress and messages, run folders and output names.

:class:`DrawingDemoHandlers` is the base of each demo's handlers; a demo adds its uploads, its outputs and the
stages of its run.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import gradio as gr
import numpy as np
import torch

from utils.errors import InputError

from . import demo_state
from .demo_page import CLICK_MODES, DISPLAY_LONG_SIDE

Result = TypeVar("Result")
STOPPED_MESSAGE = "Stopped: nothing was written. The models stay loaded; press Run to start again."
OUT_OF_MEMORY_MESSAGE = "Out of GPU memory: choose the balanced or low memory preset, or fewer frames, and run again."
WARNING_SECONDS = 8
FOLDERS = re.compile(r"(?<![\w./~-])/(?:[^/\s]+/)+")
"""The folders of an absolute POSIX path (``/tmp/gradio/3f2a/``), up to its last part."""


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
    """A fresh, unique name for one run's folder (``<output_dir>/<date-time>-<id>``), not created: the run's save
    (:func:`utils.run_output.save_run`) creates it with the files, so a failed save leaves no folder behind."""
    return Path(output_dir) / f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def output_stem(name: str, kind: str) -> str:
    """The name downloads get: ``<image>_<kind>_<date-time>`` (``portrait_traj_20250101-120000``)."""
    return f"{name or 'image'}_{kind}_{datetime.now():%Y%m%d-%H%M%S}"


def shown_path(path: Path, output_dir: Path) -> str:
    """How the page names ``path``, a run folder under ``output_dir``: from the output folder's name on
    (``outputs/20250101-120000-ab12cd``), never the server's absolute path."""
    return str(Path(output_dir.name) / path.relative_to(output_dir))


def page_message(message: str) -> str:
    """``message`` with each absolute path cut to its last part (``/tmp/gradio/3f2a/clip.mp4`` -> ``clip.mp4``): the
    page names the user's files, never the server's folders (errors from the models' code name whole paths)."""
    return FOLDERS.sub("", message)


def show_warning(message: str | None) -> None:
    """A Gradio warning toast for ``message`` that fades after ``WARNING_SECONDS`` (nothing when it is None or
    empty)."""
    if message:
        gr.Warning(message, duration=WARNING_SECONDS)


def show_warnings(messages: Iterable[str], skip: str | None = None) -> None:
    """A toast for each of ``messages`` except ``skip`` (the tiny-mode notice, which the banner already says)."""
    for message in messages:
        if message != skip:
            show_warning(message)


def click_position(evt: gr.SelectData, scale: int = 1) -> tuple[float, float]:
    """``(x, y)`` image pixels of a click on the drawing panel, which shows the image magnified ``scale`` times:
    the pixel whose ``scale x scale`` block was clicked."""
    x, y = evt.index
    return float(math.floor(x / scale)), float(math.floor(y / scale))


def denoising_progress(
    progress: gr.Progress, check: Callable[[], None], windows: str = ""
) -> Callable[[int, int], None]:
    """The ``progress(done, total)`` callback of a run (``done`` counts steps, with a fraction for the windows of
    a step): a stop check, then the step (and ``windows``, a note on the sampling windows) on the progress bar, or
    the decoding once every step is done."""

    def on_step(done: float, total: int) -> None:
        check()
        step = math.ceil(done)  # the step under way, or the one just finished
        progress((done, total), desc=f"Denoising step {step}/{total}{windows}" if done < total else "Decoding frames")

    return on_step


class DrawingDemoHandlers:
    """Base of the drag demos' event handlers: each takes the session state (plus widget values) and returns
    updates; a refused action returns its outputs unchanged (``gr.skip()``) and says why.

    Hooks: :meth:`describe` (the status line) and :meth:`stamps` (the click modes that stamp circles); a demo
    names its outputs (``output_kind``) and its animator's tiny-mode notice (``tiny_notice``, not shown as a
    warning: the banner says it). The animator gives ``preview_flow`` (``pipeline.animator_base.AnimatorBase``).

    Args:
        animator: the loaded models (real or tiny weights).
        output_dir: parent folder of the per-run folders.
    """

    output_kind = "run"
    """The middle word of the output names (:func:`output_stem`): ``traj``, ``hybrid``."""
    tiny_notice: str | None = None

    def __init__(self, animator, output_dir: Path):
        self.animator = animator
        self.output_dir = Path(output_dir)
        self.stops = StopSignals()

    def stamps(self) -> dict[str, tuple[Callable, Callable]]:
        """Click mode -> ``(add stamp, undo stamp)`` session actions; the other mode adds trajectory points."""
        return {CLICK_MODES[1]: (demo_state.add_brush_stamp, demo_state.undo_brush_stamp)}

    def describe(self, session: demo_state.Session) -> str:
        return demo_state.describe(session)

    def status(self, session: demo_state.Session, message: str | None = None) -> str:
        return message or self.describe(session)

    def refused(self, session: demo_state.Session, message: str, num_outputs: int) -> tuple:
        """Leaves ``num_outputs`` outputs unchanged and shows ``message``: ``(session, skips..., status)``."""
        show_warning(message)
        return session, *([gr.skip()] * num_outputs), message

    def flow_preview(self, session: demo_state.Session) -> np.ndarray | None:
        """Colour image of the flow the tracks ask for at the last frame, or None without tracks (its warnings, of
        drags CMP cannot follow, are the long-drag warning shown when the drag is drawn)."""
        tracks = demo_state.completed_tracks(session)
        if session["image"] is None or not tracks:
            return None
        return self.animator.preview_flow(session["image"], tracks, demo_state.brush_mask(session)).last_frame_rgb

    @staticmethod
    def display_scale(session: demo_state.Session) -> int:
        return demo_state.display_scale(session, DISPLAY_LONG_SIDE)

    @staticmethod
    def read_upload(path: str | None, noun: str, load: Callable[[str], Result], refusal: str) -> tuple:
        """``(load(path), None)``, or ``(None, message)`` when no file came or ``load`` raised InputError (the
        message then starts with ``refusal``)."""
        if not path:
            return None, f"No file received; choose {noun} to upload."
        try:
            return load(path), None
        except InputError as error:
            return None, page_message(f"{refusal}: {error}")

    def apply_click(self, session: demo_state.Session, click_mode: str, radius: float, evt: gr.SelectData) -> tuple:
        """A click on the drawing panel as a trajectory point or a stamp of ``click_mode``.

        Returns:
            ``(session, status, refused)``: the status says where the click landed (and warns of a long drag), or
            why it was refused.
        """
        x, y = click_position(evt, self.display_scale(session))
        stamp = self.stamps().get(click_mode)
        if stamp:
            session, message = stamp[0](session, x, y, int(radius))
            warning = None
        else:
            session, message = demo_state.add_click(session, x, y)
            warning = demo_state.long_drag_warning(session)
        if message:
            return session, message, True
        show_warning(warning)
        return session, f"{self.status(session)} Last click at ({x:g}, {y:g}). {warning or ''}".strip(), False

    def undo_action(self, click_mode: str) -> Callable:
        """The session action that undoes the last click of ``click_mode``."""
        stamp = self.stamps().get(click_mode)
        return stamp[1] if stamp else demo_state.undo_click

    def stop(self, request: gr.Request) -> str:
        """The Stop button: flags this session's run, which ends at its next check."""
        return "Stopping after the current step..." if self.stops.stop(request.session_hash) else "Nothing is running."

    def run_folder(self, session: demo_state.Session) -> tuple[Path, str]:
        """``(folder, name)`` of a new run: a fresh folder under the output folder (:func:`new_run_dir`, created
        by the save) and the name its files start with (:func:`output_stem`)."""
        return new_run_dir(self.output_dir), output_stem(session["name"], self.output_kind)

    def checked_run(
        self,
        request: gr.Request | None,
        problem: str | None,
        run: Callable[[Callable[[], None]], tuple],
        num_outputs: int,
    ) -> tuple[tuple | None, tuple | None]:
        """The Run button's protocol: refused at once when the session has a ``problem`` (a message, or None),
        else ``run(check)`` as a :meth:`stoppable_run` that returns ``(result, paths)``; the result's warnings are
        shown (except ``tiny_notice``).

        Returns:
            ``((result, paths), None)``, or ``(None, outputs)`` when refused or stopped: the handler's outputs,
            ``num_outputs`` left unchanged (``gr.skip()``) and the message.
        """
        if problem:
            show_warning(problem)
            return None, (*[gr.skip()] * num_outputs, problem)
        done, message = self.stoppable_run(request, run)
        if message:
            return None, (*[gr.skip()] * num_outputs, message)
        show_warnings(done[0].warnings, skip=self.tiny_notice)
        return done, None

    def stoppable_run(self, request: gr.Request | None, run: Callable[[Callable[[], None]], Result]) -> tuple:
        """Runs ``run(check)`` as the session's run, where ``check()`` raises :class:`RunStopped` once the session
        pressed Stop.

        Returns:
            ``(result, None)``, or ``(None, message)`` when the run was stopped or refused (bad input, out of
            memory; a refusal is also shown as a warning).
        """
        session_id = request.session_hash if request else ""
        self.stops.start(session_id)
        try:
            return run(lambda: self.stops.check(session_id)), None
        except RunStopped:
            return None, STOPPED_MESSAGE
        except InputError as error:
            message = page_message(f"Cannot run: {error}")
        except torch.OutOfMemoryError:
            message = OUT_OF_MEMORY_MESSAGE
        finally:
            self.stops.finish(session_id)
        show_warning(message)
        return None, message
