"""Both Hybrid demo pages in a real browser: headless Chromium (Debian's, driven by Playwright), tiny mode.

Each test saves a screenshot under MOFA-Video-Hybrid/docs/ (the README shows them).
Skipped when /usr/bin/chromium is missing, except under CI (``CI=true``), where that is a failure.
"""

import io
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

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Hybrid"
DOCS = SUBPROJECT / "docs"
EXAMPLES = SUBPROJECT / "examples"
RUN_TIMEOUT_MS = 600_000
"""A run's wait: tiny runs take seconds on an idle machine, minutes on a busy shared one."""
SCRIPTS = {"audio": "run_gradio_audio_driven.py", "video": "run_gradio_video_driven.py"}


@pytest.fixture(scope="module", params=["audio", "video"])
def tiny_demo(request, tmp_path_factory):
    """One page per parameter (``audio``, ``video``), served in tiny mode on 127.0.0.1 at a free port."""
    require_chromium()
    work = tmp_path_factory.mktemp(f"hybrid_{request.param}_browser")
    with served_demo(SUBPROJECT, SCRIPTS[request.param], ["--tiny"], work) as server:
        server.kind = request.param
        yield server


@pytest.fixture
def page(tiny_demo):
    with chromium_page(1500, 1200) as page:
        page.goto(tiny_demo.url)
        assert "Tiny mode" in page.locator("#tiny-banner").inner_text()
        yield page


def _upload(page, button: str, path: Path, expected_status: str) -> None:
    page.get_by_test_id(f"{button}-upload-button").set_input_files(str(path))
    wait_for_text(page, "#status", expected_status)


def _driving_button(kind: str) -> str:
    return "Upload Audio" if kind == "audio" else "Upload Driving Video"


def _shown_picture(page, selector: str) -> np.ndarray:
    source = page.locator(f"{selector} img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB"))


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and "previews" not in path.parts)


