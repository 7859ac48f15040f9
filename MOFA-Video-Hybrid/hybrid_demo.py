"""The Hybrid Gradio page shared by ``run_gradio_audio_driven.py`` and ``run_gradio_video_driven.py``.

Upload a portrait and a driving audio (or video); draw trajectories for what should move outside the face,
optionally paint a motion brush and a landmark mask; Run. The face follows landmarks generated from the audio
(AniPortrait or SadTalker) or from the driving video (SadTalker), everything else follows the drags.

Each browser session keeps its own state (:mod:`utils.hybrid_session`); the models are loaded once and shared
(:class:`pipeline.hybrid_animator.HybridAnimator`). Every run writes its files and a ``settings.json`` to a new
folder under ``--output_dir``; uploaded files are only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import gradio as gr
import numpy as np
from PIL import Image

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.hybrid_animator import AUDIO_RENDERERS, HybridAnimator
from utils import hybrid_session, ui_state
from utils.checkpoints import default_ckpt_dir, fetch_command, require_mode
from utils.demo_cli import demo_argument_parser
from utils.demo_page import (
    click_position,
    drag_click_targets,
    new_run_dir,
    serve_page,
    show_warning,
    temporal_context_choice,
)
from utils.errors import CheckpointError, InputError
from utils.face_mask import describe_mask, describe_mask_choice
from utils.memory import MEMORY_PRESETS
from utils.video_io import load_image, save_png

MAX_FRAMES = 250
CSS = "#tiny-banner {background: #fff4e5; border: 1px solid #f0a020; border-radius: 8px; padding: 6px 12px;}"
MASK_CHOICES = [
    ("Auto: painted if any, else from the face landmarks", "auto"),
    ("Painted only", "painted"),
    ("From the face landmarks", "landmarks"),
    ("None: trajectories only", "none"),
]
MODES = {
    "audio": {
        "title": "MOFA-Video-Hybrid (audio-driven)",
        "summary": "A portrait talks along with an audio clip while your drags move the rest of the image.",
        "upload_label": "Upload Audio",
        "file_types": ["audio"],
        "renderers": list(AUDIO_RENDERERS),
        "synthetic": "a schematic face whose mouth opens with the audio's loudness",
    },
    "video": {
        "title": "MOFA-Video-Hybrid (video-driven)",
        "summary": "A portrait takes the head motion and expressions of a driving video while your drags move the rest.",
        "upload_label": "Upload Driving Video",
        "file_types": ["video"],
        "renderers": ["sadtalker"],
        "synthetic": "a schematic face that follows the driving video's global motion",
    },
}
INSTRUCTIONS = """\
1. **Upload Image**: a portrait (any size; resized to a short side of 512 and cropped to multiples of 64).
2. **{upload_label}**: the {kind} that drives the face ({formats}).
3. Optional: click points on **Add Trajectory Here** (first click = where motion starts, later clicks = where it
   goes; **Add Trajectory** starts another one). Without trajectories everything outside the face stays still.
4. Optional: click on **Add Motion Brush Here** to limit drag motion to the brushed area, and on **Add Landmark
   Mask Here** to choose the area that follows the landmarks. With nothing painted the face found by the
   landmarks is used (**Landmark Mask** selects the rule; the line under it says which mask is in force).
