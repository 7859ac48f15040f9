"""The Hybrid demos' event handlers: portrait and driving uploads, drawing (trajectories, motion brush, landmark
mask), the pre-run mask preview and the run's stages."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.hybrid_animator import FPS, TINY_NOTICE
from utils.driving_preview import browser_preview, read_clip_info
from utils.face_mask import describe_mask, describe_mask_choice
from utils.video_io import load_image

from . import demo_state, hybrid_demo_state
from .demo_handlers import DrawingDemoHandlers, denoising_progress, show_warning, shown_path
from .demo_page import CLICK_MODES

HYBRID_CLICK_MODES = [*CLICK_MODES, "Landmark mask"]
MAX_FRAMES = 250
RESULTS = ("video", "video_with_landmarks", "comparison", "trajectory_flow", "landmark_flow", "landmark_video", "hint")
"""The run's files shown on the page, in the order of the result components."""
LANDMARKS_STAGE = {"audio": "Landmarks from the audio", "video": "Landmarks from the driving video"}


class HybridDemoHandlers(DrawingDemoHandlers):
    """The Hybrid demos' handlers (:class:`~demo.demo_handlers.DrawingDemoHandlers` on a
    :class:`~pipeline.hybrid_animator.HybridAnimator`); ``mode`` arguments are the landmark-mask rule.

    Args:
        animator: the loaded models (real or tiny).
        output_dir: parent folder of the per-run folders.
        kind: ``audio`` or ``video``, what drives the face.
    """

    output_kind = "hybrid"
    tiny_notice = TINY_NOTICE

    def __init__(self, animator, output_dir: Path, kind: str):
        super().__init__(animator, output_dir)
        self.kind = kind

    def stamps(self) -> dict:
        landmark_stamps = (hybrid_demo_state.add_landmark_stamp, hybrid_demo_state.undo_landmark_stamp)
        return {**super().stamps(), HYBRID_CLICK_MODES[2]: landmark_stamps}

    def describe(self, session: hybrid_demo_state.Session) -> str:
        return hybrid_demo_state.describe(session, self.kind)

    def view(self, session: hybrid_demo_state.Session, mode: str, mask: np.ndarray | None = None) -> np.ndarray | None:
        return hybrid_demo_state.drawing_view(session, mode, self.display_scale(session), mask)

    @staticmethod
    def mask_status(session: hybrid_demo_state.Session, mode: str) -> str:
        return describe_mask_choice(mode, hybrid_demo_state.painted_landmark_mask(session) is not None)

    def drawn(self, session: hybrid_demo_state.Session, mode: str, message: str | None = None) -> tuple:
        """After the drawing changed: (session, drawing view, preview, mask status, status)."""
        preview = self.flow_preview(session)
        return (
            session,
            self.view(session, mode),
            preview,
            self.mask_status(session, mode),
            self.status(session, message),
        )

    # ---------------------------------------------------------------------------------------------- uploads

    def fresh(self, session: hybrid_demo_state.Session, mode: str) -> tuple:
        """After an upload or a reset: (session, *results cleared, drawing view, preview, mask status, status)."""
        session, *drawn = self.drawn(session, mode)
        return session, *([None] * len(RESULTS)), *drawn

    def upload_image(self, path: str | None, session: hybrid_demo_state.Session, mode: str):
        """Image -> new session with the face found on it; returns what :meth:`fresh` does. A faceless image is
        refused."""

        def load(path: str) -> tuple:
            frame = self.animator.prepare_image(load_image(path))
            return frame, self.animator.face_landmarks(frame, Path(path).name)

        loaded, message = self.read_upload(path, "an image", load, "Cannot use this portrait")
        if message:
            return self.refused(session, message, 3 + len(RESULTS))
        frame, face = loaded
        return self.fresh(hybrid_demo_state.start_session(np.asarray(frame), session, Path(path).stem, face), mode)

    def upload_driving(self, path: str | None, session: hybrid_demo_state.Session):
        """Driving audio / video -> session, also before an image; returns (session, *results cleared, player,
        clip info, status)."""
        shown, message = self.read_upload(path, f"a {self.kind} file", self.check_driving, "Cannot use this file")
        if message:
            return self.refused(session, message, 2 + len(RESULTS))
        session = hybrid_demo_state.set_driving(session, path)
        return session, *([None] * len(RESULTS)), *shown, self.status(session)

    def check_driving(self, path: str) -> tuple[str, str]:
        """``(what the player shows, clip facts)`` for a usable driving file; raises InputError otherwise."""
        if self.kind == "audio":
            from aniportrait.audio import load_audio

            seconds = len(load_audio(path)) / 16000
            return path, f"{Path(path).name}: {seconds:.2f} s of audio, {math.ceil(seconds * FPS)} video frames."
        info = read_clip_info(path)
        preview = browser_preview(path, info, self.output_dir / "previews")
        shown = " (preview transcoded to H.264)" if preview != Path(path) else ""
        return str(preview), f"{Path(path).name}: {info.describe()}{shown}."

    def load_example(self, image_path: str, driving_path: str, session: hybrid_demo_state.Session, mode: str):
        """An example: its driving file then its portrait; returns (session, *results, player, clip info, drawing
        view, preview, mask status, status)."""
        driving = self.upload_driving(driving_path, session)
        image = self.upload_image(image_path, driving[0], mode)
        return *image[: 1 + len(RESULTS)], *driving[-3:-1], *image[1 + len(RESULTS) :]

    # ------------------------------------------------------------------------------------------- drawing

    def click(self, session: hybrid_demo_state.Session, click_mode: str, radius: float, mode: str,
              evt: gr.SelectData):  # fmt: skip
        """A click on the drawing panel: a trajectory point, a motion-brush or a landmark-mask stamp; returns
        (session, drawing view, preview, mask status, status)."""
        session, status, refused = self.apply_click(session, click_mode, radius, evt)
        return self.refused(session, status, 3) if refused else self.drawn(session, mode, status)

    def undo(self, session: hybrid_demo_state.Session, click_mode: str, mode: str):
        """Removes the last click of the selected kind; returns (session, drawing view, preview, mask status,
        status)."""
        return self.edit(self.undo_action(click_mode), session, mode)

    def edit(self, action, session: hybrid_demo_state.Session, mode: str):
        """Applies a session ``action`` (add trajectory, delete, clear...); returns like :meth:`undo`."""
        session, message = action(session)
        return self.refused(session, message, 3) if message else self.drawn(session, mode)

    def reset(self, session: hybrid_demo_state.Session, mode: str):
        """Back to the uploaded image; returns what :meth:`fresh` does."""
        session, message = hybrid_demo_state.reset(session)
        return self.refused(session, message, 3 + len(RESULTS)) if message else self.fresh(session, mode)

    # ----------------------------------------------------------------------------------------------- run

    def run(
        self,
        session: hybrid_demo_state.Session,
        mode: str,
        renderer: str,
        trajectory_conditioning_scale: float,
        landmark_conditioning_scale: float,
        num_frames: float,
        steps: float,
        seed: float,
        memory: str,
        comparison: bool,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects the progress tracker here
    ):
        """Generates the video; returns (*results, drawing view, mask status, status)."""
        options = {"mask_mode": mode, "steps": int(steps), "seed": int(seed), "fast": bool(fast),
                   "trajectory_conditioning_scale": float(trajectory_conditioning_scale),
                   "landmark_conditioning_scale": float(landmark_conditioning_scale),
                   "temporal_context": temporal_context}  # fmt: skip
        done, refused = self.checked_run(
            request,
            hybrid_demo_state.run_problem(session, self.kind),
            partial(self.generate, session, renderer, int(num_frames), memory, bool(comparison), options, progress),
            num_outputs=len(RESULTS) + 2,
        )
        if refused:
            return refused
        result, paths = done
        files = [getattr(paths, name) for name in RESULTS]
        status = f"Done: {len(result.frames)} frames written to {shown_path(paths.video.parent, self.output_dir)}."
        view = self.view(session, mode, result.landmark_mask.mask)
        return *[str(file) if file else None for file in files], view, describe_mask(result.landmark_mask), status

    def generate(self, session, renderer: str, num_frames: int, memory: str, comparison: bool, options: dict,
                 progress: gr.Progress, check) -> tuple:  # fmt: skip
        """The run's stages, each announced on the progress bar and each ending with a stop ``check()``; returns
        ``(result, paths)``."""
        frame = Image.fromarray(session["image"])
        progress(0, desc=LANDMARKS_STAGE[self.kind])
        if self.kind == "audio":
            landmarks = self.animator.landmarks_from_audio(frame, session["driving"], renderer, session["name"])
        else:
            landmarks = self.animator.landmarks_from_video(frame, session["driving"], session["name"])
        check()
        frames = num_frames or min(len(landmarks), MAX_FRAMES)
        if not num_frames and len(landmarks) > MAX_FRAMES:
            show_warning(f"The {self.kind} spans {len(landmarks)} frames; the first {MAX_FRAMES} are generated.")
        self.animator.set_memory(memory)
        windows = "" if frames <= 25 else f" ({frames} frames in overlapping 25-frame windows)"
        progress(0, desc="CMP flow from the trajectories and the landmarks")
        result = self.animator.animate(
            frame, landmarks, tracks=demo_state.completed_tracks(session), brush_mask=demo_state.brush_mask(session),
            painted_landmark_mask=hybrid_demo_state.painted_landmark_mask(session), num_frames=frames,
            progress=denoising_progress(progress, check, windows), **options,
        )  # fmt: skip
        check()
        audio = session["driving"] if self.kind == "audio" else None
        progress(1.0, desc="Writing videos" + (" and muxing the audio" if audio else ""))
        run_dir, name = self.run_folder(session)
        extra = {"driving": session["driving"], "driving_kind": self.kind,
                 "renderer": renderer, "landmark_frames": len(landmarks)}  # fmt: skip
        paths = self.animator.save(
            result, run_dir, audio_path=audio, comparison=comparison, extra_settings=extra, name=name
        )
        return result, paths
