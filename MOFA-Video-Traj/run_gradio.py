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
import json
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
    DISPLAY_LONG_SIDE,
    RESULT_VIDEO_CLASS,
    STOPPED_MESSAGE,
    RunStopped,
    StopSignals,
    click_position,
    drawing_panel,
    new_run_dir,
    output_stem,
    serve_page,
    show_warning,
    temporal_context_choice,
)
from utils.errors import CheckpointError, InputError
from utils.memory import MEMORY_PRESETS
from utils.video_io import load_image, resize_and_center_crop

TITLE = "MOFA-Video-Traj"
MAX_FRAMES = 125
PREVIEW_HEIGHT = 320
CACHE_CLEANUP = (3600, 24 * 3600)
"""Every hour, delete the server's copies of shown files older than a day (the run folders stay)."""
CSS = """
#tiny-banner {background: #fff4e5; border: 1px solid #f0a020; border-radius: 8px; padding: 6px 12px;}
.fit-image img {width: 100%; height: 100%; object-fit: contain;}
"""
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLES = [[str(EXAMPLES_DIR / "hills.png"), (EXAMPLES_DIR / "hills_tracks.json").read_text()]]
"""One-click inputs: an image made by ``examples/make_examples.py`` and its preset trajectories."""
EXAMPLE_LABELS = ["Hills: the sun rises, the cloud drifts, the tree sways"]
CLICK_MODES = ["Trajectory points", "Motion brush"]
INSTRUCTIONS = """\
1. **Upload Image** (any size; it is resized to a short side of 512 and cropped to multiples of 64), or click
   the example under the buttons.
2. With **Clicks add: Trajectory points**, click on the image: the first click is where the motion starts,
   later clicks are where it goes. Press **Add Trajectory** to start another one (each track gets its own
   colour). A single click pins a point in place. Drags longer than about 60 px are followed only partly:
   the page warns when you draw one.
3. Optional motion brush: switch to **Clicks add: Motion brush** and click to stamp circles (radius slider), or
   paint freehand in the editor below and press its ✓ button. Trajectories that start inside the brush move
   only the brushed area (shown in blue).
4. **Undo Last Click** removes the last click of the selected kind; **Reset All** goes back to the uploaded image.
5. Press **Run** (**Stop** ends a run without writing anything). Control scale 0.6 is a good start; 1.0 follows
   the drags harder but can distort the image.
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


def _view(session: ui_state.Session) -> np.ndarray | None:
    return ui_state.drawing_view(session, ui_state.display_scale(session, DISPLAY_LONG_SIDE))


class DemoHandlers:
    """The demo's event handlers: each takes the session state (plus widget values) and returns updates.

    Args:
        animator: the loaded models (real or tiny weights).
        output_dir: parent folder of the per-run folders.
    """

    def __init__(self, animator: TrajectoryAnimator, output_dir: Path):
        self.animator = animator
        self.output_dir = Path(output_dir)
        self.stops = StopSignals()

    def flow_preview(self, session: ui_state.Session) -> np.ndarray | None:
        """Colour image of the flow the tracks ask for at the last frame, or None without tracks."""
        tracks = ui_state.completed_tracks(session)
        if session["image"] is None or not tracks:
            return None
        # the last frame's flow depends only on each track's first and last clicks, so two frames suffice
        # its warnings (drags CMP cannot follow) are the long-drag warning shown when the drag is drawn
        preview = self.animator.preview_flow(session["image"], tracks, ui_state.brush_mask(session), num_frames=2)
        return preview.last_frame_rgb

    def _drawn(self, session: ui_state.Session, message: str | None = None):
        """Updates after the drawing changed: (session, drawing view, preview, status)."""
        return session, _view(session), self.flow_preview(session), _status(session, message)

    def _refused(self, session: ui_state.Session, message: str, num_outputs: int):
        show_warning(message)
        return session, *([gr.skip()] * num_outputs), message

    def upload(self, path: str | None, session: ui_state.Session):
        """Image file -> new session; returns (session, drawing view, painter, preview, hint, video, flow video,
        status): the results of the previous image are cleared."""
        if not path:
            return self._refused(session, "No file received; choose an image to upload.", 6)
        try:
            image = resize_and_center_crop(load_image(path))
        except InputError as error:
            return self._refused(session, f"Cannot use this file: {error}", 6)
        session = ui_state.start_session(np.asarray(image), Path(path).stem)
        return session, _view(session), _blank_canvas(session), None, None, None, None, _status(session)

    def load_example(self, image_path: str, tracks_json: str, session: ui_state.Session):
        """An example: its image as an upload, then its preset trajectories; returns what :meth:`upload` does."""
        session, view, canvas, *cleared, status = self.upload(image_path, session)
        if session["image"] is None:
            return session, view, canvas, *cleared, status
        session = {**session, "tracks": [*json.loads(tracks_json), []]}
        return session, _view(session), canvas, self.flow_preview(session), *cleared[1:], _status(session)

    def click(self, session: ui_state.Session, mode: str, radius: float, evt: gr.SelectData):
        """A click on the drawing panel adds a trajectory point or a brush stamp (``mode``); returns (session,
        drawing view, preview, status)."""
        x, y = click_position(evt, ui_state.display_scale(session, DISPLAY_LONG_SIDE))
        if mode == CLICK_MODES[1]:
            session, message = ui_state.add_brush_stamp(session, x, y, int(radius))
            warning = None
        else:
            session, message = ui_state.add_click(session, x, y)
            warning = ui_state.long_drag_warning(session)
        if message:
            return self._refused(session, message, 2)
        show_warning(warning)
        return self._drawn(session, f"{_status(session)} Last click at ({x:g}, {y:g}). {warning or ''}".strip())

    def undo(self, session: ui_state.Session, mode: str):
        """Removes the last click of the selected kind; returns (session, drawing view, preview, status)."""
        undo = ui_state.undo_brush_stamp if mode == CLICK_MODES[1] else ui_state.undo_click
        session, message = undo(session)
        return self._refused(session, message, 2) if message else self._drawn(session)

    def add_trajectory(self, session: ui_state.Session):
        """Starts a new track; returns (session, drawing view, status)."""
        session, message = ui_state.add_trajectory(session)
        return self._refused(session, message, 1) if message else (session, _view(session), _status(session))

    def delete_last_trajectory(self, session: ui_state.Session):
        """Removes the last track; returns (session, drawing view, preview, status)."""
        session, message = ui_state.delete_last_trajectory(session)
        return self._refused(session, message, 2) if message else self._drawn(session)

    def paint_brush(self, session: ui_state.Session, canvas: dict | None):
        """The painted layers become part of the brush; returns (session, drawing view, preview, status)."""
        layers = canvas["layers"] if canvas else None
        session, message = ui_state.set_painted_brush(session, ui_state.painted_area(layers))
        return self._refused(session, message, 2) if message else self._drawn(session)

    def clear_brush(self, session: ui_state.Session):
        """Removes the motion brush; returns (session, drawing view, painter, preview, status)."""
        session, message = ui_state.clear_brush(session)
        if message:
            return self._refused(session, message, 3)
        return session, _view(session), _blank_canvas(session), self.flow_preview(session), _status(session)

    def reset(self, session: ui_state.Session):
        """Back to the uploaded image; returns (session, drawing view, painter, preview, hint, video, flow video,
        status)."""
        session, message = ui_state.reset(session)
        if message:
            return self._refused(session, message, 6)
        return session, _view(session), _blank_canvas(session), None, None, None, None, _status(session)

    def stop(self, request: gr.Request) -> str | None:
        """The Stop button: flags this session's run, which ends at its next step."""
        if not self.stops.stop(request.session_hash):
            return "Nothing is running."
        return "Stopping after the current step..."

    def run(
        self,
        session: ui_state.Session,
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
        unchanged = (gr.skip(), gr.skip(), gr.skip())
        tracks, message = ui_state.tracks_for_run(session)
        if message:
            show_warning(message)
            return *unchanged, message
        session_id = request.session_hash if request else ""
        self.stops.start(session_id)

        def on_step(done: int, total: int) -> None:
            self.stops.check(session_id)
            progress((done, total), desc=f"Denoising step {done}/{total}" if done < total else "Decoding frames")

        progress(0, desc="CMP flow from the trajectories")
        try:
            result = self.animator.animate(
                image=session["image"],
                tracks=tracks,
                brush_mask=ui_state.brush_mask(session),
                num_frames=int(num_frames),
                steps=int(steps),
                seed=int(seed),
                conditioning_scale=float(conditioning_scale),
                memory=memory,
                fast=bool(fast),
                temporal_context=temporal_context,
                progress=on_step,
            )
            self.stops.check(session_id)
            progress(1.0, desc="Writing videos")
            run_dir = new_run_dir(self.output_dir)
            paths = self.animator.save(result, run_dir, name=output_stem(session["name"], "traj"))
        except RunStopped:
            return *unchanged, STOPPED_MESSAGE
        except InputError as error:
            message = f"Cannot run: {error}"
            show_warning(message)
            return *unchanged, message
        except torch.OutOfMemoryError:
            message = "Out of GPU memory: choose the balanced or low memory preset, or fewer frames, and run again."
            show_warning(message)
            return *unchanged, message
        finally:
            self.stops.finish(session_id)
        for warning in result.warnings:
            if warning != TINY_NOTICE:  # the banner already says so
                show_warning(warning)
        status = f"Done: {len(result.frames)} frames written to {_shown_path(run_dir)}."
        return str(paths.video), str(paths.flow), str(paths.hint), status


def advanced_settings(animator: TrajectoryAnimator, memory: str) -> dict[str, gr.components.Component]:
    """The controls of the **Advanced settings** accordion, created in the enclosing layout, by the name of the
    :meth:`DemoHandlers.run` argument they feed (in that order)."""
    return {
        "num_frames": gr.Slider(2, MAX_FRAMES, value=25, step=1, label="Number of Frames", elem_id="num-frames"),
        "steps": gr.Slider(1, 100, value=animator.default_steps, step=1, label="Denoising Steps", elem_id="steps"),
        "seed": gr.Number(42, precision=0, label="Seed"),
        "conditioning_scale": gr.Slider(0, 1, value=0.6, step=0.01, label="Control Scale"),
        "memory": gr.Dropdown(list(MEMORY_PRESETS), value=memory, label="Memory Preset"),
        "fast": gr.Checkbox(False, label="Fast Mode (adapter every 4th step, about 1.1x SVD time)"),
        "temporal_context": temporal_context_choice(),
    }


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
            with gr.Column(scale=1, min_width=300):
                upload = gr.UploadButton("Upload Image", file_types=["image"], type="filepath", variant="primary")
                example_image = gr.Image(type="filepath", visible=False)
                example_tracks = gr.Textbox(visible=False)
                examples = gr.Examples(
                    EXAMPLES, [example_image, example_tracks], label="Example (click to load)",
                    example_labels=EXAMPLE_LABELS, elem_id="examples",
                )  # fmt: skip
                click_mode = gr.Radio(CLICK_MODES, value=CLICK_MODES[0], label="Clicks add", elem_id="click-mode")
                with gr.Row():
                    add_trajectory = gr.Button("Add Trajectory")
                    undo = gr.Button("Undo Last Click")
                with gr.Row():
                    delete_trajectory = gr.Button("Delete Last Trajectory")
                    clear_brush = gr.Button("Clear Motion Brush")
                reset = gr.Button("Reset All")
                brush_radius = gr.Slider(1, 100, value=10, step=1, label="Motion Brush Radius")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run-button")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
                status = gr.Markdown(ui_state.NO_IMAGE_MESSAGE, label="Status", elem_id="status")
                with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                    settings = advanced_settings(animator, memory)
            with gr.Column(scale=2):
                drawing = drawing_panel("Click to draw: trajectories (one colour each) and motion brush (blue)")
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
                    output_video = gr.Video(
                        label="Output Video", interactive=False, autoplay=True, loop=True, elem_id="output-video",
                        elem_classes=RESULT_VIDEO_CLASS,
                    )  # fmt: skip
                    flow_video = gr.Video(
                        label="Output Flow", interactive=False, autoplay=True, loop=True, elem_id="flow-video",
                        elem_classes=RESULT_VIDEO_CLASS,
                    )  # fmt: skip
                with gr.Row():
                    flow_preview = gr.Image(
                        label="Visualized Flow (last frame)", format="png", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image", elem_id="flow-preview",
                    )  # fmt: skip
                    hint_image = gr.Image(
                        label="Visualized Hint Image", type="filepath", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image", elem_id="hint-image",
                    )  # fmt: skip

        fresh = [session, drawing, painter, flow_preview, hint_image, output_video, flow_video, status]
        drawn = [session, drawing, flow_preview, status]
        upload.upload(handlers.upload, [upload, session], fresh, api_name="upload_image")
        examples.load_input_event.then(
            handlers.load_example, [example_image, example_tracks, session], fresh, api_name="load_example"
        )
        drawing.select(
            handlers.click, [session, click_mode, brush_radius], drawn, api_name="click",
            trigger_mode="multiple",  # a click made while the previous one is processed is queued, not dropped
            show_progress="hidden",  # and not swallowed by a progress overlay
        )  # fmt: skip
        undo.click(handlers.undo, [session, click_mode], drawn, api_name="undo")
        add_trajectory.click(handlers.add_trajectory, [session], [session, drawing, status], api_name="add_trajectory")
        delete_trajectory.click(handlers.delete_last_trajectory, [session], drawn, api_name="delete_last_trajectory")
        painter.apply(handlers.paint_brush, [session, painter], drawn, api_name="paint_brush")
        clear_brush.click(
            handlers.clear_brush, [session], [session, drawing, painter, flow_preview, status], api_name="clear_brush"
        )
        reset.click(handlers.reset, [session], fresh, api_name="reset")
        run.click(
            handlers.run,
            [session, *settings.values()],
            [output_video, flow_video, hint_image, status],
            api_name="run",
        )
        stop.click(handlers.stop, None, [status], api_name="stop", queue=False)
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
