"""The audio-driven Hybrid demo in a real browser: headless Chromium (Debian's, driven by Playwright), tiny mode.

Skipped when /usr/bin/chromium is missing, except under CI (``CI=true``), where that is a failure.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from media_helpers import save_portrait
from ui_helpers import (
    chromium_page,
    click_image,
    loaded_video,
    require_chromium,
    served_demo,
    wait_for_image_width,
    wait_for_text,
)

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Hybrid"


@pytest.fixture(scope="module")
def tiny_audio_demo_url(tmp_path_factory):
    """The audio-driven demo served in tiny mode on 127.0.0.1 at a free port."""
    require_chromium()
    work = tmp_path_factory.mktemp("hybrid_browser")
    with served_demo(SUBPROJECT, "run_gradio_audio_driven.py", ["--tiny"], work) as server:
        yield server.url


@pytest.fixture
def page():
    with chromium_page(1500, 1200) as page:
        yield page


def test_upload_image_and_audio_drag_paint_and_run_show_a_video_with_sound(tiny_audio_demo_url, page, tmp_path):
    save_portrait(tmp_path / "portrait.png", (256, 256))
    times = np.arange(8000) / 16000
    for name in ("early.wav", "speech.wav"):
        soundfile.write(tmp_path / name, (0.4 * np.sin(2 * np.pi * 180 * times)).astype(np.float32), 16000)

    page.goto(tiny_audio_demo_url)
    assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
    page.get_by_test_id("Upload Audio-upload-button").set_input_files(str(tmp_path / "early.wav"))
    wait_for_text(page, "#status", "Upload an image first.")

    page.get_by_test_id("Upload Image-upload-button").set_input_files(str(tmp_path / "portrait.png"))
    wait_for_text(page, "#status", "Image 64x64: 0 trajectories")
    wait_for_text(page, "#mask-status", "automatic")
    page.get_by_test_id("Upload Audio-upload-button").set_input_files(str(tmp_path / "speech.wav"))
    wait_for_text(page, "#status", "driving audio: speech.wav")

    wait_for_image_width(page, "#trajectory-image", 64)
    click_image(page, "#trajectory-image", 0.2, 0.8, "#status", "1 trajectories (1 clicks)")
    click_image(page, "#trajectory-image", 0.4, 0.7, "#status", "1 trajectories (2 clicks)")
    click_image(page, "#landmark-image", 0.5, 0.45, "#mask-status", "painted")
    wait_for_text(page, "#status", "1 landmark-mask stamps")
    number = page.locator("#num-frames input[type=number]")
    number.fill("3")
    number.press("Enter")

    page.locator("#run-button").click()
    wait_for_text(page, "#status", "Done: 3 frames written to")
    source, duration, width = loaded_video(page, "#output-video")
    assert duration == pytest.approx(3 / 25, abs=0.05)  # 3 frames at 25 fps (the audio is cut to the video)
    assert width == 64
    response = page.request.get(source)
    assert response.status == 200 and response.body()[4:8] == b"ftyp"
    assert b"mp4a" in response.body()  # an AAC audio track is in the file
