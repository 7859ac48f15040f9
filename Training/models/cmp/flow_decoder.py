# Copied from MOFA-Video-Traj/models/cmp/flow_decoder.py
"""Motion decoder of CMP: multi-scale context on the 1/8 grid, then two skip-connected upsampling steps.

With decoder width ``w`` (128 in the released model):
- four branches on the 1/8 features: identity, max-pool /2, /4, /8 (each then three conv-BN-ReLU to ``w``),
  upsampled back to the 1/8 grid and fused to ``2w`` (``fusion8``);
- up to 1/4, concatenated with the first ResNet stage reduced to ``w`` (``skipconv4``), fused to ``w``;
- up to 1/2, concatenated with the stem reduced to ``w/4`` (``skipconv2``), fused to ``w/2``;
- a 1x1 ``head`` to the output channels (the flow-bin logits).
All upsampling is bilinear with ``align_corners=True``.
"""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def context_branch(in_channels: int, width: int, pool_factor: int = 1) -> nn.Sequential:
    """(optional max-pool by ``pool_factor``) then three conv-BN-ReLU layers."""
    layers: list[nn.Module] = [nn.MaxPool2d(kernel_size=pool_factor, stride=pool_factor)] if pool_factor > 1 else []
    layers += conv_bn_relu(in_channels, width) + conv_bn_relu(width, width) + conv_bn_relu(width, width)
    return nn.Sequential(*layers)


def upsample_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=True)


class SkipLayerFlowDecoder(nn.Module):
    """Decodes fused image+hint features at 1/8 into ``out_channels`` logits at 1/2 resolution.

    Args:
        in_channels: channels of the fused 1/8 features (image 256 + hints 16 = 272 when released).
        out_channels: output logits (2 * nbins = 198 when released).
        width: decoder width ``w`` (128 when released).
        stem_channels: channels of the stem skip feature (64 when released).
        stage1_channels: channels of the first ResNet stage skip feature (256 when released).
    """

    def __init__(
        self,
        in_channels: int = 272,
        out_channels: int = 198,
        width: int = 128,
        stem_channels: int = 64,
        stage1_channels: int = 256,
    ):
        super().__init__()
        self.decoder1 = context_branch(in_channels, width)
        self.decoder2 = context_branch(in_channels, width, pool_factor=2)
        self.decoder4 = context_branch(in_channels, width, pool_factor=4)
        self.decoder8 = context_branch(in_channels, width, pool_factor=8)
        self.fusion8 = nn.Sequential(*conv_bn_relu(4 * width, 2 * width))
        self.skipconv4 = nn.Sequential(*conv_bn_relu(stage1_channels, width))
        self.fusion4 = nn.Sequential(*conv_bn_relu(2 * width + width, width))
        self.skipconv2 = nn.Sequential(*conv_bn_relu(stem_channels, width // 4))
        self.fusion2 = nn.Sequential(*conv_bn_relu(width + width // 4, width // 2))
        self.head = nn.Conv2d(width // 2, out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor, stem: torch.Tensor, stage1: torch.Tensor) -> torch.Tensor:
        """features: (B, in, H/8, W/8); stem: (B or 1, stem, H/2, W/2); stage1: (B or 1, stage1, H/4, W/4)
        -> logits (B, out, H/2, W/2). Skip features of batch 1 are reduced once and shared by all B items."""
        batch = features.shape[0]
        context = self.decoder1(features)  # (B, w, H/8, W/8)
        pooled = [upsample_to(branch(features), context) for branch in (self.decoder2, self.decoder4, self.decoder8)]
        fused8 = self.fusion8(torch.cat([context, *pooled], dim=1))  # (B, 2w, H/8, W/8)
        skip4 = self.skipconv4(stage1).expand(batch, -1, -1, -1)
        fused4 = self.fusion4(torch.cat([upsample_to(fused8, skip4), skip4], dim=1))  # (B, w, H/4, W/4)
        skip2 = self.skipconv2(stem).expand(batch, -1, -1, -1)
        fused2 = self.fusion2(torch.cat([upsample_to(fused4, skip2), skip2], dim=1))  # (B, w/2, H/2, W/2)
        return self.head(fused2)
