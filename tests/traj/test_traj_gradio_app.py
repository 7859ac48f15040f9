"""The Gradio demo: its session-state helpers, and the app served in tiny mode driven with gradio_client."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ui_helpers import select, served_demo

from demo import demo_state
from utils.video_io import read_video

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Traj"


def _session(width: int = 128, height: int = 64) -> demo_state.Session:
    return demo_state.start_session(np.full((height, width, 3), 100, np.uint8))


# ----------------------------------------------------------------------------------------------------------
# session-state helpers


def test_actions_before_an_upload_answer_with_a_message_and_change_nothing():
    session = demo_state.new_session()
    actions = [
        lambda s: demo_state.add_click(s, 3, 4),
        demo_state.add_trajectory,
        demo_state.delete_last_trajectory,
        lambda s: demo_state.add_brush_stamp(s, 3, 4, 10),
        demo_state.clear_brush,
    ]
    for action in actions:
        after, message = action(session)
        assert after == session
        assert message == demo_state.NO_IMAGE_MESSAGE
    assert demo_state.drawing_view(session) is None
    assert demo_state.brush_view(session) is None
    assert demo_state.undo_click(session) == (session, demo_state.NO_IMAGE_MESSAGE)
    assert demo_state.reset(session) == (session, demo_state.NO_IMAGE_MESSAGE)


def test_run_before_an_upload_says_to_upload_an_image():
    tracks, message = demo_state.tracks_for_run(demo_state.new_session())
    assert tracks == []
    assert message.startswith("Upload an image first.")


def test_run_without_clicks_asks_for_a_trajectory():
    tracks, message = demo_state.tracks_for_run(_session())
    assert tracks == []
    assert message == demo_state.NO_TRACK_MESSAGE


def test_clicks_append_to_the_trajectory_being_drawn():
    session = _session()
    assert session["tracks"] == [[]]
    session, message = demo_state.add_click(session, 10, 20)
    assert message is None
    session, _ = demo_state.add_click(session, 30.5, 25)
    assert session["tracks"] == [[[10.0, 20.0], [30.5, 25.0]]]
    assert demo_state.tracks_for_run(session) == ([[[10.0, 20.0], [30.5, 25.0]]], None)


def test_actions_do_not_modify_the_session_they_are_given():
    session, _ = demo_state.add_click(_session(), 10, 20)
    before = [list(track) for track in session["tracks"]]
    demo_state.add_click(session, 11, 21)
    demo_state.add_trajectory(session)
    demo_state.delete_last_trajectory(session)
    demo_state.add_brush_stamp(session, 5, 5, 3)
    assert session["tracks"] == before
    assert session["brush"] == []


def test_add_trajectory_starts_a_new_track_for_the_next_clicks():
    session, _ = demo_state.add_click(_session(), 10, 20)
    session, message = demo_state.add_trajectory(session)
    assert message is None
    session, _ = demo_state.add_click(session, 50, 40)
    assert session["tracks"] == [[[10.0, 20.0]], [[50.0, 40.0]]]


def test_add_trajectory_on_an_empty_track_explains_and_keeps_one_empty_track():
    session = _session()
    after, message = demo_state.add_trajectory(session)
    assert after["tracks"] == [[]]
    assert "no points yet" in message


def test_click_outside_the_image_is_refused_with_its_coordinates():
    session = _session(width=128, height=64)
    after, message = demo_state.add_click(session, 128, 10)
    assert after == session
    assert message == "Click (128, 10) is outside the 128x64 image."


def test_delete_last_trajectory_removes_the_latest_drawn_track():
    session, _ = demo_state.add_click(_session(), 1, 1)
    session, _ = demo_state.add_trajectory(session)
    session, _ = demo_state.add_click(session, 2, 2)
    session, _ = demo_state.add_trajectory(session)  # trailing empty track
    session, message = demo_state.delete_last_trajectory(session)
    assert message is None
    assert session["tracks"] == [[[1.0, 1.0]], []]
    session, _ = demo_state.delete_last_trajectory(session)
    assert session["tracks"] == [[]]
    after, message = demo_state.delete_last_trajectory(session)
    assert after == session
    assert message == "There is no trajectory to delete."


def test_brush_stamp_fills_a_circle_of_the_chosen_radius():
    session, message = demo_state.add_brush_stamp(_session(width=128, height=64), 40, 30, 10)
    assert message is None
    mask = demo_state.brush_mask(session)
    assert mask.shape == (64, 128) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert mask[30, 40] == 255 and mask[30, 50] == 255 and mask[20, 40] == 255
    assert mask[30, 52] == 0 and mask[30, 28] == 0 and mask[0, 0] == 0
    assert abs((mask == 255).sum() - np.pi * 10**2) < 0.1 * np.pi * 10**2


def test_brush_stamps_accumulate_and_clear():
    session, _ = demo_state.add_brush_stamp(_session(), 10, 10, 3)
    session, _ = demo_state.add_brush_stamp(session, 100, 50, 5)
    mask = demo_state.brush_mask(session)
    assert mask[10, 10] == 255 and mask[50, 100] == 255 and mask[30, 60] == 0
    session, message = demo_state.clear_brush(session)
    assert message is None
    assert demo_state.brush_mask(session) is None
    assert demo_state.clear_brush(session)[1] == "There is no motion brush to clear."


def test_brush_view_tints_only_the_brushed_pixels_blue():
    session, _ = demo_state.add_brush_stamp(_session(), 40, 30, 5)
    view = demo_state.brush_view(session)
    assert view.shape == (64, 128, 3)
    assert tuple(view[30, 40]) == (50, 50, 178)  # 100 * 0.5 + (0, 0, 255) * 0.5, rounded
    assert tuple(view[0, 0]) == (100, 100, 100)


def test_drawing_view_shows_each_track_in_its_own_colour_over_the_brush():
    session, _ = demo_state.add_click(_session(), 20, 32)
    session, _ = demo_state.add_click(session, 100, 32)
    session, _ = demo_state.add_trajectory(session)
    session, _ = demo_state.add_click(session, 60, 10)
    session, _ = demo_state.add_brush_stamp(session, 120, 55, 3)
    view = demo_state.drawing_view(session)
    assert view.shape == (64, 128, 3)
    assert tuple(view[32, 60]) == demo_state.TRACK_PALETTE[0]
    assert tuple(view[10, 60]) == demo_state.TRACK_PALETTE[1]  # the second track's pin
    assert tuple(view[55, 120]) == (50, 50, 178)  # the brush, blue at 50 %
    assert tuple(view[5, 5]) == (100, 100, 100)


def test_drawing_view_magnifies_by_whole_pixels_and_draws_clicks_at_their_block_centres():
    session = _session(width=64, height=48)
    assert demo_state.display_scale(session) == 8  # 64 -> 512
    assert demo_state.display_scale(_session(width=640, height=512)) == 1
    session, _ = demo_state.add_click(session, 63, 0)
    view = demo_state.drawing_view(session, scale=8)
    assert view.shape == (384, 512, 3)
    assert tuple(view[4, 508]) == demo_state.TRACK_PALETTE[0]  # the pin in the centre of block (63, 0)
    assert tuple(view[40, 40]) == (100, 100, 100)
    assert demo_state.magnify(np.arange(4).reshape(2, 2), 2).tolist() == [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 3, 3],
        [2, 2, 3, 3],
    ]


def test_undo_click_removes_the_last_click_and_goes_back_into_the_previous_track():
    session, _ = demo_state.add_click(_session(), 10, 20)
    session, _ = demo_state.add_click(session, 30, 20)
    session, _ = demo_state.add_trajectory(session)
    session, message = demo_state.undo_click(session)
    assert message is None and session["tracks"] == [[[10.0, 20.0]]]
    session, _ = demo_state.add_click(session, 40, 25)  # continues the first track
    assert session["tracks"] == [[[10.0, 20.0], [40.0, 25.0]]]
    session, _ = demo_state.undo_click(session)
    session, _ = demo_state.undo_click(session)
    assert session["tracks"] == [[]]
    assert demo_state.undo_click(session) == (session, "There is no trajectory click to undo.")


def test_undo_brush_stamp_and_reset():
    session, _ = demo_state.add_brush_stamp(_session(), 10, 20, 4)
    session, _ = demo_state.add_brush_stamp(session, 30, 20, 4)
    session, _ = demo_state.add_click(session, 5, 5)
    session, message = demo_state.undo_brush_stamp(session)
    assert message is None and session["brush"] == [[10.0, 20.0, 4]]
    session, message = demo_state.reset({**session, "name": "photo"})
    assert message is None
    assert session["tracks"] == [[]] and session["brush"] == [] and session["name"] == "photo"
    assert demo_state.undo_brush_stamp(session) == (session, "There is no motion-brush stamp to undo.")


def test_long_drag_warning_when_the_last_click_is_beyond_the_adapters_reach():
    session = _session(width=1024, height=512)  # short side 512: the limit is 60 px
    session, _ = demo_state.add_click(session, 100, 100)
    assert demo_state.long_drag_warning(session) is None
    session, _ = demo_state.add_click(session, 160, 100)
    assert demo_state.long_drag_warning(session) is None  # exactly 60 px
    session, _ = demo_state.add_click(session, 100, 200)
    assert demo_state.long_drag_warning(session).startswith(
        "This drag reaches 100 px from its start; the adapter follows about 60 px"
    )
    small = _session(width=64, height=64)  # the limit scales with the image: 7.5 px
    small, _ = demo_state.add_click(small, 0, 0)
    small, _ = demo_state.add_click(small, 8, 0)
    assert "the adapter follows about 8 px" in demo_state.long_drag_warning(small)


def test_describe_summarises_the_session():
    session, _ = demo_state.add_click(_session(), 1, 1)
    session, _ = demo_state.add_click(session, 2, 2)
    session, _ = demo_state.add_brush_stamp(session, 5, 5, 3)
    assert demo_state.describe(session) == "Image 128x64: 1 trajectories (2 clicks), 1 brush stamps."


def test_painted_area_is_where_any_layer_is_opaque():
    first = np.zeros((4, 6, 4), np.uint8)
    second = np.zeros((4, 6, 4), np.uint8)
    first[1, 2, 3] = 255
    second[3, 5, 3] = 10
    area = demo_state.painted_area([first, second])
    assert area.dtype == bool and area.sum() == 2 and area[1, 2] and area[3, 5]
    assert demo_state.painted_area([]) is None


def test_painted_brush_joins_the_stamped_circles_in_the_mask():
    stamped, _ = demo_state.add_brush_stamp(_session(), 10, 10, 2)
    stamped_pixels = (demo_state.brush_mask(stamped) == 255).sum()
    painted = np.zeros((64, 128), bool)
    painted[40:50, 90:100] = True
    session, message = demo_state.set_painted_brush(stamped, painted)
    assert message is None
    mask = demo_state.brush_mask(session)
    assert (mask[40:50, 90:100] == 255).all() and mask[10, 10] == 255
    assert (mask == 255).sum() == 100 + stamped_pixels
    session, _ = demo_state.clear_brush(session)
    assert demo_state.brush_mask(session) is None


def test_painting_nothing_or_the_wrong_size_leaves_no_painted_brush():
    session, message = demo_state.set_painted_brush(_session(), np.zeros((64, 128), bool))
    assert message is None and session["painted"] is None
    after, message = demo_state.set_painted_brush(session, np.ones((10, 10), bool))
    assert after == session
    assert message == "The painted brush is 10x10, not 128x64 like the image."


# ----------------------------------------------------------------------------------------------------------
# the app in a subprocess, driven with gradio_client


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo started without weights (an empty --ckpt_dir): it must fall back to tiny mode."""
    work = tmp_path_factory.mktemp("demo")
    with served_demo(SUBPROJECT, "run_gradio.py", ["--ckpt_dir", str(work / "no_weights")], work) as server:
        yield server


