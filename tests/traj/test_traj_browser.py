"""The Gradio demo in a real browser: headless Chromium (Debian's, driven by Playwright) in tiny mode.

Skipped when /usr/bin/chromium is missing, except under CI (``CI=true``), where that is a failure.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ui_helpers import (
    chromium_page,
    click_image,
    loaded_video,
    require_chromium,
    served_demo,
    wait_for_image_width,
    wait_for_text,
)

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Traj"


@pytest.fixture(scope="module")
def tiny_demo_url(tmp_path_factory):
    """The demo served in tiny mode on 127.0.0.1 at a free port."""
    require_chromium()
    with served_demo(SUBPROJECT, "run_gradio.py", ["--tiny"], tmp_path_factory.mktemp("browser_demo")) as server:
        yield server.url


@pytest.fixture
def page():
    with chromium_page(1400, 1100) as page:
        yield page


def _wait_for_status(page, text: str) -> None:
    wait_for_text(page, "#status", text)


def test_upload_two_clicks_add_trajectory_brush_and_run_show_a_playable_video(tiny_demo_url, page, tmp_path):
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]
    image[64:192, 64:192, 2] = 200
    Image.fromarray(image).save(tmp_path / "input.png")

    page.goto(tiny_demo_url)
    assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
    page.locator("input[type=file]").set_input_files(str(tmp_path / "input.png"))
    _wait_for_status(page, "Image 512x512: 0 trajectories")
    wait_for_image_width(page, "#trajectory-image", 512)
    click_image(page, "#trajectory-image", 0.4, 0.5, "#status", "1 trajectories (1 clicks)")
    click_image(page, "#trajectory-image", 0.6, 0.45, "#status", "1 trajectories (2 clicks)")
    page.get_by_role("button", name="Add Trajectory").click()
    click_image(page, "#brush-image", 0.4, 0.5, "#status", "(2 clicks), 1 brush stamps")
    for slider, value in (("#num-frames", "3"), ("#steps", "2")):
        number = page.locator(f"{slider} input[type=number]")
        number.fill(value)
        number.press("Enter")

    page.locator("#run-button").click()
    _wait_for_status(page, "Done: 3 frames written to")
    source, duration, width = loaded_video(page, "#output-video")
    assert duration == pytest.approx(3 / 20, abs=0.03)  # 3 frames exported at 20 fps
    assert width > 0
    response = page.request.get(source)
    assert response.status == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.body()[4:8] == b"ftyp"
