"""The trajectory demo's page: layout, examples and the wiring of its events to :class:`TrajDemoHandlers`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from pipeline.trajectory_animator import TrajectoryAnimator

from . import demo_page, demo_state
from .traj_handlers import TrajDemoHandlers

TITLE = "MOFA-Video-Traj"
MAX_FRAMES = 125
CACHE_CLEANUP = (3600, 24 * 3600)
"""Every hour, delete the server's copies of shown files older than a day (the run folders stay)."""
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = [[str(EXAMPLES_DIR / "hills.png"), (EXAMPLES_DIR / "hills_tracks.json").read_text()]]
"""One-click inputs: an image made by ``examples/make_examples.py`` and its preset trajectories."""
EXAMPLE_LABELS = ["Hills: the sun rises, the cloud drifts, the tree sways"]
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
5. Press **Run** (**Stop** ends a run without writing anything). Conditioning scale 0.6 is a good start; 1.0
   follows the drags harder but can distort the image.
"""


def advanced_settings(animator: TrajectoryAnimator, memory: str) -> dict[str, gr.components.Component]:
    """The controls of the **Advanced settings** accordion by the name of the :meth:`TrajDemoHandlers.run`
    argument they feed (in that order)."""
    return {
        "num_frames": gr.Slider(2, MAX_FRAMES, value=25, step=1, label="Number of Frames", elem_id="num-frames"),
        "steps": demo_page.steps_slider(animator.default_steps),
        "seed": demo_page.seed_number(),
        "conditioning_scale": demo_page.scale_slider(0.6, "Conditioning Scale"),
        "memory": demo_page.memory_choice(memory),
        "fast": demo_page.fast_mode_checkbox("Fast Mode (adapter every 4th step, about 1.1x SVD time)"),
        "temporal_context": demo_page.temporal_context_choice(),
    }


def brush_painter() -> gr.ImageEditor:
    """The freehand motion-brush editor (its ✓ button applies the paint)."""
    return gr.ImageEditor(
        label="Paint Motion Brush", type="numpy", image_mode="RGBA", sources=[], transforms=(), layers=False,
        brush=gr.Brush(default_size=20, colors=["#0000ff"], color_mode="fixed"), eraser=gr.Eraser(default_size=20),
        elem_id="brush-painter",
    )  # fmt: skip


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
    handlers = TrajDemoHandlers(animator, output_dir)
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(demo_state.new_session())
        demo_page.page_header(TITLE, "Animate an image by drawing where things should move.", banner, INSTRUCTIONS)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload = gr.UploadButton("Upload Image", file_types=["image"], type="filepath", variant="primary")
                example_image = gr.Image(type="filepath", visible=False)
                example_tracks = gr.Textbox(visible=False)
                examples = gr.Examples(
                    EXAMPLES, [example_image, example_tracks], label="Example (click to load)",
                    example_labels=EXAMPLE_LABELS, elem_id="examples",
                )  # fmt: skip
                click_mode = demo_page.click_mode_choice(demo_page.CLICK_MODES)
                add_trajectory, undo, delete_trajectory, reset, clear_brush = demo_page.drawing_buttons()
                brush_radius = gr.Slider(1, 100, value=10, step=1, label="Motion Brush Radius")
                run, stop = demo_page.run_buttons()
                status = gr.Markdown(demo_state.NO_IMAGE_MESSAGE, label="Status", elem_id="status")
                with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                    settings = advanced_settings(animator, memory)
            with gr.Column(scale=2):
                drawing = demo_page.drawing_panel(
                    "Click to draw: trajectories (one colour each) and motion brush (blue)"
                )
                with gr.Accordion("Paint the motion brush freehand (press ✓ in the editor to apply)", open=False):
                    painter = brush_painter()
                with gr.Row():
                    output_video = demo_page.result_video("Output Video", "output-video")
                    flow_video = demo_page.result_video("Output Flow", "flow-video")
                with gr.Row():
                    flow_preview = demo_page.preview_image("Visualized Flow (last frame)", "flow-preview", format="png")
                    hint_image = demo_page.preview_image("Visualized Hint Image", "hint-image", type="filepath")

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
        for button, action, name in (
            (add_trajectory, demo_state.add_trajectory, "add_trajectory"),
            (delete_trajectory, demo_state.delete_last_trajectory, "delete_last_trajectory"),
        ):
            button.click(partial(handlers.edit, action), [session], drawn, api_name=name)
        painter.apply(handlers.paint_brush, [session, painter], drawn, api_name="paint_brush")
        clear_brush.click(
            handlers.clear_brush, [session], [session, drawing, painter, flow_preview, status], api_name="clear_brush"
        )
        reset.click(handlers.reset, [session], fresh, api_name="reset")
        run.click(handlers.run, [session, *settings.values()], [output_video, flow_video, hint_image, status],
                  api_name="run")  # fmt: skip
        stop.click(handlers.stop, None, [status], api_name="stop", queue=False)
    return demo
