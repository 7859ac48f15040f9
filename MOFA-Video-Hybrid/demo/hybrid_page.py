"""The Hybrid demos' page (audio- or video-driven): layout, examples and the wiring of its events to
:class:`~demo.hybrid_handlers.HybridDemoHandlers`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from pipeline.hybrid_animator import HybridAnimator
from utils.face_mask import describe_mask_choice
from utils.landmark_renderers import LANDMARK_RENDERERS

from . import demo_page, demo_state, hybrid_demo_state
from .hybrid_handlers import HYBRID_CLICK_MODES, MAX_FRAMES, HybridDemoHandlers

CSS = demo_page.CSS + ".fit-image img {image-rendering: pixelated;}\n"
MASK_CHOICES = [
    ("Auto: painted if any, else from the face landmarks", "auto"),
    ("Painted only", "painted"),
    ("From the face landmarks", "landmarks"),
    ("None: trajectories only", "none"),
]
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
MODES = {
    "audio": {
        "title": "MOFA-Video-Hybrid (audio-driven)",
        "summary": "A portrait talks along with an audio clip while your drags move the rest of the image.",
        "upload_label": "Upload Audio",
        "file_types": ["audio"],
        "formats": "wav, mp3, flac, ogg, m4a, ...",
        "renderers": list(LANDMARK_RENDERERS),
        "synthetic": "a schematic face whose mouth opens with the audio's loudness",
        "example": ["speech.wav", "Drawn portrait + synthetic speech (espeak-ng)"],
    },
    "video": {
        "title": "MOFA-Video-Hybrid (video-driven)",
        "summary": (
            "A portrait takes the head motion and expressions of a driving video while your drags move the rest."
        ),
        "upload_label": "Upload Driving Video",
        "file_types": ["video"],
        "formats": "mp4, mov, webm, ...; 25 frames per second of output",
        "renderers": ["sadtalker"],
        "synthetic": "a schematic face that follows the driving video's global motion",
        "example": ["driving.mp4", "Drawn portrait + drawn driving video (MPEG-4 Part 2)"],
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


def advanced_settings(animator: HybridAnimator, kind: str, memory: str) -> dict[str, gr.components.Component]:
    """The controls of the **Advanced settings** accordion by the name of the :meth:`HybridDemoHandlers.run`
    argument they feed (in that order, after the mask rule)."""
    renderers = MODES[kind]["renderers"]
    frames_label = f"Number of Frames (0 = length of the {kind})"
    return {
        "renderer": gr.Radio(renderers, value=renderers[0], label="Landmark Renderer"),
        "trajectory_conditioning_scale": demo_page.scale_slider(0.6, "Conditioning Scale for Trajectory"),
        "landmark_conditioning_scale": demo_page.scale_slider(1.0, "Conditioning Scale for Landmark"),
        "num_frames": gr.Slider(0, MAX_FRAMES, value=0, step=1, label=frames_label, elem_id="num-frames"),
        "steps": demo_page.steps_slider(animator.default_steps),
        "seed": demo_page.seed_number(),
        "memory": demo_page.memory_choice(memory),
        "comparison": gr.Checkbox(True, label="Also write the 7-panel comparison video"),
        "fast": demo_page.fast_mode_checkbox("Fast Mode (adapters every 4th step, fused residuals reused)"),
        "temporal_context": demo_page.temporal_context_choice(),
    }


def driving_inputs(kind: str) -> tuple[gr.UploadButton, gr.UploadButton, gr.components.Component, gr.Markdown]:
    """The two upload buttons, the driving file's player and its clip facts."""
    mode_text = MODES[kind]
    with gr.Row():
        upload_image = gr.UploadButton(
            "Upload Image", file_types=["image"], type="filepath", variant="primary", elem_id="upload-image"
        )
        upload_driving = gr.UploadButton(mode_text["upload_label"], file_types=mode_text["file_types"],
                                         type="filepath", variant="primary", elem_id="upload-driving")  # fmt: skip
    if kind == "audio":
        player = gr.Audio(label="Audio", type="filepath", interactive=False, elem_id="driving-player")
    else:
        player = gr.Video(label="Driving Video", interactive=False, elem_id="driving-player")
    return upload_image, upload_driving, player, gr.Markdown("", elem_id="clip-info")


