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
import math
import sys
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.hybrid_animator import FPS, TINY_NOTICE, HybridAnimator
from utils import hybrid_session, ui_state
from utils.checkpoints import default_ckpt_dir, fetch_command, require_mode
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
from utils.driving_preview import browser_preview, read_clip_info
from utils.errors import CheckpointError, InputError
from utils.face_mask import describe_mask, describe_mask_choice
from utils.landmark_renderers import LANDMARK_RENDERERS
from utils.memory import MEMORY_PRESETS
from utils.video_io import load_image

MAX_FRAMES = 250
CSS = """
#tiny-banner {background: #fff4e5; border: 1px solid #f0a020; border-radius: 8px; padding: 6px 12px;}
.fit-image img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated;}
"""
PREVIEW_HEIGHT = 320
MASK_CHOICES = [
    ("Auto: painted if any, else from the face landmarks", "auto"),
    ("Painted only", "painted"),
    ("From the face landmarks", "landmarks"),
    ("None: trajectories only", "none"),
]
CLICK_MODES = ["Trajectory points", "Motion brush", "Landmark mask"]
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MODES = {
    "audio": {
        "title": "MOFA-Video-Hybrid (audio-driven)",
        "summary": "A portrait talks along with an audio clip while your drags move the rest of the image.",
        "upload_label": "Upload Audio",
        "file_types": ["audio"],
        "renderers": list(LANDMARK_RENDERERS),
        "synthetic": "a schematic face whose mouth opens with the audio's loudness",
        "example": ["speech.wav", "Drawn portrait + synthetic speech (espeak-ng)"],
        "landmarks_stage": "Landmarks from the audio",
    },
    "video": {
        "title": "MOFA-Video-Hybrid (video-driven)",
        "summary": (
            "A portrait takes the head motion and expressions of a driving video while your drags move the rest."
        ),
        "upload_label": "Upload Driving Video",
        "file_types": ["video"],
        "renderers": ["sadtalker"],
        "synthetic": "a schematic face that follows the driving video's global motion",
        "example": ["driving.mp4", "Drawn portrait + drawn driving video (MPEG-4 Part 2)"],
        "landmarks_stage": "Landmarks from the driving video",
    },
}
INSTRUCTIONS = """\
1. **Upload Image**: a portrait (any size; resized to a short side of 512 and cropped to multiples of 64). The
   face found on it (white dots) and the landmark mask a run would use (green) show at once; an image without a
   face is refused.
2. **{upload_label}**: the {kind} that drives the face ({formats}). It may come before the image.
   Or click the example under the buttons.
3. Optional: with **Clicks add: Trajectory points**, click on the image (first click = where motion starts,
   later clicks = where it goes; **Add Trajectory** starts another one, each in its own colour). Without
   trajectories everything outside the face stays still. Drags longer than about 60 px (at 512 px) are followed
   only partly: the page warns when you draw one.
4. Optional: **Clicks add: Motion brush** limits drag motion to the brushed area (blue); **Clicks add: Landmark
   mask** paints the area that follows the landmarks (green). **Landmark Mask** selects the rule; the line under
   it says which mask is in force. **Undo Last Click** removes the last click of the selected kind.
5. **Run** (**Stop** ends a run without writing anything). Number of Frames 0 means as long as the {kind}.
"""


def tiny_banner(kind: str, reason: str | None = None) -> str:
    """The banner shown in tiny mode: outputs are noise, landmarks moved synthetically, and how to get the weights."""
    why = f" ({reason})" if reason else ""
    return (
        f"⚠️ **Tiny mode{why}.** The models are tiny and randomly initialised, so every video is noise, and the "
        f"landmarks are the portrait's own face (found by MediaPipe) moved by a synthetic stand-in "
        f"({MODES[kind]['synthetic']}) instead of the landmark models: this shows "
        f"the workflow only. Fetch the real weights with `{fetch_command('hybrid')}`"
        + (f" and `{fetch_command('sadtalker')}`" if kind == "video" else "")
        + " and restart the demo."
    )


