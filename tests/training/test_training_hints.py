"""Sparse-hint sampling (grid + watershed) on synthetic flows with known motion boundaries."""

import numpy as np
import torch

from train_utils.hint_sampling import (
    flow_edges,
    grid_points,
    grid_stride,
    sample_clip_hints,
    sample_hint_points,
    thin_neighbours,
    watershed_points,
)


def moving_rectangle_flow(size=384, rows=(100, 200), cols=(150, 260), motion=(5.0, 3.0)):
    flow = np.zeros((size, size, 2), dtype=np.float32)
    flow[rows[0] : rows[1], cols[0] : cols[1]] = motion
    return flow


def test_quirk_hint_grid_is_80_px_centred_25_points_at_384_and_16_at_320():
    assert grid_stride() == 80
    rows, cols = grid_points(384, 384, 80)
    assert sorted(set(rows.tolist())) == [32, 112, 192, 272, 352] == sorted(set(cols.tolist()))
    assert len(rows) == 25
    rows, cols = grid_points(320, 320, 80)
    assert sorted(set(rows.tolist())) == [0, 80, 160, 240] and len(rows) == 16


def test_static_flow_gives_grid_points_only():
    rng = np.random.default_rng(0)
    for size, expected in ((384, 25), (320, 16)):
        rows, cols = sample_hint_points(np.zeros((size, size, 2), np.float32), rng)
        assert len(rows) == expected
        assert set(zip(rows.tolist(), cols.tolist())) == set(zip(*[a.tolist() for a in grid_points(size, size, 80)]))


def test_sobel_edges_of_a_unit_step_are_four_on_both_sides_of_the_step():
    flow = np.zeros((9, 12, 2), np.float32)
    flow[:, 6:, 0] = 1.0
    edges = flow_edges(flow)
    assert np.allclose(edges[:, 5], 4.0) and np.allclose(edges[:, 6], 4.0)
    assert np.allclose(edges[:, :5], 0.0) and np.allclose(edges[:, 7:], 0.0)


def test_watershed_picks_the_middle_of_a_moving_rectangle_away_from_its_boundary():
    rng = np.random.default_rng(0)
    rows, cols = watershed_points(moving_rectangle_flow(), rng)
    assert len(rows) == 1
    assert 145 <= rows[0] <= 155 and 150 + 45 <= cols[0] <= 260 - 45
    assert len(sample_hint_points(moving_rectangle_flow(), rng)[0]) == 26


def test_watershed_points_keep_their_distance_from_two_motion_boundaries():
    flow = np.zeros((200, 300, 2), np.float32)
    flow[:, 100:200, 1] = -4.0  # a vertical band moving up: boundaries at columns 100 and 200
    rows, cols = watershed_points(flow, np.random.default_rng(1))
    assert len(rows) > 0
    distance_to_boundary = np.minimum(np.abs(cols - 99.5), np.abs(cols - 199.5))
    assert distance_to_boundary.min() >= 7
    assert ((rows > 0) & (rows < 199) & (cols > 0) & (cols < 299)).all()


def test_quirk_hint_thinning_drops_one_of_each_pair_closer_than_7_px_in_both_axes():
    rows, cols = np.array([10, 13, 50, 50]), np.array([10, 12, 50, 57])
    kept_rows, kept_cols = thin_neighbours(rows, cols, 7, np.random.default_rng(0))
    kept = set(zip(kept_rows.tolist(), kept_cols.tolist()))
    assert len(kept) == 3 and {(50, 50), (50, 57)} <= kept
    assert len(kept & {(10, 10), (13, 12)}) == 1


def test_quirk_hint_mask_comes_from_the_last_flow_and_is_shared_by_every_frame():
    last = torch.from_numpy(moving_rectangle_flow(size=320)).permute(2, 0, 1)
    flows = torch.stack([last * 0.2, last * 0.6, last])[None]  # [1, 3, 2, 320, 320]
    sparse, mask = sample_clip_hints(flows, np.random.default_rng(3))
    assert sparse.shape == mask.shape == flows.shape
    assert torch.equal(mask[0, 0], mask[0, 1]) and torch.equal(mask[0, 1], mask[0, 2])
    assert torch.equal(mask[0, 0, 0], mask[0, 0, 1])
    points_from_last = sample_hint_points(last.permute(1, 2, 0).numpy(), np.random.default_rng(3))
    assert int(mask[0, 0, 0].sum()) == len(set(zip(*[p.tolist() for p in points_from_last]))) == 17
    assert torch.equal(sparse, flows * mask)
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}
