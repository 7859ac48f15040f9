"""Optical flow from the first frame of a clip to every frame, behind a small interface.

The adapter is trained on dense flow ``frame 0 -> frame t`` for t = 1..T-1. Any callable with the
:class:`FlowEstimator` signature can provide it:

* :class:`RAFTFlowEstimator` (default): torchvision RAFT-large; its weights come through torchvision
  (downloaded once into the torch hub cache, or given as a local file with ``--raft_weights``).
* :class:`FarnebackFlowEstimator`: OpenCV's classical estimator. Needs no weights; used by ``--tiny``.
* precomputed flow: ``--flow_estimator precomputed`` reads ``<video>.flow.npz`` written by
  :mod:`train_utils.precompute_flow`, so no estimator runs during training.
* your own, e.g. UniMatch/GMFlow as the released weights were trained with: subclass
  :class:`PairwiseFlowEstimator`, implement :meth:`PairwiseFlowEstimator.estimate_pairs`, and pass
  ``--flow_estimator my_module:build_estimator`` (a zero-argument callable returning the estimator).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import CheckpointError, InputError

# The released training ran its estimator at this fixed size (height, width), landscape.
DEFAULT_INFERENCE_SIZE = (384, 512)


class FlowEstimator(Protocol):
    """Maps a clip to the flows from its first frame to every later frame."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """frames ``[B, T, 3, H, W]`` in [0, 1] -> flow ``[B, T-1, 2, H, W]`` float32, pixels (dx, dy)."""
        ...


def first_frame_pairs(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``[B, T, 3, H, W]`` into sources (frame 0, repeated) and targets (frames 1..T-1), each
    ``[B*(T-1), 3, H, W]``."""
    batch, num_frames = frames.shape[:2]
    sources = frames[:, :1].expand(-1, num_frames - 1, -1, -1, -1)
    targets = frames[:, 1:]
    return sources.reshape(-1, *frames.shape[2:]), targets.reshape(-1, *frames.shape[2:])


