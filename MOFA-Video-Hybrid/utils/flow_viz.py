# Copied from MOFA-Video-Traj/utils/flow_viz.py
"""Optical flow -> colour images (Middlebury colour wheel; zero motion is white) and flow videos that open on the
colour key."""

import numpy as np
import torch
from torchvision.utils import flow_to_image


def flow_to_rgb(flow: torch.Tensor, per_frame: bool = True) -> np.ndarray:
    """Colour-codes flow with the Middlebury wheel: hue = direction, saturation = magnitude.

    Args:
        flow: ``(2, H, W)`` or ``(N, 2, H, W)`` flow in pixels (dx, dy), any float dtype and device.
        per_frame: normalise each frame by its own largest motion (as the released demo did); when False,
            normalise by the largest motion over all N frames so colours are comparable over time.

    Returns:
        uint8 RGB ``(H, W, 3)`` or ``(N, H, W, 3)``.
    """
    if flow.ndim not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must have shape (2, H, W) or (N, 2, H, W), got {tuple(flow.shape)}")
    flow = flow.detach().float().cpu()
    if flow.ndim == 3 or not per_frame:
        images = flow_to_image(flow)
    else:
        images = torch.stack([flow_to_image(frame) for frame in flow])
    return images.movedim(-3, -1).numpy()


def colour_wheel(height: int, width: int) -> np.ndarray:
    """The colour key of :func:`flow_to_rgb`: a centred disc whose every pixel shows the colour of a flow pointing
    from the centre to it (hue = direction, saturation = magnitude, full on the rim), white around it.

    Returns:
        uint8 RGB ``(height, width, 3)``.
    """
    radius = max(min(height, width) / 2 - 1, 1.0)
    rows, columns = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    flow = torch.stack([columns - width / 2, rows - height / 2])
    return flow_to_rgb(torch.where(flow.norm(dim=0) <= radius, flow, torch.zeros(())))


def flow_video_frames(flow: torch.Tensor, per_frame: bool = True) -> np.ndarray:
    """Frames of a flow video: the colour key (:func:`colour_wheel`) as frame 0, which does not move, so that a
    player paused at the start shows how to read the colours, followed by the T-1 coloured flows.

    Args:
        flow: ``(T-1, 2, H, W)`` flow from frame 0 to frames 1..T-1, in pixels.
        per_frame: see ``flow_to_rgb``.

    Returns:
        uint8 RGB ``(T, H, W, 3)``.
    """
    if flow.ndim != 4:
        raise ValueError(f"flow must have shape (T-1, 2, H, W), got {tuple(flow.shape)}")
    colours = flow_to_rgb(flow, per_frame=per_frame)
    return np.concatenate([colour_wheel(*colours.shape[1:3])[None], colours], axis=0)
