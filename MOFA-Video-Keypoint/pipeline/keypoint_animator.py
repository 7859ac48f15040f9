"""Keypoint animation without any UI: portrait + audio (or a landmark file) -> talking video of any length.

:class:`KeypointAnimator` loads the models once and is what ``inference_opendomain.py`` drives::

    animator = KeypointAnimator(ckpt_dir=None, adapter_dir=None, device=None, dtype=None, memory="high", tiny=False)
    frame = animator.prepare_image(image)                          # no-crop portrait rule, never in place
    landmarks = animator.landmarks_from_audio(frame, waveform, renderer="aniportrait")  # (1 + N, 68, 2) pixels
    result = animator.animate(frame, landmarks, max_frames=None, steps=None, seed=42)
    # result.frames (T, H, W, 3) uint8, result.flow (T-1, 2, H, W), result.pose_images (T, H, W, 3) uint8

Landmarks come from one of two renderers: ``aniportrait`` (MediaPipe face + audio2mesh + audio2pose) or
``sadtalker`` (a 3DMM fit of the portrait driven by Audio2Exp + Audio2Pose, :mod:`sadtalker_audio2pose`).
Tiny mode builds random tiny models but still finds the real face (MediaPipe, offline; a faceless portrait is
refused as in real mode): ``aniportrait`` is replaced by a deterministic schematic face driven by the audio's
loudness (:mod:`aniportrait.synthetic`) and ``sadtalker`` runs its real code on random weights and a synthetic
face model (:mod:`sadtalker_audio2pose.tiny`); either motion is carried onto the detected face
(:func:`aniportrait.face_check.anchor_on_face`). The whole chain runs offline; its videos are noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aniportrait.face_check import DETECTION_SHORT_SIDE, anchor_on_face, face_landmarks, tiny_frame
from aniportrait.synthetic import synthetic_landmarks
from models.cmp import CMP, build_tiny_cmp
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.animator_base import (
    SHORT_SIDE,
    AnimatorBase,
    image_to_tensor,
    load_released_cmp,
    load_svd_parts,
    tiny_svd_parts,
    to_uint8_video,
)
from pipeline.pipeline_landmark_flow_controlnet import LandmarkFlowControlNetPipeline
from utils.adapter_schedule import adapter_schedule
from utils.checkpoints import ADAPTER_FILES, SOURCES, require_files, require_mode
from utils.errors import InputError
from utils.flow_viz import flow_video_frames
from utils.landmark_conditions import (
    build_landmark_conditions,
    check_landmarks,
    draw_landmark_dots,
    landmark_hint_dtype,
)
from utils.video_io import resize_and_center_crop

SIZE_MULTIPLE = 64
WINDOW_SIZE = 25
TINY_SHORT_SIDE = 32  # long videos: keep tiny runs to about a minute on a CPU
ADAPTER_DIR = SOURCES["ldmk_adapter"].local_dir
LANDMARK_RENDERERS = ("aniportrait", "sadtalker")
TINY_NOTICE = "tiny mode: random tiny weights, the video is noise (fetch the checkpoints for real results)"
TINY_LANDMARK_NOTICES = {
    "aniportrait": "tiny mode: the portrait's own face landmarks (MediaPipe) moved by a synthetic schematic face "
    "driven by the audio's loudness, not by AniPortrait",
    "sadtalker": "tiny mode: the portrait's own face landmarks (MediaPipe) moved by the SadTalker 3DMM path on "
    "random weights and a synthetic face model (tiny_landmarker), not by the SadTalker checkpoint",
}


def prepare_portrait(image: Image.Image, short_side: int = SHORT_SIDE, multiple: int = SIZE_MULTIPLE) -> Image.Image:
    """The generation frame for a portrait, as the released Keypoint demo prepared it (without a face crop).

    An image whose sides are both multiples of ``multiple`` is kept as it is, at any size; any other is
    scaled (LANCZOS) so its short side is ``short_side`` and centre-cropped to multiples of ``multiple``.
    """
    image = image.convert("RGB")
    if image.width % multiple == 0 and image.height % multiple == 0:
        return image
    return resize_and_center_crop(image, short_side, multiple, Image.Resampling.LANCZOS)


@dataclass
class KeypointResult:
    """One generated video.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB; frame 0 is the reference.
        flow: ``(T-1, 2, H, W)`` float32 CPU tensor, the dense landmark flow (pixels).
        pose_images: ``(T, H, W, 3)`` uint8 rendered pose images the adapter saw.
        landmarks: ``(T, 68, 2)`` the landmarks used (pixels).
        first_frame: the reference as generated from.
    """

    frames: np.ndarray
    flow: torch.Tensor
    pose_images: np.ndarray
    landmarks: np.ndarray
    first_frame: Image.Image

    def panel_frames(self) -> np.ndarray:
        """The 5-panel strip ``(T, H, 5W, 3)`` uint8: reference | flow colours (frame 0 white) | pose image |
        generated frame with landmark dots | generated frame."""
        reference = np.asarray(self.first_frame)
        flow_colours = flow_video_frames(self.flow)
        panels = []
        for index, frame in enumerate(self.frames):
            dotted = draw_landmark_dots(frame, self.landmarks[index])
            row = [reference, flow_colours[index], self.pose_images[index], dotted, frame]
            panels.append(np.concatenate(row, axis=1))
        return np.stack(panels)


def require_landmark_files(ckpt_dir: Path, renderer: str) -> None:
    """Raise :class:`CheckpointError` naming the first missing file of a landmark renderer and its fetch command
    (``make fetch MODE=keypoint`` for ``aniportrait``, ``make fetch MODE=sadtalker`` for ``sadtalker``)."""
    check_renderer(renderer)
    if renderer == "sadtalker":
        require_mode(ckpt_dir, "sadtalker")
    else:
        require_files(ckpt_dir, SOURCES["aniportrait"].local_paths(), "keypoint")


def check_renderer(renderer: str) -> None:
    """Raise InputError unless ``renderer`` is one of :data:`LANDMARK_RENDERERS`."""
    if renderer not in LANDMARK_RENDERERS:
        raise InputError(f"landmark renderer must be one of {', '.join(LANDMARK_RENDERERS)}, got {renderer!r}")


class KeypointAnimator(AnimatorBase):
    """Loads the Keypoint models once and turns (portrait, landmarks) into videos.

    Args:
        ckpt_dir: the ``ckpts/`` folder (default ``$MOFA_CKPT_DIR`` or ``<repo>/ckpts``).
        adapter_dir: the landmark adapter folder (default ``<ckpt_dir>/mofa/ldmk_controlnet``).
        device: execution device (default: CUDA, else MPS, else CPU).
        dtype: ``fp16`` / ``bf16`` / ``fp32`` / ``auto`` (None = auto: fp16 on accelerators, fp32 on CPU).
        memory: memory preset ``high`` / ``balanced`` / ``low`` (:mod:`utils.memory`).
        tiny: random tiny models and synthetic landmarks instead of weights (outputs are noise).
        show_progress: show the pipeline's progress bar over denoising steps.
        landmark_renderers: renderers whose files are checked with the animator's, before anything loads
            (a renderer not listed is checked when it is first used).

    Raises:
        CheckpointError: a checkpoint file is missing (the message names it and ``make fetch MODE=keypoint``,
            or ``make fetch MODE=sadtalker`` for the ``sadtalker`` renderer).
    """

    tiny_short_side = TINY_SHORT_SIDE

    def __init__(
        self,
        ckpt_dir: str | Path | None = None,
        adapter_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        memory: str = "high",
        tiny: bool = False,
        show_progress: bool = True,
        landmark_renderers: tuple[str, ...] = (),
    ):
        self.adapter_dir = None if adapter_dir is None else Path(adapter_dir)
        self.landmark_renderers = landmark_renderers
        super().__init__(ckpt_dir, device, dtype, memory, tiny, show_progress=show_progress)
        self._landmark_generators: dict[str, Callable[..., np.ndarray]] = {}
        self._detail_frames: dict[bytes, Image.Image] = {}  # tiny frame's bytes -> the same crop at 512 px

    def _build_tiny_components(self) -> tuple[LandmarkFlowControlNetPipeline, CMP]:
        return build_tiny_components()

    def _load_released_components(self, dtype: torch.dtype) -> tuple[LandmarkFlowControlNetPipeline, CMP]:
        adapter_dir = self.adapter_dir if self.adapter_dir is not None else self.ckpt_dir / ADAPTER_DIR
        require_files(self.ckpt_dir, SOURCES["svd"].local_paths() + SOURCES["cmp"].local_paths(), "keypoint")
        require_files(adapter_dir, list(ADAPTER_FILES), "keypoint")
        for renderer in self.landmark_renderers:
            require_landmark_files(self.ckpt_dir, renderer)
        return load_components(self.ckpt_dir, adapter_dir, dtype)

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """The generation frame: :func:`prepare_portrait`, or in tiny mode always short side 32 cropped to
        multiples of 4 (:func:`aniportrait.face_check.tiny_frame`; the animator keeps the 512-px crop for
        :meth:`face_landmarks`)."""
        if self.is_tiny:
            frame, detail = tiny_frame(image, self.short_side, self.size_multiple)
            self._detail_frames = {frame.tobytes(): detail}
            return frame
        return prepare_portrait(image, self.short_side, self.size_multiple)

    def face_landmarks(self, frame: Image.Image, image_name: str = "image") -> np.ndarray:
        """The portrait's own ``(68, 2)`` landmarks in pixels of ``frame`` (MediaPipe, offline, in every mode).

        A tiny frame from :meth:`prepare_image` is searched at 512 px; any other tiny frame is scaled up to that.

        Raises:
            InputError: ``no face detected in <image_name>``.
        """
        if not self.is_tiny:
            return face_landmarks(frame, image_name, self.ckpt_dir)
        factor = DETECTION_SHORT_SIDE / min(frame.size)
        detail = self._detail_frames.get(frame.tobytes())
        if detail is None:
            size = (round(frame.width * factor), round(frame.height * factor))
            detail = frame.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        return face_landmarks(detail, image_name) * (np.array(frame.size) / np.array(detail.size))

    def landmarks_from_audio(
        self, frame: Image.Image, waveform: np.ndarray, image_name: str = "image", renderer: str = "aniportrait"
    ) -> np.ndarray:
        """Landmarks in pixels of ``frame`` for a 16 kHz mono ``waveform`` of L samples, frame 0 the portrait's own.

        The renderers count frames differently: ``aniportrait`` gives ``1 + ceil(L / 640)`` frames (a started
        25 fps frame counts), ``sadtalker`` ``1 + floor(L / 640)`` (whole frames only), as each was released.
        Its generator is loaded on first use and kept. Tiny mode moves the portrait's own landmarks
        (:meth:`face_landmarks`) with :func:`aniportrait.synthetic.synthetic_landmarks` for ``aniportrait`` and
        :func:`sadtalker_audio2pose.tiny.tiny_landmarker` for ``sadtalker`` (no weights).

        Returns:
            ``(1 + N, 68, 2)`` float64.

        Raises:
            InputError: an unknown renderer, or no face in the image (named ``image_name`` by ``aniportrait``).
            CheckpointError: a landmark-model file is missing.
        """
        check_renderer(renderer)
        if not self.is_tiny:
            generator = self._landmark_generator(renderer)
            if renderer == "sadtalker":
                return generator(np.asarray(frame), waveform)
            return generator(np.asarray(frame), waveform, image_name)
        reference = self.face_landmarks(frame, image_name)
        if renderer == "aniportrait":
            return anchor_on_face(synthetic_landmarks(frame.width, frame.height, waveform), reference)
        with warnings.catch_warnings():  # tiny frames are 32 pixels: the synthetic face is always small
            warnings.filterwarnings("ignore", message="the face is small")
            return anchor_on_face(self._landmark_generator(renderer)(np.asarray(frame), waveform), reference)

    def _landmark_generator(self, renderer: str) -> Callable[..., np.ndarray]:
        """The renderer's generator, loaded on first use (checking its files first) and cached."""
        if renderer not in self._landmark_generators:
            if renderer == "sadtalker" and self.is_tiny:
                from sadtalker_audio2pose.tiny import tiny_landmarker

                generator = tiny_landmarker(self.device)
            elif renderer == "sadtalker":
                from sadtalker_audio2pose import FaceCoefficientLandmarker

                require_landmark_files(self.ckpt_dir, renderer)
                generator = FaceCoefficientLandmarker.from_checkpoints(self.ckpt_dir, device=self.device)
            else:
                from aniportrait.generator import AniPortraitLandmarkGenerator

                generator = AniPortraitLandmarkGenerator.from_checkpoints(self.ckpt_dir, self.device)
            self._landmark_generators[renderer] = generator
        return self._landmark_generators[renderer]

    @torch.no_grad()
    def animate(
        self,
        frame: Image.Image,
        landmarks: np.ndarray,
        max_frames: int | None = None,
        steps: int | None = None,
        seed: int = 42,
        window_size: int = WINDOW_SIZE,
        control_scale: float = 1.0,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
    ) -> KeypointResult:
        """Generate ``min(max_frames, len(landmarks))`` frames following the landmarks (all of them by default).

        Args:
            frame: the prepared reference (``prepare_image``); its size is the video's.
            landmarks: ``(N, 68, 2)`` pixels of ``frame``, frame 0 the reference's own landmarks.
            max_frames: at most this many output frames, the reference included (>= 2; None: no limit).
            steps: denoising steps, a positive integer (default 25; 2 in tiny mode).
            seed: seeds the global torch RNG, which draws the noise (as the released demo did).
            window_size: frames per periodic-sampling window (25, the adapter's training length).
            control_scale: multiplies the adapter's residuals.
            fast: run the adapter at every 4th step only and reuse its residuals in between
                (:data:`utils.adapter_schedule.FAST`).
            temporal_context: the image embedding each temporal cross-attention sees: ``"original"`` (diffusers 0.24,
                the released results) or ``"per_video"`` (today's diffusers); :mod:`models.temporal_context`.

        Raises:
            InputError: bad landmarks, ``max_frames`` < 2 or ``steps`` not a positive integer.
        """
        if max_frames is not None and max_frames < 2:
            raise InputError(f"max_frame_len must be at least 2 (the reference and one more frame), got {max_frames}")
        landmarks = check_landmarks(landmarks)[:max_frames]
        steps = self.resolve_steps(steps)
        width, height = frame.size
        if width % self.size_multiple or height % self.size_multiple:
            raise InputError(
                f"the frame must be a multiple of {self.size_multiple} on both sides, got {width}x{height}"
            )
        dtype = self.memory.dtype
        conditions = build_landmark_conditions(
            self.cmp,
            image_to_tensor(frame),
            landmarks,
            landmark_hint_dtype(dtype),
            self.cmp_grid,
            self.memory.cmp_chunk_size,
        )
        flow = conditions.controlnet_flow.cpu()
        torch.manual_seed(seed)
        frames = self.pipe(
            frame,
            flow,
            conditions.pose_images.to(dtype),
            height=height,
            width=width,
            num_frames=len(landmarks),
            num_inference_steps=steps,
            fps=7,
            motion_bucket_id=128,
            noise_aug_strength=0.02,
            controlnet_cond_scale=control_scale,
            decode_chunk_size=self.memory.decode_chunk_size,
            window_size=window_size,
            adapter_schedule=adapter_schedule(fast),
            temporal_context=temporal_context,
            output_type="np",
        ).frames[0]
        return KeypointResult(
            frames=to_uint8_video(frames),
            flow=flow[0],
            pose_images=to_uint8_video(conditions.pose_images[0].permute(0, 2, 3, 1).numpy()),
            landmarks=landmarks,
            first_frame=frame,
        )


def build_tiny_components(seed: int = 0) -> tuple[LandmarkFlowControlNetPipeline, CMP]:
    """A landmark pipeline of random tiny models and a tiny CMP (seeded; outputs are noise)."""
    from utils.tiny_keypoint import tiny_ldmk_controlnet

    parts = tiny_svd_parts(seed)
    pipe = LandmarkFlowControlNetPipeline(**parts, controlnet=tiny_ldmk_controlnet(seed, parts["unet"]))
    return pipe, build_tiny_cmp(seed)


def load_components(
    ckpt_dir: Path, adapter_dir: Path, dtype: torch.dtype
) -> tuple[LandmarkFlowControlNetPipeline, CMP]:
    """The released SVD-xt 1.1 parts (fp16 files), the landmark adapter and CMP."""
    from models.ldmk_controlnet import LandmarkFlowControlNet

    pipe = LandmarkFlowControlNetPipeline(
        **load_svd_parts(ckpt_dir, dtype),
        controlnet=LandmarkFlowControlNet.from_pretrained(adapter_dir, torch_dtype=dtype),
    )
    return pipe, load_released_cmp(ckpt_dir, "keypoint")