def resize_flow(flow: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[N, 2, h, w]`` pixel flow to ``size`` (H, W), scaling dx by W/w and dy by H/h."""
    height, width = flow.shape[-2:]
    kwargs = {"align_corners": True} if mode == "bilinear" else {}
    resized = F.interpolate(flow, size=size, mode=mode, **kwargs)
    scale = flow.new_tensor([size[1] / width, size[0] / height]).view(1, 2, 1, 1)
    return resized * scale


class PairwiseFlowEstimator(nn.Module):
    """Base class for estimators that compute flow between two images at a fixed inference size.

    The clip is split into (frame 0, frame t) pairs; portrait clips are transposed to landscape;
    images are resized bilinearly (align_corners) to ``inference_size``; the flow is resized back
    and rescaled to clip pixels. Pairs are processed ``pairs_per_call`` at a time.

    Args:
        inference_size: (height, width) the pairwise model runs at; None keeps the clip size.
        pairs_per_call: largest number of pairs per model call (bounds memory).
    """

    def __init__(
        self, inference_size: tuple[int, int] | None = DEFAULT_INFERENCE_SIZE, pairs_per_call: int = 8
    ) -> None:
        super().__init__()
        self.inference_size = inference_size
        self.pairs_per_call = pairs_per_call

    def estimate_pairs(self, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Flow from each source to its target.

        Args:
            sources, targets: ``[N, 3, h, w]`` float32 in [0, 1] at the inference size.

        Returns:
            ``[N, 2, h, w]`` float32 displacements in pixels (dx, dy).
        """
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames ``[B, T, 3, H, W]`` in [0, 1] -> flow ``[B, T-1, 2, H, W]`` float32 pixels, frame 0 -> frame t."""
        batch, num_frames, _, height, width = frames.shape
        sources, targets = first_frame_pairs(frames.float())
        transpose = height > width
        if transpose:
            sources, targets = sources.transpose(-1, -2), targets.transpose(-1, -2)
        clip_size = tuple(sources.shape[-2:])
        if self.inference_size is not None:
            sources = F.interpolate(sources, size=self.inference_size, mode="bilinear", align_corners=True)
            targets = F.interpolate(targets, size=self.inference_size, mode="bilinear", align_corners=True)
        flows = torch.cat(
            [
                self.estimate_pairs(
                    sources[start : start + self.pairs_per_call], targets[start : start + self.pairs_per_call]
                )
                for start in range(0, sources.shape[0], self.pairs_per_call)
            ]
        ).float()
        if self.inference_size is not None:
            flows = resize_flow(flows, clip_size)
        if transpose:
            flows = flows.transpose(-1, -2).flip(1)
        return flows.reshape(batch, num_frames - 1, 2, height, width)


class RAFTFlowEstimator(PairwiseFlowEstimator):
    """torchvision RAFT-large.

    Args:
        model: a torchvision RAFT model (e.g. ``raft_large(weights=None)`` for shape tests).
        num_flow_updates: RAFT refinement iterations.
    """

    def __init__(
        self,
        model: nn.Module,
        num_flow_updates: int = 12,
        inference_size: tuple[int, int] | None = DEFAULT_INFERENCE_SIZE,
        pairs_per_call: int = 8,
    ) -> None:
        super().__init__(inference_size, pairs_per_call)
        self.model = model.eval().requires_grad_(False)
        self.num_flow_updates = num_flow_updates

    def estimate_pairs(self, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        predictions = self.model(sources * 2 - 1, targets * 2 - 1, num_flow_updates=self.num_flow_updates)
        return predictions[-1]


def load_raft_large(weights_path: str | Path | None = None) -> RAFTFlowEstimator:
    """RAFT-large with its released weights: from ``weights_path``, else through torchvision's cache/download.

    Raises:
        CheckpointError: the weights are neither at ``weights_path`` nor obtainable (offline, no cache).
    """
    from torchvision.models.optical_flow import Raft_Large_Weights, raft_large

    if weights_path is not None:
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise CheckpointError(f"--raft_weights: no such file {weights_path}")
        model = raft_large(weights=None)
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        return RAFTFlowEstimator(model)
    try:
        model = raft_large(weights=Raft_Large_Weights.DEFAULT, progress=False)
    except (OSError, RuntimeError) as error:
        raise CheckpointError(
            f"RAFT-large weights could not be loaded ({error}); download {Raft_Large_Weights.DEFAULT.url} "
            "and pass --raft_weights <file>, or use --flow_estimator precomputed"
        ) from error
    return RAFTFlowEstimator(model)


class FarnebackFlowEstimator(PairwiseFlowEstimator):
    """OpenCV's Farneback dense flow: classical, weight-free, fast at small sizes (CPU, numpy)."""

    def __init__(self, inference_size: tuple[int, int] | None = None) -> None:
        super().__init__(inference_size, pairs_per_call=64)

    def estimate_pairs(self, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flows = [
            cv2.calcOpticalFlowFarneback(_to_gray(source), _to_gray(target), None, 0.5, 3, 9, 3, 5, 1.1, 0)
            for source, target in zip(sources, targets)
        ]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(sources.device)


def _to_gray(image: torch.Tensor) -> np.ndarray:
    rgb = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def build_flow_estimator(name: str, raft_weights: str | None = None) -> FlowEstimator | None:
    """The estimator selected by ``--flow_estimator``.

    Args:
        name: ``raft``, ``farneback``, ``precomputed`` (returns None: flows come with the data) or
            ``module:callable`` naming a zero-argument factory importable from the working directory.
    """
    if name == "raft":
        return load_raft_large(raft_weights)
    if name == "farneback":
        return FarnebackFlowEstimator()
    if name == "precomputed":
        return None
    if ":" in name:
        module_name, factory_name = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module_name), factory_name)
        except (ImportError, AttributeError) as error:
            raise InputError(f"--flow_estimator {name}: cannot import ({error})") from error
        return factory()
    raise InputError(f"--flow_estimator must be raft, farneback, precomputed or module:callable, got {name!r}")