@pytest.fixture
def client(demo_server, tmp_path):
    from gradio_client import Client

    return Client(demo_server.url, verbose=False, download_files=str(tmp_path))


def _status(outputs) -> str:
    return outputs[-1]


def test_without_weights_the_demo_falls_back_to_tiny_mode_with_a_banner(demo_server, client):
    notices = [line for line in demo_server.stderr.read_text().splitlines() if "starting in tiny mode" in line]
    assert len(notices) == 1
    assert "missing checkpoint" in notices[0] and "make fetch MODE=traj" in notices[0]
    markdown = [c["props"].get("value") or "" for c in client.config["components"] if c["type"] == "markdown"]
    banner = next(text for text in markdown if "Tiny mode" in text)
    assert "noise" in banner and "make fetch MODE=traj" in banner


def test_every_action_before_an_upload_answers_with_a_message(client):
    assert _status(client.predict(api_name="/run")).startswith("Upload an image first.")
    assert _status(select(client, "/click", 10, 10, "Trajectory points", 10)) == "Upload an image first."
    assert _status(client.predict(api_name="/add_trajectory")) == "Upload an image first."
    assert _status(client.predict(api_name="/delete_last_trajectory")) == "Upload an image first."
    assert _status(select(client, "/click", 10, 10, "Motion brush", 5)) == "Upload an image first."
    assert _status(client.predict("Trajectory points", api_name="/undo")) == "Upload an image first."
    assert _status(client.predict(api_name="/reset")) == "Upload an image first."
    assert client.predict(api_name="/stop") == "Nothing is running."
    assert _status(client.predict(api_name="/clear_brush")) == "Upload an image first."


