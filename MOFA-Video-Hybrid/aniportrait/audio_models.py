# Copied from MOFA-Video-Keypoint/aniportrait/audio_models.py
"""Audio -> face-mesh offsets and audio -> head pose: the two heads of the landmark generator.

Both run a Wav2Vec2 encoder whose convolutional features are linearly resampled in time to the
video frame count (25 fps) before the transformer, so one hidden state lines up with one frame.
The released `audio2mesh.pt` / `audio2pose.pt` hold the encoder weights too; `load_head_checkpoint`
maps their key names onto these modules and loads them strictly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

from utils.errors import CheckpointError
from utils.state_dict_check import check_state_dict

MESH_VERTEX_COUNT = 468
POSE_DIM = 6
IDENTITY_SEED = 42


def encode_audio(encoder: Wav2Vec2Model, input_values: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Wav2Vec2 last hidden states resampled to `num_frames`.

    input_values: (B, L) normalised 16 kHz waveform. The conv features (B, T', C) are linearly
    interpolated (align_corners=True) to (B, num_frames, C) before the feature projection and the
    transformer encoder. Returns (B, num_frames, hidden_size).
    """
    features = encoder.feature_extractor(input_values)  # (B, C, T')
    features = F.interpolate(features, size=num_frames, mode="linear", align_corners=True).transpose(1, 2)
    hidden_states, _ = encoder.feature_projection(features)
    return encoder.encoder(hidden_states).last_hidden_state


class Audio2MeshModel(ModelMixin, ConfigMixin):
    """Per-frame displacement of the 468 face-mesh vertices from speech.

    `forward(input_values (1, L), num_frames)` -> (1, num_frames, 468, 3) offsets (metric units) to add
    to the reference face mesh.
    """

    @register_to_config
    def __init__(
        self, encoder_config: dict | None = None, latent_dim: int = 512, vertex_count: int = MESH_VERTEX_COUNT
    ):
        super().__init__()
        self.audio_encoder = Wav2Vec2Model(Wav2Vec2Config(**(encoder_config or {})))
        self.audio_to_latent = nn.Linear(self.audio_encoder.config.hidden_size, latent_dim)
        self.latent_to_offsets = nn.Linear(latent_dim, vertex_count * 3)

    def forward(self, input_values: torch.Tensor, num_frames: int) -> torch.Tensor:
        hidden_states = encode_audio(self.audio_encoder, input_values, num_frames)
        offsets = self.latent_to_offsets(self.audio_to_latent(hidden_states))
        return offsets.reshape(offsets.shape[0], num_frames, -1, 3)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine positional table (sin on even, cos on odd channels)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequencies = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies)
    return table


def alibi_causal_mask(num_heads: int, length: int) -> torch.Tensor:
    """(num_heads, length, length) additive mask: causal (-inf above the diagonal) plus ALiBi biases.

    Head h has slope 2^(-8(h+1)/num_heads) (num_heads a power of two); entry (i, j <= i) is
    -slope * (i - j).
    """
    slopes = torch.tensor([2.0 ** (-8.0 * (head + 1) / num_heads) for head in range(num_heads)])
    steps = torch.arange(length, dtype=torch.float32)
    distance = (steps[:, None] - steps[None, :]).clamp(min=0)
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    causal = torch.zeros(length, length).masked_fill(future, float("-inf"))
    return causal[None] - slopes[:, None, None] * distance[None]


def diagonal_memory_mask(target_length: int, memory_length: int, device: torch.device) -> torch.Tensor:
    """(T, S) boolean mask letting step i attend only to audio frame i (True = blocked)."""
    return ~torch.eye(target_length, memory_length, dtype=torch.bool, device=device)


