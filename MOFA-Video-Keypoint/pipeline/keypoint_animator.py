"""Keypoint animation without any UI: portrait + audio (or a landmark file) -> talking video of any length.

:class:`KeypointAnimator` loads the models once and is what ``inference_opendomain.py`` drives::

    animator = KeypointAnimator(ckpt_dir=None, adapter_dir=None, device=None, dtype=None, memory="high", tiny=False)
    frame = animator.prepare_image(image)                          # no-crop portrait rule, never in place
    landmarks = animator.landmarks_from_audio(frame, waveform, renderer="aniportrait")  # (1 + N, 68, 2) pixels
    result = animator.animate(frame, landmarks, max_frames=None, steps=None, seed=42, renderer="aniportrait")
    # result.frames (T, H, W, 3) uint8, result.flow (T-1, 2, H, W), result.pose_images (T, H, W, 3) uint8
    paths = animator.save(result, "results/run", audio_path="speech.wav", comparison=True)  # utils.run_output

Landmarks come from one of two renderers: ``aniportrait`` (MediaPipe face + audio2mesh + audio2pose) or
``sadtalker`` (a 3DMM fit of the portrait driven by Audio2Exp + Audio2Pose, :mod:`sadtalker_audio2pose`).
Tiny mode builds random tiny models but still finds the real face (MediaPipe, offline; a faceless portrait is
refused as in real mode): ``aniportrait`` is replaced by a deterministic schematic face driven by the audio's
loudness (:mod:`aniportrait.synthetic`) and ``sadtalker`` runs its real code on random weights and a synthetic
face model (:mod:`utils.tiny_keypoint`); either motion is carried onto the detected face
(:func:`aniportrait.face_check.anchor_on_face`). The whole chain runs offline; its videos are noise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aniportrait.face_check import anchor_on_face, face_landmarks, tiny_face_landmarks, tiny_frame
from aniportrait.synthetic import synthetic_landmarks
from models.cmp import CMP, HintInterpolation
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.animator_base import (
    SHORT_SIDE,
    AnimatorBase,
    check_scale,
    image_to_tensor,
    load_released_cmp,
    load_svd_parts,
    to_uint8_video,
)
from pipeline.pipeline_landmark_flow_controlnet import LandmarkFlowControlNetPipeline
from utils.checkpoints import ADAPTER_FILES, SOURCES, require_files
from utils.errors import InputError
from utils.flow_viz import flow_video_frames
from utils.landmark_conditions import (
    build_landmark_conditions,
    check_landmarks,
    draw_landmark_dots,
    landmark_hint_dtype,
    landmark_preview_frames,
)
from utils.landmark_renderers import LandmarkGenerators, check_renderer, require_landmark_files
from utils.run_output import RunPaths, RunSettings, save_run
from utils.video_io import resize_and_center_crop

SIZE_MULTIPLE = 64
WINDOW_SIZE = 25
FPS = 25
"""Frame rate of every output: the landmarks are timed for 25 fps, so the audio stays in sync."""
FPS_ID, MOTION_BUCKET_ID, NOISE_AUG_STRENGTH = 6, 128, 0.02
"""SVD micro-conditioning, as the released Keypoint demo used it."""
TINY_SHORT_SIDE = 32  # long videos: keep tiny runs to about a minute on a CPU
ADAPTER_DIR = SOURCES["ldmk_adapter"].local_dir
TINY_NOTICE = (
    "tiny mode: random tiny weights, the video is noise; the flow spreads the landmark hints with a Gaussian in "
    "place of CMP (fetch the checkpoints for real results)"
)
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


@dataclass(frozen=True, kw_only=True)
class KeypointRunSettings(RunSettings):
    """A Keypoint run's settings: :class:`utils.run_output.RunSettings` and where its landmarks came from.

    Attributes:
        renderer: the landmark renderer that made the landmarks (None: they were given, e.g. from a file).
        landmark_frames: how many landmark frames were given (the video has at most ``max_frames`` of them).
        max_frames: the cap on the video's length (None: none).
    """

    renderer: str | None
    landmark_frames: int
    max_frames: int | None


@dataclass
class KeypointResult:
    """One generated video.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB; frame 0 is the reference.
        flow: ``(T-1, 2, H, W)`` float32 CPU tensor, the dense landmark flow (pixels).
        pose_images: ``(T, H, W, 3)`` uint8 rendered pose images the adapter saw.
        landmarks: ``(T, 68, 2)`` the landmarks used (pixels).
        driving_landmarks: ``(N, 68, 2)`` float64, every landmark frame given (``landmarks`` are the first T).
        first_frame: the reference as generated from.
        warnings: human-readable warnings (tiny mode, a video cut to ``max_frames``).
        settings: every setting used, written to ``settings.json`` by :meth:`KeypointAnimator.save`.
    """

    frames: np.ndarray
    flow: torch.Tensor
    pose_images: np.ndarray
    landmarks: np.ndarray
    driving_landmarks: np.ndarray
    first_frame: Image.Image
    warnings: list[str]
    settings: KeypointRunSettings

    def panel_frames(self) -> np.ndarray:
        """The 5-panel strip ``(T, H, 5W, 3)`` uint8: reference | flow colours (frame 0 the colour wheel) | pose image |
        generated frame with landmark dots | generated frame."""
        reference = np.asarray(self.first_frame)
        flow_colours = flow_video_frames(self.flow)
        panels = []
        for index, frame in enumerate(self.frames):
            dotted = draw_landmark_dots(frame, self.landmarks[index])
            row = [reference, flow_colours[index], self.pose_images[index], dotted, frame]
            panels.append(np.concatenate(row, axis=1))
        return np.stack(panels)

    def outputs(self, comparison: bool = False) -> dict[str, object]:
        """The run folder's files by slot (:mod:`utils.run_output`): the video, the landmark flow, the driving
        landmarks (``reference | drawn landmarks`` video and the ``.npy``, every frame given, to be reused with
        ``--landmarks``), the reference and, with ``comparison``, the 5-panel strip."""
        outputs = {
            "video": self.frames,
            "flow": flow_video_frames(self.flow),
            "landmark_video": landmark_preview_frames(np.asarray(self.first_frame), self.driving_landmarks),
            "landmarks": self.driving_landmarks,
            "input": self.first_frame,
        }
        return {**outputs, "comparison": self.panel_frames()} if comparison else outputs


OUTPUT_SLOTS = ("video", "flow", "landmark_video", "landmarks", "input", "comparison")
"""Every file a Keypoint run folder may hold (:data:`utils.run_output.FILE_NAMES`), besides ``settings.json``."""


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
        self.landmark_generators = LandmarkGenerators(self.ckpt_dir, self.device, tiny=tiny)
        self._detail_frames: dict[bytes, Image.Image] = {}  # tiny frame's bytes -> the same crop at 512 px

    def _build_tiny_components(self) -> tuple[LandmarkFlowControlNetPipeline, HintInterpolation]:
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
        return tiny_face_landmarks(frame, self._detail_frames.get(frame.tobytes()), image_name)

    def landmarks_from_audio(
        self, frame: Image.Image, waveform: np.ndarray, image_name: str = "image", renderer: str = "aniportrait"
    ) -> np.ndarray:
        """Landmarks in pixels of ``frame`` for a 16 kHz mono ``waveform`` of L samples, frame 0 the portrait's own.

        The renderers count frames differently: ``aniportrait`` gives ``1 + ceil(L / 640)`` frames (a started
        25 fps frame counts), ``sadtalker`` ``1 + floor(L / 640)`` (whole frames only), as each was released.
        Its generator is loaded on first use and kept. Tiny mode moves the portrait's own landmarks
        (:meth:`face_landmarks`) with :func:`aniportrait.synthetic.synthetic_landmarks` for ``aniportrait`` and
        :func:`utils.tiny_keypoint.tiny_landmarker` for ``sadtalker`` (no weights).

        Returns:
            ``(1 + N, 68, 2)`` float64.

        Raises:
            InputError: an unknown renderer, or no face in the image (named ``image_name`` by ``aniportrait``).
            CheckpointError: a landmark-model file is missing.
        """
        check_renderer(renderer)
        if not self.is_tiny:
            return self.landmark_generators.from_audio(np.asarray(frame), waveform, renderer, image_name)
        reference = self.face_landmarks(frame, image_name)
        if renderer == "aniportrait":
            return anchor_on_face(synthetic_landmarks(frame.width, frame.height, waveform), reference)
        with warnings.catch_warnings():  # tiny frames are 32 pixels: the synthetic face is always small
            warnings.filterwarnings("ignore", message="the face is small")
            landmarks = self.landmark_generators.from_audio(np.asarray(frame), waveform, renderer, image_name)
        return anchor_on_face(landmarks, reference)

    @torch.no_grad()
    def animate(
        self,
        frame: Image.Image,
        landmarks: np.ndarray,
        max_frames: int | None = None,
        steps: int | None = None,
        seed: int = 42,
        window_size: int = WINDOW_SIZE,
        conditioning_scale: float = 1.0,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        renderer: str | None = None,
    ) -> KeypointResult:
        """Generate ``min(max_frames, len(landmarks))`` frames following the landmarks (all of them by default).

        Args:
            frame: the prepared reference (``prepare_image``); its size is the video's.
            landmarks: ``(N, 68, 2)`` pixels of ``frame``, frame 0 the reference's own landmarks.
            max_frames: at most this many output frames, the reference included (>= 2; None: no limit).
            steps: denoising steps, a positive integer (default 25; 2 in tiny mode).
            seed: seeds the global torch RNG, which draws the noise (as the released demo did).
            window_size: frames per periodic-sampling window (25, the adapter's training length).
            conditioning_scale: multiplies the adapter's residuals.
            fast: run the adapter at every 4th step only and reuse its residuals in between
                (:data:`utils.adapter_schedule.FAST`).
            temporal_context: the image embedding each temporal cross-attention sees: ``"original"`` (diffusers 0.24,
                the released results) or ``"per_video"`` (today's diffusers); :mod:`models.temporal_context`.
            renderer: the renderer that made ``landmarks`` (:meth:`landmarks_from_audio`), recorded in the settings;
                None when they were given.

        Raises:
            InputError: bad landmarks, ``max_frames`` < 2, ``steps`` not a positive integer or a frame whose sides are
                not multiples of the adapter's.
        """
        if max_frames is not None and max_frames < 2:
            raise InputError(f"max_frame_len must be at least 2 (the reference and one more frame), got {max_frames}")
        driving_landmarks = check_landmarks(landmarks)
        landmarks = driving_landmarks[:max_frames]
        steps = self.resolve_steps(steps)
        check_scale("conditioning_scale", conditioning_scale)
        width, height = frame.size
        if width % self.size_multiple or height % self.size_multiple:
            raise InputError(
                f"the frame must be a multiple of {self.size_multiple} on both sides, got {width}x{height}"
            )
        settings = self.run_settings(
            KeypointRunSettings,
            num_frames=len(landmarks), steps=steps, seed=seed, height=height, width=width,
            conditioning_scale=conditioning_scale, fps_id=FPS_ID, motion_bucket_id=MOTION_BUCKET_ID,
            noise_aug_strength=NOISE_AUG_STRENGTH, min_guidance_scale=1.0, max_guidance_scale=3.0,
            window_size=window_size, fast=fast, temporal_context=temporal_context,
            warnings=self._warnings(renderer, len(driving_landmarks), len(landmarks)),
            renderer=renderer, landmark_frames=len(driving_landmarks), max_frames=max_frames,
        )  # fmt: skip
        conditions = build_landmark_conditions(
            self.cmp,
            image_to_tensor(frame),
            landmarks,
            landmark_hint_dtype(self.memory.dtype),
            self.cmp_grid,
            self.memory.cmp_chunk_size,
        )
        flow = conditions.controlnet_flow.cpu()
        frames = self.generate(frame, flow, conditions.pose_images, settings)
        return KeypointResult(
            frames=frames,
            flow=flow[0],
            pose_images=to_uint8_video(conditions.pose_images[0].permute(0, 2, 3, 1).numpy()),
            landmarks=landmarks,
            driving_landmarks=driving_landmarks,
            first_frame=frame,
            warnings=settings.warnings,
            settings=settings,
        )

    def _warnings(self, renderer: str | None, landmark_frames: int, num_frames: int) -> list[str]:
        """Tiny mode's notices (the models' and the renderer's stand-in) and how much a ``max_frames`` cap cut."""
        warnings = [TINY_NOTICE] if self.is_tiny else []
        if self.is_tiny and renderer is not None:
            warnings.append(TINY_LANDMARK_NOTICES[renderer])
        if num_frames < landmark_frames:
            warnings.append(
                f"the video is cut to {num_frames} of {landmark_frames} frames "
                f"({(num_frames - 1) / FPS:.2f} s of {(landmark_frames - 1) / FPS:.2f} s)"
            )
        return warnings

    def generate(
        self, frame: Image.Image, flow: torch.Tensor, pose_images: torch.Tensor, settings: KeypointRunSettings
    ) -> np.ndarray:
        """The pipeline run under ``settings``: ``(T, H, W, 3)`` uint8 frames from the frame, the ``(1, T-1, 2, H, W)``
        landmark flow and the ``(1, T, 3, H, W)`` pose images. The noise comes from the global torch RNG seeded with
        ``settings.seed``, as the released demo drew it."""
        torch.manual_seed(settings.seed)
        frames = self.pipe(
            frame,
            flow,
            pose_images.to(self.memory.dtype),
            height=frame.height,
            width=frame.width,
            conditioning_scale=settings.conditioning_scale,
            **{**self.pipeline_kwargs(settings), "generator": None},
        ).frames[0]
        return to_uint8_video(frames)

    @staticmethod
    def save(
        result: KeypointResult,
        run_dir: str | Path,
        audio_path: str | Path | None = None,
        comparison: bool = False,
        extra_settings: dict | None = None,
        name: str | None = None,
        overwrite: bool = False,
    ) -> RunPaths:
        """Write the run folder ``run_dir`` (:func:`utils.run_output.save_run`): ``output.mp4`` (with ``audio_path``
        muxed in, padded with silence or cut to the video), ``flow.mp4``, ``landmarks.mp4`` (reference | drawn
        landmarks, every frame given), ``landmarks.npy`` (the same frames, float64 pixels of ``input.png``),
        ``input.png``, with ``comparison`` the 5-panel ``comparison.mp4`` (with the audio too), and ``settings.json``
        last; all videos 25 fps. With ``name`` the files start with it.

        Raises:
            InputError: the folder holds a finished run or one of the files (and not ``overwrite``), cannot be
                written to, or the audio cannot be muxed.
        """
        outputs = result.outputs(comparison)
        return save_run(run_dir, outputs, result.settings, FPS, name, audio_path, overwrite, extra_settings)


def build_tiny_components(seed: int = 0) -> tuple[LandmarkFlowControlNetPipeline, HintInterpolation]:
    """A landmark pipeline of random tiny models (seeded; outputs are noise) and
    :class:`models.cmp.HintInterpolation` in place of CMP, so that the flow follows the landmarks."""
    from utils.tiny import tiny_svd_parts
    from utils.tiny_keypoint import tiny_ldmk_controlnet

    parts = tiny_svd_parts(seed)
    pipe = LandmarkFlowControlNetPipeline(**parts, controlnet=tiny_ldmk_controlnet(seed, parts["unet"]))
    return pipe, HintInterpolation()


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
