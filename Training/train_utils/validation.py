"""Validation videos: generate from validation clips with the Traj pipeline and save side-by-side grids.

Each video is ``[first frame | flow | generated | ground truth]`` (stage 1) or
``[first frame | dense flow | sparse hints | CMP flow | generated | ground truth]`` (stage 2), written to
``<output_dir>/validation_images/step_<N>_val_img/<i>-<video name>.mp4`` at 8 fps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from train_utils.components import TrainingComponents
from train_utils.dataset import VideoClipDataset, collate_clips
from train_utils.flow_estimation import FlowEstimator
from train_utils.sparse_to_dense import cmp_flow_from_hints, resize_flows
from utils.flow_viz import flow_video_frames
from utils.video_io import write_video

logger = logging.getLogger(__name__)

VALIDATION_FPS = 8
HINT_DOT_SIZE = 5


@dataclass(frozen=True)
class ValidationSettings:
    """How validation videos are generated."""

    stage: int
    num_inference_steps: int
    decode_chunk_size: int
    s2d_size: int
    seed: int
    temporal_context: str


def validation_clips(dataset: VideoClipDataset, indices: Sequence[int]) -> Iterator[dict]:
    """The chosen clips as batches of one (see :func:`select_validation_clips`)."""
    for index in indices:
        yield collate_clips([dataset.load(index)])


def preview_image(videos: Sequence[np.ndarray]) -> np.ndarray:
    """The last frame of each validation grid ``[T, H, W, 3]``, stacked top to bottom: ``[N*H, W, 3]`` uint8."""
    return np.concatenate([video[-1] for video in videos], axis=0)


def build_pipeline(components: TrainingComponents, controlnet: nn.Module) -> nn.Module:
    """The Traj inference pipeline around the training networks (no copies)."""
    from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline

    return FlowControlNetPipeline(
        vae=components.vae,
        image_encoder=components.image_encoder,
        unet=components.unet,
        controlnet=controlnet,
        scheduler=components.scheduler,
        feature_extractor=components.feature_extractor,
    )


def inference_copy(adapter: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``adapter`` in ``dtype`` (built on the meta device, so only the cast weights are allocated)."""
    with torch.device("meta"):
        copy = type(adapter).from_config(adapter.config)
    copy.load_state_dict({name: value.to(dtype) for name, value in adapter.state_dict().items()}, assign=True)
    return copy.eval()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[T, 3, H, W]`` in [0, 1] -> ``[T, H, W, 3]`` uint8."""
    return (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def hint_frames(flows: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Hint locations as small squares coloured by the flow there: ``[T, H, W, 3]``, the colour wheel first.

    Args:
        flows: ``[T-1, 2, G, G]`` dense flow on the hint grid; mask: ``[T-1, 2, G, G]`` 1 at hints.
    """
    dots = F.max_pool2d(mask[:, :1].float(), HINT_DOT_SIZE, stride=1, padding=HINT_DOT_SIZE // 2)
    return flow_video_frames(F.interpolate(flows * dots, size=size, mode="nearest"))


def generated_frames(
    pipeline: nn.Module, first_frame: torch.Tensor, flow: torch.Tensor, settings: ValidationSettings
) -> np.ndarray:
    """Run the pipeline on one clip: ``first_frame`` ``[3, H, W]`` in [0, 1], ``flow`` ``[1, T-1, 2, H, W]``.

    Returns:
        ``[T, H, W, 3]`` uint8.
    """
    height, width = first_frame.shape[-2:]
    output = pipeline(
        first_frame,
        controlnet_flow=flow,
        height=height,
        width=width,
        num_frames=flow.shape[1] + 1,
        num_inference_steps=settings.num_inference_steps,
        decode_chunk_size=settings.decode_chunk_size,
        temporal_context=settings.temporal_context,
        generator=torch.Generator().manual_seed(settings.seed),
        output_type="pt",
    )
    return to_uint8(output.frames[0])


@torch.no_grad()
def run_validation(
    components: TrainingComponents,
    controlnet: nn.Module,
    clips: Iterator[dict],
    flow_estimator: FlowEstimator | None,
    settings: ValidationSettings,
    step: int,
    output_dir: Path,
    device: torch.device,
) -> list[tuple[Path, np.ndarray]]:
    """Generate a validation video per clip and write its grid; returns ``(file, grid [T, H, W', 3] uint8)``.

    The global random state is left untouched, so validating does not change the training run.
    """
    pipeline = build_pipeline(components, controlnet)
    pipeline.set_progress_bar_config(disable=True)
    folder = output_dir / "validation_images" / f"step_{step}_val_img"
    written = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        rng = np.random.default_rng(settings.seed)
        for index, clip in enumerate(clips):
            pixel_values = clip["pixel_values"].to(device)
            flows = clip["flow"].to(device) if "flow" in clip else flow_estimator(pixel_values)
            size = tuple(pixel_values.shape[-2:])
            columns = [to_uint8(pixel_values[0, :1]).repeat(pixel_values.shape[1], axis=0), flow_video_frames(flows[0])]
            adapter_flow = flows
            if settings.stage == 2:
                hinted = cmp_flow_from_hints(components.cmp, pixel_values[:, 0], flows, settings.s2d_size, rng)
                adapter_flow = hinted.dense
                grid_flows = resize_flows(flows[:1], (settings.s2d_size, settings.s2d_size))[0]
                columns += [hint_frames(grid_flows, hinted.mask[0], size), flow_video_frames(adapter_flow[0])]
            columns += [
                generated_frames(pipeline, pixel_values[0, 0], adapter_flow, settings),
                to_uint8(pixel_values[0]),
            ]
            name = str(Path(clip["video_name"][0]).with_suffix("")).replace("/", "_")
            grid = np.concatenate(columns, axis=2)
            written.append(
                (write_video(folder / f"{index:03d}-{name}.mp4", grid, VALIDATION_FPS, overwrite=True), grid)
            )
    logger.info("validation at step %d: wrote %d videos to %s", step, len(written), folder)
    return written
