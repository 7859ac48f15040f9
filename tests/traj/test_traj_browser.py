"""The Gradio demo in a real browser: headless Chromium (Debian's, driven by Playwright) in tiny mode.

Skipped when /usr/bin/chromium is missing, except under CI (``CI=true``), where that is a failure.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SERVER_START_TIMEOUT_S = 180
EVENT_TIMEOUT_MS = 120_000


def _require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing on CI (.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_demo_url(tmp_path_factory, request):
    """The demo served in tiny mode on 127.0.0.1 at a free port; stopped (its whole process group) afterwards."""
    _require_chromium()
    subproject = Path(request.config.rootpath) / "MOFA-Video-Traj"
    work = tmp_path_factory.mktemp("browser_demo")
    port = _free_port()
    log = work / "server.log"
    command = [sys.executable, "run_gradio.py", "--tiny", "--port", str(port), "--device", "cpu",
               "--output_dir", str(work / "outputs")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=subproject, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo exited with code {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the demo did not answer on {url}:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1100})
        finally:
            browser.close()


def _wait_for_status(page, text: str) -> None:
    page.wait_for_function(
        "text => document.querySelector('#status').innerText.includes(text)", arg=text, timeout=EVENT_TIMEOUT_MS
    )


def _click_image(page, selector: str, fx: float, fy: float, expected_status: str) -> None:
    """Clicks at a fraction (fx, fy) of an image and waits until the redrawn image has loaded.

    A click that lands while the image element swaps to its new file is lost, so the next click waits.
    """
    image = page.locator(f"{selector} img")
    old_source = image.get_attribute("src")
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    _wait_for_status(page, expected_status)
    page.wait_for_function(
        "([selector, old]) => { const img = document.querySelector(selector + ' img');"
        " return img && img.src !== old && img.complete && img.naturalWidth > 0; }",
        arg=[selector, old_source],
        timeout=EVENT_TIMEOUT_MS,
    )


def test_upload_two_clicks_add_trajectory_brush_and_run_show_a_playable_video(tiny_demo_url, page, tmp_path):
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]
    image[64:192, 64:192, 2] = 200
    Image.fromarray(image).save(tmp_path / "input.png")

    page.goto(tiny_demo_url)
    assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
    page.locator("input[type=file]").set_input_files(str(tmp_path / "input.png"))
    _wait_for_status(page, "Image 512x512: 0 trajectories")
    page.wait_for_function(
        "() => { const img = document.querySelector('#trajectory-image img');"
        " return img && img.complete && img.naturalWidth === 512; }",
        timeout=EVENT_TIMEOUT_MS,
    )
    _click_image(page, "#trajectory-image", 0.4, 0.5, "1 trajectories (1 clicks)")
    _click_image(page, "#trajectory-image", 0.6, 0.45, "1 trajectories (2 clicks)")
    page.get_by_role("button", name="Add Trajectory").click()
    _click_image(page, "#brush-image", 0.4, 0.5, "(2 clicks), 1 brush stamps")
    for slider, value in (("#num-frames", "3"), ("#steps", "2")):
        number = page.locator(f"{slider} input[type=number]")
        number.fill(value)
        number.press("Enter")

    page.locator("#run-button").click()
    _wait_for_status(page, "Done: 3 frames written to")
    page.wait_for_function(
        "() => { const video = document.querySelector('#output-video video');"
        " return video && video.readyState >= 1 && video.duration > 0; }",
        timeout=EVENT_TIMEOUT_MS,
    )
    source, duration, width = page.locator("#output-video video").evaluate(
        "video => [video.currentSrc, video.duration, video.videoWidth]"
    )
    assert duration == pytest.approx(3 / 20, abs=0.03)  # 3 frames exported at 20 fps
    assert width > 0
    response = page.request.get(source)
    assert response.status == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.body()[4:8] == b"ftyp"