def test_upload_shows_the_face_and_mask_at_512_px_maps_corner_clicks_and_refuses_faceless_images(
    tiny_demo, page, tmp_path
):
    kind = tiny_demo.kind
    driving = EXAMPLES / ("speech.wav" if kind == "audio" else "driving.mp4")
    _upload(page, _driving_button(kind), driving, f"The driving {kind} {driving.name} is kept for it.")
    if kind == "video":  # the MPEG-4 Part 2 clip plays in Chromium through its H.264 preview
        wait_for_text(page, "#clip-info", "driving.mp4: 0.96 s, 25 fps, 24 frames, 256x256 (mpeg4) (preview transcoded")
        assert loaded_video(page, "#driving-player")[1] == pytest.approx(0.96, abs=0.05)
        (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
        _upload(page, "Upload Driving Video", tmp_path / "broken.mp4",
                "Cannot use this file: broken.mp4 is not a readable video (invalid data)")  # fmt: skip

    landscape = np.zeros((300, 400, 3), np.uint8)
    landscape[..., 2] = np.linspace(80, 255, 300, dtype=np.uint8)[:, None]
    landscape[200:] = (60, 150, 60)
    Image.fromarray(landscape).save(tmp_path / "landscape.png")
    _upload(
        page, "Upload Image", tmp_path / "landscape.png", "Cannot use this portrait: no face detected in landscape.png"
    )

    _upload(
        page,
        "Upload Image",
        EXAMPLES / "portrait.png",
        f"Image 64x64: 0 trajectories (0 clicks), face found; driving {kind}",
    )
    wait_for_text(page, "#mask-status", "Landmark mask: automatic")
    wait_for_image_width(page, "#drawing-image", 512)  # the 64x64 frame magnified 8 times
    box = page.locator("#drawing-image img").bounding_box()
    assert box["width"] >= 512 and box["height"] >= 512
    shown = _shown_picture(page, "#drawing-image")
    assert tuple(shown[5, 5]) != (255, 255, 255)
    green = (shown[..., 1].astype(int) - shown[..., 0] > 60) & (shown[..., 1].astype(int) - shown[..., 2] > 60)
    assert green[200:400, 200:320].mean() > 0.3  # the automatic mask tints the face green before any run
    assert (shown == 255).all(axis=2).sum() > 68 * 4  # the 68 landmarks as white dots

    corners = [(4, 4), (508, 4), (508, 508), (4, 508)]
    for clicks, (x, y) in enumerate(corners, start=1):
        x_image, y_image = x // 8, y // 8
        click_pixel(page, "#drawing-image", x, y, "#status", f"1 trajectories ({clicks} clicks)")
        wait_for_text(page, "#status", f"Last click at ({x_image}, {y_image}).")
    assert (
        "This drag reaches 63 px from its start; the adapter follows about 8 px" in page.locator("#status").inner_text()
    )
    page.get_by_role("radio", name="Landmark mask").check()
    click_pixel(page, "#drawing-image", 256, 100, "#status", "1 landmark-mask stamps")
    wait_for_text(page, "#mask-status", "Landmark mask: painted")
    page.get_by_role("button", name="Undo Last Click").click()
    wait_for_text(page, "#mask-status", "Landmark mask: automatic")
    wait_for_toasts_to_fade(page)
    save_screenshot(page, DOCS / f"demo_{kind}_upload.png")


def test_example_stop_then_run_shows_every_result_and_a_new_upload_clears_them(tiny_demo, page):
    kind = tiny_demo.kind
    page.get_by_text("Drawn portrait +").click()  # the example: portrait and driving file
    wait_for_text(page, "#status", "Image 64x64: 0 trajectories (0 clicks), face found; driving")
    wait_for_text(page, "#clip-info", "speech.wav: 1.19 s of audio" if kind == "audio" else "driving.mp4: 0.96 s")
    page.locator("#advanced").get_by_text("Advanced settings").click()
    files_before = _files_under(tiny_demo.outputs)
    stop_a_run(page, 40, RUN_TIMEOUT_MS)
    assert _files_under(tiny_demo.outputs) == files_before

    set_number(page, "#steps", 2)  # back to the tiny mode's default
    page.locator("#run-button").click()
    frames = 31 if kind == "audio" else 25  # 1.19 s of speech at 25 fps / 24 driving frames, plus the reference
    wait_for_text(page, "#status", f"Done: {frames} frames written to outputs/", RUN_TIMEOUT_MS)
    source, duration, width = loaded_video(page, "#output-video")
    assert duration == pytest.approx(frames / 25, abs=0.08) and width == 64
    assert Path(source.split("?")[0]).name.startswith("portrait_hybrid_")  # the download is named after the image
    assert (b"mp4a" in page.request.get(source).body()) == (kind == "audio")  # the speech is muxed in
    for selector in ("#overlay-video", "#comparison-video", "#trajectory-flow", "#landmark-flow", "#landmark-video"):
        loaded_video(page, selector)  # shown on the page, not only offered as downloads
    for selector in ("#trajectory-flow", "#landmark-flow"):  # frame 0 does not move: the colour key, not blank
        first_flow = first_video_frame(page, selector).astype(int)
        assert np.abs(first_flow - colour_wheel(*first_flow.shape[:2])).mean() < 8
        show_first_frame(page, selector)  # the screenshot shows the flow panels' colour key
    assert page.locator("#output-video video").evaluate("v => v.muted && v.loop && v.autoplay")
    wait_for_toasts_to_fade(page)
    save_screenshot(page, DOCS / f"demo_tiny_{kind}.png")

    _upload(page, "Upload Image", EXAMPLES / "portrait.png", "Image 64x64: 0 trajectories (0 clicks), face found")
    page.wait_for_function("() => !document.querySelector('#output-video video')")
    assert page.locator("#comparison-video video").count() == 0 and page.locator("#hint img").count() == 0
