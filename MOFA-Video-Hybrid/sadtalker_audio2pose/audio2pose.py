# Copied from MOFA-Video-Keypoint/sadtalker_audio2pose/audio2pose.py
"""Audio -> head pose (3 rotation angles + 3 translations) per frame: the decoder of a conditional VAE.

The decoder turns a 64-d latent (plus a learned per-style bias), the reference pose and 32 frames of mel
embeddings into 32 frames of pose *motion* relative to the reference, refined by a small U-Net over the
(time × 6) motion map. Long clips are decoded in independent 32-frame chunks, each with its own latent.

Attribute names follow the released ``audio2pose`` weights. Those also hold the VAE's encoder
(``netG.encoder.*``) and a motion discriminator (``netD_motion.*``), used only in training:
:data:`TRAINING_ONLY_PREFIXES` lists them so strict loading accepts and skips them.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .mel_encoder import EMBED_DIM, mel_conv_stack

TRAINING_ONLY_PREFIXES = ("netG.encoder.", "netD_motion.")
POSE_DIM = 6


class ResidualConv(nn.Module):
    """Pre-activation residual block: (BN, ReLU, conv) × 2 plus a strided conv+BN skip."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int]):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class TimeUpsample(nn.Module):
    """Transposed conv doubling the time axis (height) only."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class MotionUNet(nn.Module):
    """U-Net over a (B, 1, T, 6) motion map (T divisible by 8); output in (0, 1), same shape."""

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 256)):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.input_layer = nn.Sequential(
            nn.Conv2d(1, w0, 3, padding=1), nn.BatchNorm2d(w0), nn.ReLU(), nn.Conv2d(w0, w0, 3, padding=1)
        )
        self.input_skip = nn.Sequential(nn.Conv2d(1, w0, 3, padding=1))
        self.residual_conv_1 = ResidualConv(w0, w1, (2, 1))
        self.residual_conv_2 = ResidualConv(w1, w2, (2, 1))
        self.bridge = ResidualConv(w2, w3, (2, 1))
        self.upsample_1 = TimeUpsample(w3, w3)
        self.up_residual_conv1 = ResidualConv(w3 + w2, w2, 1)
        self.upsample_2 = TimeUpsample(w2, w2)
        self.up_residual_conv2 = ResidualConv(w2 + w1, w1, 1)
        self.upsample_3 = TimeUpsample(w1, w1)
        self.up_residual_conv3 = ResidualConv(w1 + w0, w0, 1)
        self.output_layer = nn.Sequential(nn.Conv2d(w0, 1, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)  # (B, 32, T, 6)
        x2 = self.residual_conv_1(x1)  # (B, 64, T/2, 6)
        x3 = self.residual_conv_2(x2)  # (B, 128, T/4, 6)
        x4 = self.bridge(x3)  # (B, 256, T/8, 6)
        x6 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))
        x8 = self.up_residual_conv2(torch.cat([self.upsample_2(x6), x2], dim=1))
        x10 = self.up_residual_conv3(torch.cat([self.upsample_3(x8), x1], dim=1))
        return self.output_layer(x10)


class PoseDecoder(nn.Module):
    """(reference pose, latent + style bias, 32 mel embeddings) -> 32 frames of pose motion."""

    def __init__(
        self, seq_len: int, latent_dim: int, num_styles: int, audio_proj_dim: int, hidden_sizes: tuple[int, ...]
    ):
        super().__init__()
        self.seq_len = seq_len
        self.MLP = nn.Sequential()
        sizes = [POSE_DIM + latent_dim + seq_len * audio_proj_dim, *hidden_sizes]
        for index, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.MLP.add_module(f"L{index}", nn.Linear(cin, cout))
            last = index == len(hidden_sizes) - 1
            self.MLP.add_module("sigmoid" if last else f"A{index}", nn.Sigmoid() if last else nn.ReLU())
        self.resunet = MotionUNet()
        self.pose_linear = nn.Linear(POSE_DIM, POSE_DIM)
        self.linear_audio = nn.Linear(EMBED_DIM, audio_proj_dim)
        self.classbias = nn.Parameter(torch.zeros(num_styles, latent_dim))

    def forward(
        self, ref_pose: torch.Tensor, latent: torch.Tensor, style: torch.Tensor, audio: torch.Tensor
    ) -> torch.Tensor:
        """ref_pose (B, 6), latent (B, 64), style (B,) long, audio (B, 32, 512) -> motion (B, 32, 6)."""
        batch = latent.shape[0]
        audio = self.linear_audio(audio).reshape(batch, -1)  # (B, 32·6)
        hidden = self.MLP(torch.cat([ref_pose, latent + self.classbias[style], audio], dim=-1))
        motion = self.resunet(hidden.reshape(batch, 1, self.seq_len, -1))  # (B, 1, 32, 6)
        return self.pose_linear(motion.squeeze(1))


class PoseCVAE(nn.Module):
    """Holds the decoder under the released name ``netG.decoder`` (the encoder is training-only)."""

    def __init__(self, **decoder_args):
        super().__init__()
        self.decoder = PoseDecoder(**decoder_args)


class MelSequenceEncoder(nn.Module):
    """(B, T, 1, 80, 16) mel windows -> (B, T, 512) embeddings, one per frame."""

    def __init__(self):
        super().__init__()
        self.audio_encoder = mel_conv_stack()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        batch, frames = mels.shape[:2]
        return self.audio_encoder(mels.flatten(0, 1)).reshape(batch, frames, -1)


class Audio2PoseNet(ModelMixin, ConfigMixin):
    """Audio-driven head-pose generator (inference half of the released CVAE)."""

    @register_to_config
    def __init__(
        self,
        seq_len: int = 32,
        latent_dim: int = 64,
        num_styles: int = 46,
        audio_proj_dim: int = 6,
        hidden_sizes: tuple[int, ...] = (128, 192),
    ):
        super().__init__()
        if hidden_sizes[-1] != seq_len * POSE_DIM:
            raise ValueError(f"the last hidden size must be seq_len * {POSE_DIM}")
        self.audio_encoder = MelSequenceEncoder()
        self.netG = PoseCVAE(
            seq_len=seq_len,
            latent_dim=latent_dim,
            num_styles=num_styles,
            audio_proj_dim=audio_proj_dim,
            hidden_sizes=tuple(hidden_sizes),
        )

    def forward(
        self, ref_pose: torch.Tensor, mels: torch.Tensor, latent: torch.Tensor, style: torch.Tensor
    ) -> torch.Tensor:
        """One chunk: ref_pose (B, 6), mels (B, seq_len, 1, 80, 16), latent (B, 64), style (B,) long
        -> motion (B, seq_len, 6) relative to ref_pose."""
        return self.netG.decoder(ref_pose, latent, style, self.audio_encoder(mels))


@torch.no_grad()
def predict_pose(
    net: Audio2PoseNet, mels: torch.Tensor, ref_pose: torch.Tensor, style: int, generator: torch.Generator
) -> torch.Tensor:
    """Absolute head pose per frame.

    Frame 0 is the reference pose itself; frames 1..T−1 are decoded in chunks of ``seq_len`` from
    mel windows 1..T−1 (a short last chunk reuses the window of the preceding frames and keeps its tail).
    Clips with fewer than ``seq_len`` driven frames repeat the first window in front to fill one chunk.

    Args:
        mels: (T, 80, 16) mel windows.
        ref_pose: (6,) source angle (radians) and translation.
        style: pose style index in [0, num_styles).
        generator: CPU generator for the latents (one (1, 64) draw per chunk).
    Returns:
        (T, 6) pose.
    """
    seq_len, latent_dim = net.config.seq_len, net.config.latent_dim
    if not 0 <= style < net.config.num_styles:
        raise ValueError(f"pose style must be in [0, {net.config.num_styles})")
    device = ref_pose.device
    driven = mels[1:, None]  # (T-1, 1, 80, 16)
    if 0 < len(driven) < seq_len:
        driven = torch.cat([driven[:1].expand(seq_len - len(driven), -1, -1, -1), driven])
    ref = ref_pose[None].float()
    style_index = torch.tensor([style], device=device)
    motions = [torch.zeros(1, POSE_DIM, device=device)]
    wanted = len(mels) - 1
    for start in range(0, wanted, seq_len):
        count = min(seq_len, wanted - start)
        end = len(driven) if count < seq_len else start + seq_len
        chunk = driven[end - seq_len : end][None]  # (1, seq_len, 1, 80, 16)
        latent = torch.randn(1, latent_dim, generator=generator).to(device)
        motions.append(net(ref, chunk, latent, style_index)[0, seq_len - count :])
    return ref_pose[None] + torch.cat(motions)
