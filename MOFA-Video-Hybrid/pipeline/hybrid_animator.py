"""Hybrid animation without any UI: load the models once, then image + drags + landmarks -> video.

:class:`HybridAnimator` is what both Hybrid demos use::

    animator = HybridAnimator.from_pretrained(ckpt_dir)            # or HybridAnimator.tiny()
    frame = animator.prepare_image(image)                          # the generation frame; click on this
    landmarks = animator.landmarks_from_audio(frame, "speech.mp3", renderer="aniportrait")
    # or: landmarks = animator.landmarks_from_video(frame, "driving.mp4")
    result = animator.animate(frame, landmarks, tracks, brush_mask=None, painted_landmark_mask=None,
                              mask_mode="auto", num_frames=None, seed=42,
                              trajectory_conditioning_scale=0.6, landmark_conditioning_scale=1.0)
    paths = animator.save(result, run_dir, audio_path="speech.mp3")   # the run folder (utils.run_output)

Landmarks are ``(1 + N, 68, 2)`` pixels of the frame; frame 0 is the reference face. Tracks, the motion brush
and the painted landmark mask are in the frame's pixels too. The video has ``num_frames`` frames (default: as
many as landmarks; a shorter landmark sequence is extended by holding its last pose); drags are resampled to
that length, and videos longer than 25 frames are denoised by periodic sampling.

Tiny mode builds random tiny models (64-px short side, a 64-px CMP grid, 2 steps) and replaces the landmark
generators by deterministic stand-ins (a schematic face driven by the audio's loudness or the video's motion)
whose motion is carried onto the portrait's own face, found by MediaPipe as in real mode (a faceless portrait
is refused): it runs on a CPU in seconds and its videos are noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aniportrait.face_check import anchor_on_face, face_landmarks, tiny_face_landmarks, tiny_frame
from models.cmp import CMP, HintInterpolation
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.animator_base import (
    AnimatorBase,
    ProgressFn,
    as_rgb_image,
    check_num_frames,
    check_scale,
    image_to_tensor,
    load_released_cmp,
    load_svd_parts,
    mask_to_rgba,
    points_as_lists,
    to_uint8_video,
)
from pipeline.pipeline_hybrid_flow_controlnet import HybridFlowControlNetPipeline
from utils.checkpoints import require_mode
from utils.errors import InputError
from utils.face_mask import LandmarkMask, resolve_landmark_mask
from utils.flow_viz import flow_video_frames
from utils.landmark_conditions import (
    build_landmark_conditions,
    check_landmarks,
    draw_landmark_dots,
    landmark_hint_dtype,
)
from utils.landmark_renderers import LandmarkGenerators, check_renderer
from utils.run_output import RunPaths, RunSettings, save_run
from utils.trajectories import BRUSH_RGBA, draw_hint_image, validate_tracks
from utils.video_io import read_video, resize_and_center_crop

FPS = 25
"""Frame rate of every output: the landmarks are timed for 25 fps, so the audio stays in sync."""
TINY_NOTICE = (
    "tiny mode: random tiny weights and the portrait's own face landmarks moved by a synthetic stand-in, "
    "the video is noise; the flows spread the hints with a Gaussian in place of CMP (fetch the checkpoints "
    "for real results)"
)
TRAJ_ADAPTER_DIR = "mofa/traj_controlnet"
LDMK_ADAPTER_DIR = "mofa/ldmk_controlnet"
FPS_ID, MOTION_BUCKET_ID, NOISE_AUG_STRENGTH = 6, 128, 0.02
"""SVD micro-conditioning, as the released Hybrid demos used it."""
LANDMARK_MASK_RGBA = (0, 200, 0, 160)


def fit_landmarks_length(landmarks: np.ndarray, num_frames: int) -> tuple[np.ndarray, str | None]:
    """Cuts a ``(N, 68, 2)`` sequence to ``num_frames`` frames, or extends it by holding its last pose.

    Returns:
        ``(landmarks, warning)``; the warning says how many frames were held (None when none).
    """
    if len(landmarks) >= num_frames:
        return landmarks[:num_frames], None
    held = num_frames - len(landmarks)
    extended = np.concatenate([landmarks, np.repeat(landmarks[-1:], held, axis=0)])
    return extended, f"the landmarks cover {len(landmarks)} frames; the last pose is held for the {held} more requested"


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, kw_only=True)
class HybridRunSettings(RunSettings):
    """A Hybrid run's settings: :class:`utils.run_output.RunSettings` (without ``conditioning_scale``), the two
    adapters' strengths, the drags and the landmark mask.

    Attributes:
        trajectory_conditioning_scale, landmark_conditioning_scale: the drag and the landmark adapter's strength.
        tracks: the drags, ``[[[x, y], ...], ...]`` pixels of the frame.
        motion_brush: whether a motion brush was used.
        landmark_mask_mode, landmark_mask_source, landmark_mask_coverage, mask_dilation: the landmark mask's rule,
            where the mask in force came from, the share of the frame it covers, the automatic mask's dilation.
    """

    trajectory_conditioning_scale: float
    landmark_conditioning_scale: float
    tracks: list
    motion_brush: bool
    landmark_mask_mode: str
    landmark_mask_source: str
    landmark_mask_coverage: float
    mask_dilation: int | None


@dataclass
class HybridResult:
    """Everything one :meth:`HybridAnimator.animate` call produced.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB video.
        first_frame: RGB PIL image ``H x W`` the video starts from.
        landmarks: ``(T, 68, 2)`` float64 pixels, the landmarks the video followed.
        trajectory_flow: ``(T-1, 2, H, W)`` float32 drag flow (pixels; zeros without trajectories).
        landmark_flow: ``(T-1, 2, H, W)`` float32 landmark (CMP) flow.
        pose_images: ``(T, H, W, 3)`` uint8 rendered pose images.
        landmark_mask: the mask in force and its source (:class:`utils.face_mask.LandmarkMask`).
        hint_image: RGBA PIL image: the frame at 50 % alpha, the drags, the motion brush and the landmark mask.
        warnings: human-readable warnings (tiny mode, held landmarks, drags CMP cannot express).
        settings: every setting used, written to ``settings.json`` by :meth:`HybridAnimator.save`.
    """

    frames: np.ndarray
    first_frame: Image.Image
    landmarks: np.ndarray
    trajectory_flow: torch.Tensor
    landmark_flow: torch.Tensor
    pose_images: np.ndarray
    landmark_mask: LandmarkMask
    hint_image: Image.Image
    warnings: list[str]
    settings: HybridRunSettings

    def outputs(self, comparison: bool = True) -> dict[str, object]:
        """The run folder's files by slot (:mod:`utils.run_output`); the videos drawn on the fly are generators."""
        dotted = (draw_landmark_dots(frame, points) for frame, points in zip(self.frames, self.landmarks))
        outputs = {
            "video": self.frames,
            "trajectory_flow": flow_video_frames(self.trajectory_flow),
            "landmark_flow": flow_video_frames(self.landmark_flow),
            "landmark_video": self.pose_images,
            "video_with_landmarks": dotted,
            "hint": self.hint_image,
            "landmark_mask": self.landmark_mask.mask,  # greyscale 0/255
            "landmarks": self.landmarks,
            "input": self.first_frame,
        }
        return {**outputs, "comparison": comparison_frames(self)} if comparison else outputs


