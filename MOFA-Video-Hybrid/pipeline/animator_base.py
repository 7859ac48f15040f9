# Copied from MOFA-Video-Traj/pipeline/animator_base.py
"""What the Traj, Keypoint and Hybrid animators share: loading the models once, real or tiny, under a memory
preset, and the small conversions and checks around a pipeline call.

An animator subclasses :class:`AnimatorBase` and says how its models are built::

    class MyAnimator(AnimatorBase):
        def _build_tiny_components(self):                  # random tiny pipeline, HintInterpolation, no files
            ...
        def _load_released_components(self, dtype):        # check the files, then from_pretrained
            ...

The SVD parts every pipeline holds come from :func:`load_svd_parts` (released weights) or
:func:`utils.tiny.tiny_svd_parts` (random tiny models); each animator adds its own adapters.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import torch
from PIL import Image

from models.cmp import CMP, CMP_GRID_SIZE, HintInterpolation
from utils.adapter_schedule import adapter_schedule
from utils.checkpoints import CMP_CHECKPOINT, SVD_DIR, default_ckpt_dir
from utils.errors import InputError
from utils.flow_viz import flow_to_rgb
from utils.memory import apply_memory_preset, dtype_name, memory_plan
from utils.run_output import RunSettings
from utils.trajectories import trajectories_to_flow, validate_tracks

SHORT_SIDE = 512
"""Short side of the generation frame with the released weights (as the released demos)."""
DEFAULT_STEPS = 25
TINY_SHORT_SIDE = 64
TINY_STEPS = 2
TINY_CMP_GRID = 64

ProgressFn = Callable[[float, int], None]
"""``progress(done_steps, total_steps)``, called after every denoising step and, in videos longer than one window,
after every window of a step (``done_steps`` then has a fraction: 1.5 is half of step 2 done)."""
StepEndCallback = Callable[[Any, int, Any, dict], dict]
"""A diffusers ``callback_on_step_end``."""
Settings = TypeVar("Settings", bound=RunSettings)


@dataclass
class FlowPreview:
    """The dense drag flow for the current tracks (:meth:`AnimatorBase.preview_flow`).

    Attributes:
        flow: ``(T-1, 2, H, W)`` float32 pixels, or None when there is no usable track.
        last_frame_rgb: ``(H, W, 3)`` uint8 colour-coded flow of the last frame (white when no motion).
        warnings: e.g. drags CMP cannot express.
    """

    flow: torch.Tensor | None
    last_frame_rgb: np.ndarray
    warnings: list[str] = field(default_factory=list)


def default_device() -> torch.device:
    """CUDA if present, else Apple MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` checked to exist on this machine, or :func:`default_device` when None.

    Raises:
        InputError: a name torch does not know, or a CUDA / MPS device this machine does not have.
    """
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        found = torch.cuda.device_count()
        raise InputError(f"device {str(device)!r} is not available: this machine has {found} CUDA GPU(s); use cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' is not available on this machine; use cpu")
    return device


# ------------------------------------------------------------------------------------------------ conversions


def as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image or an ``(H, W, 3)`` uint8 array."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    return image.convert("RGB")


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """``(3, H, W)`` float32 CPU tensor in [0, 1] from an RGB PIL image."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)


def to_uint8_video(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 from float frames in [0, 1] (clipped, rounded)."""
    return np.round(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)


def mask_to_rgba(mask: np.ndarray, color: tuple[int, int, int, int]) -> np.ndarray:
    """``(H, W, 4)`` uint8 drawing of a 0/255 mask: ``color`` inside, transparent outside."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask > 0] = color
    return rgba


def points_as_lists(tracks: Sequence[Sequence[Sequence[float]]]) -> list[list[list[float]]]:
    """Tracks of ``(x, y)`` points as JSON-ready lists of ``[x, y]`` floats."""
    return [[[float(value) for value in point] for point in track] for track in tracks]


def check_num_frames(num_frames: int) -> None:
    """Raise :class:`InputError` unless ``num_frames`` is an integer >= 2."""
    if int(num_frames) != num_frames or num_frames < 2:
        raise InputError(f"num_frames must be an integer >= 2, got {num_frames}")


def check_scale(name: str, value: float) -> None:
    """Raise :class:`InputError` unless an adapter strength ``value`` (called ``name``) is a finite number."""
    if not math.isfinite(value):
        raise InputError(f"{name} must be a number, got {value}")


def step_end_callback(progress: ProgressFn | None, steps: int) -> StepEndCallback | None:
    """The pipeline's ``callback_on_step_end`` that reports ``progress(done, steps)`` (None without ``progress``)."""
    if progress is None:
        return None

    def on_step_end(pipe, step_index: int, timestep, tensors: dict) -> dict:
        progress(step_index + 1, steps)
        return {}

    return on_step_end


def window_end_callback(progress: ProgressFn | None, steps: int) -> Callable[[int, int, int], None] | None:
    """The pipeline's ``callback_on_window_end`` that reports ``progress(step + done windows / windows, steps)``
    (None without ``progress``)."""
    if progress is None:
        return None

    def on_window_end(step_index: int, window_index: int, num_windows: int) -> None:
        progress(step_index + (window_index + 1) / num_windows, steps)

    return on_window_end


# ------------------------------------------------------------------------------------------------ builders


def load_svd_parts(ckpt_dir: Path, dtype: torch.dtype) -> dict[str, Any]:
    """The released SVD-xt 1.1 ``vae``, ``image_encoder``, ``unet`` (fp16 files, cast to ``dtype``), ``scheduler``
    and ``feature_extractor`` from ``ckpt_dir``, as pipeline keyword arguments."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

    svd = Path(ckpt_dir) / SVD_DIR
    return {
        "vae": AutoencoderKLTemporalDecoder.from_pretrained(svd, subfolder="vae", variant="fp16", torch_dtype=dtype),
        "image_encoder": CLIPVisionModelWithProjection.from_pretrained(
            svd, subfolder="image_encoder", variant="fp16", dtype=dtype
        ),
        "unet": UNetSpatioTemporalConditionControlNetModel.from_pretrained(
            svd, subfolder="unet", variant="fp16", torch_dtype=dtype
        ),
        "scheduler": EulerDiscreteScheduler.from_pretrained(svd, subfolder="scheduler"),
        "feature_extractor": CLIPImageProcessor.from_pretrained(svd, subfolder="feature_extractor"),
    }


def load_released_cmp(ckpt_dir: Path, fetch_mode: str) -> CMP:
    """The released CMP (fp32) from ``ckpt_dir``; a missing file names ``make fetch MODE=<fetch_mode>``."""
    return CMP.from_checkpoint(Path(ckpt_dir) / CMP_CHECKPOINT, fetch_mode=fetch_mode)


# ------------------------------------------------------------------------------------------------ animator


class AnimatorBase(ABC):
    """Loads a pipeline and CMP once, real or tiny, and applies a memory preset.

    Args:
        ckpt_dir: the ``ckpts/`` folder (default ``$MOFA_CKPT_DIR`` or ``<repo>/ckpts``); unused in tiny mode.
        device: execution device (default: CUDA, else MPS, else CPU).
        dtype: ``fp16`` / ``bf16`` / ``fp32`` / ``auto`` (None = auto: fp16 on accelerators, fp32 on CPU).
        memory: memory preset ``high`` / ``balanced`` / ``low`` (:mod:`utils.memory`).
        tiny: build random tiny models instead of loading weights (outputs are noise).
        compile_models: compile the UNet and the adapter with ``torch.compile`` (GPUs; slow first run).
        show_progress: show the pipeline's progress bar over denoising steps.

    Attributes:
        device, is_tiny, ckpt_dir (None in tiny mode), pipe, cmp (fp32, on ``device``), memory (the applied
        :class:`utils.memory.MemoryPlan`), cmp_grid (CMP's input size), short_side (of the generation frame),
        default_steps, size_multiple (frame sides must be multiples of it).

    Raises:
        CheckpointError: a checkpoint file is missing (from :meth:`_load_released_components`).
        InputError: an unknown device, preset or dtype, or a device this machine lacks (checked before anything
            is built).
    """

    tiny_short_side: int = TINY_SHORT_SIDE
    """Short side of the generation frame in tiny mode."""

    def __init__(
        self,
        ckpt_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        memory: str = "high",
        tiny: bool = False,
        compile_models: bool = False,
        show_progress: bool = True,
    ):
        self.device = resolve_device(device)
        self.is_tiny = tiny
        self.ckpt_dir = None if tiny else Path(ckpt_dir) if ckpt_dir is not None else default_ckpt_dir()
        plan = memory_plan(memory, self.device, dtype)
        if tiny:
            self.pipe, self.cmp = self._build_tiny_components()
        else:
            self.pipe, self.cmp = self._load_released_components(plan.dtype)
        self.memory = apply_memory_preset(self.pipe, memory, self.device, dtype, compile_models=compile_models)
        self.cmp.to(self.device)  # CMP always runs in fp32
        self.cmp_grid = TINY_CMP_GRID if tiny else CMP_GRID_SIZE
        self.short_side = self.tiny_short_side if tiny else SHORT_SIDE
        self.default_steps = TINY_STEPS if tiny else DEFAULT_STEPS
        self.size_multiple = self.pipe.controlnet.size_multiple
        # disable=None: tqdm shows the bar only on a terminal (no cursor escapes in logs and pipes)
        self.pipe.set_progress_bar_config(disable=None if show_progress else True, leave=False)

    @abstractmethod
    def _build_tiny_components(self) -> tuple[Any, HintInterpolation]:
        """``(pipeline, HintInterpolation)``: random tiny models (seeded; outputs are noise), and the hints spread
        in place of CMP."""

    @abstractmethod
    def _load_released_components(self, dtype: torch.dtype) -> tuple[Any, CMP]:
        """``(pipeline, CMP)`` with the released weights from ``self.ckpt_dir``, the pipeline's in ``dtype``.

        Raises:
            CheckpointError: a file is missing (checked before anything loads).
        """

    @classmethod
    def from_pretrained(cls, ckpt_dir: str | Path | None = None, **kwargs) -> Self:
        """The animator with the released weights from ``ckpt_dir`` (keyword arguments as the constructor's)."""
        return cls(ckpt_dir=ckpt_dir, tiny=False, **kwargs)

    @classmethod
    def tiny(cls, **kwargs) -> Self:
        """The animator with random tiny models (no checkpoint; outputs are noise)."""
        return cls(tiny=True, **kwargs)

    def set_memory(self, preset: str) -> None:
        """Switch the memory preset (keeps the dtype); a no-op when ``preset`` is the current one."""
        if preset != self.memory.preset:
            self.memory = apply_memory_preset(
                self.pipe, preset, self.device, dtype_name(self.memory.dtype), compile_models=self.memory.compile_models
            )

    def model_settings(self) -> dict[str, Any]:
        """The ``memory`` preset applied, ``tiny`` and ``ckpt_dir`` entries of a run's settings (JSON-ready)."""
        return {
            "memory": self.memory.as_dict(),
            "tiny": self.is_tiny,
            "ckpt_dir": None if self.ckpt_dir is None else str(self.ckpt_dir),
        }

    def run_settings(
        self,
        settings_class: type[Settings],
        *,
        decode_chunk_size: int | None = None,
        window_size: int = 25,
        window_stride: int | None = None,
        fast: bool = False,
        **values: Any,
    ) -> Settings:
        """A run's settings: ``values`` and the animator's own (CMP grid, memory, tiny, checkpoints), with the
        defaults resolved (the preset's ``decode_chunk_size``, ``window_stride = window_size // 2``, the adapter
        schedule of ``fast``)."""
        return settings_class(
            **values,
            decode_chunk_size=self.memory.decode_chunk_size if decode_chunk_size is None else decode_chunk_size,
            window_size=window_size,
            window_stride=window_size // 2 if window_stride is None else window_stride,
            fast=fast,
            adapter_schedule=adapter_schedule(fast).as_dict(),
            cmp_grid=self.cmp_grid,
            **self.model_settings(),
        )

    @staticmethod
    def pipeline_kwargs(settings: RunSettings, progress: ProgressFn | None = None) -> dict[str, Any]:
        """The pipeline keyword arguments every mode takes from its settings: length, steps, guidance,
        micro-conditioning, windows, adapter schedule, temporal context, the noise generator seeded with
        ``settings.seed`` and the step and window callbacks reporting ``progress``; frames come back as numpy arrays."""
        return {
            "num_frames": settings.num_frames,
            "num_inference_steps": settings.steps,
            "min_guidance_scale": settings.min_guidance_scale,
            "max_guidance_scale": settings.max_guidance_scale,
            "fps_id": settings.fps_id,
            "motion_bucket_id": settings.motion_bucket_id,
            "noise_aug_strength": settings.noise_aug_strength,
            "decode_chunk_size": settings.decode_chunk_size,
            "window_size": settings.window_size,
            "window_stride": settings.window_stride,
            "adapter_schedule": adapter_schedule(settings.fast),
            "temporal_context": settings.temporal_context,
            "generator": torch.Generator("cpu").manual_seed(settings.seed),
            "output_type": "np",
            "callback_on_step_end": step_end_callback(progress, settings.steps),
            "callback_on_window_end": window_end_callback(progress, settings.steps),
        }

    def resolve_steps(self, steps: int | None) -> int:
        """``steps``, or the default (25; 2 in tiny mode) when None.

        Raises:
            InputError: not a positive integer.
        """
        steps = self.default_steps if steps is None else steps
        if int(steps) != steps or steps < 1:
            raise InputError(f"steps must be a positive integer, got {steps}")
        return steps

    def preview_flow(
        self,
        frame: Image.Image | np.ndarray,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush_mask: np.ndarray | None = None,
        num_frames: int = 2,
    ) -> FlowPreview:
        """The drag flow the current tracks ask for, for a live preview (empty tracks are ignored).

        ``frame`` must already be the generation frame (the animator's ``prepare_image``); the tracks and the
        ``(H, W)`` brush (non-zero inside) are in its pixels. The last frame's flow depends only on each track's
        first and last clicks, so the default two frames suffice for ``last_frame_rgb``.
        """
        frame = as_rgb_image(frame)
        tracks = [track for track in tracks if len(track) > 0]
        if not tracks:
            return FlowPreview(None, np.full((frame.height, frame.width, 3), 255, np.uint8))
        validate_tracks(tracks, frame.width, frame.height)
        brush = None if brush_mask is None else np.where(np.asarray(brush_mask) > 0, 255, 0).astype(np.uint8)
        flow, messages = self.dense_flow(frame, tracks, brush, num_frames)
        return FlowPreview(flow.float().cpu(), flow_to_rgb(flow[-1]), messages)

    def dense_flow(
        self,
        frame: Image.Image,
        tracks: Sequence[Sequence[Sequence[float]]],
        brush: np.ndarray | None,
        num_frames: int,
    ) -> tuple[torch.Tensor, list[str]]:
        """CMP dense flow for drag tracks already in ``frame``'s pixels (``brush``: ``(H, W)`` 0/255 or None).

        Returns:
            ``(flow, warnings)``: ``(T-1, 2, H, W)`` float32 pixels on the device, and e.g. drags CMP cannot express.
        """
        pixels = image_to_tensor(frame).to(self.device)
        chunk_size = self.memory.cmp_chunk_size

        def cmp(image: torch.Tensor, sparse: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            # every hint frame shares the one first frame: encode it once
            return self.cmp.dense_flow(image[:1], sparse, mask, chunk_size=chunk_size)

        flow, info = trajectories_to_flow(
            pixels, tracks, brush, num_frames, cmp, grid=self.cmp_grid, device=self.device
        )
        return flow, list(info.warnings)
