"""Trajectory animation without any UI: load the models once, then image + tracks (+ motion brush) -> video.

:class:`TrajectoryAnimator` is what the headless CLI (``inference.py``) and the Gradio demo share::

    animator = TrajectoryAnimator(ckpt_dir=None, device=None, dtype=None, memory="high", tiny=False)
    # or TrajectoryAnimator.from_pretrained(ckpt_dir, device=..., memory=...) / TrajectoryAnimator.tiny(device=...)
    result = animator.animate(image, tracks, brush_mask=None, num_frames=25, steps=None, seed=42,
                              conditioning_scale=0.6, height=None, width=None, memory=None, progress=None)
    paths = animator.save(result, "runs/clip", fps=20, overwrite=False)   # a run folder (utils.run_output)
    # paths.video runs/clip/output.mp4, paths.flow .../flow.mp4, paths.hint .../hint.png,
    # paths.input .../input.png, paths.settings .../settings.json (with name="clip": clip.mp4, clip_flow.mp4, ...)
    preview = animator.preview_flow(frame, tracks, brush_mask=None)   # AnimatorBase.preview_flow
    # preview.last_frame_rgb (H, W, 3) uint8 for a live preview, preview.flow, preview.warnings

Coordinates: ``tracks`` is a list of tracks, each a list of ``(x, y)`` clicks in pixels of ``image`` as given
(x = column, y = row; the first click is where the motion starts; a one-click track pins that point).
``brush_mask`` is an ``(H, W)`` array at the same size, non-zero inside the motion brush. The image is
resized so its short side is 512 and centre-cropped to multiples of 64 (an image already prepared that way
is unchanged), or fitted to ``height`` x ``width`` (resized to cover, centre-cropped); tracks and brush follow.

Tiny mode (``tiny=True``) builds random tiny models (tiny CMP on a 64-px grid, 64-px short side cropped to
multiples of 4, 2 steps by default) and needs no checkpoint: it exercises the whole chain in seconds on a
CPU, and its videos are noise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.cmp import CMP, HintInterpolation
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from pipeline.animator_base import (
    SHORT_SIDE,
    AnimatorBase,
    ProgressFn,
    as_rgb_image,
    check_num_frames,
    check_scale,
    load_released_cmp,
    load_svd_parts,
    mask_to_rgba,
    points_as_lists,
    to_uint8_video,
)
from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline
from utils.checkpoints import require_mode
from utils.errors import InputError
from utils.flow_viz import flow_video_frames
from utils.run_output import RunPaths, RunSettings, save_run
from utils.trajectories import BRUSH_RGBA, draw_hint_image, validate_tracks

TINY_NOTICE = (
    "tiny mode: random tiny weights, the video is noise; the flow spreads your hints with a Gaussian in place of "
    "CMP (fetch the checkpoints for real results)"
)
ADAPTER_DIR = "controlnet"
RELEASED_SIZE_MULTIPLE = 64
"""Frame sides of the released adapter are multiples of this (its coarsest feature stride)."""


# ------------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class FrameGeometry:
    """How an input image maps to the generation frame: scale by ``(scale_x, scale_y)``, then crop.

    A point ``(x, y)`` of the input lands at ``(x * scale_x - left, y * scale_y - top)``.
    """

    source_width: int
    source_height: int
    scale_x: float
    scale_y: float
    left: int
    top: int
    width: int
    height: int

    @property
    def resized_size(self) -> tuple[int, int]:
        """``(width, height)`` of the input after scaling, before the crop."""
        return round(self.source_width * self.scale_x), round(self.source_height * self.scale_y)

    def map_tracks(self, tracks: Sequence[Sequence[Sequence[float]]]) -> list[list[tuple[float, float]]]:
        """Input-pixel tracks -> generation-pixel tracks.

        Raises:
            InputError: a click lands in the part of the image cropped away.
        """
        mapped = []
        for track_index, track in enumerate(tracks):
            points = []
            for click_index, (x, y) in enumerate(track):
                new_x, new_y = x * self.scale_x - self.left, y * self.scale_y - self.top
                if not (0 <= new_x < self.width and 0 <= new_y < self.height):
                    raise InputError(
                        f"track {track_index}, click {click_index}: ({x:g}, {y:g}) lies in the border cropped away "
                        f"to make the {self.width}x{self.height} frame; move it inwards or pass --height/--width"
                    )
                points.append((new_x, new_y))
            mapped.append(points)
        return mapped

    def map_image(self, image: Image.Image, resample: Image.Resampling = Image.Resampling.BILINEAR) -> Image.Image:
        """Scale and crop an image (or a mask, with ``NEAREST``) of the input's size to the frame."""
        resized = image.resize(self.resized_size, resample)
        return resized.crop((self.left, self.top, self.left + self.width, self.top + self.height))