class Audio2PoseModel(ModelMixin, ConfigMixin):
    """Autoregressive head pose from speech.

    A transformer decoder (ALiBi causal self-attention; cross-attention restricted to the audio frame of
    the same index) rolls out `num_frames` poses from a zero pose, conditioned on a speaker-identity
    embedding. `forward(input_values (1, L), num_frames, identity)` -> (1, num_frames, 6):
    rx, ry, rz in degrees and tx, ty, tz.
    """

    @register_to_config
    def __init__(
        self,
        encoder_config: dict | None = None,
        latent_dim: int = 512,
        pose_dim: int = POSE_DIM,
        num_layers: int = 8,
        num_heads: int = 8,
        num_identities: int = 100,
        max_frames: int = 600,
    ):
        super().__init__()
        self.audio_encoder = Wav2Vec2Model(Wav2Vec2Config(**(encoder_config or {})))
        self.audio_to_latent = nn.Linear(self.audio_encoder.config.hidden_size, latent_dim)
        self.pose_to_latent = nn.Linear(pose_dim, latent_dim)
        self.latent_to_pose = nn.Linear(latent_dim, pose_dim)
        self.identity_embedding = nn.Embedding(num_identities, latent_dim)
        layer = nn.TransformerDecoderLayer(latent_dim, num_heads, dim_feedforward=2 * latent_dim, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers=num_layers)
        self.register_buffer("positions", sinusoidal_positions(max_frames, latent_dim), persistent=False)
        self.register_buffer("self_attention_mask", alibi_causal_mask(num_heads, max_frames), persistent=False)

    def forward(self, input_values: torch.Tensor, num_frames: int, identity: int = IDENTITY_SEED) -> torch.Tensor:
        if num_frames > self.config.max_frames:
            raise ValueError(f"num_frames={num_frames} exceeds max_frames={self.config.max_frames}")
        memory = self.audio_to_latent(encode_audio(self.audio_encoder, input_values, num_frames))
        identity_embedding = self.identity_embedding(torch.tensor([identity], device=memory.device))[:, None]
        zero_pose = memory.new_zeros(memory.shape[0], 1, self.config.pose_dim)
        pose_embeddings = self.pose_to_latent(zero_pose)
        for step in range(num_frames):
            length = step + 1
            decoder_input = pose_embeddings + self.positions[None, :length].to(memory.dtype) + identity_embedding
            decoded = self.decoder(
                decoder_input,
                memory,
                tgt_mask=self.self_attention_mask[:, :length, :length].to(memory.dtype),
                memory_mask=diagonal_memory_mask(length, num_frames, memory.device),
            )
            poses = self.latent_to_pose(decoded)
            pose_embeddings = torch.cat([pose_embeddings, self.pose_to_latent(poses[:, -1:])], dim=1)
        return poses


# Checkpoint key prefixes of the released heads -> attribute names here.
MESH_KEY_MAP = {"audio_encoder.": "audio_encoder.", "in_fn.": "audio_to_latent.", "out_fn.": "latent_to_offsets."}
POSE_KEY_MAP = {
    "audio_encoder.": "audio_encoder.",
    "in_fn.": "audio_to_latent.",
    "pose_map.": "pose_to_latent.",
    "pose_map_r.": "latent_to_pose.",
    "id_embed.": "identity_embedding.",
    "transformer_decoder.": "decoder.",
}
# Deterministic buffers stored in the released files; recomputed here.
IGNORED_CHECKPOINT_KEYS = {"PPE.pe"}
# Weight-norm parameter names written by older PyTorch versions.
_WEIGHT_NORM_RENAMES = {
    ".weight_g": ".parametrizations.weight.original0",
    ".weight_v": ".parametrizations.weight.original1",
}


def remap_head_state_dict(state_dict: dict[str, torch.Tensor], key_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """Rename released checkpoint keys to this module's names; unknown keys are kept as they are
    (so that a strict load reports them)."""
    remapped = {}
    for key, value in state_dict.items():
        if key in IGNORED_CHECKPOINT_KEYS:
            continue
        new_key = key
        for old_prefix, new_prefix in key_map.items():
            if key.startswith(old_prefix):
                new_key = new_prefix + key[len(old_prefix) :]
                break
        for old_suffix, new_suffix in _WEIGHT_NORM_RENAMES.items():
            if new_key.endswith(old_suffix):
                new_key = new_key[: -len(old_suffix)] + new_suffix
        remapped[new_key] = value
    return remapped


def load_head_checkpoint(model: nn.Module, path: str | Path, key_map: dict[str, str]) -> None:
    """Load a released head (`torch.load`-able dict of tensors) strictly into `model`.

    Raises CheckpointError naming the file and the first missing, unexpected and mis-shaped keys
    (see :func:`utils.state_dict_check.check_state_dict`).
    """
    path = Path(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"cannot read {path} ({type(error).__name__}); re-run `make fetch MODE=keypoint`"
        ) from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    remapped = remap_head_state_dict(state_dict, key_map)
    check_state_dict(model.state_dict(), remapped, path, type(model).__name__)
    model.load_state_dict(remapped, strict=True)
