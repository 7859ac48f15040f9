"""Shared by the tests that serve a Gradio demo: the demo in a subprocess, gradio_client clicks, a headless browser.

Every suite's conftest.py puts this folder on ``sys.path``, so test files ``import ui_helpers``.

Browser tests use Debian's Chromium (driven by Playwright) and are skipped when it is missing, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SERVER_START_TIMEOUT_S = 180
SERVER_STOP_TIMEOUT_S = 15
EVENT_TIMEOUT_MS = 120_000
SETTLE_TIMEOUT_MS = 5_000
DEMO_ENV = {
    "HF_HUB_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "MOFA_TINY": "0",  # tiny mode only where a test asks for it with --tiny
    "OMP_NUM_THREADS": "1",
}


# ----------------------------------------------------------------------------------------------------------
# the demo server


@dataclass
class DemoServer:
    """A demo answering on ``url``; its output folder and the logs of its stdout and stderr."""

    url: str
    outputs: Path
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_served(server: DemoServer, process: subprocess.Popen, script: str) -> None:
    """Returns once ``server.url`` answers HTTP 200; fails the test when the process exits or time runs out."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{script} exited with code {process.returncode}\n{server.logs()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{script} did not answer on {server.url} within {SERVER_START_TIMEOUT_S} s\n{server.logs()}")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already exited
        os.killpg(process.pid, signum)


def _stop(process: subprocess.Popen) -> None:
    """Stops the process and everything it started (its own process group): SIGTERM, then SIGKILL."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def served_demo(subproject: Path, script: str, args: list[str], work: Path) -> Iterator[DemoServer]:
    """Runs ``python <script> --port <free> --device cpu --output_dir <work>/outputs <args>`` in ``subproject``.

    The demo runs offline in its own process group, with the environment of ``DEMO_ENV``; yields once it answers
    HTTP 200 on 127.0.0.1, and stops it (with anything it started) on exit, also when it never came up.
    """
    port = free_port()
    server = DemoServer(
        url=f"http://127.0.0.1:{port}/",
        outputs=work / "outputs",
        stdout=work / "stdout.log",
        stderr=work / "stderr.log",
    )
    command = [sys.executable, script, "--port", str(port), "--device", "cpu", "--output_dir", str(server.outputs)]
    with open(server.stdout, "w") as stdout, open(server.stderr, "w") as stderr:
        process = subprocess.Popen(
            [*command, *args],
            cwd=subproject,
            env={**os.environ, **DEMO_ENV},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _wait_until_served(server, process, script)
        yield server
    finally:
        _stop(process)


def select(client, api_name: str, x: int, y: int, *inputs):
    """Sends a click at pixel (x, y) on an image through a gradio_client ``Client``, as the browser's select
    event does, to the endpoint ``api_name`` with the other ``inputs``; returns the endpoint's outputs."""
    fn_index = next(index for index, endpoint in client.endpoints.items() if endpoint.api_name == api_name)
    send = client.endpoints[fn_index].make_end_to_end_fn(client.new_helper(fn_index))
    return send(*inputs, event_data={"index": [x, y], "value": None})


# ----------------------------------------------------------------------------------------------------------
# the browser


def require_chromium() -> None:
    """Skips the test when Debian's Chromium is missing; under CI (``CI=true``) fails it instead."""
    if CHROMIUM.is_file():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing on CI (.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@contextlib.contextmanager
def chromium_page(width: int, height: int) -> Iterator:
    """A Playwright page of ``width`` x ``height`` CSS pixels in headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_for_text(page, selector: str, text: str, timeout_ms: int = EVENT_TIMEOUT_MS) -> None:
    """Waits (at most ``timeout_ms``) until the element matching ``selector`` shows ``text`` (as part of its text)."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).innerText.includes(text)",
        arg=[selector, text],
        timeout=timeout_ms,
    )


def click_image(page, selector: str, fx: float, fy: float, status_selector: str, expected_status: str) -> None:
    """Clicks at a fraction (fx, fy) of the image inside ``selector``, waits until ``status_selector`` shows
    ``expected_status`` and the redrawn image has loaded.

    A click that lands while the image element swaps to its new file is lost, so the next click waits.
    """
    image = page.locator(f"{selector} img")
    old_source = image.get_attribute("src")
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    wait_for_text(page, status_selector, expected_status)
    page.wait_for_function(
        "([selector, old]) => { const img = document.querySelector(selector + ' img');"
        " return img && img.src !== old && img.complete && img.naturalWidth > 0; }",
        arg=[selector, old_source],
        timeout=EVENT_TIMEOUT_MS,
    )


