"""demo.demo_handlers: run folders, output names, click positions and stop signals shared by the drag demos."""

import re
from types import SimpleNamespace

import pytest

from demo.demo_handlers import RunStopped, StopSignals, click_position, new_run_dir, output_stem


def test_every_run_gets_a_new_folder_under_the_output_folder(tmp_path):
    first, second = new_run_dir(tmp_path / "outputs"), new_run_dir(tmp_path / "outputs")
    assert first != second
    assert first.is_dir() and second.is_dir() and first.parent == second.parent == tmp_path / "outputs"


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
