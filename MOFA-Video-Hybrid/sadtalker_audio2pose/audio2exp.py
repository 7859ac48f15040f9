# Copied from MOFA-Video-Keypoint/sadtalker_audio2pose/audio2exp.py
"""Audio -> 64 expression coefficients per frame, with random eye blinks.

Each frame's expression comes from its own mel window, the source face's expression and a blink ratio in
[0, 1] (0 = eyes as in the source, 1 = closed), through one linear layer on the mel embedding. Frames are
independent, so the whole sequence is one batch.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .mel_encoder import EMBED_DIM, mel_conv_stack

BLINK_SHAPE = (0.5, 0.9, 1.0, 0.9, 0.5)
"""Blink ratio over the five frames of one blink."""


class Audio2ExpNet(ModelMixin, ConfigMixin):
    """Expression regressor. Attribute names follow the released ``audio2exp`` weights."""

    @register_to_config
    def __init__(self, exp_dim: int = 64):
        super().__init__()
        self.audio_encoder = mel_conv_stack()
        self.mapping1 = nn.Linear(EMBED_DIM + exp_dim + 1, exp_dim)

    def forward(self, mels: torch.Tensor, ref_exp: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        """mels (N, 1, 80, 16), ref_exp (N, 64), blink (N, 1) in [0, 1] -> expression (N, 64)."""
        audio = self.audio_encoder(mels).flatten(1)  # (N, 512)
        return self.mapping1(torch.cat([audio, ref_exp, blink], dim=1))


def random_blinks(num_frames: int, rng: random.Random) -> np.ndarray:
    """Blink ratio per frame (num_frames,) in [0, 1]: a blink every 10–70 frames, none in clips of ≤ 20 frames.

    Gaps are drawn with ``rng.choice`` over ``range(min(10, T), min(T // 2, 70))``; when that range is empty
    (very short clips) there are no blinks.
    """
    ratio = np.zeros(num_frames, dtype=np.float32)
    gaps = range(min(10, num_frames), min(int(num_frames / 2), 70))
    if num_frames <= 20 or len(gaps) == 0:
        return ratio
    frame = 0
    while frame < num_frames:
        start = frame + rng.choice(gaps)
        if start + len(BLINK_SHAPE) > num_frames - 1:
            break
        ratio[start : start + len(BLINK_SHAPE)] = BLINK_SHAPE
        frame = start + len(BLINK_SHAPE)
    return ratio


@torch.no_grad()
def predict_expression(
    net: Audio2ExpNet, mels: torch.Tensor, ref_exp: torch.Tensor, blink: torch.Tensor
) -> torch.Tensor:
    """mels (T, 80, 16), source expression ref_exp (64,), blink (T,) -> expression (T, 64)."""
    count = len(mels)
    return net(mels[:, None], ref_exp[None].expand(count, -1), blink[:, None])