def test_upload_is_resized_to_short_side_512_and_cropped_to_multiples_of_64(client, tmp_path):
    from gradio_client import handle_file

    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(tmp_path / "wide.png")
    outputs = client.predict(handle_file(tmp_path / "wide.png"), api_name="/upload_image")
    drawing, _, preview, hint, video, flow_video, status = outputs
    assert Image.open(drawing).size == (640, 512)  # 400x300 -> 683x512 -> crop 640x512
    assert preview is None and hint is None and video is None and flow_video is None  # results cleared
    assert status == "Image 640x512: 0 trajectories (0 clicks)."
    (tmp_path / "notes.png").write_text("not an image")
    status = _status(client.predict(handle_file(tmp_path / "notes.png"), api_name="/upload_image"))
    assert status == "Cannot use this file: notes.png is not a readable image (unknown format)"


def test_upload_clicks_and_run_write_a_video_with_the_requested_frames(client, demo_server, tmp_path):
    from gradio_client import handle_file

    gradient = np.linspace(0, 255, 256 * 256 * 3).reshape(256, 256, 3).astype(np.uint8)
    Image.fromarray(gradient).save(tmp_path / "square.png")
    client.predict(handle_file(tmp_path / "square.png"), api_name="/upload_image")
    select(client, "/click", 200, 250, "Trajectory points", 10)
    drawing, preview, status = select(client, "/click", 250, 230, "Trajectory points", 10)
    assert status == "Image 512x512: 1 trajectories (2 clicks). Last click at (250, 230)."
    assert tuple(np.asarray(Image.open(drawing))[240, 225]) == (255, 0, 0)  # the drawn track
    assert np.asarray(Image.open(preview)).shape == (512, 512, 3)
    assert _status(client.predict(api_name="/add_trajectory")) == "Image 512x512: 1 trajectories (2 clicks)."

    video, flow_video, hint, status = client.predict(3, 2, 7, 0.6, "low", False, "per_video", api_name="/run")
    assert status.startswith("Done: 3 frames written to ")
    assert read_video(video).frames.shape[0] == 3
    assert read_video(flow_video).frames.shape[0] == 3
    assert Image.open(hint).size == read_video(video).frames.shape[2:0:-1]
    shown = status.removeprefix("Done: 3 frames written to ").rstrip(".")
    assert re.fullmatch(r"outputs/\d{8}-\d{6}-[0-9a-f]{6}", shown)  # no server path on the page
    run_dir = demo_server.outputs.parent / shown
    stem = Path(video).stem
    assert re.fullmatch(r"square_traj_\d{8}-\d{6}", stem)  # downloads are named after the image
    names = {"input.png", f"{stem}.mp4", f"{stem}_flow.mp4", f"{stem}_hint.png", "settings.json"}
    assert {path.name for path in run_dir.iterdir()} == names
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["num_frames"] == 3 and settings["steps"] == 2 and settings["seed"] == 7
    assert settings["tracks"] == [[[200.0, 250.0], [250.0, 230.0]]]
    assert settings["memory"]["preset"] == "low"
    assert settings["temporal_context"] == "per_video"  # the Advanced settings choice reaches the run


