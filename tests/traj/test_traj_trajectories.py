"""Trajectories -> sparse hints -> dense flow, validation and drawings (utils/trajectories.py)."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from utils.errors import InputError
from utils.trajectories import (
    draw_hint_image,
    draw_tracks,
    empty_brush,
    merge_brush_flows,
    resample_track,
    resize_brush_to_grid,
    sparse_hints,
    split_tracks_by_brush,
    stamp_brush,
    tracks_to_grid,
    trajectories_to_flow,
    upsample_flow,
    validate_tracks,
)


class TranslatingCMP:
    """Fake CMP: every frame's dense flow is the mean hint of that frame, at every grid pixel. Records calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, image, sparse, mask):
        self.calls.append((image.clone(), sparse.clone(), mask.clone()))
        mean_hint = sparse.sum(dim=(2, 3)) / mask[:, :1].sum(dim=(2, 3)).clamp(min=1)  # (N, 2)
        return mean_hint[:, :, None, None].expand_as(sparse).clone()


def _image(height=8, width=16):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, height, width, generator=generator)


# ---------------------------------------------------------------------------------------------- resampling


def test_resample_two_clicks_is_linear_and_keeps_endpoints():
    points = resample_track([(10, 20), (5, 14)], 3)
    np.testing.assert_allclose(points, [[10, 20], [7.5, 17], [5, 14]])


def test_quirk_tracks_are_pchip_resampled_over_uniform_click_parameter():
    points = resample_track([(0, 0), (10, 4), (12, 30)], 5)
    assert points.shape == (5, 2)
    np.testing.assert_allclose(points[[0, 2, 4]], [[0, 0], [10, 4], [12, 30]], atol=1e-12)
    assert np.all(np.diff(points[:, 0]) >= 0)  # PCHIP keeps monotone data monotone


def test_one_click_track_is_a_static_pin():
    np.testing.assert_array_equal(resample_track([(3, 4)], 4), [[3, 4]] * 4)


def test_quirk_track_points_map_to_the_grid_truncated():
    grid = tracks_to_grid([np.array([[511.0, 0.0], [1.0, 255.9]])], width=512, height=256, grid=384)
    np.testing.assert_array_equal(grid[0], [[383, 0], [0, 383]])


# ---------------------------------------------------------------------------------------------- sparse hints


def test_quirk_hint_is_the_truncated_displacement_at_the_single_start_pixel():
    sparse, mask = sparse_hints([resample_track([(10, 20), (5, 14)], 3)], grid=32)
    assert sparse.shape == mask.shape == (2, 2, 32, 32)
    assert sparse.dtype == torch.float32
    # displacements (-2.5, -3) and (-5, -6): truncation toward zero gives -2, not -3
    assert sparse[0, :, 20, 10].tolist() == [-2.0, -3.0]
    assert sparse[1, :, 20, 10].tolist() == [-5.0, -6.0]
    assert torch.count_nonzero(sparse) == 4
    assert mask[:, :, 20, 10].eq(1).all() and mask.sum() == 4


def test_quirk_hints_of_coincident_starts_add_up():
    tracks = [
        resample_track([(4, 4), (6, 4)], 2),
        resample_track([(4, 4), (4, 9)], 2),
        resample_track([(1, 2), (0, 0)], 2),
    ]
    sparse, mask = sparse_hints(tracks, grid=16)
    assert sparse[0, :, 4, 4].tolist() == [2.0, 5.0]
    assert mask[0, :, 4, 4].tolist() == [2.0, 2.0]
    assert sparse[0, :, 2, 1].tolist() == [-1.0, -2.0]
    assert mask[0, 0].sum() == 3


def test_pin_gives_zero_hint_with_mask():
    sparse, mask = sparse_hints([resample_track([(7, 3)], 4)], grid=16)
    assert torch.count_nonzero(sparse) == 0
    assert mask[:, :, 3, 7].eq(1).all() and mask.sum() == 3 * 2


# ---------------------------------------------------------------------------------------------- brush


def test_quirk_brush_is_resized_bilinearly_and_in_brush_means_exactly_255():
    brush = np.zeros((8, 8), np.uint8)
    brush[0:2, 0:2] = 255  # grid pixel (0, 0) fully inside
    brush[0:2, 2] = 255  # grid pixel (0, 1) half inside -> 127.5 -> not in the brush
    brush_grid = resize_brush_to_grid(brush, grid=4)
    assert brush_grid[0, 0] == 255 and brush_grid[0, 1] == 127.5
    tracks = [np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 3.0]])]
    assert split_tracks_by_brush(tracks, brush_grid) == ([0], [1, 2])
    assert split_tracks_by_brush(tracks, None) == ([], [0, 1, 2])


