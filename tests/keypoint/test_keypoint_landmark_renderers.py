"""utils.landmark_renderers: the renderer names, their missing files, and each generator loaded once."""

import pytest

from utils.errors import CheckpointError, InputError
from utils.landmark_renderers import LandmarkGenerators, check_renderer


def test_an_unknown_renderer_is_one_clear_error():
    check_renderer("sadtalker")
    with pytest.raises(InputError) as error:
        check_renderer("wav2lip")
    assert str(error.value) == "landmark renderer must be one of aniportrait, sadtalker, got 'wav2lip'"
    with pytest.raises(InputError, match="landmark renderer must be one of"):
        LandmarkGenerators(None, "cpu", tiny=True).from_audio(None, None, "wav2lip")


@pytest.mark.parametrize(
    ("name", "fetch"), [("aniportrait", "keypoint"), ("sadtalker", "sadtalker"), ("sadtalker-video", "sadtalker")]
)
def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path, name, fetch):
    with pytest.raises(CheckpointError, match=f"make fetch MODE={fetch}") as error:
        LandmarkGenerators(tmp_path, "cpu").get(name)
    assert str(tmp_path) in str(error.value)


def test_a_generator_is_loaded_on_first_use_and_kept():
    generators = LandmarkGenerators(None, "cpu", tiny=True)  # sadtalker on random weights, no files
    first = generators.get("sadtalker")
    assert generators.get("sadtalker") is first
