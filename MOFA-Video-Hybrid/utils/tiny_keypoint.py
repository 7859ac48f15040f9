# Copied from MOFA-Video-Keypoint/utils/tiny_keypoint.py
"""Tiny, seeded stand-ins for the Keypoint-only components (tests and ``--tiny`` runs); see :mod:`utils.tiny`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from utils.tiny import TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS, randomise_zero_initialised_layers, tiny_unet

if TYPE_CHECKING:
    from models.ldmk_controlnet import LandmarkFlowControlNet
    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

TINY_LANDMARK_EMBEDDING_OUT_CHANNELS = (8, 16)  # one stride-2 conv, like the tiny condition embedding


def tiny_ldmk_controlnet(
    seed: int = 0, unet: UNetSpatioTemporalConditionControlNetModel | None = None
) -> LandmarkFlowControlNet:
    """Landmark adapter initialised from ``unet`` (default ``tiny_unet(seed)``), matting hourglass 8..32 wide.

    Layers a fresh adapter zero-initialises get small random weights, so the flow and the pose images
    visibly change its residuals.
    """
    from models.ldmk_controlnet import LandmarkFlowControlNet

    unet = tiny_unet(seed) if unet is None else unet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        controlnet = LandmarkFlowControlNet.from_unet(
            unet,
            conditioning_embedding_out_channels=TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS,
            landmark_embedding_out_channels=TINY_LANDMARK_EMBEDDING_OUT_CHANNELS,
            matting_block_expansion=8,
            matting_max_features=32,
        )
        randomise_zero_initialised_layers(
            [
                controlnet.controlnet_cond_embedding.conv_out,
                controlnet.controlnet_ldmk_embedding.conv_out,
                *controlnet.zero_outs.values(),
                *controlnet.controlnet_down_blocks,
                controlnet.controlnet_mid_block,
            ]
        )
    return controlnet.eval()
