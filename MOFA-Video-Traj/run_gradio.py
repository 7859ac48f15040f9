"""MOFA-Video-Traj Gradio demo: upload an image, draw trajectories (and a motion brush), animate it.

    python run_gradio.py                 # real weights from ckpts/ (falls back to tiny mode if missing)
    python run_gradio.py --tiny          # tiny random models: the workflow on a CPU, outputs are noise
    python run_gradio.py --port 7861 --memory low

The page is served on 127.0.0.1 unless ``--host`` says otherwise; ``--share`` makes a public link.
Each browser session keeps its own image, tracks and brush (``utils.ui_state``); the models are loaded
once and shared. Every run writes its files to a new folder under ``--output_dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.trajectory_animator import TINY_NOTICE, TrajectoryAnimator
from utils import ui_state
from utils.checkpoints import fetch_command
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
from utils.memory import MEMORY_PRESETS
from utils.video_io import load_image, resize_and_center_crop, save_png

TITLE = "MOFA-Video-Traj"
MAX_FRAMES = 125
PREVIEW_HEIGHT = 320
CACHE_CLEANUP = (3600, 24 * 3600)
"""Every hour, delete the server's copies of shown files older than a day (the run folders stay)."""
CSS = """
#tiny-banner {background: #fff4e5; border: 1px solid #f0a020; border-radius: 8px; padding: 6px 12px;}
.fit-image img {width: 100%; height: 100%; object-fit: contain;}
"""
INSTRUCTIONS = """\
1. **Upload Image** (any size; it is resized to a short side of 512 and cropped to multiples of 64).
2. Click points on **Add Trajectory Here**: the first click is where the motion starts, later clicks are
   where it goes. Press **Add Trajectory** to start another one. A single click pins a point in place.
3. Optional motion brush: click on **Add Motion Brush Here** to stamp circles (radius slider), or paint
   freehand in the editor below it and press its ✓ button. Trajectories that start inside the brush move
   only the brushed area.
4. Press **Run**. Control scale 0.6 is a good start; 1.0 follows the drags harder but can distort the image.
"""


def tiny_banner(reason: str | None = None) -> str:
    """The banner shown in tiny mode: outputs are noise, and how to get the real weights."""
    why = f" ({reason})" if reason else ""
    return (
        f"⚠️ **Tiny mode{why}.** The models are tiny and randomly initialised, so every video is noise: "
        "this shows the workflow only. Fetch the real weights with "
        f"`{fetch_command('traj')}` and restart the demo."
    )


def _shown_path(path: Path) -> Path:
    """``path`` relative to the working folder when it lies below it (shorter to read), else as is."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def _status(session: ui_state.Session, message: str | None = None) -> str:
    return message or ui_state.describe(session)


def _blank_canvas(session: ui_state.Session) -> dict:
    """Painter value: the session's image with no paint on it."""
    return {"background": session["image"], "layers": [], "composite": None}