def test_brush_stamps_painting_and_deleting_work_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    Image.fromarray(np.full((512, 512, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    client.predict(handle_file(tmp_path / "grey.png"), api_name="/upload_image")
    brush_view, _, status = select(client, "/click", 100, 100, "Motion brush", 20)
    assert status == "Image 512x512: 0 trajectories (0 clicks), 1 brush stamps. Last click at (100, 100)."
    assert tuple(np.asarray(Image.open(brush_view))[100, 100]) == (64, 64, 192)  # blue at 50 %

    layer = np.zeros((512, 512, 4), np.uint8)
    layer[300:310, 200:220] = (0, 0, 255, 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    canvas = {"background": handle_file(tmp_path / "grey.png"), "layers": [handle_file(tmp_path / "layer.png")],
              "composite": None}  # fmt: skip
    status = _status(client.predict(canvas, api_name="/paint_brush"))
    assert status == "Image 512x512: 0 trajectories (0 clicks), 1 brush stamps, painted brush of 200 pixels."
    assert _status(client.predict(api_name="/clear_brush")) == "Image 512x512: 0 trajectories (0 clicks)."

    select(client, "/click", 10, 10, "Trajectory points", 10)
    client.predict(api_name="/add_trajectory")
    select(client, "/click", 20, 20, "Trajectory points", 10)
    status = _status(client.predict(api_name="/delete_last_trajectory"))
    assert status == "Image 512x512: 1 trajectories (1 clicks)."
