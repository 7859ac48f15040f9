"""The audio-driven Hybrid demo in a real browser: headless Chromium (Debian's, driven by Playwright), tiny mode.

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
import soundfile
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Hybrid"
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
def tiny_audio_demo_url(tmp_path_factory):
    """The audio-driven demo in tiny mode on 127.0.0.1 at a free port; stopped (its process group) afterwards."""
    _require_chromium()
    work = tmp_path_factory.mktemp("hybrid_browser")
    port = _free_port()
    log = work / "server.log"
    command = [sys.executable, "run_gradio_audio_driven.py", "--tiny", "--port", str(port), "--device", "cpu",
               "--output_dir", str(work / "outputs")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=SUBPROJECT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
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
            yield browser.new_page(viewport={"width": 1500, "height": 1200})
        finally:
            browser.close()


def _wait_for(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).innerText.includes(text)",
        arg=[selector, text],
        timeout=EVENT_TIMEOUT_MS,
    )


def _click_at(page, selector: str, fx: float, fy: float) -> None:
    box = page.locator(f"{selector} img").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def test_upload_image_and_audio_drag_paint_and_run_show_a_video_with_sound(tiny_audio_demo_url, page, tmp_path):
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]
    image[64:192, 64:192, 1] = 200
    Image.fromarray(image).save(tmp_path / "portrait.png")
    times = np.arange(8000) / 16000
    for name in ("early.wav", "speech.wav"):
        soundfile.write(tmp_path / name, (0.4 * np.sin(2 * np.pi * 180 * times)).astype(np.float32), 16000)

    page.goto(tiny_audio_demo_url)
    assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
    page.get_by_test_id("Upload Audio-upload-button").set_input_files(str(tmp_path / "early.wav"))
    _wait_for(page, "#status", "Upload an image first.")

    page.get_by_test_id("Upload Image-upload-button").set_input_files(str(tmp_path / "portrait.png"))
    _wait_for(page, "#status", "Image 64x64: 0 trajectories")
    _wait_for(page, "#mask-status", "automatic")
    page.get_by_test_id("Upload Audio-upload-button").set_input_files(str(tmp_path / "speech.wav"))
    _wait_for(page, "#status", "driving audio: speech.wav")

    page.wait_for_function(
        "() => { const img = document.querySelector('#trajectory-image img');"
        " return img && img.complete && img.naturalWidth === 64; }",
        timeout=EVENT_TIMEOUT_MS,
    )
    _click_at(page, "#trajectory-image", 0.2, 0.8)
    _wait_for(page, "#status", "1 trajectories (1 clicks)")
    _click_at(page, "#trajectory-image", 0.4, 0.7)
    _wait_for(page, "#status", "1 trajectories (2 clicks)")
    _click_at(page, "#landmark-image", 0.5, 0.45)
    _wait_for(page, "#mask-status", "painted")
    _wait_for(page, "#status", "1 landmark-mask stamps")
    number = page.locator("#num-frames input[type=number]")
    number.fill("3")
    number.press("Enter")

    page.locator("#run-button").click()
    _wait_for(page, "#status", "Done: 3 frames written to")
    page.wait_for_function(
        "() => { const video = document.querySelector('#output-video video');"
        " return video && video.readyState >= 1 && video.duration > 0; }",
        timeout=EVENT_TIMEOUT_MS,
    )
    source, duration, width = page.locator("#output-video video").evaluate(
        "video => [video.currentSrc, video.duration, video.videoWidth]"
    )
    assert duration == pytest.approx(3 / 25, abs=0.05)  # 3 frames at 25 fps (the audio is cut to the video)
    assert width == 64
    response = page.request.get(source)
    assert response.status == 200 and response.body()[4:8] == b"ftyp"
    assert b"mp4a" in response.body()  # an AAC audio track is in the file