class DemoHandlers:
    """The demo's event handlers: each takes the session state (plus widget values) and returns updates.

    Args:
        animator: the loaded models (real or tiny weights).
        output_dir: parent folder of the per-run folders.
    """

    def __init__(self, animator: TrajectoryAnimator, output_dir: Path):
        self.animator = animator
        self.output_dir = Path(output_dir)

    def flow_preview(self, session: ui_state.Session) -> np.ndarray | None:
        """Colour image of the flow the tracks ask for at the last frame, or None without tracks."""
        tracks = ui_state.completed_tracks(session)
        if session["image"] is None or not tracks:
            return None
        # the last frame's flow depends only on each track's first and last clicks, so two frames suffice
        preview = self.animator.preview_flow(session["image"], tracks, ui_state.brush_mask(session), num_frames=2)
        for warning in preview.warnings:
            show_warning(warning)
        return preview.last_frame_rgb

    def upload(self, path: str | None, session: ui_state.Session):
        """Image file -> new session; returns (session, trajectory view, brush view, painter, preview, status)."""
        unchanged = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
        if not path:
            message = "No file received; choose an image to upload."
            show_warning(message)
            return session, *unchanged, _status(session, message)
        try:
            image = resize_and_center_crop(load_image(path))
        except InputError as error:
            message = f"Cannot use this file: {error}"
            show_warning(message)
            return session, *unchanged, _status(session, message)
        session = ui_state.start_session(np.asarray(image))
        views = ui_state.trajectory_view(session), ui_state.brush_view(session), _blank_canvas(session)
        return session, *views, None, _status(session)

    def click_trajectory(self, session: ui_state.Session, evt: gr.SelectData):
        """A click on the trajectory image adds a point; returns (session, trajectory view, preview, status)."""
        session, message = ui_state.add_click(session, *click_position(evt))
        show_warning(message)
        if message:
            return session, gr.skip(), gr.skip(), _status(session, message)
        return session, ui_state.trajectory_view(session), self.flow_preview(session), _status(session)

    def add_trajectory(self, session: ui_state.Session):
        """Starts a new track; returns (session, trajectory view, status)."""
        session, message = ui_state.add_trajectory(session)
        show_warning(message)
        return session, ui_state.trajectory_view(session) if not message else gr.skip(), _status(session, message)

    def delete_last_trajectory(self, session: ui_state.Session):
        """Removes the last track; returns (session, trajectory view, preview, status)."""
        session, message = ui_state.delete_last_trajectory(session)
        show_warning(message)
        if message:
            return session, gr.skip(), gr.skip(), _status(session, message)
        return session, ui_state.trajectory_view(session), self.flow_preview(session), _status(session)

    def click_brush(self, session: ui_state.Session, radius: float, evt: gr.SelectData):
        """A click on the brush image stamps a circle; returns (session, brush view, preview, status)."""
        session, message = ui_state.add_brush_stamp(session, *click_position(evt), int(radius))
        show_warning(message)
        if message:
            return session, gr.skip(), gr.skip(), _status(session, message)
        return session, ui_state.brush_view(session), self.flow_preview(session), _status(session)

    def paint_brush(self, session: ui_state.Session, canvas: dict | None):
        """The painted layers become part of the brush; returns (session, brush view, preview, status)."""
        layers = canvas["layers"] if canvas else None
        session, message = ui_state.set_painted_brush(session, ui_state.painted_area(layers))
        show_warning(message)
        if message:
            return session, gr.skip(), gr.skip(), _status(session, message)
        return session, ui_state.brush_view(session), self.flow_preview(session), _status(session)

    def clear_brush(self, session: ui_state.Session):
        """Removes the motion brush; returns (session, brush view, painter, preview, status)."""
        session, message = ui_state.clear_brush(session)
        show_warning(message)
        if message:
            return session, gr.skip(), gr.skip(), gr.skip(), _status(session, message)
        views = ui_state.brush_view(session), _blank_canvas(session)
        return session, *views, self.flow_preview(session), _status(session)

    def run(
        self,
        session: ui_state.Session,
        num_frames: float,
        steps: float,
        seed: float,
        control_scale: float,
        memory: str,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        progress: gr.Progress = gr.Progress(),
    ):
        """Animates the image; returns (video, flow video, hint image, status)."""
        unchanged = (gr.skip(), gr.skip(), gr.skip())
        tracks, message = ui_state.tracks_for_run(session)
        if message:
            show_warning(message)
            return *unchanged, message

        def on_step(done: int, total: int) -> None:
            progress((done, total), desc="Denoising")

        progress(0, desc="Preparing")
        try:
            result = self.animator.animate(
                image=session["image"],
                tracks=tracks,
                brush_mask=ui_state.brush_mask(session),
                num_frames=int(num_frames),
                steps=int(steps),
                seed=int(seed),
                control_scale=float(control_scale),
                memory=memory,
                fast=bool(fast),
                temporal_context=temporal_context,
                progress=on_step,
            )
            progress(1.0, desc="Writing videos")
            run_dir = new_run_dir(self.output_dir)
            input_path = save_png(run_dir / "input.png", session["image"])
            paths = self.animator.save(result, run_dir / "output.mp4", extra_settings={"input": str(input_path)})
        except InputError as error:
            message = f"Cannot run: {error}"
            show_warning(message)
            return *unchanged, message
        except torch.OutOfMemoryError:
            message = "Out of GPU memory: choose the balanced or low memory preset, or fewer frames, and run again."
            show_warning(message)
            return *unchanged, message
        for warning in result.warnings:
            if warning != TINY_NOTICE:  # the banner already says so
                show_warning(warning)
        status = f"Done: {len(result.frames)} frames written to {_shown_path(run_dir)}."
        return str(paths.video), str(paths.flow_video), str(paths.hint), status


