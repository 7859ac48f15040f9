"""Stage 2's adapter input: CMP's dense flow propagated from sparse hints of the estimated flow.

CMP runs on a square grid (384 px for the released weights), so the clip's first frame and dense flow
are resized (nearest) onto that grid, hints are sampled there, and CMP's flow is resized (nearest)
back to the clip size, each flow rescaled to the pixels of its grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.cmp import CMP
from train_utils.flow_estimation import resize_flow
from train_utils.hint_sampling import sample_clip_hints


@dataclass
class SparseToDenseFlow:
    """CMP's flow for the adapter, plus the hints it was given (for visualisation).

    Attributes:
        dense: ``[B, T-1, 2, H, W]`` float32 pixels at the clip size.
        sparse: ``[B, T-1, 2, G, G]`` the hint displacements on the CMP grid.
        mask: ``[B, T-1, 2, G, G]`` 1 at hint pixels.
    """

    dense: torch.Tensor
    sparse: torch.Tensor
    mask: torch.Tensor


def resize_flows(flows: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, N, 2, h, w]`` -> ``[B, N, 2, *size]`` by nearest sampling, rescaled to the new pixels."""
    if tuple(flows.shape[-2:]) == tuple(size):
        return flows
    return resize_flow(flows.flatten(0, 1), size, mode="nearest").unflatten(0, flows.shape[:2])


@torch.no_grad()
def cmp_flow_from_hints(
    cmp: CMP, first_frame: torch.Tensor, flows: torch.Tensor, grid_size: int, rng: np.random.Generator
) -> SparseToDenseFlow:
    """Sample hints from ``flows`` and let CMP propagate them.

    Args:
        cmp: the frozen CMP (eval mode).
        first_frame: ``[B, 3, H, W]`` in [0, 1].
        flows: ``[B, T-1, 2, H, W]`` dense flow (pixels) from frame 0 to each later frame.
        grid_size: side of CMP's square grid.
        rng: source of the hint sampling.
    """
    height, width = flows.shape[-2:]
    grid_flows = resize_flows(flows.float(), (grid_size, grid_size))
    grid_frames = F.interpolate(first_frame.float(), size=(grid_size, grid_size), mode="nearest")
    sparse, mask = sample_clip_hints(grid_flows, rng)
    dense = torch.stack(
        [cmp.dense_flow(grid_frames[index : index + 1], sparse[index], mask[index]) for index in range(flows.shape[0])]
    )
    return SparseToDenseFlow(resize_flows(dense, (height, width)), sparse, mask)