def check_frame_size(height: int | None, width: int | None, multiple: int = RELEASED_SIZE_MULTIPLE) -> None:
    """Check a requested frame size: both sides or neither, each a positive multiple of ``multiple``.

    The command line checks against :data:`RELEASED_SIZE_MULTIPLE` in every mode, so a size a tiny run accepts
    is one the released weights accept too.

    Raises:
        InputError: only one side given, or a side that is not a positive multiple of ``multiple``.
    """
    if (width is None) != (height is None):
        raise InputError("give both --height and --width, or neither")
    if width is not None and (width <= 0 or height <= 0 or width % multiple or height % multiple):
        raise InputError(f"height and width must be positive multiples of {multiple}, got {height} and {width}")


def fit_geometry(
    source_width: int,
    source_height: int,
    width: int | None = None,
    height: int | None = None,
    short_side: int = SHORT_SIDE,
    multiple: int = RELEASED_SIZE_MULTIPLE,
) -> FrameGeometry:
    """The frame for an input image: ``width`` x ``height`` if both given (resize to cover, centre crop), else
    short side ``short_side`` and each side cropped down to a multiple of ``multiple``.

    Raises:
        InputError: only one of ``width``/``height`` given, a non-multiple size, or an image too elongated.
    """
    check_frame_size(height, width, multiple)
    if width is None:
        ratio = short_side / min(source_width, source_height)
        resized_width, resized_height = round(source_width * ratio), round(source_height * ratio)
        width, height = resized_width - resized_width % multiple, resized_height - resized_height % multiple
        if width == 0 or height == 0:
            raise InputError(f"an image of {source_width}x{source_height} is too elongated to crop to {multiple}s")
    else:
        ratio = max(width / source_width, height / source_height)
        resized_width, resized_height = round(source_width * ratio), round(source_height * ratio)
        resized_width, resized_height = max(resized_width, width), max(resized_height, height)
    return FrameGeometry(
        source_width=source_width,
        source_height=source_height,
        scale_x=resized_width / source_width,
        scale_y=resized_height / source_height,
        left=round((resized_width - width) / 2),
        top=round((resized_height - height) / 2),
        width=width,
        height=height,
    )


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, kw_only=True)
class TrajectoryRunSettings(RunSettings):
    """A Traj run's settings: :class:`utils.run_output.RunSettings` and the drags.

    Attributes:
        tracks: the tracks as given, ``[[[x, y], ...], ...]`` pixels of the input image.
        tracks_in_frame: the same tracks in pixels of the generation frame.
        brush: whether a motion brush was used.
        geometry: ``scale_x``, ``scale_y``, ``left``, ``top`` of :class:`FrameGeometry`.
    """

    tracks: list
    tracks_in_frame: list
    brush: bool
    geometry: dict


