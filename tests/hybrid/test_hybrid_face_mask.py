"""The landmark mask: automatic hull of the reference landmarks, and which mask is in force."""

import numpy as np
import pytest

from utils.errors import InputError
from utils.face_mask import (
    MASK_MODES,
    describe_mask,
    describe_mask_choice,
    face_mask_from_landmarks,
    resolve_landmark_mask,
)

SQUARE = np.array([[20, 10], [40, 10], [40, 30], [20, 30], [30, 20]], dtype=np.float64)  # inner point ignored


def test_bare_hull_fills_exactly_the_polygon():
    mask = face_mask_from_landmarks(SQUARE, 64, 64, dilation=0)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert (mask == 255).sum() == 21 * 21  # the 20x20 square including both borders
    assert mask[10, 20] == 255 and mask[30, 40] == 255 and mask[20, 30] == 255
    assert mask[9, 30] == 0 and mask[20, 41] == 0


def test_dilation_grows_the_hull_by_the_radius():
    mask = face_mask_from_landmarks(SQUARE, 64, 64, dilation=5)
    assert mask[20, 45] == 255 and mask[20, 46] == 0  # right edge 40 + 5
    assert mask[5, 30] == 255 and mask[4, 30] == 0  # top edge 10 - 5
    assert mask[10 - 5, 20 - 5] == 0  # corners are rounded (elliptical kernel)


def test_default_dilation_is_a_fraction_of_the_face_size():
    mask = face_mask_from_landmarks(SQUARE, 64, 64)  # 20 px face -> round(0.15 * 20) = 3 px
    assert mask[20, 43] == 255 and mask[20, 44] == 0


def test_hull_is_clipped_to_the_image():
    mask = face_mask_from_landmarks(np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]]), 32, 32, dilation=0)
    assert mask.shape == (32, 32) and mask[0, 0] == 255 and mask[11, 11] == 0


def test_too_few_landmarks_are_refused():
    with pytest.raises(InputError, match="at least 3"):
        face_mask_from_landmarks(np.array([[1, 1], [2, 2], [np.nan, 3]]), 8, 8)


def _painted(height=64, width=64):
    painted = np.zeros((height, width), np.uint8)
    painted[50:60, 50:60] = 255
    return painted


def test_auto_prefers_the_painted_mask():
    chosen = resolve_landmark_mask("auto", _painted(), SQUARE, 64, 64)
    assert chosen.source == "painted"
    assert np.array_equal(chosen.mask, _painted())


def test_auto_with_nothing_painted_falls_back_to_the_landmarks():
    for painted in (None, np.zeros((64, 64), np.uint8)):
        chosen = resolve_landmark_mask("auto", painted, SQUARE, 64, 64, dilation=0)
        assert chosen.source == "landmarks"
        assert np.array_equal(chosen.mask, face_mask_from_landmarks(SQUARE, 64, 64, dilation=0))


def test_auto_without_paint_or_landmarks_means_no_landmark_control():
    chosen = resolve_landmark_mask("auto", None, None, 64, 64)
    assert chosen.source == "none" and not chosen.mask.any()


def test_explicit_modes():
    assert resolve_landmark_mask("landmarks", _painted(), SQUARE, 64, 64).source == "landmarks"
    assert resolve_landmark_mask("painted", None, SQUARE, 64, 64).source == "none"
    none = resolve_landmark_mask("none", _painted(), SQUARE, 64, 64)
    assert none.source == "none" and not none.mask.any()
    with pytest.raises(InputError, match="no landmarks"):
        resolve_landmark_mask("landmarks", None, None, 64, 64)
    with pytest.raises(InputError, match="mode must be one of"):
        resolve_landmark_mask("face", None, SQUARE, 64, 64)
    with pytest.raises(InputError, match="expected \\(64, 64\\)"):
        resolve_landmark_mask("auto", np.zeros((8, 8), np.uint8), SQUARE, 64, 64)


def test_descriptions_name_the_source():
    assert "painted" in describe_mask(resolve_landmark_mask("auto", _painted(), SQUARE, 64, 64))
    assert "automatic" in describe_mask(resolve_landmark_mask("auto", None, SQUARE, 64, 64))
    assert describe_mask(resolve_landmark_mask("none", None, SQUARE, 64, 64)).startswith("Landmark mask: none")


def test_choice_descriptions_before_a_run_match_the_rule():
    assert "automatic" in describe_mask_choice("auto", has_paint=False)
    assert "painted" in describe_mask_choice("auto", has_paint=True)
    assert "automatic" in describe_mask_choice("landmarks", has_paint=True)
    assert "none" in describe_mask_choice("painted", has_paint=False)
    assert "none" in describe_mask_choice("none", has_paint=True)


@pytest.mark.parametrize("mode", MASK_MODES)
@pytest.mark.parametrize("has_paint", [False, True])
def test_the_announced_mask_is_the_one_a_run_uses(mode, has_paint):
    chosen = resolve_landmark_mask(mode, _painted() if has_paint else None, SQUARE, 64, 64)
    announced = describe_mask_choice(mode, has_paint)
    expected = {
        "painted": "Landmark mask: painted",
        "landmarks": "Landmark mask: automatic",
        "none": "Landmark mask: none",
    }
    assert announced.startswith(expected[chosen.source])
