"""Audio-to-mesh and audio-to-pose heads with a tiny Wav2Vec2 encoder (their first layers against hand computation),
and their strict loading."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from call_recording import CallRecorder

from aniportrait.audio_models import (
    MESH_KEY_MAP,
    POSE_KEY_MAP,
    Audio2MeshModel,
    Audio2PoseModel,
    alibi_causal_mask,
    diagonal_memory_mask,
    load_head_checkpoint,
    remap_head_state_dict,
)
from aniportrait.face_mesh import ReferenceFace
from aniportrait.generator import landmarks_from_audio, predict_head_poses
from utils.errors import CheckpointError

TINY_WAV2VEC = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(32, 32, 32),
    conv_stride=(5, 4, 4),
    conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def _tiny_mesh_head() -> Audio2MeshModel:
    torch.manual_seed(0)
    return Audio2MeshModel(encoder_config=TINY_WAV2VEC, latent_dim=16).eval()


def _tiny_pose_head() -> Audio2PoseModel:
    torch.manual_seed(0)
    return Audio2PoseModel(encoder_config=TINY_WAV2VEC, latent_dim=16, num_layers=2, num_heads=2).eval()


def _released_names(state_dict, key_map):
    """Rename to the released checkpoints' key names, with old-style weight-norm parameters."""
    inverse = {new: old for old, new in key_map.items()}
    renamed = {}
    for key, value in state_dict.items():
        for new_prefix, old_prefix in inverse.items():
            if key.startswith(new_prefix):
                key = old_prefix + key[len(new_prefix) :]
                break
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        renamed[key] = value
    return renamed


@torch.no_grad()
def test_mesh_head_gives_one_offset_per_vertex_and_frame():
    offsets = _tiny_mesh_head()(torch.randn(1, 16000), 25)
    assert offsets.shape == (1, 25, 468, 3)


@torch.no_grad()
def test_pose_head_rolls_out_one_pose_per_frame():
    poses = _tiny_pose_head()(torch.randn(1, 8000), 13)
    assert poses.shape == (1, 13, 6)
    assert torch.isfinite(poses).all()


@torch.no_grad()
def test_pose_rollout_prefix_does_not_depend_on_its_length():
    # causal self-attention + diagonal cross-attention: the first poses of a longer roll-out over the
    # same encoder memory equal a shorter roll-out (the encoder memory is resampled, so feed features)
    head = _tiny_pose_head()
    memory = torch.randn(1, 10, 16)
    pose = head.pose_to_latent(torch.zeros(1, 1, 6))
    outputs = []
    for length in (6, 10):
        embeddings = pose
        for step in range(length):
            n = step + 1
            decoded = head.decoder(
                embeddings + head.positions[None, :n],
                memory[:, :length],
                tgt_mask=head.self_attention_mask[:, :n, :n],
                memory_mask=diagonal_memory_mask(n, length, memory.device),
            )
            poses = head.latent_to_pose(decoded)
            embeddings = torch.cat([embeddings, head.pose_to_latent(poses[:, -1:])], dim=1)
        outputs.append(poses)
    torch.testing.assert_close(outputs[1][:, :6], outputs[0])


def test_alibi_mask_is_causal_with_per_head_linear_bias():
    mask = alibi_causal_mask(8, 4)
    assert mask.shape == (8, 4, 4)
    assert torch.isinf(mask[0, 0, 1]) and torch.isinf(mask[7, 2, 3])
    assert mask[0, 3, 0].item() == pytest.approx(-0.5 * 3)
    assert mask[1, 2, 1].item() == pytest.approx(-0.25 * 1)
    assert mask[7, 3, 3].item() == 0.0


def test_diagonal_memory_mask_lets_each_step_see_its_own_audio_frame():
    mask = diagonal_memory_mask(3, 5, torch.device("cpu"))
    assert mask.shape == (3, 5)
    assert (~mask).nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]


def test_released_key_names_load_strictly(tmp_path):
    for head, key_map, name in [
        (_tiny_mesh_head(), MESH_KEY_MAP, "a2m.pt"),
        (_tiny_pose_head(), POSE_KEY_MAP, "a2p.pt"),
    ]:
        released = _released_names(head.state_dict(), key_map)
        assert any(key.endswith("pos_conv_embed.conv.weight_g") for key in released)
        if isinstance(head, Audio2PoseModel):
            released["PPE.pe"] = torch.zeros(1, 600, 16)  # stored buffer, recomputed here
            assert "transformer_decoder.layers.0.self_attn.in_proj_weight" in released
        torch.save(released, tmp_path / name)
        fresh = type(head)(**head.config)
        load_head_checkpoint(fresh, tmp_path / name, key_map)
        for key, value in head.state_dict().items():
            torch.testing.assert_close(fresh.state_dict()[key], value)


def test_missing_or_unexpected_keys_raise_checkpoint_error(tmp_path):
    head = _tiny_mesh_head()
    released = _released_names(head.state_dict(), MESH_KEY_MAP)
    del released["out_fn.bias"]
    released["extra.weight"] = torch.zeros(1)
    torch.save(released, tmp_path / "a2m.pt")
    expected = (
        r"a2m\.pt does not match Audio2MeshModel: missing keys \(1\): latent_to_offsets\.bias; "
        r"unexpected keys \(1\): extra\.weight$"
    )
    with pytest.raises(CheckpointError, match=expected):
        load_head_checkpoint(_tiny_mesh_head(), tmp_path / "a2m.pt", MESH_KEY_MAP)