RESULTS = ("video", "video_with_landmarks", "comparison", "trajectory_flow", "landmark_flow", "landmark_video", "hint")
"""The run's files shown on the page, in the order of the result components."""


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
        self.stops = StopSignals()

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
        return self.animator.preview_flow(session["image"], tracks, ui_state.brush_mask(session)).last_frame_rgb

    @staticmethod
    def view(session: hybrid_session.Session, mode: str) -> np.ndarray | None:
        return hybrid_session.drawing_view(session, mode, ui_state.display_scale(session, DISPLAY_LONG_SIDE))

    @staticmethod
    def mask_status(session: hybrid_session.Session, mode: str) -> str:
        return describe_mask_choice(mode, hybrid_session.painted_landmark_mask(session) is not None)

    def drawn(self, session: hybrid_session.Session, mode: str, message: str | None = None) -> tuple:
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

    def fresh(self, session: hybrid_session.Session, mode: str) -> tuple:
        """After an upload or a reset: (session, *results cleared, drawing view, preview, mask status, status)."""
        session, *drawn = self.drawn(session, mode)
        return session, *([None] * len(RESULTS)), *drawn

    def upload_image(self, path: str | None, session: hybrid_session.Session, mode: str):
        """Image -> new session with the face found on it; returns what :meth:`fresh` does. A faceless image is
        refused."""
        if not path:
            return self.refused(session, "No file received; choose an image to upload.", 3 + len(RESULTS))
        try:
            frame = self.animator.prepare_image(load_image(path))
            face = self.animator.face_landmarks(frame, Path(path).name)
        except InputError as error:
            return self.refused(session, f"Cannot use this portrait: {error}", 3 + len(RESULTS))
        session = hybrid_session.start_session(np.asarray(frame), session, Path(path).stem, face)
        return self.fresh(session, mode)

    def upload_driving(self, path: str | None, session: hybrid_session.Session):
        """Driving audio / video -> session, also before an image; returns (session, *results cleared, player,
        clip info, status)."""
        if not path:
            return self.refused(session, f"No file received; choose a {self.kind} file to upload.", 2 + len(RESULTS))
        try:
            player, info = self.check_driving(path)
        except InputError as error:
            return self.refused(session, f"Cannot use this file: {error}", 2 + len(RESULTS))
        session = hybrid_session.set_driving(session, path)
        return session, *([None] * len(RESULTS)), player, info, self.status(session)

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

    def load_example(self, image_path: str, driving_path: str, session: hybrid_session.Session, mode: str):
        """An example: its driving file then its portrait; returns (session, *results, player, clip info, drawing
        view, preview, mask status, status)."""
        driving = self.upload_driving(driving_path, session)
        image = self.upload_image(image_path, driving[0], mode)
        return *image[: 1 + len(RESULTS)], *driving[-3:-1], *image[1 + len(RESULTS) :]

    # ------------------------------------------------------------------------------------------- drawing

    def click(self, session: hybrid_session.Session, click_mode: str, radius: float, mode: str, evt: gr.SelectData):
        """A click on the drawing panel: a trajectory point, a motion-brush or a landmark-mask stamp; returns
        (session, drawing view, preview, mask status, status)."""
        x, y = click_position(evt, ui_state.display_scale(session, DISPLAY_LONG_SIDE))
        warning = None
        if click_mode == CLICK_MODES[1]:
            session, message = ui_state.add_brush_stamp(session, x, y, int(radius))
        elif click_mode == CLICK_MODES[2]:
            session, message = hybrid_session.add_landmark_stamp(session, x, y, int(radius))
        else:
            session, message = ui_state.add_click(session, x, y)
            warning = ui_state.long_drag_warning(session)
        if message:
            return self.refused(session, message, 3)
        show_warning(warning)
        status = f"{self.status(session)} Last click at ({x:g}, {y:g}). {warning or ''}".strip()
        return self.drawn(session, mode, status)

    def undo(self, session: hybrid_session.Session, click_mode: str, mode: str):
        """Removes the last click of the selected kind; returns (session, drawing view, preview, mask status,
        status)."""
        undo = {CLICK_MODES[1]: ui_state.undo_brush_stamp, CLICK_MODES[2]: hybrid_session.undo_landmark_stamp}
        session, message = undo.get(click_mode, ui_state.undo_click)(session)
        return self.refused(session, message, 3) if message else self.drawn(session, mode)

    def edit(self, action, session: hybrid_session.Session, mode: str):
        """Applies a session ``action`` (add trajectory, delete, clear...); returns like :meth:`undo`."""
        session, message = action(session)
        return self.refused(session, message, 3) if message else self.drawn(session, mode)

    def reset(self, session: hybrid_session.Session, mode: str):
        """Back to the uploaded image; returns what :meth:`fresh` does."""
        session, message = hybrid_session.reset(session)
        return self.refused(session, message, 3 + len(RESULTS)) if message else self.fresh(session, mode)

    def stop(self, request: gr.Request) -> str:
        """The Stop button: flags this session's run, which ends at its next check."""
        return "Stopping after the current step..." if self.stops.stop(request.session_hash) else "Nothing is running."

    # ----------------------------------------------------------------------------------------------- run

    def run(
        self,
        session: hybrid_session.Session,
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
        skips = [gr.skip()] * (len(RESULTS) + 2)
        message = hybrid_session.run_problem(session, self.kind)
        if message:
            show_warning(message)
            return *skips, message
        session_id = request.session_hash if request else ""
        self.stops.start(session_id)
        try:
            result, paths = self.generate(session, mode, renderer, trajectory_conditioning_scale,
                                          landmark_conditioning_scale, num_frames,
                                          steps, seed, memory, comparison, fast, temporal_context, progress,
                                          session_id)  # fmt: skip
        except RunStopped:
            return *skips, STOPPED_MESSAGE
        except InputError as error:
            message = f"Cannot run: {error}"
            show_warning(message)
            return *skips, message
        finally:
            self.stops.finish(session_id)
        for warning in result.warnings:
            if warning != TINY_NOTICE:  # the banner already says so
                show_warning(warning)
        files = [getattr(paths, name) for name in RESULTS]
        status = f"Done: {len(result.frames)} frames written to {paths.video.parent}."
        view = hybrid_session.drawing_view(
            session, mode, ui_state.display_scale(session, DISPLAY_LONG_SIDE), result.landmark_mask.mask
        )
        return *[str(file) if file else None for file in files], view, describe_mask(result.landmark_mask), status

    def generate(self, session, mode, renderer, trajectory_conditioning_scale, landmark_conditioning_scale,
                 num_frames, steps, seed, memory, comparison, fast, temporal_context, progress,
                 session_id):  # fmt: skip
        """The run's stages, each announced on the progress bar and each ending with a stop check; returns
        ``(result, paths)``."""
        check = lambda: self.stops.check(session_id)  # noqa: E731
        frame = Image.fromarray(session["image"])
        progress(0, desc=MODES[self.kind]["landmarks_stage"])
        if self.kind == "audio":
            landmarks = self.animator.landmarks_from_audio(frame, session["driving"], renderer, session["name"])
        else:
            landmarks = self.animator.landmarks_from_video(frame, session["driving"], session["name"])
        check()
        frames = int(num_frames) or min(len(landmarks), MAX_FRAMES)
        if not int(num_frames) and len(landmarks) > MAX_FRAMES:
            show_warning(f"The {self.kind} spans {len(landmarks)} frames; the first {MAX_FRAMES} are generated.")
        self.animator.set_memory(memory)
        windows = "" if frames <= 25 else f" ({frames} frames in overlapping 25-frame windows)"

        def on_step(done: int, total: int) -> None:
            check()
            progress((done, total), desc=f"Denoising step {done}/{total}{windows}" if done < total else "Decoding")

        progress(0, desc="CMP flow from the trajectories and the landmarks")
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
            trajectory_conditioning_scale=float(trajectory_conditioning_scale),
            landmark_conditioning_scale=float(landmark_conditioning_scale),
            fast=bool(fast),
            temporal_context=temporal_context,
            progress=on_step,
        )
        check()
        audio = session["driving"] if self.kind == "audio" else None
        progress(1.0, desc="Writing videos" + (" and muxing the audio" if audio else ""))
        run_dir = new_run_dir(self.output_dir)
        extra = {"driving": session["driving"], "driving_kind": self.kind,
                 "renderer": renderer, "landmark_frames": len(landmarks)}  # fmt: skip
        paths = self.animator.save(
            result, run_dir, audio_path=audio, comparison=bool(comparison), extra_settings=extra,
            name=output_stem(session["name"], "hybrid"),
        )  # fmt: skip
        return result, paths


