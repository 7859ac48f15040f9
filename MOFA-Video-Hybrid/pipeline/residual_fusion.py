"""Fusing the residuals of the two MOFA-Adapters with the landmark mask.

At every denoising step the landmark adapter (face) and the trajectory adapter each return one residual per
UNet encoder skip plus one for the mid block. Hybrid mode feeds the UNet, residual by residual,

    fused = face * M + traj * (1 - M)

where ``M`` is the landmark mask in [0, 1] (1 = face region, driven by landmarks; 0 = driven by trajectories),
resized with nearest-neighbour sampling to each residual's resolution (1/8, 1/16, 1/32 and 1/64 of the frame
for SVD) and broadcast over the batch·frames axis, as the released Hybrid weights were used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from utils.errors import InputError

Residuals = tuple[tuple[torch.Tensor, ...], torch.Tensor]
"""``(down_residuals, mid_residual)``: one ``(B·T, C_j, h_j, w_j)`` tensor per encoder skip, and the mid one."""


def mask_to_tensor(
    mask: np.ndarray | torch.Tensor, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A landmark mask as a ``(1, 1, H, W)`` tensor in [0, 1].

    Args:
        mask: ``(H, W)``: uint8 0/255 (as painted or computed), bool, or float already in [0, 1].
        device, dtype: of the result.

    Raises:
        InputError: the mask is not two-dimensional, or a float mask leaves [0, 1].
    """
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if mask.ndim != 2:
        raise InputError(f"landmark mask must be (H, W), got shape {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        mask = mask.float()
    elif mask.dtype == torch.uint8:
        mask = mask.float() / 255.0
    else:
        mask = mask.float()
        if mask.numel() and (mask.min() < 0 or mask.max() > 1):
            raise InputError("a float landmark mask must lie in [0, 1]")
    return mask.to(device=device, dtype=dtype)[None, None]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a ``(1, 1, H, W)`` mask to ``(1, 1, h, w)``."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=tuple(size), mode="nearest")


def fuse_residual(face: torch.Tensor, traj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``face * M + traj * (1 - M)`` for one residual.

    Args:
        face, traj: ``(B·T, C, h, w)`` residuals of the landmark and trajectory adapters.
        mask: ``(1, 1, H, W)`` in [0, 1] at any resolution; resized to ``(h, w)`` with nearest.

    Returns:
        ``(B·T, C, h, w)`` in the residuals' dtype.
    """
    if face.shape != traj.shape:
        raise ValueError(f"face residual {tuple(face.shape)} and trajectory residual {tuple(traj.shape)} differ")
    weight = resize_mask(mask, face.shape[-2:]).to(device=face.device, dtype=face.dtype)
    return face * weight + traj * (1 - weight)


def fuse_residuals(
    face_down: Sequence[torch.Tensor],
    face_mid: torch.Tensor,
    traj_down: Sequence[torch.Tensor],
    traj_mid: torch.Tensor,
    mask: torch.Tensor,
) -> Residuals:
    """Fuses every down residual and the mid residual of the two adapters (see the module docstring).

    Args:
        face_down, face_mid: the landmark adapter's residuals.
        traj_down, traj_mid: the trajectory adapter's residuals, same shapes.
        mask: ``(1, 1, H, W)`` landmark mask in [0, 1] (:func:`mask_to_tensor`).

    Returns:
        ``(down_residuals, mid_residual)`` ready for the UNet.
    """
    if len(face_down) != len(traj_down):
        raise ValueError(f"the adapters return {len(face_down)} and {len(traj_down)} down residuals")
    down = tuple(fuse_residual(face, traj, mask) for face, traj in zip(face_down, traj_down))
    return down, fuse_residual(face_mid, traj_mid, mask)
