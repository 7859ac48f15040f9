"""Optical flow -> colour images (Middlebury colour wheel; zero motion is white)."""

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


def flow_video_frames(flow: torch.Tensor, per_frame: bool = True) -> np.ndarray:
    """Frames of a flow video: a white frame (frame 0 does not move) followed by the T-1 coloured flows.

    Args:
        flow: ``(T-1, 2, H, W)`` flow from frame 0 to frames 1..T-1, in pixels.
        per_frame: see ``flow_to_rgb``.

    Returns:
        uint8 RGB ``(T, H, W, 3)``.
    """
    if flow.ndim != 4:
        raise ValueError(f"flow must have shape (T-1, 2, H, W), got {tuple(flow.shape)}")
    colours = flow_to_rgb(flow, per_frame=per_frame)
    white = np.full_like(colours[:1], 255)
    return np.concatenate([white, colours], axis=0)