def wait_for_image_width(page, selector: str, width: int) -> None:
    """Waits until the image inside ``selector`` has loaded a picture ``width`` pixels wide."""
    page.wait_for_function(
        "([selector, width]) => { const img = document.querySelector(selector + ' img');"
        " return img && img.complete && img.naturalWidth === width; }",
        arg=[selector, width],
        timeout=EVENT_TIMEOUT_MS,
    )


def loaded_video(page, selector: str) -> tuple[str, float, int]:
    """Waits until the video inside ``selector`` knows its duration; returns (its URL, seconds, width in pixels)."""
    page.wait_for_function(
        "selector => { const video = document.querySelector(selector + ' video');"
        " return video && video.readyState >= 1 && video.duration > 0; }",
        arg=selector,
        timeout=EVENT_TIMEOUT_MS,
    )
    source, duration, width = page.locator(f"{selector} video").evaluate(
        "video => [video.currentSrc, video.duration, video.videoWidth]"
    )
    return source, duration, width


def first_video_frame(page, selector: str):
    """Frame 0 of the video inside ``selector``, fetched from its URL as the browser does and decoded with PyAV:
    ``(H, W, 3)`` uint8 RGB."""
    import av

    source, _, _ = loaded_video(page, selector)
    with av.open(io.BytesIO(page.request.get(source).body())) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def show_first_frame(page, selector: str) -> None:
    """Pauses the video inside ``selector`` on its frame 0 (so that a screenshot shows that frame)."""
    page.locator(f"{selector} video").evaluate(
        "video => new Promise(done => { video.pause(); video.addEventListener('seeked', done, {once: true});"
        " setTimeout(done, 2000); video.currentTime = 0; })"
    )


def click_pixel(page, selector: str, x: int, y: int, status_selector: str, expected_status: str) -> None:
    """Clicks the centre of pixel (x, y) of the picture shown in the image inside ``selector`` (its own pixels,
    whatever size the page draws it at), then waits as :func:`click_image` does."""
    width, height = page.locator(f"{selector} img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    click_image(page, selector, (x + 0.5) / width, (y + 0.5) / height, status_selector, expected_status)


def set_number(page, selector: str, value: int) -> None:
    """Types ``value`` into the number box of the slider or number field ``selector``, confirms it and, for a
    slider, waits until its range input shows it (the page has taken the value: a Run clicked right after sends it).

    The value is typed again while the slider has not taken it: a slider just shown (an accordion opened) can
    still be settling and drop the first one.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    number = page.locator(f"{selector} input[type=number]")
    deadline = time.monotonic() + EVENT_TIMEOUT_MS / 1000
    while True:
        number.fill(str(value))
        number.press("Enter")
        try:
            page.wait_for_function(
                "([selector, value]) => [...document.querySelectorAll(selector + ' input[type=range]')]"
                ".every(range => Number(range.value) === value)",
                arg=[selector, value],
                timeout=SETTLE_TIMEOUT_MS,
            )
            return
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise


def save_screenshot(page, path: Path) -> None:
    """Saves the whole page as a PNG at ``path`` (the sub-project's docs/ folder shows these in its README)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def wait_for_toasts_to_fade(page) -> None:
    """Waits until no warning toast is shown (they fade after a few seconds)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=toast-body]')", timeout=EVENT_TIMEOUT_MS)


def stop_a_run(page, steps: int, timeout_ms: int = EVENT_TIMEOUT_MS) -> None:
    """Sets **Denoising Steps** (``#steps``, in the open Advanced settings) to ``steps``, presses **Run**, waits
    for a denoising step, presses **Stop** and waits until ``#status`` says the run stopped without writing.

    Any step will do: on an idle machine the progress line may skip step 1.
    """
    set_number(page, "#steps", steps)
    page.locator("#run-button").click()
    page.wait_for_function(
        "steps => new RegExp(`Denoising step \\\\d+/${steps}`).test(document.body.innerText)", arg=steps,
        timeout=timeout_ms,
    )  # fmt: skip
    page.locator("#stop-button").click()
    wait_for_text(page, "#status", "Stopped: nothing was written.", timeout_ms)  # at the end of a step
