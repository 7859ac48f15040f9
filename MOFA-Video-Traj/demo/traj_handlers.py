"""The trajectory demo's event handlers: uploads and examples, drawing, the flow preview and the run."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.trajectory_animator import TINY_NOTICE
from utils.video_io import load_image, resize_and_center_crop

from . import demo_state
from .demo_handlers import DrawingDemoHandlers, denoising_progress, shown_path


def _blank_canvas(session: demo_state.Session) -> dict:
    """Painter value: the session's image with no paint on it."""
    return {"background": session["image"], "layers": [], "composite": None}


class TrajDemoHandlers(DrawingDemoHandlers):
    """The trajectory demo's handlers (:class:`~demo.demo_handlers.DrawingDemoHandlers` on a
    :class:`~pipeline.trajectory_animator.TrajectoryAnimator`)."""

    output_kind = "traj"
    tiny_notice = TINY_NOTICE

    def view(self, session: demo_state.Session) -> np.ndarray | None:
        return demo_state.drawing_view(session, self.display_scale(session))

    def drawn(self, session: demo_state.Session, message: str | None = None) -> tuple:
        """Updates after the drawing changed: (session, drawing view, preview, status)."""
        return session, self.view(session), self.flow_preview(session), self.status(session, message)

    def fresh(self, session: demo_state.Session, preview: np.ndarray | None = None) -> tuple:
        """After an upload or a reset: (session, drawing view, painter, preview, hint, video, flow video, status),
        the results cleared."""
        return session, self.view(session), _blank_canvas(session), preview, None, None, None, self.status(session)

    def upload(self, path: str | None, session: demo_state.Session):
        """Image file -> new session; returns what :meth:`fresh` does."""
        load = lambda path: resize_and_center_crop(load_image(path))  # noqa: E731
        image, message = self.read_upload(path, "an image", load, "Cannot use this file")
        if message:
            return self.refused(session, message, 6)
        return self.fresh(demo_state.start_session(np.asarray(image), Path(path).stem))

    def load_example(self, image_path: str, tracks_json: str, session: demo_state.Session):
        """An example: its image as an upload, then its preset trajectories; returns what :meth:`upload` does."""
        updates = self.upload(image_path, session)
        if updates[0]["image"] is None:
            return updates
        session = {**updates[0], "tracks": [*json.loads(tracks_json), []]}
        return self.fresh(session, self.flow_preview(session))

    def click(self, session: demo_state.Session, mode: str, radius: float, evt: gr.SelectData):
        """A click on the drawing panel adds a trajectory point or a brush stamp (``mode``); returns (session,
        drawing view, preview, status)."""
        session, status, refused = self.apply_click(session, mode, radius, evt)
        return self.refused(session, status, 2) if refused else self.drawn(session, status)

    def undo(self, session: demo_state.Session, mode: str):
        """Removes the last click of the selected kind; returns (session, drawing view, preview, status)."""
        return self.edit(self.undo_action(mode), session)

    def edit(self, action, session: demo_state.Session):
        """Applies a session ``action`` (add or delete a trajectory, ...); returns like :meth:`undo`."""
        session, message = action(session)
        return self.refused(session, message, 2) if message else self.drawn(session)

    def paint_brush(self, session: demo_state.Session, canvas: dict | None):
        """The painted layers become part of the brush; returns (session, drawing view, preview, status)."""
        painted = demo_state.painted_area(canvas["layers"] if canvas else None)
        return self.edit(lambda session: demo_state.set_painted_brush(session, painted), session)

    def clear_brush(self, session: demo_state.Session):
        """Removes the motion brush; returns (session, drawing view, painter, preview, status)."""
        session, message = demo_state.clear_brush(session)
        if message:
            return self.refused(session, message, 3)
        return session, self.view(session), _blank_canvas(session), self.flow_preview(session), self.status(session)

    def reset(self, session: demo_state.Session):
        """Back to the uploaded image; returns what :meth:`fresh` does."""
        session, message = demo_state.reset(session)
        return self.refused(session, message, 6) if message else self.fresh(session)

    def run(
        self,
        session: demo_state.Session,
        num_frames: float,
        steps: float,
        seed: float,
        conditioning_scale: float,
        memory: str,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects the progress tracker here
    ):
        """Animates the image; returns (video, flow video, hint image, status)."""
        tracks, problem = demo_state.tracks_for_run(session)

        def animate_and_save(check) -> tuple:
            progress(0, desc="CMP flow from the trajectories")
            result = self.animator.animate(
                image=session["image"], tracks=tracks, brush_mask=demo_state.brush_mask(session),
                num_frames=int(num_frames), steps=int(steps), seed=int(seed),
                conditioning_scale=float(conditioning_scale), memory=memory, fast=bool(fast),
                temporal_context=temporal_context,
                progress=denoising_progress(progress, check),
            )  # fmt: skip
            check()
            progress(1.0, desc="Writing videos")
            run_dir, name = self.run_folder(session)
            return result, self.animator.save(result, run_dir, name=name)

        done, refused = self.checked_run(request, problem, animate_and_save, num_outputs=3)
        if refused:
            return refused
        result, paths = done
        status = f"Done: {len(result.frames)} frames written to {shown_path(paths.video.parent, self.output_dir)}."
        return str(paths.video), str(paths.flow), str(paths.hint), status
