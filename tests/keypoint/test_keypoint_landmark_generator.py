"""AniPortraitLandmarkGenerator loaded from a checkpoint folder laid out like ckpts/ (tiny random heads)."""

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

from aniportrait.audio_models import MESH_KEY_MAP, POSE_KEY_MAP, Audio2MeshModel, Audio2PoseModel
from aniportrait.face_mesh import detect_reference_face, locate_face_model
from aniportrait.generator import AniPortraitLandmarkGenerator
from utils.errors import CheckpointError

TINY_WAV2VEC = dict(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, conv_dim=(32, 32, 32),
    conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
)  # fmt: skip


def _save_released(model: torch.nn.Module, key_map: dict[str, str], path) -> None:
    inverse = {new: old for old, new in key_map.items()}
    state = {}
    for key, value in model.state_dict().items():
        prefix = next(p for p in inverse if key.startswith(p))
        state[inverse[prefix] + key[len(prefix) :]] = value
    torch.save(state, path)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    wav2vec = root / "aniportrait" / "wav2vec2-base-960h"
    Wav2Vec2Config(**TINY_WAV2VEC).save_pretrained(wav2vec)
    Wav2Vec2FeatureExtractor().save_pretrained(wav2vec)
    torch.manual_seed(0)
    _save_released(Audio2MeshModel(encoder_config=TINY_WAV2VEC), MESH_KEY_MAP, root / "aniportrait" / "audio2mesh.pt")
    _save_released(Audio2PoseModel(encoder_config=TINY_WAV2VEC), POSE_KEY_MAP, root / "aniportrait" / "audio2pose.pt")
    return root


def test_generator_loads_released_layout_and_starts_from_the_detected_face(ckpt_dir):
    pytest.importorskip("mediapipe")
    skimage_data = pytest.importorskip("skimage.data")
    try:
        locate_face_model(ckpt_dir)
    except CheckpointError:
        pytest.skip("no FaceLandmarker model available offline")
    generator = AniPortraitLandmarkGenerator.from_checkpoints(ckpt_dir)
    image = skimage_data.astronaut()
    waveform = np.sin(np.arange(4800) / 16000 * 2 * np.pi * 200).astype(np.float32)  # 0.3 s -> 8 frames
    landmarks = generator(image, waveform, "astronaut.png")
    assert landmarks.shape == (1 + 8, 68, 2) and landmarks.dtype == np.float64
    face = detect_reference_face(image, generator.face_model, "astronaut.png")
    np.testing.assert_allclose(landmarks[0, 8], face.landmarks[152, :2] * 512, rtol=1e-5)
    # random heads move the face, but it stays in the picture
    assert np.isfinite(landmarks).all() and np.abs(landmarks[1:] - landmarks[:1]).mean() < 256


def test_missing_head_checkpoint_names_the_file(ckpt_dir, tmp_path):
    (tmp_path / "aniportrait").mkdir()
    (tmp_path / "aniportrait" / "wav2vec2-base-960h").symlink_to(ckpt_dir / "aniportrait" / "wav2vec2-base-960h")
    with pytest.raises(CheckpointError, match=r"audio2mesh\.pt.*make fetch MODE=keypoint"):
        AniPortraitLandmarkGenerator.from_checkpoints(tmp_path)
