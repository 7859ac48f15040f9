"""The convolutional mel-window encoder shared by the expression and pose networks (Wav2Lip's audio encoder).

One (1, 80, 16) mel window -> one 512-d embedding. Attribute names follow the released weights
(``<n>.conv_block.0`` convolution, ``<n>.conv_block.1`` BatchNorm).
"""

from __future__ import annotations

import torch
from torch import nn

EMBED_DIM = 512

# (in, out, kernel, stride, padding, residual) per block; the mel window shrinks 80×16 -> 1×1.
_BLOCKS = (
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, EMBED_DIM, 1, 1, 0, False),
)


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm (+ input, when ``residual``) + ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int | tuple[int, int], padding: int, residual: bool = False
    ):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        return torch.relu(out + x if self.residual else out)


def mel_conv_stack() -> nn.Sequential:
    """(N, 1, 80, 16) mel windows -> (N, 512, 1, 1) embeddings."""
    return nn.Sequential(*(ConvBlock(*block) for block in _BLOCKS))
