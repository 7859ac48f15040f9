"""The Gradio demo in a real browser: headless Chromium (Debian's, driven by Playwright) in tiny mode.

Each test saves a screenshot under MOFA-Video-Traj/docs/ (the README shows them).
Skipped when /usr/bin/chromium is missing, except under CI (``CI=true``), where that is a failure.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_helpers import (
    chromium_page,
    click_pixel,
    first_video_frame,
    loaded_video,
    require_chromium,
    save_screenshot,
    served_demo,
    set_number,
    show_first_frame,
    stop_a_run,
    wait_for_image_width,
    wait_for_text,
    wait_for_toasts_to_fade,
)

from utils.flow_viz import colour_wheel

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Traj"
DOCS = SUBPROJECT / "docs"
RUN_TIMEOUT_MS = 600_000
"""A run's wait: tiny runs take seconds on an idle machine, minutes on a busy shared one."""


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    """The demo served in tiny mode on 127.0.0.1 at a free port."""
    require_chromium()
    with served_demo(SUBPROJECT, "run_gradio.py", ["--tiny"], tmp_path_factory.mktemp("browser_demo")) as server:
        yield server


@pytest.fixture
def page(tiny_demo):
    with chromium_page(1400, 1100) as page:
        page.goto(tiny_demo.url)
        yield page


def _wait_for_status(page, text: str) -> None:
    wait_for_text(page, "#status", text)


def _upload(page, path: Path, expected_status: str) -> None:
    page.locator("input[type=file]").first.set_input_files(str(path))
    _wait_for_status(page, expected_status)


def _gradient_image(path: Path, size: tuple[int, int] = (256, 256)) -> Path:
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4, 2] = 200
    Image.fromarray(image).save(path)
    return path


def _open_advanced(page) -> None:
    page.locator("#advanced").get_by_text("Advanced settings").click()
    page.locator("#steps input[type=number]").wait_for(state="visible")


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def test_panel_shows_the_image_at_512_px_and_corner_clicks_map_exactly(page, tmp_path):
    assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
    _upload(page, _gradient_image(tmp_path / "input.png"), "Image 512x512: 0 trajectories")
    wait_for_image_width(page, "#drawing-image", 512)
    box = page.locator("#drawing-image img").bounding_box()
    assert box["width"] >= 512 and box["height"] >= 512

    corners = [(0, 0), (511, 0), (511, 511), (0, 511)]
    for clicks, (x, y) in enumerate(corners, start=1):
        click_pixel(
            page, "#drawing-image", x, y, "#status", f"1 trajectories ({clicks} clicks). Last click at ({x}, {y})"
        )
    # the drag ends 511 px from its start: the page warns that the adapter follows about 60 px
    assert (
        "This drag reaches 511 px from its start; the adapter follows about 60 px"
        in page.locator("#status").inner_text()
    )
    assert page.get_by_test_id("toast-body").filter(has_text="This drag reaches 723 px").count() == 1

    page.get_by_role("button", name="Undo Last Click").click()
    _wait_for_status(page, "1 trajectories (3 clicks).")
    page.get_by_role("radio", name="Motion brush").check()
    click_pixel(page, "#drawing-image", 256, 256, "#status", "(3 clicks), 1 brush stamps. Last click at (256, 256)")
    wait_for_toasts_to_fade(page)
    save_screenshot(page, DOCS / "demo_drawing.png")

    page.get_by_role("button", name="Reset All").click()
    _wait_for_status(page, "Image 512x512: 0 trajectories (0 clicks).")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    _upload(page, tmp_path / "broken.png", "Cannot use this file: broken.png is not a readable image (unknown format)")


def test_example_runs_end_to_end_and_a_new_upload_clears_its_results(page, tiny_demo, tmp_path):
    page.get_by_text("Hills: the sun rises").click()  # the example: an image and its preset trajectories
    _wait_for_status(page, "Image 512x512: 4 trajectories (9 clicks).")
    wait_for_image_width(page, "#drawing-image", 512)

    page.locator("#run-button").click()  # default settings: 25 frames, the tiny mode's 2 steps
    wait_for_text(page, "#status", "Done: 25 frames written to outputs/", RUN_TIMEOUT_MS)
    source, duration, width = loaded_video(page, "#output-video")
    assert duration == pytest.approx(25 / 20, abs=0.06)  # exported at 20 fps
    assert width == 64  # tiny mode generates at a 64-px short side
    assert Path(source.split("?")[0]).name.startswith("hills_traj_")  # the download is named after the image
    response = page.request.get(source)
    assert response.status == 200 and response.body()[4:8] == b"ftyp"
    video = page.locator("#output-video video")
    assert video.evaluate("v => v.muted && v.loop && v.autoplay")
    first_flow = first_video_frame(page, "#flow-video").astype(int)  # frame 0 does not move: the colour key
    assert np.abs(first_flow - colour_wheel(*first_flow.shape[:2])).mean() < 8
    show_first_frame(page, "#flow-video")  # the screenshot shows the flow panel's colour key
    save_screenshot(page, DOCS / "demo_tiny.png")

    _upload(page, _gradient_image(tmp_path / "next.png"), "Image 512x512: 0 trajectories (0 clicks).")
    page.wait_for_function("() => !document.querySelector('#output-video video')")
    assert page.locator("#flow-video video").count() == 0
    assert page.locator("#hint-image img").count() == 0


def test_stop_ends_a_run_without_writing_and_the_next_run_works(page, tiny_demo, tmp_path):
    _upload(page, _gradient_image(tmp_path / "input.png"), "Image 512x512: 0 trajectories")
    wait_for_image_width(page, "#drawing-image", 512)
    click_pixel(page, "#drawing-image", 200, 250, "#status", "(1 clicks)")
    click_pixel(page, "#drawing-image", 230, 240, "#status", "(2 clicks)")
    _open_advanced(page)
    files_before = _files_under(tiny_demo.outputs)
    stop_a_run(page, 40, RUN_TIMEOUT_MS)
    assert _files_under(tiny_demo.outputs) == files_before
    save_screenshot(page, DOCS / "demo_stopped.png")

    set_number(page, "#steps", 2)
    set_number(page, "#num-frames", 3)
    page.locator("#run-button").click()
    wait_for_text(page, "#status", "Done: 3 frames written to outputs/", RUN_TIMEOUT_MS)
    _, duration, _ = loaded_video(page, "#output-video")
    assert duration == pytest.approx(3 / 20, abs=0.03)
    assert len(_files_under(tiny_demo.outputs)) == len(files_before) + 5  # input, video, flow, hint, settings