def advanced_settings(animator: HybridAnimator, kind: str, memory: str) -> dict[str, gr.components.Component]:
    """The controls of the **Advanced settings** accordion, created in the enclosing layout, by the name of the
    :meth:`HybridDemoHandlers.run` argument they feed (in that order, after the mask rule)."""
    renderers = MODES[kind]["renderers"]
    frames_label = f"Number of Frames (0 = length of the {kind})"
    return {
        "renderer": gr.Radio(renderers, value=renderers[0], label="Landmark Renderer"),
        "trajectory_conditioning_scale": gr.Slider(0, 1, value=0.6, step=0.01, label="Control Scale for Trajectory"),
        "landmark_conditioning_scale": gr.Slider(0, 1, value=1.0, step=0.01, label="Control Scale for Landmark"),
        "num_frames": gr.Slider(0, MAX_FRAMES, value=0, step=1, label=frames_label, elem_id="num-frames"),
        "steps": gr.Slider(1, 100, value=animator.default_steps, step=1, label="Denoising Steps", elem_id="steps"),
        "seed": gr.Number(42, precision=0, label="Seed"),
        "memory": gr.Dropdown(list(MEMORY_PRESETS), value=memory, label="Memory Preset"),
        "comparison": gr.Checkbox(True, label="Also write the 7-panel comparison video"),
        "fast": gr.Checkbox(False, label="Fast Mode (adapters every 4th step, fused residuals reused)"),
        "temporal_context": temporal_context_choice(),
    }


