# Copied from MOFA-Video-Traj/models/cmp/sparse_encoder.py
"""Sparse-hint encoder of CMP: a shallow conv net from 4 hint channels to features at 1/8 resolution."""

import torch
from torch import nn

SPARSE_INPUT_CHANNELS = 4
"""(dx, dy, mask_x, mask_y): the sparse flow in pixels and its two (identical) mask channels."""


class SparseFlowEncoder(nn.Module):
    """conv 5x5 /2 -> BN -> ReLU -> max-pool /2 -> conv 3x3 -> BN -> ReLU -> average-pool /2.

    Both convolutions are ``out_channels`` wide (16 in the released model). Keys follow the released
    checkpoint (``features.0``, ``features.1``, ``features.4``, ``features.5``).
    """

    def __init__(self, out_channels: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(SPARSE_INPUT_CHANNELS, out_channels, kernel_size=5, stride=2, padding=2),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )

    def forward(self, sparse_input: torch.Tensor) -> torch.Tensor:
        """sparse_input: (B, 4, H, W) -> (B, out_channels, H/8, W/8)."""
        return self.features(sparse_input)
