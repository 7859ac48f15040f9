# Copied from MOFA-Video-Traj/models/cmp/image_encoder.py
"""Image encoder of CMP: a ResNet-50 whose last two stages are dilated instead of strided.

The two dilated stages keep the feature map at 1/8 of the input, and a 1x1 convolution (``conv5``)
reduces the 2048 channels to the encoder width. Besides the deep features the encoder hands the
decoder two shallow skip features: the stem output (1/2) and the first stage's output (1/4).
Attribute names follow the released checkpoint (``conv1``, ``bn1``, ``layer1``-``layer4``, ``conv5``).
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

BOTTLENECK_EXPANSION = 4


class ImageFeatures(NamedTuple):
    """What the image encoder returns for images of size H x W."""

    deep: torch.Tensor
    """(B, img_enc_dim, H/8, W/8)"""
    stem: torch.Tensor
    """(B, width, H/2, W/2): the stem convolution after BatchNorm and ReLU."""
    stage1: torch.Tensor
    """(B, 4 * width, H/4, W/4): the output of ``layer1``."""


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided or dilated) -> 1x1 residual block with BatchNorm, output ``4 * width`` channels."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def make_stage(in_channels: int, width: int, num_blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """``num_blocks`` bottlenecks; the first one changes the channel count (and strides), all share ``dilation``."""
    blocks = [Bottleneck(in_channels, width, stride=stride, dilation=dilation)]
    blocks += [Bottleneck(width * BOTTLENECK_EXPANSION, width, dilation=dilation) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class DilatedResNetEncoder(nn.Module):
    """Output-stride-8 ResNet: strides (1, 2) then dilations (2, 4) for the four stages.

    Args:
        out_channels: channels of the deep features after ``conv5`` (256 in the released model).
        width: stem width and first-stage bottleneck width (64 for ResNet-50); stage k uses ``width * 2**k``.
        blocks_per_stage: bottlenecks per stage ((3, 4, 6, 3) for ResNet-50).
    """

    def __init__(self, out_channels: int = 256, width: int = 64, blocks_per_stage: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        if len(blocks_per_stage) != 4:
            raise ValueError(f"blocks_per_stage needs 4 entries, got {tuple(blocks_per_stage)}")
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        strides = (1, 2, 1, 1)
        dilations = (1, 1, 2, 4)
        in_channels = width
        for index, (num_blocks, stride, dilation) in enumerate(zip(blocks_per_stage, strides, dilations)):
            stage_width = width * 2**index
            self.add_module(f"layer{index + 1}", make_stage(in_channels, stage_width, num_blocks, stride, dilation))
            in_channels = stage_width * BOTTLENECK_EXPANSION
        self.conv5 = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, image: torch.Tensor) -> ImageFeatures:
        """image: (B, 3, H, W) in [-1, 1], H and W multiples of 8."""
        stem = self.relu(self.bn1(self.conv1(image)))  # (B, w, H/2, W/2)
        stage1 = self.layer1(self.maxpool(stem))  # (B, 4w, H/4, W/4)
        deep = self.layer4(self.layer3(self.layer2(stage1)))  # (B, 32w, H/8, W/8)
        return ImageFeatures(deep=self.conv5(deep), stem=stem, stage1=stage1)
