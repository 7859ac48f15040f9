"""utils.demo_page: run folders and click positions shared by the drag demos."""

from types import SimpleNamespace

from utils.demo_page import click_position, new_run_dir


def test_every_run_gets_a_new_folder_under_the_output_folder(tmp_path):
    first, second = new_run_dir(tmp_path / "outputs"), new_run_dir(tmp_path / "outputs")
    assert first != second
    assert first.is_dir() and second.is_dir() and first.parent == second.parent == tmp_path / "outputs"


def test_a_click_is_read_as_float_pixels():
    assert click_position(SimpleNamespace(index=[12, 7])) == (12.0, 7.0)
