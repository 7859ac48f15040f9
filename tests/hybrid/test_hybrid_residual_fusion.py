"""Residual fusion of the two adapters: face * M + traj * (1 - M), M resized with nearest to every residual."""

import numpy as np
import pytest
import torch

from pipeline.residual_fusion import fuse_residual, fuse_residuals, mask_to_tensor, resize_mask
from utils.errors import InputError

HEIGHT, WIDTH = 128, 256
STRIDES = (8, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64)  # the 12 SVD encoder skips
BATCH_FRAMES = 6  # 2 (CFG) x 3 frames


def _residuals(seed: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    down = tuple(
        torch.randn(BATCH_FRAMES, 3 + index, HEIGHT // stride, WIDTH // stride, generator=generator)
        for index, stride in enumerate(STRIDES)
    )
    mid = torch.randn(BATCH_FRAMES, 5, HEIGHT // 64, WIDTH // 64, generator=generator)
    return down, mid


def _fuse(mask: np.ndarray):
    face_down, face_mid = _residuals(0)
    traj_down, traj_mid = _residuals(1)
    fused_down, fused_mid = fuse_residuals(face_down, face_mid, traj_down, traj_mid, mask_to_tensor(mask))
    return (face_down + (face_mid,)), (traj_down + (traj_mid,)), (fused_down + (fused_mid,))


def test_empty_mask_gives_the_trajectory_residuals_exactly():
    face, traj, fused = _fuse(np.zeros((HEIGHT, WIDTH), np.uint8))
    assert len(fused) == 13
    for traj_residual, fused_residual in zip(traj, fused):
        assert torch.equal(fused_residual, traj_residual)


def test_full_mask_gives_the_face_residuals_exactly():
    face, traj, fused = _fuse(np.full((HEIGHT, WIDTH), 255, np.uint8))
    for face_residual, fused_residual in zip(face, fused):
        assert torch.equal(fused_residual, face_residual)


@pytest.mark.parametrize("split", ["left", "top"])
def test_half_mask_takes_face_on_one_half_and_trajectories_on_the_other_at_every_resolution(split):
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    if split == "left":
        mask[:, : WIDTH // 2] = 255
    else:
        mask[: HEIGHT // 2] = 255
    face, traj, fused = _fuse(mask)
    for face_residual, traj_residual, fused_residual in zip(face, traj, fused):
        height, width = fused_residual.shape[-2:]
        if split == "left":
            face_part, traj_part = np.s_[..., : width // 2], np.s_[..., width // 2 :]
        else:
            face_part, traj_part = np.s_[..., : height // 2, :], np.s_[..., height // 2 :, :]
        assert torch.equal(fused_residual[face_part], face_residual[face_part])
        assert torch.equal(fused_residual[traj_part], traj_residual[traj_part])


def test_quirk_face_mask_is_nearest_resized_taking_the_top_left_pixel_of_each_cell():
    rng = np.random.default_rng(0)
    mask = (rng.random((HEIGHT, WIDTH)) > 0.5).astype(np.uint8) * 255
    for stride in (8, 16, 32, 64):
        resized = resize_mask(mask_to_tensor(mask), (HEIGHT // stride, WIDTH // stride))[0, 0].numpy()
        np.testing.assert_array_equal(resized, mask[::stride, ::stride] / 255.0)


def test_quirk_residuals_fuse_as_face_times_mask_plus_trajectory_times_one_minus_mask():
    face = torch.full((2, 1, 4, 4), 10.0)
    traj = torch.full((2, 1, 4, 4), 2.0)
    fused = fuse_residual(face, traj, mask_to_tensor(torch.full((32, 32), 0.25)))
    assert torch.allclose(fused, torch.full_like(fused, 0.25 * 10 + 0.75 * 2))


def test_fusion_keeps_the_residual_dtype():
    face = torch.ones(1, 2, 4, 4, dtype=torch.float16)
    fused = fuse_residual(face, face * 3, mask_to_tensor(np.full((8, 8), 255, np.uint8)))
    assert fused.dtype == torch.float16 and torch.equal(fused, face)


def test_mask_to_tensor_reads_uint8_bool_and_float_masks():
    assert mask_to_tensor(np.array([[0, 255]], np.uint8)).tolist() == [[[[0.0, 1.0]]]]
    assert mask_to_tensor(np.array([[True, False]])).tolist() == [[[[1.0, 0.0]]]]
    assert mask_to_tensor(torch.tensor([[0.5]])).tolist() == [[[[0.5]]]]
    with pytest.raises(InputError, match=r"\(H, W\)"):
        mask_to_tensor(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        mask_to_tensor(torch.tensor([[2.0]]))


def test_mismatched_residuals_are_refused():
    with pytest.raises(ValueError, match="differ"):
        fuse_residual(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 2), mask_to_tensor(np.zeros((8, 8), np.uint8)))
    with pytest.raises(ValueError, match="down residuals"):
        fuse_residuals([torch.zeros(1)], torch.zeros(1), [], torch.zeros(1), mask_to_tensor(np.zeros((8, 8), np.uint8)))