def test_stamp_brush_draws_filled_circle_without_touching_inputs():
    mask, viz = empty_brush(20, 30)
    new_mask, new_viz = stamp_brush(mask, viz, (10, 5), 3)
    assert mask.max() == 0 and viz.max() == 0
    assert new_mask[5, 10] == 255 and new_mask[5, 13] == 255 and new_mask[5, 14] == 0 and new_mask[15, 25] == 0
    assert new_viz[5, 10].tolist() == [0, 0, 255, 255] and new_viz[15, 25].tolist() == [0, 0, 0, 0]


def test_quirk_brush_merge_needs_both_in_brush_components_nonzero():
    flow_in = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]).view(1, 2, 1, 3)  # pixels: (1,2) (1,0) (0,0)
    flow_out = torch.full((1, 2, 1, 3), 7.0)
    merged = merge_brush_flows(flow_in, flow_out)
    assert merged[0, :, 0, 0].tolist() == [1.0, 2.0]
    assert merged[0, :, 0, 1].tolist() == [7.0, 7.0]
    assert merged[0, :, 0, 2].tolist() == [7.0, 7.0]


def test_quirk_cmp_flow_is_upsampled_nearest_and_rescaled_per_axis():
    flow = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    up = upsample_flow(flow, height=4, width=8)
    assert up.shape == (1, 2, 4, 8)
    assert up[0, 0].tolist()[0] == [4.0] * 4 + [8.0] * 4  # dx * 8 / 2
    assert up[0, 1, :, 0].tolist() == [2.0, 2.0, 6.0, 6.0]  # dy * 4 / 2


# ---------------------------------------------------------------------------------------------- full chain


def test_quirk_cmp_image_is_nearest_resized_to_the_grid_and_all_frames_batched():
    cmp, image = TranslatingCMP(), _image()
    # image 16x8 -> grid 4: (0, 0) -> (0, 0) and (8, 4) -> (2, 2); 3 frames -> grid displacements (1, 1), (2, 2)
    flow, info = trajectories_to_flow(image, [[(0, 0), (8, 4)]], None, num_frames=3, cmp=cmp, grid=4)
    assert len(cmp.calls) == 1
    cmp_image, sparse, mask = cmp.calls[0]
    assert cmp_image.shape == (2, 3, 4, 4) and sparse.shape == mask.shape == (2, 2, 4, 4)
    torch.testing.assert_close(cmp_image[0], image[:, ::2, ::4])  # nearest resize to the grid
    assert flow.shape == (2, 2, 8, 16) and flow.dtype == torch.float32
    # dx * 16 / 4, dy * 8 / 4 everywhere
    assert flow[0, 0].unique().tolist() == [4.0] and flow[0, 1].unique().tolist() == [2.0]
    assert flow[1, 0].unique().tolist() == [8.0] and flow[1, 1].unique().tolist() == [4.0]
    assert info.in_brush == [] and info.out_brush == [0] and info.max_grid_displacement == 2.0


def test_trajectories_to_flow_with_brush_splits_and_merges():
    cmp = TranslatingCMP()
    brush = np.zeros((8, 16), np.uint8)
    brush[:, :8] = 255  # left half -> grid columns 0 and 1
    tracks = [[(0, 0), (8, 4)], [(12, 6), (12, 2)]]  # in-brush; out-brush grid (3, 3) -> (3, 1)
    flow, info = trajectories_to_flow(_image(), tracks, brush, num_frames=3, cmp=cmp, grid=4)
    assert len(cmp.calls) == 2
    assert info.in_brush == [0] and info.out_brush == [1]
    # left half: in-brush flow (1, 1), (2, 2) grid px scaled by (4, 2); right half: out-brush (0, -1), (0, -2)
    assert flow[0, :, :, :8].reshape(2, -1).unique(dim=1).tolist() == [[4.0], [2.0]]
    assert flow[1, :, :, :8].reshape(2, -1).unique(dim=1).tolist() == [[8.0], [4.0]]
    assert flow[0, :, :, 8:].reshape(2, -1).unique(dim=1).tolist() == [[0.0], [-2.0]]
    assert flow[1, :, :, 8:].reshape(2, -1).unique(dim=1).tolist() == [[0.0], [-4.0]]


def test_only_in_brush_tracks_confine_motion_to_the_brush():
    brush = np.zeros((8, 16), np.uint8)
    brush[:, :8] = 255
    flow, _ = trajectories_to_flow(_image(), [[(0, 0), (8, 4)]], brush, num_frames=2, cmp=TranslatingCMP(), grid=4)
    assert flow[:, :, :, :8].ne(0).all() and flow[:, :, :, 8:].eq(0).all()


def test_bool_brush_means_inside_where_true():
    brush = np.zeros((8, 16), bool)
    brush[:, :8] = True
    _, info = trajectories_to_flow(_image(), [[(0, 0), (8, 4)]], brush, num_frames=2, cmp=TranslatingCMP(), grid=4)
    assert info.in_brush == [0]