5. **Run**. Number of Frames 0 means as long as the {kind}. Trajectory scale 0.6 and landmark scale 1.0 are good starts.
"""


def tiny_banner(kind: str, reason: str | None = None) -> str:
    """The banner shown in tiny mode: outputs are noise, landmarks are synthetic, and how to get the weights."""
    why = f" ({reason})" if reason else ""
    return (
        f"⚠️ **Tiny mode{why}.** The models are tiny and randomly initialised, so every video is noise, and the "
        f"landmarks come from a synthetic stand-in ({MODES[kind]['synthetic']}) instead of a face model: this shows "
        f"the workflow only. Fetch the real weights with `{fetch_command('hybrid')}`"
        + (f" and `{fetch_command('sadtalker')}`" if kind == "video" else "")
        + " and restart the demo."
    )


class HybridDemoHandlers:
    """The page's event handlers: each takes the session state (plus widget values) and returns updates.

    Args:
        animator: the loaded models (real or tiny).
        output_dir: parent folder of the per-run folders.
        kind: ``audio`` or ``video``, what drives the face.
    """

    def __init__(self, animator: HybridAnimator, output_dir: Path, kind: str):
        self.animator = animator
        self.output_dir = Path(output_dir)
        self.kind = kind

    def status(self, session: hybrid_session.Session, message: str | None = None) -> str:
        return message or hybrid_session.describe(session, self.kind)

    def refused(self, session: hybrid_session.Session, message: str, num_outputs: int) -> tuple:
        """Leaves ``num_outputs`` outputs unchanged and shows ``message``: ``(session, skips..., status)``."""
        show_warning(message)
        return session, *([gr.skip()] * num_outputs), message

    def flow_preview(self, session: hybrid_session.Session) -> np.ndarray | None:
        tracks = ui_state.completed_tracks(session)
        if session["image"] is None or not tracks:
            return None
        return self.animator.preview_flow(session["image"], tracks, ui_state.brush_mask(session))

    @staticmethod
    def mask_status(session: hybrid_session.Session, mode: str) -> str:
        return describe_mask_choice(mode, hybrid_session.painted_landmark_mask(session) is not None)

    # ---------------------------------------------------------------------------------------------- uploads

    def upload_image(self, path: str | None, session: hybrid_session.Session, mode: str):
        """Image -> new session; returns (session, trajectory, brush, landmark views, preview, mask status, status)."""
        if not path:
            return self.refused(session, "No file received; choose an image to upload.", 5)
        try:
            frame = self.animator.prepare_image(load_image(path))
        except InputError as error:
            return self.refused(session, f"Cannot use this file: {error}", 5)
        session = hybrid_session.start_session(np.asarray(frame), session)
        views = ui_state.trajectory_view(session), ui_state.brush_view(session), hybrid_session.landmark_view(session)
        return session, *views, None, self.mask_status(session, mode), self.status(session)

    def upload_driving(self, path: str | None, session: hybrid_session.Session):
        """Driving audio / video -> session; returns (session, player, status)."""
        if not path:
            return self.refused(session, f"No file received; choose a {self.kind} file to upload.", 1)
        updated, message = hybrid_session.set_driving(session, path, self.kind)
        if message:  # refused before the file is decoded
            return self.refused(session, message, 1)
        try:
            check_driving_file(path, self.kind)
        except InputError as error:
            return self.refused(session, f"Cannot use this file: {error}", 1)
        return updated, path, self.status(updated)

    # ------------------------------------------------------------------------------------ trajectories, brush

    def click_trajectory(self, session: hybrid_session.Session, evt: gr.SelectData):
        """A click on the trajectory image; returns (session, trajectory view, preview, status)."""
        session, message = ui_state.add_click(session, *click_position(evt))
        if message:
            return self.refused(session, message, 2)
        return session, ui_state.trajectory_view(session), self.flow_preview(session), self.status(session)

    def add_trajectory(self, session: hybrid_session.Session):
        """Starts a new track; returns (session, trajectory view, status)."""
        session, message = ui_state.add_trajectory(session)
        if message:
            return self.refused(session, message, 1)
        return session, ui_state.trajectory_view(session), self.status(session)

    def delete_last_trajectory(self, session: hybrid_session.Session):
        """Removes the last track; returns (session, trajectory view, preview, status)."""
        session, message = ui_state.delete_last_trajectory(session)
        if message:
            return self.refused(session, message, 2)
        return session, ui_state.trajectory_view(session), self.flow_preview(session), self.status(session)

    def click_brush(self, session: hybrid_session.Session, radius: float, evt: gr.SelectData):
        """A click on the motion-brush image; returns (session, brush view, preview, status)."""
        session, message = ui_state.add_brush_stamp(session, *click_position(evt), int(radius))
        if message:
            return self.refused(session, message, 2)
        return session, ui_state.brush_view(session), self.flow_preview(session), self.status(session)

    def clear_brush(self, session: hybrid_session.Session):
        """Removes the motion brush; returns (session, brush view, preview, status)."""
        session, message = ui_state.clear_brush(session)
        if message:
            return self.refused(session, message, 2)
        return session, ui_state.brush_view(session), self.flow_preview(session), self.status(session)

    def click_landmark(self, session: hybrid_session.Session, radius: float, mode: str, evt: gr.SelectData):
        """A click on the landmark-mask image; returns (session, landmark view, mask status, status)."""
        session, message = hybrid_session.add_landmark_stamp(session, *click_position(evt), int(radius))
        if message:
            return self.refused(session, message, 2)
        return session, hybrid_session.landmark_view(session), self.mask_status(session, mode), self.status(session)

    def clear_landmark(self, session: hybrid_session.Session, mode: str):
        """Removes the painted landmark mask; returns (session, landmark view, mask status, status)."""
        session, message = hybrid_session.clear_landmark_mask(session)
        if message:
            return self.refused(session, message, 2)
        return session, hybrid_session.landmark_view(session), self.mask_status(session, mode), self.status(session)

    # ----------------------------------------------------------------------------------------------- run

    def run(
        self,
        session: hybrid_session.Session,
        renderer: str,
        mode: str,
        trajectory_scale: float,
        landmark_scale: float,
        num_frames: float,
        steps: float,
        seed: float,
        memory: str,
        comparison: bool,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        progress: gr.Progress = gr.Progress(),
    ):
        """Generates the video; returns (video, trajectory flow, landmark flow, landmarks, hint, comparison,
        landmark view, mask status, status)."""
        skips = [gr.skip()] * 8
        message = hybrid_session.run_problem(session, self.kind)
        if message:
            show_warning(message)
            return *skips, message
        frame = Image.fromarray(session["image"])
        try:
            progress(0, desc="Landmarks")
            if self.kind == "audio":
                landmarks = self.animator.landmarks_from_audio(frame, session["driving"], renderer)
            else:
                landmarks = self.animator.landmarks_from_video(frame, session["driving"])
            frames = int(num_frames) or min(len(landmarks), MAX_FRAMES)
            if not int(num_frames) and len(landmarks) > MAX_FRAMES:
                show_warning(f"The {self.kind} spans {len(landmarks)} frames; the first {MAX_FRAMES} are generated.")
            self.animator.set_memory(memory)
            progress(0, desc="Denoising")
            result = self.animator.animate(
                frame,
                landmarks,
                tracks=ui_state.completed_tracks(session),
                brush_mask=ui_state.brush_mask(session),
                painted_landmark_mask=hybrid_session.painted_landmark_mask(session),
                mask_mode=mode,
                num_frames=frames,
                steps=int(steps),
                seed=int(seed),
                trajectory_scale=float(trajectory_scale),
                landmark_scale=float(landmark_scale),
                fast=bool(fast),
                temporal_context=temporal_context,
                progress=lambda done, total: progress((done, total), desc="Denoising"),
            )
            progress(1.0, desc="Writing videos")
            run_dir = new_run_dir(self.output_dir)
            input_path = save_png(run_dir / "input.png", frame)
            extra = {"input": str(input_path), "driving": session["driving"], "driving_kind": self.kind,
                     "renderer": renderer, "landmark_frames": len(landmarks)}  # fmt: skip
            audio = session["driving"] if self.kind == "audio" else None
            paths = self.animator.save(
                result, run_dir, audio_path=audio, comparison=bool(comparison), extra_settings=extra
            )
        except InputError as error:
            message = f"Cannot run: {error}"
            show_warning(message)
            return *skips, message
        for warning in result.warnings:
            show_warning(warning)
        mask_view = hybrid_session.landmark_view(session, result.landmark_mask.mask)
        status = f"Done: {len(result.frames)} frames written to {run_dir}."
        return (
            str(paths.video),
            str(paths.trajectory_flow),
            str(paths.landmark_flow),
            str(paths.landmark_video),
            str(paths.hint),
            str(paths.comparison) if paths.comparison else None,
            mask_view,
            describe_mask(result.landmark_mask),
            status,
        )


def check_driving_file(path: str | Path, kind: str) -> None:
    """Raise :class:`InputError` unless ``path`` is a usable driving audio (decodable, not silent) or video."""
    if kind == "audio":
        from aniportrait.audio import load_audio

        load_audio(path)
        return
    try:  # decoding the first frame is enough here; the whole video is read at Run
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{Path(path).name} has no video stream")
            next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration) as error:
        raise InputError(f"cannot read video {Path(path).name}: {error or 'no frames'}") from None


def build_demo(
    animator: HybridAnimator, output_dir: Path, kind: str, banner: str | None = None, memory: str = "balanced"
) -> gr.Blocks:
    """The Gradio page for ``kind`` (``audio`` or ``video``) wired to ``animator``."""
    mode_text = MODES[kind]
    handlers = HybridDemoHandlers(animator, output_dir, kind)
    formats = (
        "wav, mp3, flac, ogg, m4a, ..." if kind == "audio" else "mp4, mov, webm, ...; 25 frames per second of output"
    )
    with gr.Blocks(title=mode_text["title"]) as demo:
        session = gr.State(hybrid_session.new_session())
        gr.Markdown(f"# {mode_text['title']}\n{mode_text['summary']}")
        if banner:
            gr.Markdown(banner, elem_id="tiny-banner")
        with gr.Accordion("How to use", open=False):
            gr.Markdown(INSTRUCTIONS.format(upload_label=mode_text["upload_label"], kind=kind, formats=formats))
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                upload_image = gr.UploadButton(
                    "Upload Image", file_types=["image"], type="filepath", variant="primary", elem_id="upload-image"
                )
                upload_driving = gr.UploadButton(
                    mode_text["upload_label"],
                    file_types=mode_text["file_types"],
                    type="filepath",
                    elem_id="upload-driving",
                )
                if kind == "audio":
                    player = gr.Audio(label="Audio", type="filepath", interactive=False, elem_id="driving-player")
                else:
                    player = gr.Video(label="Driving Video", interactive=False, elem_id="driving-player")
                add_trajectory = gr.Button("Add Trajectory")
                delete_trajectory = gr.Button("Delete Last Trajectory")
                clear_brush = gr.Button("Clear Motion Brush")
                clear_landmark = gr.Button("Clear Landmark Mask")
                run = gr.Button("Run", variant="primary", elem_id="run-button")
                status = gr.Markdown(ui_state.NO_IMAGE_MESSAGE, elem_id="status")
            with gr.Column(scale=1, min_width=260):
                brush_radius = gr.Slider(1, 200, value=10, step=1, label="Motion Brush Radius")
                landmark_radius = gr.Slider(1, 200, value=10, step=1, label="Landmark Brush Radius")
                trajectory_scale = gr.Slider(0, 1, value=0.6, step=0.01, label="Control Scale for Trajectory")
                landmark_scale = gr.Slider(0, 1, value=1.0, step=0.01, label="Control Scale for Landmark")
                renderers = mode_text["renderers"]
                renderer = gr.Radio(renderers, value=renderers[0], label="Landmark Renderer")
                mask_mode = gr.Radio(MASK_CHOICES, value="auto", label="Landmark Mask", elem_id="mask-mode")
                mask_status = gr.Markdown(describe_mask_choice("auto", False), elem_id="mask-status")
                num_frames = gr.Slider(
                    0,
                    MAX_FRAMES,
                    value=0,
                    step=1,
                    label=f"Number of Frames (0 = length of the {kind})",
                    elem_id="num-frames",
                )
                steps = gr.Slider(
                    1, 100, value=animator.default_steps, step=1, label="Denoising Steps", elem_id="steps"
                )
                seed = gr.Number(42, precision=0, label="Seed")
                memory_preset = gr.Dropdown(list(MEMORY_PRESETS), value=memory, label="Memory Preset")
                comparison = gr.Checkbox(True, label="Also write the 7-panel comparison video")
                fast_mode = gr.Checkbox(False, label="Fast Mode (adapters every 4th step, fused residuals reused)")
                with gr.Accordion("Advanced settings", open=False):
                    temporal_context = temporal_context_choice()
            with gr.Column(scale=3):
                with gr.Row():
                    trajectory_image, brush_image = drag_click_targets()
                    landmark_image = gr.Image(
                        label="Add Landmark Mask Here", format="png", interactive=False, elem_id="landmark-image"
                    )
                with gr.Row():
                    flow_preview = gr.Image(
                        label="Temporary Trajectory Flow Visualization", format="png", interactive=False
                    )
                    hint_image = gr.Image(label="Final Hint Image", type="filepath", interactive=False)
                with gr.Row():
                    output_video = gr.Video(label="Output", interactive=False, loop=True, elem_id="output-video")
                    trajectory_flow = gr.Video(label="Trajectory Flow", interactive=False, loop=True)
                with gr.Row():
                    landmark_flow = gr.Video(label="Landmark Flow", interactive=False, loop=True)
                    landmark_video = gr.Video(label="Landmark Visualization", interactive=False, loop=True)
                comparison_file = gr.File(label="7-panel comparison (download)", interactive=False)

        upload_image.upload(
            handlers.upload_image,
            [upload_image, session, mask_mode],
            [session, trajectory_image, brush_image, landmark_image, flow_preview, mask_status, status],
            api_name="upload_image",
        )
        upload_driving.upload(
            handlers.upload_driving, [upload_driving, session], [session, player, status], api_name=f"upload_{kind}"
        )
        trajectory_image.select(
            handlers.click_trajectory, [session], [session, trajectory_image, flow_preview, status],
            api_name="add_point", show_progress="hidden",
        )  # fmt: skip
        add_trajectory.click(
            handlers.add_trajectory, [session], [session, trajectory_image, status], api_name="add_trajectory"
        )
        delete_trajectory.click(
            handlers.delete_last_trajectory, [session], [session, trajectory_image, flow_preview, status],
            api_name="delete_last_trajectory",
        )  # fmt: skip
        brush_image.select(
            handlers.click_brush, [session, brush_radius], [session, brush_image, flow_preview, status],
            api_name="add_brush", show_progress="hidden",
        )  # fmt: skip
        clear_brush.click(
            handlers.clear_brush, [session], [session, brush_image, flow_preview, status], api_name="clear_brush"
        )
        landmark_image.select(
            handlers.click_landmark, [session, landmark_radius, mask_mode], [session, landmark_image, mask_status, status],
            api_name="add_landmark_mask", show_progress="hidden",
        )  # fmt: skip
        clear_landmark.click(
            handlers.clear_landmark, [session, mask_mode], [session, landmark_image, mask_status, status],
            api_name="clear_landmark_mask",
        )  # fmt: skip
        mask_mode.change(handlers.mask_status, [session, mask_mode], [mask_status], api_name="mask_mode")
        run.click(
            handlers.run,
            [
                session,
                renderer,
                mask_mode,
                trajectory_scale,
                landmark_scale,
                num_frames,
                steps,
                seed,
                memory_preset,
                comparison,
                fast_mode,
                temporal_context,
            ],
            [
                output_video,
                trajectory_flow,
                landmark_flow,
                landmark_video,
                hint_image,
                comparison_file,
                landmark_image,
                mask_status,
                status,
            ],
            api_name="run",
        )
    return demo


def parse_args(kind: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = demo_argument_parser(
        f"{MODES[kind]['title']} Gradio demo.",
        tiny_help="tiny random models and synthetic landmarks, no weights needed; outputs are noise",
        default_memory="balanced",
    )
    return parser.parse_args(argv)


def load_animator(args: argparse.Namespace, kind: str) -> tuple[HybridAnimator, str | None]:
    """Loads the models once; returns ``(animator, banner)`` (banner None with real weights).

    Missing weights (the Hybrid ones, plus SadTalker's for the video-driven demo) switch to tiny mode with a
    one-line notice on stderr instead of failing.
    """
    settings = {"device": args.device, "dtype": args.dtype, "memory": args.memory}
    if args.tiny:
        return HybridAnimator.tiny(**settings), tiny_banner(kind)
    try:
        if kind == "video":
            require_mode(args.ckpt_dir or default_ckpt_dir(), "sadtalker")
        return HybridAnimator.from_pretrained(args.ckpt_dir, **settings), None
    except CheckpointError as error:
        print(f"{error}: starting in tiny mode instead (outputs are noise)", file=sys.stderr)
    return HybridAnimator.tiny(**settings), tiny_banner(kind, "real weights not found")


def main(kind: str, argv: list[str] | None = None) -> int:
    """Entry point of both demos: ``kind`` is ``audio`` or ``video``."""
    args = parse_args(kind, argv)
    try:
        animator, banner = load_animator(args, kind)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve_page(lambda output_dir: build_demo(animator, output_dir, kind, banner, args.memory), args, CSS)
    return 0