def result_players() -> list[gr.components.Component]:
    """The result components, in the order of :data:`~demo.hybrid_handlers.RESULTS` (the hint image last)."""
    with gr.Row():
        videos = [
            demo_page.result_video("Output", "output-video"),
            demo_page.result_video("Output with the landmarks", "overlay-video"),
        ]
    videos.append(demo_page.result_video("Side by side: input, hint, flows, landmarks, output", "comparison-video"))
    with gr.Row():
        videos += [
            demo_page.result_video("Trajectory Flow", "trajectory-flow"),
            demo_page.result_video("Landmark Flow", "landmark-flow"),
            demo_page.result_video("Landmarks", "landmark-video"),
        ]
    return videos


def build_demo(
    animator: HybridAnimator, output_dir: Path, kind: str, banner: str | None = None, memory: str = "balanced"
) -> gr.Blocks:
    """The Gradio page for ``kind`` (``audio`` or ``video``) wired to ``animator``."""
    mode_text = MODES[kind]
    handlers = HybridDemoHandlers(animator, output_dir, kind)
    instructions = INSTRUCTIONS.format(upload_label=mode_text["upload_label"], kind=kind, formats=mode_text["formats"])
    example_driving, example_label = mode_text["example"]
    with gr.Blocks(title=mode_text["title"]) as demo:
        session = gr.State(hybrid_demo_state.new_session())
        demo_page.page_header(mode_text["title"], mode_text["summary"], banner, instructions)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload_image, upload_driving, player, clip_info = driving_inputs(kind)
                example_image = gr.Textbox(visible=False)
                example_file = gr.Textbox(visible=False)
                examples = gr.Examples(
                    [[str(EXAMPLES_DIR / "portrait.png"), str(EXAMPLES_DIR / example_driving)]],
                    [example_image, example_file], label="Example (click to load)", example_labels=[example_label],
                )  # fmt: skip
                click_mode = demo_page.click_mode_choice(HYBRID_CLICK_MODES)
                radius = gr.Slider(1, 200, value=10, step=1, label="Brush Radius (motion brush and landmark mask)")
                buttons = demo_page.drawing_buttons("Clear Landmark Mask")
                add_trajectory, undo, delete_trajectory, reset, clear_brush, clear_landmark = buttons
                mask_mode = gr.Radio(MASK_CHOICES, value="auto", label="Landmark Mask", elem_id="mask-mode")
                mask_status = gr.Markdown(describe_mask_choice("auto", False), elem_id="mask-status")
                run, stop = demo_page.run_buttons()
                status = gr.Markdown(demo_state.NO_IMAGE_MESSAGE, elem_id="status")
                with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                    settings = advanced_settings(animator, kind, memory)
            with gr.Column(scale=2):
                drawing = demo_page.drawing_panel(
                    "Click to draw: trajectories (one colour each), motion brush (blue), landmark mask (green); "
                    "white dots: the face found"
                )
                videos = result_players()
                with gr.Row():
                    flow_preview = demo_page.preview_image("Trajectory flow (last frame)", format="png")
                    hint_image = demo_page.preview_image("Final Hint Image", "hint", type="filepath")

        results = [*videos, hint_image]
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
            (add_trajectory, demo_state.add_trajectory, "add_trajectory"),
            (delete_trajectory, demo_state.delete_last_trajectory, "delete_last_trajectory"),
            (clear_brush, demo_state.clear_brush, "clear_brush"),
            (clear_landmark, hybrid_demo_state.clear_landmark_mask, "clear_landmark_mask"),
        ):
            button.click(partial(handlers.edit, action), [session, mask_mode], drawn, api_name=name)
        reset.click(handlers.reset, [session, mask_mode], fresh, api_name="reset")
        mask_mode.change(partial(handlers.edit, lambda s: (s, None)), [session, mask_mode], drawn, api_name="mask_mode")
        run.click(handlers.run, [session, mask_mode, *settings.values()], [*results, drawing, mask_status, status],
                  api_name="run")  # fmt: skip
        stop.click(handlers.stop, None, [status], api_name="stop", queue=False)
    return demo