@dataclass
class AnimationResult:
    """Everything one ``animate`` call produced.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB video.
        flow: ``(T-1, 2, H, W)`` float32 CPU tensor, the dense flow the video was conditioned on (pixels).
        flow_frames: ``(T, H, W, 3)`` uint8 colour-coded flow (a white frame 0, then each flow).
        flow_preview: ``(H, W, 3)`` uint8 colour-coded flow of the last frame (``flow_frames[-1]``).
        hint_image: RGBA PIL image ``H x W``: the frame at 50 % alpha, the tracks and the motion brush.
        first_frame: RGB PIL image ``H x W``, the input as generated from (after resize/crop).
        warnings: human-readable warnings (tiny mode, saturated drags).
        settings: every setting used; written to ``settings.json`` by ``save``.
    """

    frames: np.ndarray
    flow: torch.Tensor
    flow_frames: np.ndarray
    flow_preview: np.ndarray
    hint_image: Image.Image
    first_frame: Image.Image
    warnings: list[str]
    settings: TrajectoryRunSettings

    def outputs(self) -> dict[str, object]:
        """The run folder's files by slot (:mod:`utils.run_output`): video, flow, hint and input."""
        contents = (self.frames, self.flow_frames, self.hint_image, self.first_frame)
        return dict(zip(OUTPUT_SLOTS, contents))


# ------------------------------------------------------------------------------------------------- animator