def comparison_frames(result: HybridResult) -> np.ndarray:
    """The 7-panel strip of every frame: first frame | hint | drag flow | landmark flow | pose image | output with
    landmarks | output. Returns ``(T, H, 7W, 3)`` uint8."""
    num_frames = len(result.frames)
    first = np.asarray(result.first_frame)
    hint = np.asarray(
        Image.alpha_composite(Image.new("RGBA", result.hint_image.size, "white"), result.hint_image).convert("RGB")
    )
    trajectory, landmark = flow_video_frames(result.trajectory_flow), flow_video_frames(result.landmark_flow)
    panels = []
    for index in range(num_frames):
        dotted = draw_landmark_dots(result.frames[index], result.landmarks[index])
        row = [first, hint, trajectory[index], landmark[index], result.pose_images[index], dotted, result.frames[index]]
        panels.append(np.concatenate(row, axis=1))
    return np.stack(panels)


# ------------------------------------------------------------------------------------------------- animator


class HybridAnimator(AnimatorBase):
    """Loads the Hybrid models once and turns (image, landmarks, drags, masks) into videos.

    Args:
        ckpt_dir: the ``ckpts/`` folder (default ``$MOFA_CKPT_DIR`` or ``<repo>/ckpts``); checked with
            ``require_mode(ckpt_dir, "hybrid")`` before anything loads.
        device: execution device (default: CUDA, else MPS, else CPU).
        dtype: ``fp16`` / ``bf16`` / ``fp32`` / ``auto`` (None: fp16 on accelerators, fp32 on the CPU).
        memory: memory preset ``high`` / ``balanced`` / ``low`` (:mod:`utils.memory`).
        tiny: random tiny models and synthetic landmarks instead of weights (outputs are noise).
        show_progress: show the pipeline's progress bar.

    Raises:
        CheckpointError: a checkpoint is missing (the message names it and ``make fetch MODE=hybrid``).
    """

    def __init__(
        self,
        ckpt_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        memory: str = "balanced",
        tiny: bool = False,
        show_progress: bool = True,
    ):
        super().__init__(ckpt_dir, device, dtype, memory, tiny, show_progress=show_progress)
        self.landmark_generators = LandmarkGenerators(self.ckpt_dir, self.device)
        self._landmark_cache: dict[tuple, np.ndarray] = {}
        self._detail_frames: dict[bytes, Image.Image] = {}  # tiny frame's bytes -> the same crop at 512 px

    def _build_tiny_components(self) -> tuple[HybridFlowControlNetPipeline, HintInterpolation]:
        return build_tiny_components()

    def _load_released_components(self, dtype: torch.dtype) -> tuple[HybridFlowControlNetPipeline, CMP]:
        require_mode(self.ckpt_dir, "hybrid")
        return load_components(self.ckpt_dir, dtype)

    # -------------------------------------------------------------------------------------------- inputs

    def prepare_image(self, image: Image.Image | np.ndarray) -> Image.Image:
        """The generation frame: short side 512 (64 in tiny mode), centre-cropped to multiples of the adapters'
        size multiple (64; 4 in tiny mode). Clicks and masks on this frame are used as they are.

        In tiny mode the frame is :func:`aniportrait.face_check.tiny_frame`'s, and the animator keeps the same
        crop at 512 px for :meth:`face_landmarks`."""
        if self.is_tiny:
            frame, detail = tiny_frame(as_rgb_image(image), self.short_side, self.size_multiple)
            self._detail_frames = {frame.tobytes(): detail}
            return frame
        return resize_and_center_crop(as_rgb_image(image), self.short_side, self.size_multiple)

    def face_landmarks(self, frame: Image.Image | np.ndarray, image_name: str = "image") -> np.ndarray:
        """The portrait's own ``(68, 2)`` float64 landmarks in pixels of ``frame`` (MediaPipe, offline, every mode):
        the check that refuses a faceless portrait before any landmark model runs.

        A tiny frame from :meth:`prepare_image` is searched at 512 px; any other tiny frame is scaled up to that.

        Raises:
            InputError: ``no face detected in <image_name>``.
        """
        frame = as_rgb_image(frame)
        if not self.is_tiny:
            return face_landmarks(frame, image_name, self.ckpt_dir)
        return tiny_face_landmarks(frame, self._detail_frames.get(frame.tobytes()), image_name)

    def _check_frame(self, frame: Image.Image | np.ndarray) -> Image.Image:
        frame = as_rgb_image(frame)
        if frame.width % self.size_multiple or frame.height % self.size_multiple:
            raise InputError(
                f"the frame is {frame.width}x{frame.height}; both sides must be multiples of {self.size_multiple} "
                "(use prepare_image)"
            )
        return frame

    def _cached(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Landmark sequences are reused while the frame, driving file and renderer stay the same."""
        if key not in self._landmark_cache:
            self._landmark_cache = {key: compute()}
        return self._landmark_cache[key]

    @staticmethod
    def _key(frame: Image.Image, path: str | Path, renderer: str) -> tuple:
        path = Path(path)
        stat = path.stat()
        return hashlib.sha1(frame.tobytes()).hexdigest(), str(path.resolve()), stat.st_mtime_ns, stat.st_size, renderer

    def landmarks_from_audio(
        self,
        frame: Image.Image | np.ndarray,
        audio_path: str | Path,
        renderer: str = "aniportrait",
        image_name: str = "image",
    ) -> np.ndarray:
        """Landmarks of the face in ``frame`` talking along with an audio file (any common format).

        Args:
            frame: the generation frame (:meth:`prepare_image`).
            audio_path: speech audio.
            renderer: ``aniportrait`` (audio -> 3D face mesh) or ``sadtalker`` (audio -> 3DMM coefficients);
                ignored in tiny mode (the portrait's own landmarks open their mouth with the loudness).
            image_name: how a "no face" error names the portrait.

        Returns:
            ``(1 + N, 68, 2)`` float64 pixels of ``frame``, N = 25 frames per second of audio.

        Raises:
            InputError: an unknown renderer, unreadable or silent audio, no face, or missing checkpoints.
        """
        check_renderer(renderer)
        frame = self._check_frame(frame)
        from aniportrait.audio import load_audio

        if self.is_tiny:
            from aniportrait.synthetic import synthetic_landmarks

            waveform = load_audio(audio_path)
            reference = self.face_landmarks(frame, image_name)
            return anchor_on_face(synthetic_landmarks(frame.width, frame.height, waveform), reference)
        pixels = np.asarray(frame)

        def compute() -> np.ndarray:
            waveform = load_audio(audio_path)  # 16 kHz mono, from any common format
            return self.landmark_generators.from_audio(pixels, waveform, renderer, image_name)

        return self._cached(self._key(frame, audio_path, renderer), compute)

    def landmarks_from_video(
        self, frame: Image.Image | np.ndarray, video_path: str | Path, image_name: str = "image"
    ) -> np.ndarray:
        """Landmarks of the face in ``frame`` following a driving video's expression and head pose.

        In tiny mode the portrait's own landmarks follow the video's global motion instead (a schematic face's
        motion, :mod:`utils.synthetic_video_landmarks`, carried onto the detected face).

        Returns:
            ``(1 + N, 68, 2)`` float64 pixels of ``frame``, one frame per driving frame after the reference.

        Raises:
            InputError: an unreadable video, no face, or missing checkpoints.
        """
        frame = self._check_frame(frame)
        if self.is_tiny:
            from utils.synthetic_video_landmarks import synthetic_video_landmarks

            driving = read_video(video_path).frames
            reference = self.face_landmarks(frame, image_name)
            return anchor_on_face(synthetic_video_landmarks(frame.width, frame.height, driving), reference)

        def compute() -> np.ndarray:
            from sadtalker_video2pose.pipeline import video_to_landmarks

            return video_to_landmarks(
                np.asarray(frame), video_path, landmarker=self.landmark_generators.get("sadtalker-video")
            )

        return self._cached(self._key(frame, video_path, "sadtalker-video"), compute)

    # -------------------------------------------------------------------------------------------- flows

    def trajectory_flow(
        self,
        frame: Image.Image,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush_mask: np.ndarray | None,
        num_frames: int,
    ) -> tuple[torch.Tensor, list[str]]:
        """Drag flow ``(T-1, 2, H, W)`` float32 on the device (zeros without tracks: the scene is held still)."""
        if not tracks:
            return torch.zeros(num_frames - 1, 2, frame.height, frame.width, device=self.device), []
        return self.dense_flow(frame, tracks, brush_mask, num_frames)

    def landmark_flow(self, frame: Image.Image, landmarks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pose images (T, 3, H, W) in [0, 1] on the CPU, landmark flow (T-1, 2, H, W) float32 on the CMP's
        device)`` for ``(T, 68, 2)`` landmarks in pixels of ``frame`` (hints scaled as the Keypoint path does:
        :func:`utils.landmark_conditions.landmark_hint_dtype` of the weights' dtype)."""
        conditions = build_landmark_conditions(
            self.cmp,
            image_to_tensor(frame),
            landmarks,
            landmark_hint_dtype(self.memory.dtype),
            self.cmp_grid,
            self.memory.cmp_chunk_size,
        )
        return conditions.pose_images[0], conditions.controlnet_flow[0]

    # -------------------------------------------------------------------------------------------- animate

    def animate(
        self,
        frame: Image.Image | np.ndarray,
        landmarks: np.ndarray,
        tracks: Sequence[Sequence[Sequence[float]]] = (),
        brush_mask: np.ndarray | None = None,
        painted_landmark_mask: np.ndarray | None = None,
        mask_mode: str = "auto",
        mask_dilation: int | None = None,
        num_frames: int | None = None,
        steps: int | None = None,
        seed: int = 42,
        trajectory_conditioning_scale: float = 0.6,
        landmark_conditioning_scale: float = 1.0,
        min_guidance_scale: float = 1.0,
        max_guidance_scale: float = 3.0,
        window_size: int = 25,
        window_stride: int | None = None,
        decode_chunk_size: int | None = None,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        progress: ProgressFn | None = None,
    ) -> HybridResult:
        """Animate ``frame``: the face follows ``landmarks`` inside the landmark mask, the rest follows ``tracks``.

        Args:
            frame: the generation frame (:meth:`prepare_image`), PIL or ``(H, W, 3)`` uint8.
            landmarks: ``(1 + N, 68, 2)`` pixels of ``frame``, frame 0 the reference face.
            tracks: tracks of ``(x, y)`` clicks in ``frame`` pixels; none = keep everything outside the face still.
            brush_mask: ``(H, W)`` motion brush (non-zero inside), or None.
            painted_landmark_mask: ``(H, W)`` painted landmark mask (non-zero inside), or None.
            mask_mode: ``auto`` (painted if any, else the dilated hull of the reference landmarks), ``painted``,
                ``landmarks`` or ``none`` (:func:`utils.face_mask.resolve_landmark_mask`).
            mask_dilation: dilation of the automatic mask in pixels (None: 15 % of the face size).
            num_frames: T >= 2 (None: as many as landmarks); drags are resampled to T.
            steps: denoising steps (None: 25, 2 in tiny mode).
            seed: seeds the noise augmentation and the initial latents.
            trajectory_conditioning_scale, landmark_conditioning_scale: the adapters' strengths (0.6 and 1.0 as in
                the demos).
            min_guidance_scale, max_guidance_scale: per-frame guidance ramp (1 -> 3).
            window_size, window_stride: periodic-sampling windows (25, 12).
            decode_chunk_size: frames per VAE decode (None: the memory preset's).
            fast: run both adapters at every fourth step only, reusing their fused residuals in between
                (:data:`utils.adapter_schedule.FAST`).
            temporal_context: the image embedding each temporal cross-attention sees: ``"original"`` (diffusers 0.24,
                the released results) or ``"per_video"`` (today's diffusers); :mod:`models.temporal_context`.
            progress: ``progress(done, total)`` after every denoising step.

        Returns:
            :class:`HybridResult`.

        Raises:
            InputError: bad landmarks, tracks, masks, frame count, step count or scales.
        """
        frame = self._check_frame(frame)
        landmarks, messages = self._fit_landmarks(landmarks, num_frames)
        steps = self.resolve_steps(steps)
        check_scale("trajectory_conditioning_scale", trajectory_conditioning_scale)
        check_scale("landmark_conditioning_scale", landmark_conditioning_scale)
        tracks, brush_mask, painted_landmark_mask = self._check_drawings(
            frame, tracks, brush_mask, painted_landmark_mask
        )
        num_frames, (height, width) = len(landmarks), (frame.height, frame.width)
        landmark_mask = resolve_landmark_mask(
            mask_mode, painted_landmark_mask, landmarks[0], height, width, mask_dilation
        )
        trajectory_flow, flow_warnings = self.trajectory_flow(frame, tracks, brush_mask, num_frames)
        pose_images, landmark_flow = self.landmark_flow(frame, landmarks)
        settings = self.run_settings(
            HybridRunSettings,
            num_frames=num_frames, steps=int(steps), seed=int(seed), height=height, width=width,
            trajectory_conditioning_scale=float(trajectory_conditioning_scale),
            landmark_conditioning_scale=float(landmark_conditioning_scale),
            min_guidance_scale=min_guidance_scale, max_guidance_scale=max_guidance_scale,
            fps_id=FPS_ID, motion_bucket_id=MOTION_BUCKET_ID, noise_aug_strength=NOISE_AUG_STRENGTH,
            window_size=window_size, window_stride=window_stride, decode_chunk_size=decode_chunk_size,
            fast=bool(fast), temporal_context=temporal_context, warnings=messages + flow_warnings,
            tracks=points_as_lists(tracks), motion_brush=brush_mask is not None, landmark_mask_mode=mask_mode,
            landmark_mask_source=landmark_mask.source,
            landmark_mask_coverage=float((landmark_mask.mask > 0).mean()), mask_dilation=mask_dilation,
        )  # fmt: skip
        frames = self.generate(
            frame, trajectory_flow, landmark_flow, pose_images, landmark_mask.mask, settings, progress
        )
        return HybridResult(
            frames=frames,
            first_frame=frame,
            landmarks=landmarks,
            trajectory_flow=trajectory_flow.float().cpu(),
            landmark_flow=landmark_flow.float().cpu(),
            pose_images=to_uint8_video(pose_images.permute(0, 2, 3, 1).float().numpy()),
            landmark_mask=landmark_mask,
            hint_image=hint_image(frame, tracks, brush_mask, landmark_mask.mask),
            warnings=settings.warnings,
            settings=settings,
        )

    def _fit_landmarks(self, landmarks: np.ndarray, num_frames: int | None) -> tuple[np.ndarray, list[str]]:
        """Checked landmarks fitted to ``num_frames`` (None: all of them), and the warnings so far (tiny mode, a
        held last pose)."""
        landmarks = check_landmarks(landmarks)
        num_frames = len(landmarks) if num_frames is None else num_frames
        check_num_frames(num_frames)
        landmarks, held = fit_landmarks_length(landmarks, int(num_frames))
        messages = [TINY_NOTICE] if self.is_tiny else []
        return landmarks, messages + ([held] if held else [])

    @staticmethod
    def _check_drawings(
        frame: Image.Image,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush_mask: np.ndarray | None,
        painted_landmark_mask: np.ndarray | None,
    ) -> tuple[list, np.ndarray | None, np.ndarray | None]:
        """The non-empty tracks (checked against the frame) and both masks as ``(H, W)`` uint8 0/255 (or None)."""
        tracks = [list(track) for track in tracks if len(track) > 0]
        if tracks:
            validate_tracks(tracks, frame.width, frame.height)
        brush_mask = _binary_mask("brush_mask", brush_mask, frame.height, frame.width)
        painted_landmark_mask = _binary_mask("painted_landmark_mask", painted_landmark_mask, frame.height, frame.width)
        return tracks, brush_mask, painted_landmark_mask

    def generate(
        self,
        frame: Image.Image,
        trajectory_flow: torch.Tensor,
        landmark_flow: torch.Tensor,
        pose_images: torch.Tensor,
        landmark_mask: np.ndarray,
        settings: HybridRunSettings,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """The pipeline run under ``settings``: ``(T, H, W, 3)`` uint8 frames from the frame, the ``(T-1, 2, H, W)``
        drag and landmark flows, the ``(T, 3, H, W)`` pose images and the ``(H, W)`` 0/255 landmark mask."""
        output = self.pipe(
            image=frame,
            trajectory_flow=trajectory_flow[None],
            landmark_flow=landmark_flow[None],
            pose_images=pose_images[None],
            landmark_mask=landmark_mask,
            height=frame.height,
            width=frame.width,
            trajectory_conditioning_scale=settings.trajectory_conditioning_scale,
            landmark_conditioning_scale=settings.landmark_conditioning_scale,
            **self.pipeline_kwargs(settings, progress),
        )
        return to_uint8_video(output.frames[0])

    # ----------------------------------------------------------------------------------------------- save

    @staticmethod
    def save(
        result: HybridResult,
        run_dir: str | Path,
        audio_path: str | Path | None = None,
        comparison: bool = True,
        extra_settings: dict | None = None,
        name: str | None = None,
        overwrite: bool = False,
    ) -> RunPaths:
        """Write a run's files into ``run_dir`` (created; it must not hold a previous run unless ``overwrite``),
        :func:`utils.run_output.save_run`.

        With ``name`` the files start with it (:meth:`utils.run_output.RunPaths.in_folder`); the names below are the
        default ones.

        Files: ``output.mp4`` (with ``audio_path`` muxed in when given, padded with silence or cut to the
        video's length), ``trajectory_flow.mp4``, ``landmark_flow.mp4``, ``landmarks.mp4`` (pose images),
        ``output_with_landmarks.mp4``, ``hint.png``, ``landmark_mask.png``, ``landmarks.npy``, ``input.png``,
        optionally ``comparison.mp4`` (the 7-panel strip, with the audio too), and ``settings.json`` last. Every
        file is written under a temporary name and renamed; all videos are 25 fps.

        ``run_dir`` is checked before anything is written; when a write fails, the files written so far and the
        folders this call created are removed again.

        Raises:
            InputError: ``run_dir`` already holds a ``settings.json`` or one of the files, cannot be written to (a
                file on its path, no permission), or the audio cannot be muxed.
        """
        outputs = result.outputs(comparison)
        return save_run(run_dir, outputs, result.settings, FPS, name, audio_path, overwrite, extra_settings)


def _binary_mask(name: str, mask: np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    """An ``(H, W)`` uint8 0/255 copy of a non-zero-inside mask (None stays None); refuses another size."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise InputError(
            f"{name} is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]}, the frame {width}x{height}"
        )
    return np.where(mask > 0, 255, 0).astype(np.uint8)


def hint_image(
    frame: Image.Image,
    tracks: Sequence[Sequence[Sequence[float]]],
    brush_mask: np.ndarray | None,
    landmark_mask: np.ndarray,
) -> Image.Image:
    """The hint image: the frame at 50 % alpha with the drags, over the motion brush (blue) and the landmark
    mask (green). RGBA PIL image of the frame's size."""
    layers = mask_to_rgba(landmark_mask, LANDMARK_MASK_RGBA)
    if brush_mask is not None:
        layers[brush_mask > 0] = BRUSH_RGBA
    return draw_hint_image(frame, tracks, layers)


# ------------------------------------------------------------------------------------------------- builders


def build_tiny_components(seed: int = 0) -> tuple[HybridFlowControlNetPipeline, HintInterpolation]:
    """A pipeline of random tiny models (both adapters; seeded, outputs are noise) and
    :class:`models.cmp.HintInterpolation` in place of CMP, so that the flows follow drags and landmarks."""
    from utils.tiny import tiny_flow_controlnet, tiny_svd_parts
    from utils.tiny_keypoint import tiny_ldmk_controlnet

    parts = tiny_svd_parts(seed)
    pipe = HybridFlowControlNetPipeline(
        **parts,
        controlnet=tiny_flow_controlnet(seed, parts["unet"]),
        ldmk_controlnet=tiny_ldmk_controlnet(seed, parts["unet"]),
    )
    return pipe, HintInterpolation()


def load_components(ckpt_dir: Path, dtype: torch.dtype) -> tuple[HybridFlowControlNetPipeline, CMP]:
    """The released SVD-xt 1.1 parts (fp16 files), both Hybrid adapters and CMP, from ``ckpt_dir``."""
    from models.flow_controlnet import FlowControlNet
    from models.ldmk_controlnet import LandmarkFlowControlNet

    ckpt_dir = Path(ckpt_dir)
    pipe = HybridFlowControlNetPipeline(
        **load_svd_parts(ckpt_dir, dtype),
        controlnet=FlowControlNet.from_pretrained(ckpt_dir / TRAJ_ADAPTER_DIR, torch_dtype=dtype),
        ldmk_controlnet=LandmarkFlowControlNet.from_pretrained(ckpt_dir / LDMK_ADAPTER_DIR, torch_dtype=dtype),
    )
    return pipe, load_released_cmp(ckpt_dir, "hybrid")
