# Copied from MOFA-Video-Traj/models/softsplat.py
"""Forward splatting ("softmax splatting" in average mode) in pure PyTorch.

Every source pixel ``(x, y)`` of a feature map is pushed to ``(x + u, y + v)`` and shared among the four
surrounding target pixels with bilinear weights. Targets outside the image are dropped and source pixels
whose displaced position is not finite are skipped. Average mode splats a channel of ones alongside the
features and divides by it, so every covered target holds a weighted mean of the features that landed there
and uncovered targets (holes) are exactly zero. This is the warp the released MOFA adapters were trained with.

The maths runs in at least float32 (half-precision inputs are upcast and the result is cast back), works on
any device and is differentiable with respect to both the features and the flow.
"""

from __future__ import annotations

import torch

AVERAGE_EPS = 1e-7


def _check_inputs(features: torch.Tensor, flow: torch.Tensor) -> None:
    if features.ndim != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (N, 2, H, W), got shape {tuple(flow.shape)}")
    if flow.shape[0] != features.shape[0] or flow.shape[2:] != features.shape[2:]:
        raise ValueError(
            f"flow shape {tuple(flow.shape)} does not match features shape {tuple(features.shape)} "
            "(expected the same N, H and W)"
        )


def _corner_targets(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Target indices and bilinear weights of the four corners every source pixel splats to.

    Args:
        flow: ``(N, 2, H, W)`` displacement in pixels, channel 0 = x (columns), channel 1 = y (rows).

    Returns:
        ``index`` ``(N, 1, 4·H·W)`` int64 flat target positions (clamped into range) and ``weight``
        ``(N, 1, 4·H·W)`` bilinear weights, zero where the target is outside the image or the displaced
        position is not finite.
    """
    batch, _, height, width = flow.shape
    rows = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    cols = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    target_x = cols + flow[:, 0]
    target_y = rows + flow[:, 1]
    finite = torch.isfinite(target_x) & torch.isfinite(target_y)
    # Positions further out than one pixel beyond the border only ever produce dropped corners; clamping
    # them keeps the integer conversion below well defined without changing any kept weight.
    target_x = torch.where(finite, target_x, 0.0).clamp(-2.0, width + 1.0)
    target_y = torch.where(finite, target_y, 0.0).clamp(-2.0, height + 1.0)

    left = torch.floor(target_x)
    top = torch.floor(target_y)
    right = left + 1.0
    bottom = top + 1.0
    corners = (
        (left, top, (right - target_x) * (bottom - target_y)),
        (right, top, (target_x - left) * (bottom - target_y)),
        (left, bottom, (right - target_x) * (target_y - top)),
        (right, bottom, (target_x - left) * (target_y - top)),
    )

    indices, weights = [], []
    for corner_x, corner_y, weight in corners:
        inside = finite & (corner_x >= 0) & (corner_x < width) & (corner_y >= 0) & (corner_y < height)
        flat = corner_y.clamp(0, height - 1).long() * width + corner_x.clamp(0, width - 1).long()
        indices.append(flat.view(batch, 1, -1))
        weights.append(torch.where(inside, weight, 0.0).view(batch, 1, -1))
    return torch.cat(indices, dim=2), torch.cat(weights, dim=2)


def splat_sum(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-splat ``features`` by ``flow`` and sum everything that lands on each target pixel.

    Args:
        features: ``(N, C, H, W)`` any values.
        flow: ``(N, 2, H, W)`` displacement in pixels (x first), same dtype as ``features``.

    Returns:
        ``(N, C, H, W)`` in the dtype of ``features``: ``out[t] = Σ_s w(s→t) · features[s]``.
    """
    _check_inputs(features, flow)
    if features.dtype != flow.dtype:
        raise ValueError(f"features ({features.dtype}) and flow ({flow.dtype}) must share a dtype")
    batch, channels, height, width = features.shape
    index, weight = _corner_targets(flow)
    source = features.reshape(batch, channels, 1, height * width).expand(-1, -1, 4, -1)
    source = source.reshape(batch, channels, 4 * height * width) * weight
    out = features.new_zeros(batch, channels, height * width)
    out = out.scatter_add(2, index.expand(-1, channels, -1), source)
    return out.view(batch, channels, height, width)


def softsplat(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-warp ``features`` by ``flow`` in average mode.

    ``out = splat_sum([features, 1]) [:C] / (splat_sum([features, 1]) [C] + 1e-7)``: covered pixels hold the
    weighted mean of what landed there, holes are exactly 0.

    Args:
        features: ``(N, C, H, W)`` feature maps (any float dtype).
        flow: ``(N, 2, H, W)`` forward displacement in pixels, channel 0 = x, channel 1 = y.

    Returns:
        ``(N, C, H, W)`` warped features in the dtype of ``features``. The computation itself runs in
        float32 (or float64 when the inputs are float64).
    """
    _check_inputs(features, flow)
    compute_dtype = torch.promote_types(torch.promote_types(features.dtype, flow.dtype), torch.float32)
    source = features.to(compute_dtype)
    with_ones = torch.cat([source, torch.ones_like(source[:, :1])], dim=1)
    summed = splat_sum(with_ones, flow.to(compute_dtype))
    averaged = summed[:, :-1] / (summed[:, -1:] + AVERAGE_EPS)
    return averaged.to(features.dtype)
