"""Portrait + speech -> 68-point landmark sequence in image pixels (frame 0 = the reference face)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

from aniportrait.audio import SAMPLE_RATE, frame_count
from aniportrait.audio_models import (
    IDENTITY_SEED,
    MESH_KEY_MAP,
    POSE_KEY_MAP,
    Audio2MeshModel,
    Audio2PoseModel,
    load_head_checkpoint,
)
from aniportrait.face_mesh import ReferenceFace, detect_reference_face, locate_face_model
from aniportrait.projection import moving_average, project_mesh_sequence, to_68_points
from utils.checkpoints import require_files

FPS = 25
POSE_CHUNK_SECONDS = 5
POSE_ROTATION_SCALE = 0.5
POSE_SMOOTHING_WINDOW = 7
WAV2VEC_RELPATH = "aniportrait/wav2vec2-base-960h"
MESH_HEAD_RELPATH = "aniportrait/audio2mesh.pt"
POSE_HEAD_RELPATH = "aniportrait/audio2pose.pt"


@dataclass(frozen=True)
class PoseChunk:
    """One independent pose roll-out: samples [start, end) of the waveform, `num_frames` poses."""

    start: int
    end: int
    num_frames: int


def pose_chunks(num_samples: int, num_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> list[PoseChunk]:
    """Split the waveform into the pose head's chunks.

    The audio is cut into 5 s pieces (80 000 samples, 125 frames) and the last two pieces are merged.
    The last chunk gets the frames that remain (num_frames - 125 * (pieces - 1)), which equals the
    released behaviour whenever that ran, and also covers audio of <= 5 s (one chunk) and lengths
    where num_frames is a multiple of 125 (which the released code left 125 frames short).
    """
    chunk_samples = POSE_CHUNK_SECONDS * sample_rate
    chunk_frames = POSE_CHUNK_SECONDS * fps
    pieces = max(1, -(-num_samples // chunk_samples))
    if pieces == 1:
        return [PoseChunk(0, num_samples, num_frames)]
    chunks = [PoseChunk(i * chunk_samples, (i + 1) * chunk_samples, chunk_frames) for i in range(pieces - 2)]
    last_start = (pieces - 2) * chunk_samples
    chunks.append(PoseChunk(last_start, num_samples, num_frames - chunk_frames * (pieces - 2)))
    return chunks


@torch.no_grad()
def predict_head_poses(pose_model: Audio2PoseModel, input_values: torch.Tensor, num_frames: int) -> np.ndarray:
    """(1, L) normalised waveform -> (num_frames, 6) smoothed head poses (rotations halved)."""
    poses = []
    for chunk in pose_chunks(input_values.shape[1], num_frames):
        chunk_poses = pose_model(input_values[:, chunk.start : chunk.end], chunk.num_frames, IDENTITY_SEED)
        chunk_poses = chunk_poses[0].float().cpu().numpy().astype(np.float64)
        chunk_poses[:, :3] *= POSE_ROTATION_SCALE
        poses.append(chunk_poses)
    return moving_average(np.concatenate(poses, axis=0), POSE_SMOOTHING_WINDOW)


@torch.no_grad()
def landmarks_from_audio(
    face: ReferenceFace,
    input_values: torch.Tensor,
    mesh_model: Audio2MeshModel,
    pose_model: Audio2PoseModel,
    width: int,
    height: int,
) -> np.ndarray:
    """Landmark sequence for a detected face and a normalised waveform.

    input_values: (1, L) normalised 16 kHz waveform on the models' device. Returns float64
    (1 + N, 68, 2) pixel coordinates with N = ceil(L / 16000 * 25); frame 0 is the reference face.
    """
    num_frames = frame_count(input_values.shape[1])
    offsets = mesh_model(input_values, num_frames)[0].float().cpu().numpy()
    vertices = offsets.astype(np.float64) + face.mesh[None].astype(np.float64)
    head_poses = predict_head_poses(pose_model, input_values, num_frames)
    projected = project_mesh_sequence(vertices, face.pose_matrix, head_poses, width, height)
    reference = (face.landmarks[:468, :2] * np.array([width, height], dtype=np.float32))[None]
    return to_68_points(np.concatenate([reference.astype(np.float64), projected], axis=0))


class AniPortraitLandmarkGenerator:
    """Audio-driven landmarks: MediaPipe reference face + audio2mesh + audio2pose + projection."""

    def __init__(
        self,
        mesh_model: Audio2MeshModel,
        pose_model: Audio2PoseModel,
        feature_extractor: Wav2Vec2FeatureExtractor,
        face_model: str | Path,
    ):
        self.mesh_model = mesh_model.eval()
        self.pose_model = pose_model.eval()
        self.feature_extractor = feature_extractor
        self.face_model = Path(face_model)

    @classmethod
    def from_checkpoints(cls, ckpt_dir: str | Path, device: torch.device | str = "cpu") -> AniPortraitLandmarkGenerator:
        """Build from `<ckpt_dir>/aniportrait/{audio2mesh.pt, audio2pose.pt, wav2vec2-base-960h/}` (only the
        Wav2Vec2 config and feature-extractor settings are read from that folder: the released heads hold the
        encoder weights) and the FaceLandmarker bundle (:func:`aniportrait.face_mesh.locate_face_model`).

        Raises:
            CheckpointError: a file is missing or does not fit (strict loading).
        """
        ckpt_dir = Path(ckpt_dir)
        require_files(ckpt_dir, [MESH_HEAD_RELPATH, POSE_HEAD_RELPATH, f"{WAV2VEC_RELPATH}/config.json"], "keypoint")
        wav2vec_dir = ckpt_dir / WAV2VEC_RELPATH
        encoder_config = Wav2Vec2Config.from_pretrained(wav2vec_dir, local_files_only=True).to_dict()
        feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(wav2vec_dir, local_files_only=True)
        mesh_model = Audio2MeshModel(encoder_config=encoder_config)
        load_head_checkpoint(mesh_model, ckpt_dir / MESH_HEAD_RELPATH, MESH_KEY_MAP)
        pose_model = Audio2PoseModel(encoder_config=encoder_config)
        load_head_checkpoint(pose_model, ckpt_dir / POSE_HEAD_RELPATH, POSE_KEY_MAP)
        return cls(mesh_model.to(device), pose_model.to(device), feature_extractor, locate_face_model(ckpt_dir))

    def __call__(self, image: np.ndarray, waveform: np.ndarray, image_name: str = "image") -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; waveform: (L,) float32 16 kHz mono.

        Returns float64 (1 + ceil(L / 640), 68, 2) landmarks in image pixels.
        """
        face = detect_reference_face(image, self.face_model, image_name)
        device = next(self.mesh_model.parameters()).device
        features = self.feature_extractor(waveform, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        input_values = features.input_values.to(device)
        height, width = image.shape[:2]
        return landmarks_from_audio(face, input_values, self.mesh_model, self.pose_model, width, height)
