"""Optical flow from the first frame to every frame: pre/post-processing, RAFT shape, classical estimator."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.models.optical_flow import raft_large

from train_utils.flow_estimation import (
    FarnebackFlowEstimator,
    PairwiseFlowEstimator,
    RAFTFlowEstimator,
    build_flow_estimator,
    load_raft_large,
)
from utils.errors import CheckpointError, InputError


class ConstantFlow(PairwiseFlowEstimator):
    """Returns the same (dx, dy) everywhere, at whatever size it is called."""

    def __init__(self, dx, dy, inference_size):
        super().__init__(inference_size, pairs_per_call=3)
        self.dx, self.dy = dx, dy
        self.calls = []

    def estimate_pairs(self, sources, targets):
        self.calls.append((sources.shape, targets.shape))
        flow = torch.zeros(sources.shape[0], 2, *sources.shape[-2:])
        flow[:, 0], flow[:, 1] = self.dx, self.dy
        return flow


def test_quirk_flow_is_estimated_at_a_fixed_384x512_and_rescaled():
    estimator = ConstantFlow(1.0, 1.0, (384, 512))
    flow = estimator(torch.rand(2, 5, 3, 64, 96))
    assert flow.shape == (2, 4, 2, 64, 96)
    assert torch.allclose(flow[:, :, 0], torch.tensor(96 / 512))
    assert torch.allclose(flow[:, :, 1], torch.tensor(64 / 384))
    assert [call[0] for call in estimator.calls] == [(3, 3, 384, 512), (3, 3, 384, 512), (2, 3, 384, 512)]


def test_quirk_portrait_clips_are_estimated_transposed():
    flow = ConstantFlow(1.0, 0.0, None)(torch.rand(1, 3, 3, 40, 24))
    assert flow.shape == (1, 2, 2, 40, 24)
    assert torch.allclose(flow[:, :, 0], torch.tensor(0.0)) and torch.allclose(flow[:, :, 1], torch.tensor(1.0))


class BrightnessDifference(PairwiseFlowEstimator):
    def estimate_pairs(self, sources, targets):
        difference = (targets - sources).mean(dim=(1, 2, 3))
        return difference.view(-1, 1, 1, 1).expand(-1, 2, *sources.shape[-2:])


def test_pairs_are_first_frame_to_each_later_frame():
    frames = torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1, 1).expand(1, 4, 3, 8, 8) / 10
    flow = BrightnessDifference(inference_size=None)(frames)
    assert flow[0, :, 0, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_raft_large_with_random_weights_gives_one_flow_per_later_frame():
    torch.manual_seed(0)
    estimator = RAFTFlowEstimator(raft_large(weights=None), num_flow_updates=1, inference_size=(128, 128))
    flow = estimator(torch.rand(1, 3, 3, 32, 48))
    assert flow.shape == (1, 2, 2, 32, 48) and flow.dtype == torch.float32
    assert torch.isfinite(flow).all()


def test_farneback_recovers_a_known_translation():
    texture = ndimage.gaussian_filter(np.random.default_rng(0).random((80, 80)), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    shifted = np.roll(texture, shift=(1, 2), axis=(0, 1))  # content moves 2 px right, 1 px down
    frames = torch.from_numpy(np.stack([texture, shifted])).float()[None, :, None].expand(1, 2, 3, 80, 80)
    flow = FarnebackFlowEstimator()(frames)[0, 0, :, 20:60, 20:60]
    assert flow[0].median().item() == pytest.approx(2.0, abs=0.2)
    assert flow[1].median().item() == pytest.approx(1.0, abs=0.2)


def test_estimator_selection_and_errors(tmp_path):
    assert build_flow_estimator("precomputed") is None
    assert isinstance(build_flow_estimator("farneback"), FarnebackFlowEstimator)
    assert isinstance(
        build_flow_estimator("train_utils.flow_estimation:FarnebackFlowEstimator"), FarnebackFlowEstimator
    )
    with pytest.raises(InputError, match="--flow_estimator must be"):
        build_flow_estimator("unimatch")
    with pytest.raises(InputError, match="cannot import"):
        build_flow_estimator("no_such_module:factory")
    with pytest.raises(CheckpointError, match="--raft_weights: no such file"):
        load_raft_large(tmp_path / "raft.pth")
