"""demo.demo_handlers: run folders, output names, click positions, uploads, stop signals and the stoppable run
shared by the drag demos."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from demo.demo_handlers import (
    OUT_OF_MEMORY_MESSAGE,
    STOPPED_MESSAGE,
    DrawingDemoHandlers,
    RunStopped,
    StopSignals,
    click_position,
    denoising_progress,
    new_run_dir,
    output_stem,
    page_message,
    shown_path,
)
from utils.errors import InputError


def test_every_run_gets_a_new_folder_under_the_output_folder_made_only_by_its_save(tmp_path):
    first, second = new_run_dir(tmp_path / "outputs"), new_run_dir(tmp_path / "outputs")
    assert first != second and first.parent == second.parent == tmp_path / "outputs"
    assert not first.exists() and not second.exists()  # utils.run_output.save_run creates it with the files


def test_a_demo_run_whose_save_fails_leaves_no_run_folder(tmp_path, monkeypatch):
    import utils.run_output
    from demo import demo_state
    from demo.traj_handlers import TrajDemoHandlers
    from pipeline.trajectory_animator import TrajectoryAnimator

    folder_at_failure = []

    def disk_full(path, image, overwrite=False):
        folder_at_failure.extend(sorted(file.suffix for file in path.parent.iterdir()))
        raise InputError(f"cannot write {path.name}: no space left on device")

    monkeypatch.setattr(utils.run_output, "save_png", disk_full)  # the hint image, after both videos
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    handlers = TrajDemoHandlers(TrajectoryAnimator(device="cpu", tiny=True, show_progress=False), outputs)
    session = demo_state.start_session(np.full((64, 64, 3), 120, np.uint8), "square")
    for x, y in ((20, 20), (30, 24)):
        session, _ = demo_state.add_click(session, x, y)
    video, flow, hint, status = handlers.run(
        session, 2, 1, 7, 0.6, "high", request=SimpleNamespace(session_hash="a"), progress=lambda *args, **kwargs: None
    )
    assert re.fullmatch(r"Cannot run: cannot write square_traj_\d{8}-\d{6}_hint\.png: no space left on device", status)
    assert folder_at_failure == [".mp4", ".mp4"]  # the save had written the videos into the run folder
    assert list(outputs.iterdir()) == []  # and took them away with the folder


def test_the_page_names_a_run_folder_from_the_output_folder_on(tmp_path):
    run_dir = new_run_dir(tmp_path / "outputs")
    assert shown_path(run_dir, tmp_path / "outputs") == f"outputs/{run_dir.name}"  # not /tmp/.../outputs/...


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("cannot read video /tmp/gradio/3f2a9c/clip.mp4: invalid data", "cannot read video clip.mp4: invalid data"),
        ("audio file /tmp/gradio/ab12/my talk.wav is silent", "audio file my talk.wav is silent"),
        ("/tmp/x.wav has no audio stream", "x.wav has no audio stream"),
        ("/srv/demo/outputs/20250101-120000-ab12cd already holds a finished run",
         "20250101-120000-ab12cd already holds a finished run"),
    ],
)  # fmt: skip
def test_page_messages_name_the_users_file_never_the_servers_folders(message, shown):
    assert page_message(message) == shown


@pytest.mark.parametrize(
    "message",
    [
        "num_frames must be an integer >= 2, got 1",
        "see https://huggingface.co/MyNiuuu/MOFA-Video-Hybrid and run `make fetch MODE=hybrid`",
        "H.264/AAC at 1/2 size, (H, W) / 255",
        "broken.mp4 is not a readable video (invalid data)",
    ],
)
def test_page_messages_without_server_paths_are_kept_as_they_are(message):
    assert page_message(message) == message


def test_outputs_are_named_after_the_image_the_kind_and_the_time():
    assert re.fullmatch(r"portrait_hybrid_\d{8}-\d{6}", output_stem("portrait", "hybrid"))
    assert output_stem("", "traj").startswith("image_traj_")


def test_a_click_is_read_as_float_pixels():
    assert click_position(SimpleNamespace(index=[12, 7])) == (12.0, 7.0)


def test_a_click_on_a_magnified_picture_maps_to_the_pixel_whose_block_was_clicked():
    assert click_position(SimpleNamespace(index=[0, 7]), scale=8) == (0.0, 0.0)
    assert click_position(SimpleNamespace(index=[511, 504]), scale=8) == (63.0, 63.0)
    assert click_position(SimpleNamespace(index=[508, 12]), scale=8) == (63.0, 1.0)


def test_stop_flags_only_the_run_of_its_session():
    stops = StopSignals()
    assert stops.stop("a") is False  # nothing running
    stops.start("a")
    stops.start("b")
    assert stops.stop("a") is True
    with pytest.raises(RunStopped):
        stops.check("a")
    stops.check("b")  # the other session's run goes on
    stops.finish("a")
    stops.check("a")
    stops.start("a")  # a new run starts unflagged
    stops.check("a")


def _handlers(tmp_path):
    return DrawingDemoHandlers(animator=None, output_dir=tmp_path)


def test_a_stoppable_run_returns_its_result_and_forgets_the_session(tmp_path):
    handlers, request = _handlers(tmp_path), SimpleNamespace(session_hash="a")
    assert handlers.stoppable_run(request, lambda check: check() or 42) == (42, None)
    assert handlers.stop(request) == "Nothing is running."  # the finished run no longer listens


def test_stop_ends_a_stoppable_run_at_its_next_check(tmp_path):
    handlers, request = _handlers(tmp_path), SimpleNamespace(session_hash="a")

    def run(check):
        assert handlers.stop(request) == "Stopping after the current step..."
        check()
        raise AssertionError("the check after Stop must end the run")

    assert handlers.stoppable_run(request, run) == (None, STOPPED_MESSAGE)


def test_bad_input_and_out_of_memory_end_a_run_with_a_message(tmp_path):
    handlers = _handlers(tmp_path)

    def bad_input(check):
        raise InputError("num_frames must be an integer >= 2, got 1")

    def unreadable_driving_video(check):
        raise InputError("cannot read video /tmp/gradio/3f2a9c/drive.mp4: invalid data")

    def out_of_memory(check):
        raise torch.OutOfMemoryError("CUDA out of memory")

    assert handlers.stoppable_run(None, bad_input) == (None, "Cannot run: num_frames must be an integer >= 2, got 1")
    assert handlers.stoppable_run(None, out_of_memory) == (None, OUT_OF_MEMORY_MESSAGE)
    assert handlers.stoppable_run(None, unreadable_driving_video) == (
        None,
        "Cannot run: cannot read video drive.mp4: invalid data",
    )


def test_an_upload_is_read_or_refused_with_a_message(tmp_path):
    def load(path):
        if path.endswith(".txt"):
            raise InputError(f"{path} is not an image")
        return path.upper()

    assert DrawingDemoHandlers.read_upload("a.png", "an image", load, "Cannot use this file") == ("A.PNG", None)
    assert DrawingDemoHandlers.read_upload(None, "an image", load, "Cannot use this file") == (
        None,
        "No file received; choose an image to upload.",
    )
    assert DrawingDemoHandlers.read_upload("a.txt", "an image", load, "Cannot use this file") == (
        None,
        "Cannot use this file: a.txt is not an image",
    )
    assert DrawingDemoHandlers.read_upload("/tmp/gradio/3f2a/b.txt", "an image", load, "Cannot use this file") == (
        None,
        "Cannot use this file: b.txt is not an image",  # the server's upload folder is not shown
    )


def test_a_checked_run_refuses_a_problem_and_shows_the_results_warnings_but_the_tiny_notice(tmp_path, monkeypatch):
    import demo.demo_handlers

    shown = []
    monkeypatch.setattr(demo.demo_handlers, "show_warning", lambda message: message and shown.append(message))
    handlers = _handlers(tmp_path)
    handlers.tiny_notice = "tiny mode"
    refused = handlers.checked_run(None, "Draw a trajectory first.", lambda check: 1 / 0, num_outputs=2)
    assert refused[0] is None and refused[1][-1] == "Draw a trajectory first." and len(refused[1]) == 3
    result = SimpleNamespace(warnings=["tiny mode", "a drag is long"])
    assert handlers.checked_run(None, None, lambda check: (result, "paths"), num_outputs=2) == ((result, "paths"), None)
    assert shown == ["Draw a trajectory first.", "a drag is long"]


def test_the_progress_names_the_step_under_way_within_its_windows_then_the_decoding():
    shown, checks = [], []
    on_step = denoising_progress(lambda value, desc: shown.append((value, desc)), lambda: checks.append(1), " (w)")
    for done in (0.5, 1, 1.5, 2):
        on_step(done, 2)
    assert shown == [
        ((0.5, 2), "Denoising step 1/2 (w)"),
        ((1, 2), "Denoising step 1/2 (w)"),
        ((1.5, 2), "Denoising step 2/2 (w)"),
        ((2, 2), "Decoding frames"),
    ]
    assert len(checks) == 4  # a Stop is noticed after every window, not only after every step
