"""LandmarkFlowControlNetPipeline: Stable Video Diffusion steered by facial landmarks, for videos of any length.

The trajectory pipeline (:class:`pipeline.pipeline_flow_controlnet.FlowControlNetPipeline`) with the landmark
adapter (:class:`models.ldmk_controlnet.LandmarkFlowControlNet`): besides the first frame and the dense landmark
flow, the adapter sees the rendered pose image of every frame. Everything else is shared: CLIP and VAE encodings
computed once, classifier-free guidance ``linspace(1, 3)`` over the positions of a window (the unconditional
half gets the same flow and pose images), micro-conditioning ``[6, 128, 0.02]``, and, for videos longer than
``window_size`` (25), periodic sampling: frame-0-anchored windows of 25 frames with stride 12, each denoised
with the same sigma pair by a functional Euler step and averaged (:mod:`utils.periodic_sampling`). The
adapter's matted, warped first-frame features are computed once per video, and ``adapter_schedule`` can run
the adapter at fewer steps (fast mode), as in the trajectory pipeline.
"""

from __future__ import annotations

import torch

from models.ldmk_controlnet import LandmarkFlowControlNet
from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline, FlowControlNetPipelineOutput, ImageInput
from utils.errors import InputError


class LandmarkFlowControlNetPipeline(FlowControlNetPipeline):
    """Image + landmark flow + pose images -> video, with SVD-xt and the landmark MOFA-Adapter.

    Components as :class:`FlowControlNetPipeline`, with ``controlnet`` a :class:`LandmarkFlowControlNet`.
    """

    controlnet: LandmarkFlowControlNet

    def check_pose_images(self, pose_images: torch.Tensor, controlnet_flow: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``pose_images`` is ``(B, T, 3, H, W)`` matching the flow's B, T-1, H, W."""
        if not isinstance(pose_images, torch.Tensor) or pose_images.ndim != 5:
            shape = tuple(pose_images.shape) if isinstance(pose_images, torch.Tensor) else type(pose_images)
            raise InputError(f"`pose_images` must be a (B, T, 3, H, W) tensor, got {shape}")
        self.check_flow(controlnet_flow)
        batch, flows, _, height, width = controlnet_flow.shape
        expected = (batch, flows + 1, self.controlnet.config.conditioning_channels, height, width)
        if tuple(pose_images.shape) != expected:
            raise InputError(
                f"`pose_images` must have shape {expected} (one pose image per frame), got {tuple(pose_images.shape)}"
            )

    @torch.no_grad()
    def __call__(
        self, image: ImageInput, controlnet_flow: torch.Tensor, pose_images: torch.Tensor, **kwargs
    ) -> FlowControlNetPipelineOutput | tuple:
        """Generate videos that start at ``image`` and follow the landmarks.

        Args:
            image: first frame(s), as for :meth:`FlowControlNetPipeline.__call__`.
            controlnet_flow: ``(B, T-1, 2, H, W)`` dense landmark flow from frame 0 in pixels (x first).
            pose_images: ``(B, T, 3, H, W)`` pose image of every frame in [0, 1], frame 0 the reference pose.
            kwargs: every other argument of :meth:`FlowControlNetPipeline.__call__` (``num_inference_steps``,
                ``window_size``, ``decode_chunk_size``, ``generator``, ``output_type``, ...).

        Returns:
            :class:`FlowControlNetPipelineOutput`.
        """
        self.check_pose_images(pose_images, controlnet_flow)
        self._pose_images = pose_images.repeat_interleave(kwargs.get("num_videos_per_prompt", 1), dim=0)
        try:
            return super().__call__(image, controlnet_flow, **kwargs)
        finally:
            del self._pose_images

    def adapter_kwargs(
        self, sample: torch.Tensor, conditioning: dict[str, torch.Tensor], frame_indices: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The landmark adapter's extra input for one window: ``pose_images``, the ``(B', L, 3, H, W)`` pose images
        of the window's frames, in the sample's device and dtype and its batch layout (videos repeated per
        prompt, then repeated for the second guidance half when ``sample`` holds both)."""
        window = self._pose_images[:, frame_indices.cpu()].to(sample.device, sample.dtype)
        copies = sample.shape[0] // window.shape[0]  # 2 with classifier-free guidance, else 1
        return {"pose_images": torch.cat([window] * copies) if copies > 1 else window}
