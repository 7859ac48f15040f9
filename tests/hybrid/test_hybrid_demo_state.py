"""Hybrid demo session state: landmark mask stamps, the driving file, and messages for out-of-order actions."""

import numpy as np

from demo import demo_state, hybrid_demo_state


def _session():
    return hybrid_demo_state.start_session(np.full((64, 128, 3), 100, np.uint8))


def test_actions_before_an_image_answer_with_a_message():
    session = hybrid_demo_state.new_session()
    for action in (
        lambda s: hybrid_demo_state.add_landmark_stamp(s, 3, 4, 5),
        hybrid_demo_state.clear_landmark_mask,
        hybrid_demo_state.undo_landmark_stamp,
        hybrid_demo_state.reset,
    ):
        after, message = action(session)
        assert after == session
        assert message.startswith(demo_state.NO_IMAGE_MESSAGE)
    assert hybrid_demo_state.run_problem(session, "audio").startswith(demo_state.NO_IMAGE_MESSAGE)
    assert hybrid_demo_state.drawing_view(session, "auto") is None


def test_a_driving_file_uploaded_before_the_image_is_kept_for_it():
    session = hybrid_demo_state.set_driving(hybrid_demo_state.new_session(), "/tmp/x/speech.wav")
    assert hybrid_demo_state.describe(session, "audio") == (
        "Upload an image first. The driving audio speech.wav is kept for it."
    )
    session = hybrid_demo_state.start_session(np.zeros((64, 64, 3), np.uint8), session)
    assert session["driving"] == "/tmp/x/speech.wav"
    assert hybrid_demo_state.run_problem(session, "audio") is None


def test_run_needs_the_driving_file_but_not_trajectories():
    session = _session()
    assert hybrid_demo_state.run_problem(session, "video") == "Upload the driving video first."
    session = hybrid_demo_state.set_driving(session, "/tmp/drive.mp4")
    assert session["driving"] == "/tmp/drive.mp4"
    assert hybrid_demo_state.run_problem(session, "video") is None


def test_landmark_stamps_build_a_mask_separate_from_the_motion_brush():
    session, message = hybrid_demo_state.add_landmark_stamp(_session(), 40, 30, 10)
    assert message is None
    session, _ = demo_state.add_brush_stamp(session, 100, 30, 5)
    mask = hybrid_demo_state.painted_landmark_mask(session)
    assert mask.shape == (64, 128) and mask[30, 40] == 255 and mask[30, 51] == 0 and mask[30, 100] == 0
    assert demo_state.brush_mask(session)[30, 100] == 255 and demo_state.brush_mask(session)[30, 40] == 0
    view = hybrid_demo_state.drawing_view(session, "auto")
    assert tuple(view[30, 40]) == (50, 150, 50) and tuple(view[0, 0]) == (100, 100, 100)
    assert tuple(view[30, 100]) == (50, 50, 178)  # the motion brush, blue
    session, message = hybrid_demo_state.undo_landmark_stamp(session)
    assert message is None and hybrid_demo_state.painted_landmark_mask(session) is None


def test_drawing_view_shows_the_face_and_the_mask_a_run_will_use_magnified():
    face = np.array([[20.0 + 2 * i, 20.0 + (i % 5)] for i in range(20)] + [[30.0, 40.0]])
    session = hybrid_demo_state.start_session(np.full((64, 64, 3), 100, np.uint8), face=face)
    planned = hybrid_demo_state.planned_landmark_mask(session, "auto")
    assert planned[30, 30] == 255 and planned[2, 2] == 0  # the hull of the face, dilated
    assert hybrid_demo_state.planned_landmark_mask(session, "none") is None
    view = hybrid_demo_state.drawing_view(session, "auto", scale=8)
    assert view.shape == (512, 512, 3)
    assert tuple(view[30 * 8 + 1, 30 * 8 + 1]) == (50, 150, 50)  # inside the mask, off the dots
    assert tuple(view[40 * 8 + 4, 30 * 8 + 4]) == hybrid_demo_state.FACE_DOT_RGB  # a landmark's dot
    assert tuple(view[4, 4]) == (100, 100, 100)
    assert tuple(hybrid_demo_state.drawing_view(session, "none")[30, 31]) == (100, 100, 100)


def test_landmark_stamp_outside_the_image_or_with_a_bad_radius_is_refused():
    session = _session()
    assert hybrid_demo_state.add_landmark_stamp(session, 500, 3, 5) == (
        session,
        "Click (500, 3) is outside the 128x64 image.",
    )
    assert "at least 1 pixel" in hybrid_demo_state.add_landmark_stamp(session, 5, 3, 0)[1]


def test_clear_landmark_mask():
    session, _ = hybrid_demo_state.add_landmark_stamp(_session(), 40, 30, 10)
    session, message = hybrid_demo_state.clear_landmark_mask(session)
    assert message is None and hybrid_demo_state.painted_landmark_mask(session) is None
    assert hybrid_demo_state.clear_landmark_mask(session)[1] == "There is no painted landmark mask to clear."


def test_new_image_resets_masks_and_tracks_but_keeps_the_driving_file():
    session = hybrid_demo_state.set_driving(_session(), "/tmp/speech.wav")
    session, _ = hybrid_demo_state.add_landmark_stamp(session, 4, 4, 2)
    session, _ = demo_state.add_click(session, 4, 4)
    fresh = hybrid_demo_state.start_session(np.zeros((64, 64, 3), np.uint8), session)
    assert fresh["driving"] == "/tmp/speech.wav"
    assert fresh["landmark_brush"] == [] and fresh["tracks"] == [[]] and fresh["brush"] == []
    reset, message = hybrid_demo_state.reset(session)
    assert message is None and reset["driving"] == "/tmp/speech.wav" and reset["landmark_brush"] == []
    assert reset["tracks"] == [[]] and reset["image"] is session["image"]


def test_describe_mentions_the_landmark_mask_and_the_driving_file():
    session, _ = hybrid_demo_state.add_landmark_stamp(_session(), 4, 4, 2)
    assert hybrid_demo_state.describe(session, "audio") == (
        "Image 128x64: 0 trajectories (0 clicks), 1 landmark-mask stamps; driving audio: no audio yet."
    )
    session = hybrid_demo_state.set_driving(session, "/tmp/x/speech.mp3")
    assert hybrid_demo_state.describe(session, "audio").endswith("driving audio: speech.mp3.")