def _result_video(label: str, elem_id: str) -> gr.Video:
    return gr.Video(label=label, interactive=False, autoplay=True, loop=True, elem_id=elem_id,
                    elem_classes=RESULT_VIDEO_CLASS)  # fmt: skip


def build_demo(
    animator: HybridAnimator, output_dir: Path, kind: str, banner: str | None = None, memory: str = "balanced"
) -> gr.Blocks:
    """The Gradio page for ``kind`` (``audio`` or ``video``) wired to ``animator``."""
    mode_text = MODES[kind]
    handlers = HybridDemoHandlers(animator, output_dir, kind)
    formats = (
        "wav, mp3, flac, ogg, m4a, ..." if kind == "audio" else "mp4, mov, webm, ...; 25 frames per second of output"
    )
    example_driving, example_label = mode_text["example"]
    with gr.Blocks(title=mode_text["title"]) as demo:
        session = gr.State(hybrid_session.new_session())
        gr.Markdown(f"# {mode_text['title']}\n{mode_text['summary']}")
        if banner:
            gr.Markdown(banner, elem_id="tiny-banner")
        with gr.Accordion("How to use", open=False):
            gr.Markdown(INSTRUCTIONS.format(upload_label=mode_text["upload_label"], kind=kind, formats=formats))
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                with gr.Row():
                    upload_image = gr.UploadButton(
                        "Upload Image", file_types=["image"], type="filepath", variant="primary", elem_id="upload-image"
                    )
                    upload_driving = gr.UploadButton(
                        mode_text["upload_label"], file_types=mode_text["file_types"], type="filepath",
                        variant="primary", elem_id="upload-driving",
                    )  # fmt: skip
                if kind == "audio":
                    player = gr.Audio(label="Audio", type="filepath", interactive=False, elem_id="driving-player")
                else:
                    player = gr.Video(label="Driving Video", interactive=False, elem_id="driving-player")
                clip_info = gr.Markdown("", elem_id="clip-info")
                example_image = gr.Textbox(visible=False)
                example_file = gr.Textbox(visible=False)
                examples = gr.Examples(
                    [[str(EXAMPLES_DIR / "portrait.png"), str(EXAMPLES_DIR / example_driving)]],
                    [example_image, example_file], label="Example (click to load)", example_labels=[example_label],
                )  # fmt: skip
                click_mode = gr.Radio(CLICK_MODES, value=CLICK_MODES[0], label="Clicks add", elem_id="click-mode")
                radius = gr.Slider(1, 200, value=10, step=1, label="Brush Radius (motion brush and landmark mask)")
                with gr.Row():
                    add_trajectory = gr.Button("Add Trajectory")
                    undo = gr.Button("Undo Last Click")
                with gr.Row():
                    delete_trajectory = gr.Button("Delete Last Trajectory")
                    reset = gr.Button("Reset All")
                with gr.Row():
                    clear_brush = gr.Button("Clear Motion Brush")
                    clear_landmark = gr.Button("Clear Landmark Mask")
                mask_mode = gr.Radio(MASK_CHOICES, value="auto", label="Landmark Mask", elem_id="mask-mode")
                mask_status = gr.Markdown(describe_mask_choice("auto", False), elem_id="mask-status")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run-button")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
                status = gr.Markdown(ui_state.NO_IMAGE_MESSAGE, elem_id="status")
                with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                    settings = advanced_settings(animator, kind, memory)
            with gr.Column(scale=2):
                drawing = drawing_panel(
                    "Click to draw: trajectories (one colour each), motion brush (blue), landmark mask (green); "
                    "white dots: the face found"
                )
                with gr.Row():
                    output_video = _result_video("Output", "output-video")
                    overlay_video = _result_video("Output with the landmarks", "overlay-video")
                comparison_video = _result_video(
                    "Side by side: input, hint, flows, landmarks, output", "comparison-video"
                )
                with gr.Row():
                    trajectory_flow = _result_video("Trajectory Flow", "trajectory-flow")
                    landmark_flow = _result_video("Landmark Flow", "landmark-flow")
                    landmark_video = _result_video("Landmarks", "landmark-video")
                with gr.Row():
                    flow_preview = gr.Image(
                        label="Trajectory flow (last frame)", format="png", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image",
                    )  # fmt: skip
                    hint_image = gr.Image(
                        label="Final Hint Image", type="filepath", interactive=False, height=PREVIEW_HEIGHT,
                        elem_classes="fit-image", elem_id="hint",
                    )  # fmt: skip

        results = [output_video, overlay_video, comparison_video, trajectory_flow, landmark_flow, landmark_video,
                   hint_image]  # fmt: skip
        drawn = [session, drawing, flow_preview, mask_status, status]
        fresh = [session, *results, drawing, flow_preview, mask_status, status]
        upload_image.upload(handlers.upload_image, [upload_image, session, mask_mode], fresh, api_name="upload_image")
        upload_driving.upload(
            handlers.upload_driving, [upload_driving, session], [session, *results, player, clip_info, status],
            api_name=f"upload_{kind}",
        )  # fmt: skip
        examples.load_input_event.then(
            handlers.load_example, [example_image, example_file, session, mask_mode],
            [session, *results, player, clip_info, drawing, flow_preview, mask_status, status],
            api_name="load_example",
        )  # fmt: skip
        drawing.select(
            handlers.click, [session, click_mode, radius, mask_mode], drawn, api_name="click",
            trigger_mode="multiple", show_progress="hidden",
        )  # fmt: skip
        undo.click(handlers.undo, [session, click_mode, mask_mode], drawn, api_name="undo")
        for button, action, name in (
            (add_trajectory, ui_state.add_trajectory, "add_trajectory"),
            (delete_trajectory, ui_state.delete_last_trajectory, "delete_last_trajectory"),
            (clear_brush, ui_state.clear_brush, "clear_brush"),
            (clear_landmark, hybrid_session.clear_landmark_mask, "clear_landmark_mask"),
        ):
            button.click(partial(handlers.edit, action), [session, mask_mode], drawn, api_name=name)
        reset.click(handlers.reset, [session, mask_mode], fresh, api_name="reset")
        mask_mode.change(partial(handlers.edit, lambda s: (s, None)), [session, mask_mode], drawn, api_name="mask_mode")
        run.click(
            handlers.run,
            [session, mask_mode, *settings.values()],
            [*results, drawing, mask_status, status],
            api_name="run",
        )
        stop.click(handlers.stop, None, [status], api_name="stop", queue=False)
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