class TrajectoryAnimator(AnimatorBase):
    """Loads the Traj models once and turns (image, tracks, brush) into videos.

    Args:
        ckpt_dir: the ``ckpts/`` folder (default ``$MOFA_CKPT_DIR`` or ``<repo>/ckpts``); checked with
            ``require_mode(ckpt_dir, "traj")`` before anything loads.
        device: execution device (default: CUDA, else MPS, else CPU).
        dtype: ``fp16`` / ``bf16`` / ``fp32`` / ``auto`` (None = auto: fp16 on accelerators, fp32 on CPU).
        memory: memory preset ``high`` / ``balanced`` / ``low`` (:mod:`utils.memory`).
        tiny: build random tiny models instead of loading weights (outputs are noise).
        tiny_layout: the tiny UNet's layout: ``"small"`` (two levels) or ``"svd"`` (SVD's four levels at 1/10
            width, frame sides multiples of 16; the CPU benchmark's stand-in for the real models).
        compile_models: compile the UNet and the adapter with ``torch.compile`` (GPUs; slow first run).
        show_progress: show the pipeline's progress bar over denoising steps.
        adapter: an adapter folder (``config.json`` + weights, e.g. a trained ``runs/x/controlnet``) used instead
            of ``<ckpt_dir>/controlnet``; in tiny mode it runs on the tiny SVD if its configuration fits.

    Raises:
        CheckpointError: a checkpoint file is missing (message names it and ``make fetch MODE=traj``).
        InputError: an unknown preset or dtype; an adapter that does not fit the (tiny) UNet.
    """

    def __init__(
        self,
        ckpt_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        memory: str = "high",
        tiny: bool = False,
        tiny_layout: str = "small",
        compile_models: bool = False,
        show_progress: bool = True,
        adapter: str | Path | None = None,
    ):
        self.tiny_layout = tiny_layout
        self.adapter = None if adapter is None else Path(adapter)
        super().__init__(ckpt_dir, device, dtype, memory, tiny, compile_models, show_progress)

    def _build_tiny_components(self) -> tuple[FlowControlNetPipeline, HintInterpolation]:
        pipe, cmp = build_tiny_components(layout=self.tiny_layout)
        if self.adapter is not None:
            pipe.controlnet = load_adapter(self.adapter, pipe.unet, torch.float32, "the tiny SVD (drop --tiny)")
        return pipe, cmp

    def _load_released_components(self, dtype: torch.dtype) -> tuple[FlowControlNetPipeline, CMP]:
        if self.adapter is None:
            require_mode(self.ckpt_dir, "traj")
            return load_components(self.ckpt_dir, dtype)
        require_mode(self.ckpt_dir, "training")  # SVD and CMP; the adapter comes from self.adapter
        parts = load_svd_parts(self.ckpt_dir, dtype)
        adapter = load_adapter(self.adapter, parts["unet"], dtype, "SVD-xt 1.1")
        return FlowControlNetPipeline(**parts, controlnet=adapter), load_released_cmp(self.ckpt_dir, "traj")

    # -------------------------------------------------------------------------------------------- inputs

    def prepare(
        self,
        image: Image.Image | np.ndarray,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush_mask: np.ndarray | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> tuple[Image.Image, list[list[tuple[float, float]]], np.ndarray | None, FrameGeometry]:
        """Validate and map the inputs to the generation frame.

        Returns:
            ``(frame, tracks, brush, geometry)``: the RGB frame ``H x W``, the tracks in its pixels, the brush as
            an ``(H, W)`` uint8 0/255 mask (or None) and the mapping used.

        Raises:
            InputError: no tracks, an empty track, a click outside the image or in the cropped border, a brush
                of the wrong size, or a bad size.
        """
        image = as_rgb_image(image)
        validate_tracks(tracks, image.width, image.height)
        geometry = fit_geometry(image.width, image.height, width, height, self.short_side, self.size_multiple)
        frame = geometry.map_image(image)
        mapped_brush = None
        if brush_mask is not None:
            brush_mask = np.asarray(brush_mask)
            if brush_mask.shape != (image.height, image.width):
                raise InputError(
                    f"the motion brush is {brush_mask.shape[1]}x{brush_mask.shape[0]}, "
                    f"the image {image.width}x{image.height}: they must match"
                )
            brush = Image.fromarray(np.where(brush_mask > 0, 255, 0).astype(np.uint8))
            mapped_brush = np.asarray(geometry.map_image(brush, Image.Resampling.NEAREST))
        return frame, geometry.map_tracks(tracks), mapped_brush, geometry

    def prepare_image(
        self, image: Image.Image | np.ndarray, height: int | None = None, width: int | None = None
    ) -> Image.Image:
        """The generation frame for an image (short side 512 cropped to multiples of 64, or in tiny mode 64
        cropped to multiples of 4; or fitted to ``height`` x ``width``). Clicks on this frame can be passed to
        :meth:`animate` as they are."""
        image = as_rgb_image(image)
        geometry = fit_geometry(image.width, image.height, width, height, self.short_side, self.size_multiple)
        return geometry.map_image(image)

    # -------------------------------------------------------------------------------------------- animate

    def animate(
        self,
        image: Image.Image | np.ndarray,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush_mask: np.ndarray | None = None,
        num_frames: int = 25,
        steps: int | None = None,
        seed: int = 42,
        conditioning_scale: float = 0.6,
        height: int | None = None,
        width: int | None = None,
        min_guidance_scale: float = 1.0,
        max_guidance_scale: float = 3.0,
        fps_id: int = 6,
        motion_bucket_id: int = 128,
        noise_aug_strength: float = 0.02,
        normalize_clip_input: bool = False,
        decode_chunk_size: int | None = None,
        window_size: int = 25,
        window_stride: int | None = None,
        fast: bool = False,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        memory: str | None = None,
        progress: ProgressFn | None = None,
    ) -> AnimationResult:
        """Animate ``image`` along ``tracks``.

        Args:
            image: PIL image or ``(H, W, 3)`` uint8 array, any size.
            tracks: tracks of ``(x, y)`` clicks in ``image`` pixels (see the module docstring).
            brush_mask: ``(H, W)`` motion brush at ``image``'s size, non-zero inside, or None. Tracks starting in
                the brush move only the brushed area.
            num_frames: T >= 2 (25 as trained; more uses overlapping 25-frame windows).
            steps: denoising steps (None: 25, or 2 in tiny mode).
            seed: seeds the noise augmentation and the initial latents.
            conditioning_scale: adapter strength (0.6 as the demo recommends; 1.0 tends to distort).
            height, width: generation size (multiples of 64; 4 in tiny mode); None = short side 512 (64 in tiny
                mode), cropped to those multiples.
            min_guidance_scale, max_guidance_scale: per-frame guidance ramp (1 -> 3); max <= 1 turns it off.
            fps_id, motion_bucket_id, noise_aug_strength: SVD micro-conditioning (6, 128, 0.02 as released).
            normalize_clip_input: CLIP mean/std normalisation (off, as released).
            decode_chunk_size: frames per VAE decode (None: the memory preset's).
            window_size, window_stride: periodic-sampling windows for long videos (25, 12).
            fast: run the adapter at every fourth step only, reusing its residuals in between
                (:data:`utils.adapter_schedule.FAST`; about 1.1x plain SVD's time instead of 1.36x).
            temporal_context: the image embedding each temporal cross-attention sees: ``"original"`` (diffusers 0.24,
                the released results) or ``"per_video"`` (today's diffusers); :mod:`models.temporal_context`.
            memory: switch to this memory preset first (None: keep the current one).
            progress: ``progress(done, total)`` after every denoising step.

        Returns:
            :class:`AnimationResult`.

        Raises:
            InputError: bad tracks, brush, size, frame count or step count.
        """
        check_num_frames(num_frames)
        if memory is not None:
            self.set_memory(memory)
        steps = self.resolve_steps(steps)
        check_scale("conditioning_scale", conditioning_scale)
        frame, frame_tracks, brush, geometry = self.prepare(image, tracks, brush_mask, height, width)
        flow, messages = self.dense_flow(frame, frame_tracks, brush, num_frames)
        if self.is_tiny:
            messages.insert(0, TINY_NOTICE)
        settings = self.run_settings(
            TrajectoryRunSettings,
            num_frames=num_frames, steps=steps, seed=seed, conditioning_scale=conditioning_scale,
            height=frame.height, width=frame.width,
            min_guidance_scale=min_guidance_scale, max_guidance_scale=max_guidance_scale,
            fps_id=fps_id, motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength,
            decode_chunk_size=decode_chunk_size, window_size=window_size, window_stride=window_stride,
            fast=fast, temporal_context=temporal_context, warnings=messages,
            tracks=points_as_lists(tracks), tracks_in_frame=points_as_lists(frame_tracks), brush=brush is not None,
            geometry={"scale_x": geometry.scale_x, "scale_y": geometry.scale_y, "left": geometry.left,
                      "top": geometry.top},
        )  # fmt: skip
        frames = self.generate(frame, flow, settings, normalize_clip_input, progress)
        return self._result(frames, flow.float().cpu(), frame, frame_tracks, brush, settings)

    def generate(
        self,
        frame: Image.Image,
        flow: torch.Tensor,
        settings: TrajectoryRunSettings,
        normalize_clip_input: bool = False,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """The pipeline run for ``frame`` and its ``(T-1, 2, H, W)`` dense flow under ``settings``: ``(T, H, W, 3)``
        uint8 frames."""
        output = self.pipe(
            image=frame,
            controlnet_flow=flow[None],
            height=frame.height,
            width=frame.width,
            conditioning_scale=settings.conditioning_scale,
            normalize_clip_input=normalize_clip_input,
            **self.pipeline_kwargs(settings, progress),
        )
        return to_uint8_video(output.frames[0])

    def _result(
        self,
        frames: np.ndarray,
        flow: torch.Tensor,
        frame: Image.Image,
        frame_tracks: list,
        brush: np.ndarray | None,
        settings: TrajectoryRunSettings,
    ) -> AnimationResult:
        brush_viz = None if brush is None else mask_to_rgba(brush, BRUSH_RGBA)
        flow_frames = flow_video_frames(flow)
        return AnimationResult(
            frames=frames,
            flow=flow,
            flow_frames=flow_frames,
            flow_preview=flow_frames[-1],
            hint_image=draw_hint_image(frame, frame_tracks, brush_viz),
            first_frame=frame,
            warnings=settings.warnings,
            settings=settings,
        )

    # ----------------------------------------------------------------------------------------------- save

    @staticmethod
    def save(
        result: AnimationResult,
        run_dir: str | Path,
        fps: float = 20,
        overwrite: bool = False,
        extra_settings: dict | None = None,
        name: str | None = None,
    ) -> RunPaths:
        """Write the run folder ``run_dir`` (:func:`utils.run_output.save_run`): the video, the colour-coded flow,
        the hint image, the input frame and ``settings.json`` (every setting, written last: it marks a finished
        run). With ``name`` the files start with it (``<name>.mp4``, ``<name>_flow.mp4``, ...).

        Args:
            result: from :meth:`animate`.
            run_dir: the run folder (created).
            fps: playback rate of the mp4s (20, as the released demo exported).
            overwrite: replace existing files.
            extra_settings: more entries for ``settings.json`` (e.g. the input paths).
            name: starts the file names (default: ``output.mp4``, ``flow.mp4``, ``hint.png``).

        Returns:
            :class:`utils.run_output.RunPaths`.

        Raises:
            InputError: the folder holds a finished run or one of the files (and not ``overwrite``), or cannot be
                written to.
        """
        return save_run(run_dir, result.outputs(), result.settings, fps, name, None, overwrite, extra_settings)


OUTPUT_SLOTS = ("video", "flow", "hint", "input")
"""The files of a Traj run folder (:data:`utils.run_output.FILE_NAMES`), besides ``settings.json``."""


def run_paths(run_dir: str | Path, name: str | None = None) -> RunPaths:
    """The files a Traj run writes in ``run_dir`` (:meth:`TrajectoryAnimator.save`)."""
    return RunPaths.in_folder(run_dir, OUTPUT_SLOTS, name)


# ------------------------------------------------------------------------------------------------- builders


def build_tiny_components(seed: int = 0, layout: str = "small") -> tuple[FlowControlNetPipeline, HintInterpolation]:
    """A pipeline of random tiny models (UNet ``layout`` as :func:`utils.tiny.tiny_unet`; seeded, outputs are
    noise) and :class:`models.cmp.HintInterpolation` in place of CMP, so that the flow follows the hints."""
    from utils.tiny import tiny_flow_controlnet, tiny_svd_parts

    parts = tiny_svd_parts(seed, layout)
    pipe = FlowControlNetPipeline(**parts, controlnet=tiny_flow_controlnet(seed, parts["unet"]))
    return pipe, HintInterpolation()


# adapter settings that must equal the UNet's for its residuals and embeddings to fit
ADAPTER_UNET_KEYS = ("block_out_channels", "layers_per_block", "cross_attention_dim", "addition_time_embed_dim")


def load_adapter(folder: Path, unet: torch.nn.Module, dtype: torch.dtype, unet_name: str) -> torch.nn.Module:
    """A trained adapter folder, checked against ``unet`` (named ``unet_name`` in errors) before its weights load.

    Raises:
        InputError: no ``config.json`` in ``folder``, or a setting of :data:`ADAPTER_UNET_KEYS` differs from the UNet's.
    """
    from models.flow_controlnet import FlowControlNet

    if not (folder / "config.json").is_file():
        raise InputError(f"--adapter: no adapter (config.json) in {folder}")
    config = FlowControlNet.load_config(folder)
    for key in ADAPTER_UNET_KEYS:
        adapter_value, unet_value = config.get(key), unet.config.get(key)
        if adapter_value is not None and unet_value is not None and json.dumps(adapter_value) != json.dumps(unet_value):
            raise InputError(
                f"--adapter {folder} does not fit {unet_name}: its {key} is {adapter_value}, the UNet's {unet_value}"
            )
    return FlowControlNet.from_pretrained(folder, torch_dtype=dtype)


def load_pipeline(ckpt_dir: Path, dtype: torch.dtype) -> FlowControlNetPipeline:
    """The released SVD-xt 1.1 parts (fp16 files, cast to ``dtype``) and the Traj adapter from ``ckpt_dir``."""
    from models.flow_controlnet import FlowControlNet

    return FlowControlNetPipeline(
        **load_svd_parts(ckpt_dir, dtype),
        controlnet=FlowControlNet.from_pretrained(Path(ckpt_dir) / ADAPTER_DIR, torch_dtype=dtype),
    )


def load_components(ckpt_dir: Path, dtype: torch.dtype) -> tuple[FlowControlNetPipeline, CMP]:
    """:func:`load_pipeline` and the released CMP (fp32) from ``ckpt_dir``."""
    return load_pipeline(ckpt_dir, dtype), load_released_cmp(ckpt_dir, "traj")