def test_unreadable_checkpoint_raises_checkpoint_error(tmp_path):
    (tmp_path / "a2p.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="make fetch MODE=keypoint"):
        load_head_checkpoint(_tiny_pose_head(), tmp_path / "a2p.pt", POSE_KEY_MAP)


def test_remap_keeps_unknown_keys_for_strict_reporting():
    remapped = remap_head_state_dict({"in_fn.weight": 1, "mystery": 2, "PPE.pe": 3}, POSE_KEY_MAP)
    assert remapped == {"audio_to_latent.weight": 1, "mystery": 2}


@torch.no_grad()
def test_pose_chunks_are_rolled_out_independently_and_smoothed():
    head = _tiny_pose_head()
    poses = predict_head_poses(head, torch.randn(1, 88000), 138)  # 5.5 s -> one merged chunk of 138
    assert poses.shape == (138, 6)


@torch.no_grad()
def test_landmarks_from_audio_start_with_the_reference_face():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0.3, 0.7, size=(478, 3)).astype(np.float32)
    pose = np.eye(4)
    pose[2, 3] = -50.0
    face = ReferenceFace(landmarks=landmarks, mesh=rng.normal(size=(468, 3)).astype(np.float32), pose_matrix=pose)
    sequence = landmarks_from_audio(face, torch.randn(1, 16000), _tiny_mesh_head(), _tiny_pose_head(), 320, 256)
    assert sequence.shape == (1 + 25, 68, 2) and sequence.dtype == np.float64
    np.testing.assert_allclose(sequence[0, 8], landmarks[152, :2] * [320, 256], rtol=1e-6)
    assert np.isfinite(sequence).all()


# ------------------------------------------------------------------- values against hand-computed first layers


@torch.no_grad()
def test_mesh_head_resamples_the_conv_features_linearly_then_maps_hidden_states_through_two_linears():
    head = _tiny_mesh_head()
    waveform = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    encoder = head.audio_encoder
    with CallRecorder(encoder.feature_extractor) as conv, CallRecorder(encoder.feature_projection) as projection:
        with CallRecorder(encoder.encoder) as transformer:
            offsets = head(waveform, 7)
    features = conv.outputs[0][0].numpy()  # (C, T') conv features
    positions = np.arange(7) * (features.shape[1] - 1) / 6  # align_corners=True: ends on the first and last
    lower = np.minimum(np.floor(positions).astype(int), features.shape[1] - 2)
    fraction = positions - lower
    resampled = features[:, lower] * (1 - fraction) + features[:, lower + 1] * fraction  # (C, 7)
    np.testing.assert_allclose(projection.arguments[0]["hidden_states"][0].numpy(), resampled.T, rtol=0, atol=1e-5)
    hidden = transformer.outputs[0].last_hidden_state  # (1, 7, 32)
    latent = F.linear(hidden, head.audio_to_latent.weight, head.audio_to_latent.bias)
    expected = F.linear(latent, head.latent_to_offsets.weight, head.latent_to_offsets.bias).reshape(1, 7, 468, 3)
    torch.testing.assert_close(offsets, expected, rtol=0, atol=1e-6)


@torch.no_grad()
def test_pose_head_starts_from_a_zero_pose_with_position_and_speaker_identity_and_feeds_back_each_pose():
    head = _tiny_pose_head()
    waveform = torch.randn(1, 4000, generator=torch.Generator().manual_seed(2))
    with CallRecorder(head.audio_encoder.encoder) as transformer, CallRecorder(head.decoder) as decoder:
        poses = head(waveform, 3)
    assert len(decoder.calls) == 3  # one decoder pass per frame
    memory = F.linear(transformer.outputs[0].last_hidden_state, head.audio_to_latent.weight, head.audio_to_latent.bias)
    identity = head.identity_embedding.weight[42]  # the released fixed speaker
    position_0 = torch.tensor([0.0, 1.0] * 8)  # sin(0), cos(0) on the 16 channels
    first_input = head.pose_to_latent.bias + position_0 + identity  # the zero pose through pose_to_latent
    torch.testing.assert_close(decoder.arguments[0]["tgt"], first_input[None, None], rtol=0, atol=1e-6)
    torch.testing.assert_close(decoder.arguments[0]["memory"], memory, rtol=0, atol=1e-6)
    first_pose = F.linear(decoder.outputs[0][:, -1], head.latent_to_pose.weight, head.latent_to_pose.bias)
    fed_back = F.linear(first_pose, head.pose_to_latent.weight, head.pose_to_latent.bias)
    frequencies = torch.exp(torch.arange(0, 16, 2) * (-np.log(10000.0) / 16))
    position_1 = torch.stack([torch.sin(frequencies), torch.cos(frequencies)], dim=1).flatten()
    torch.testing.assert_close(
        decoder.arguments[1]["tgt"][0, 1], fed_back[0] + position_1 + identity, atol=1e-5, rtol=0
    )
    expected = F.linear(decoder.outputs[-1], head.latent_to_pose.weight, head.latent_to_pose.bias)
    torch.testing.assert_close(poses, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(poses[:, 0], first_pose, rtol=0, atol=1e-6)