def build_demo(
    animator: TrajectoryAnimator, output_dir: Path, banner: str | None = None, memory: str = "high"
) -> gr.Blocks:
    """The Gradio page wired to ``animator``.

    Args:
        animator: the loaded models.
        output_dir: parent folder of the per-run output folders.
        banner: Markdown shown at the top (the tiny-mode notice), or None.
        memory: initial value of the memory-preset dropdown.
    """
    handlers = DemoHandlers(animator, output_dir)
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(ui_state.new_session())
        gr.Markdown(f"# {TITLE}\nAnimate an image by drawing where things should move.")
        if banner:
            gr.Markdown(banner, elem_id="tiny-banner")
        with gr.Accordion("How to use", open=False):
            gr.Markdown(INSTRUCTIONS)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                upload = gr.UploadButton("Upload Image", file_types=["image"], type="filepath", variant="primary")
                add_trajectory = gr.Button("Add Trajectory")
                delete_trajectory = gr.Button("Delete Last Trajectory")
                clear_brush = gr.Button("Clear Motion Brush")
                brush_radius = gr.Slider(1, 100, value=10, step=1, label="Motion Brush Radius")
                control_scale = gr.Slider(0, 1, value=0.6, step=0.01, label="Control Scale")
                num_frames = gr.Slider(2, MAX_FRAMES, value=25, step=1, label="Number of Frames", elem_id="num-frames")
                steps = gr.Slider(1, 100, value=25, step=1, label="Denoising Steps", elem_id="steps")
                seed = gr.Number(42, precision=0, label="Seed")
                memory_preset = gr.Dropdown(list(MEMORY_PRESETS), value=memory, label="Memory Preset")
                fast_mode = gr.Checkbox(False, label="Fast Mode (adapter every 4th step, about 1.1x SVD time)")
                with gr.Accordion("Advanced settings", open=False):
                    temporal_context = temporal_context_choice()
                run = gr.Button("Run", variant="primary", elem_id="run-button")
                status = gr.Markdown(ui_state.NO_IMAGE_MESSAGE, label="Status", elem_id="status")
            with gr.Column(scale=3):
                with gr.Row():
                    trajectory_image, brush_image = drag_click_targets()
                with gr.Accordion("Paint the motion brush freehand (press ✓ in the editor to apply)", open=False):
                    painter = gr.ImageEditor(
                        label="Paint Motion Brush",
                        type="numpy",
                        image_mode="RGBA",
                        sources=[],
                        transforms=(),
                        layers=False,
                        brush=gr.Brush(default_size=20, colors=["#0000ff"], color_mode="fixed"),
                        eraser=gr.Eraser(default_size=20),
                        elem_id="brush-painter",
                    )
                with gr.Row():
                    flow_preview = gr.Image(
                        label="Visualized Flow (last frame)", format="png", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image",
                    )  # fmt: skip
                    hint_image = gr.Image(
                        label="Visualized Hint Image", type="filepath", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image",
                    )  # fmt: skip
                with gr.Row():
                    output_video = gr.Video(label="Output Video", interactive=False, loop=True, elem_id="output-video")
                    flow_video = gr.Video(label="Output Flow", interactive=False, loop=True, elem_id="flow-video")

        upload.upload(
            handlers.upload,
            [upload, session],
            [session, trajectory_image, brush_image, painter, flow_preview, status],
            api_name="upload_image",
        )
        trajectory_image.select(
            handlers.click_trajectory,
            [session],
            [session, trajectory_image, flow_preview, status],
            api_name="add_point",
            trigger_mode="multiple",  # a click made while the previous one is processed is queued, not dropped
            show_progress="hidden",  # and not swallowed by a progress overlay
        )
        add_trajectory.click(
            handlers.add_trajectory, [session], [session, trajectory_image, status], api_name="add_trajectory"
        )
        delete_trajectory.click(
            handlers.delete_last_trajectory,
            [session],
            [session, trajectory_image, flow_preview, status],
            api_name="delete_last_trajectory",
        )
        brush_image.select(
            handlers.click_brush,
            [session, brush_radius],
            [session, brush_image, flow_preview, status],
            api_name="add_brush",
            trigger_mode="multiple",
            show_progress="hidden",
        )
        painter.apply(
            handlers.paint_brush,
            [session, painter],
            [session, brush_image, flow_preview, status],
            api_name="paint_brush",
        )
        clear_brush.click(
            handlers.clear_brush,
            [session],
            [session, brush_image, painter, flow_preview, status],
            api_name="clear_brush",
        )
        run.click(
            handlers.run,
            [session, num_frames, steps, seed, control_scale, memory_preset, fast_mode, temporal_context],
            [output_video, flow_video, hint_image, status],
            api_name="run",
        )
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = demo_argument_parser(
        "MOFA-Video-Traj Gradio demo.",
        tiny_help="tiny random models, no weights needed; outputs are noise",
        default_memory="high",
    )
    return parser.parse_args(argv)


def load_animator(args: argparse.Namespace) -> tuple[TrajectoryAnimator, str | None]:
    """Loads the models once; returns ``(animator, banner)`` (banner None with real weights).

    Missing weights switch to tiny mode with a one-line notice on stderr instead of failing.
    """
    settings = {"device": args.device, "dtype": args.dtype, "memory": args.memory}
    if args.tiny:
        return TrajectoryAnimator.tiny(**settings), tiny_banner()
    try:
        return TrajectoryAnimator.from_pretrained(args.ckpt_dir, **settings), None
    except CheckpointError as error:
        print(f"{error}: starting in tiny mode instead (outputs are noise)", file=sys.stderr)
    return TrajectoryAnimator.tiny(**settings), tiny_banner("real weights not found")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        animator, banner = load_animator(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve_page(lambda output_dir: build_demo(animator, output_dir, banner, args.memory), args, CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