def test_pin_only_gives_zero_flow():
    flow, _ = trajectories_to_flow(_image(), [[(3, 3)]], None, num_frames=4, cmp=TranslatingCMP(), grid=4)
    assert flow.shape == (3, 2, 8, 16) and flow.eq(0).all()


def test_trajectories_to_flow_accepts_pil_and_uint8_images():
    array = (np.arange(8 * 16 * 3) % 256).astype(np.uint8).reshape(8, 16, 3)
    for image in (array, Image.fromarray(array)):
        flow, _ = trajectories_to_flow(image, [[(0, 0), (8, 4)]], None, num_frames=2, cmp=TranslatingCMP(), grid=4)
        assert flow.shape == (1, 2, 8, 16)


def test_long_drag_returns_one_cmp_saturation_message_and_emits_no_python_warning():
    image = torch.zeros(3, 384, 384)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the messages are returned for the caller to show, not emitted
        _, info = trajectories_to_flow(image, [[(0, 0), (4, 4)], [(0, 0), (50, 0)]], None, 2, TranslatingCMP())
    assert len(info.warnings) == 1 and "track 1 moves 50.0 px" in info.warnings[0]
    assert info.max_grid_displacement == 50.0


def test_short_drag_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = trajectories_to_flow(torch.zeros(3, 384, 384), [[(0, 0), (45, 45)]], None, 2, TranslatingCMP())
    assert info.warnings == []


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "tracks, message",
    [
        ([], "no trajectories"),
        ([[(1, 1), (2, 2)], []], "track 1 is empty"),
        ([[(1, 1), (float("nan"), 2)]], r"track 0, click 1: \(nan, 2.0\) is not finite"),
        ([[(1, 1)], [(16, 2)]], "track 1, click 0: .* outside the 16x8 image"),
        ([[(1, 1)], [(3, -1)]], "track 1, click 0: .* outside"),
        ([[(1, 2, 3)]], r"track 0: expected a list of \(x, y\) clicks"),
        ([[(1, 1)], [(1, 2), (3,)]], r"track 1: clicks must be \(x, y\) number pairs"),
        ([[("a", 1)]], "track 0: clicks must be"),
    ],
)
def test_invalid_tracks_raise_input_error_naming_the_track(tracks, message):
    with pytest.raises(InputError, match=message):
        validate_tracks(tracks, width=16, height=8)


def test_invalid_tracks_are_rejected_before_cmp_runs():
    cmp = TranslatingCMP()
    with pytest.raises(InputError, match="track 0"):
        trajectories_to_flow(_image(), [[(100, 1), (2, 2)]], None, num_frames=3, cmp=cmp, grid=4)
    assert cmp.calls == []


def test_brush_of_wrong_shape_and_bad_frame_count_are_input_errors():
    with pytest.raises(InputError, match="brush_mask"):
        trajectories_to_flow(_image(), [[(1, 1), (2, 2)]], np.zeros((4, 4)), 3, TranslatingCMP(), grid=4)
    with pytest.raises(InputError, match="num_frames"):
        trajectories_to_flow(_image(), [[(1, 1), (2, 2)]], None, 1, TranslatingCMP(), grid=4)


# ---------------------------------------------------------------------------------------------- drawings


def test_draw_tracks_draws_red_polyline_and_pin_dot():
    image = np.zeros((40, 60, 3), np.uint8)
    drawn = np.asarray(draw_tracks(image, [[(5, 10), (50, 10)], [(30, 30)], []]))
    assert drawn.shape == (40, 60, 3)
    assert drawn[10, 20].tolist() == [255, 0, 0]  # on the line
    assert drawn[30, 30].tolist() == [255, 0, 0] and drawn[30, 33].tolist() == [255, 0, 0]  # dot of radius 3
    assert drawn[30, 35].tolist() == [0, 0, 0] and drawn[20, 20].tolist() == [0, 0, 0]
    assert drawn[7, 47].tolist() == [255, 0, 0]  # arrowhead wing near the end of the last segment


def test_hint_image_is_half_transparent_image_over_brush():
    image = np.full((40, 60, 3), 200, np.uint8)
    _, viz = stamp_brush(*empty_brush(40, 60), (50, 30), 5)
    hint = draw_hint_image(image, [[(5, 10), (30, 10), (50, 12)]], viz)
    pixels = np.asarray(hint)
    assert hint.mode == "RGBA" and pixels.shape == (40, 60, 4)
    assert pixels[35, 5].tolist() == [200, 200, 200, 128]  # no brush: image at 50% alpha
    assert pixels[30, 50, 3] == 255 and pixels[30, 50, 2] > pixels[30, 50, 0]  # brush shows through in blue
    assert pixels[10, 15, 0] > 220 and pixels[10, 15, 1] < 120  # the smoothed track in red
