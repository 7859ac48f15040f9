"""LandmarkFlowControlNetPipeline: Stable Video Diffusion steered by facial landmarks, for videos of any length.

The trajectory pipeline (:class:`pipeline.flow_controlnet_pipeline.FlowControlNetPipeline`) with the landmark
adapter (:class:`models.ldmk_controlnet.LandmarkFlowControlNet`): besides the first frame and the dense landmark
flow, the adapter sees the rendered pose image of every frame. Everything else is shared: CLIP and VAE encodings
computed once, classifier-free guidance ``linspace(1, 3)`` over the positions of a window (the unconditional
half gets the same flow and pose images), micro-conditioning ``[6, 128, 0.02]``, and, for videos longer than
``window_size`` (25), periodic sampling: frame-0-anchored windows of 25 frames with stride 12, each denoised
with the same sigma pair by a functional Euler step and averaged (:mod:`utils.periodic_sampling`).
"""

from __future__ import annotations

import torch

from models.ldmk_controlnet import LandmarkFlowControlNet
from pipeline.flow_controlnet_pipeline import FlowControlNetPipeline, FlowControlNetPipelineOutput, ImageInput
from utils.errors import InputError


class LandmarkFlowControlNetPipeline(FlowControlNetPipeline):
    """Image + landmark flow + pose images -> video, with SVD-xt and the landmark MOFA-Adapter.

    Components as :class:`FlowControlNetPipeline`, with ``controlnet`` a :class:`LandmarkFlowControlNet`.
    """

    controlnet: LandmarkFlowControlNet

    def check_landmark_images(self, landmarks: torch.Tensor, controlnet_flow: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``landmarks`` is ``(B, T, 3, H, W)`` matching the flow's B, T-1, H, W."""
        if not isinstance(landmarks, torch.Tensor) or landmarks.ndim != 5:
            shape = tuple(landmarks.shape) if isinstance(landmarks, torch.Tensor) else type(landmarks)
            raise InputError(f"`landmarks` must be a (B, T, 3, H, W) tensor of pose images, got {shape}")
        batch, flows, _, height, width = controlnet_flow.shape
        expected = (batch, flows + 1, self.controlnet.config.conditioning_channels, height, width)
        if tuple(landmarks.shape) != expected:
            raise InputError(f"`landmarks` must have shape {expected} (one pose image per frame), got {tuple(landmarks.shape)}")

    @torch.no_grad()
    def __call__(
        self, image: ImageInput, controlnet_flow: torch.Tensor, landmarks: torch.Tensor, **kwargs
    ) -> FlowControlNetPipelineOutput | tuple:
        """Generate videos that start at ``image`` and follow the landmarks.

        Args:
            image: first frame(s), as for :meth:`FlowControlNetPipeline.__call__`.
            controlnet_flow: ``(B, T-1, 2, H, W)`` dense landmark flow from frame 0 in pixels (x first).
            landmarks: ``(B, T, 3, H, W)`` pose image of every frame in [0, 1], frame 0 the reference pose.
            kwargs: every other argument of :meth:`FlowControlNetPipeline.__call__` (``num_inference_steps``,
                ``window_size``, ``decode_chunk_size``, ``generator``, ``output_type``, ...).

        Returns:
            :class:`FlowControlNetPipelineOutput`.
        """
        self.check_landmark_images(landmarks, controlnet_flow)
        self._pose_images = landmarks
        try:
            return super().__call__(image, controlnet_flow, **kwargs)
        finally:
            del self._pose_images

    def predict_window(
        self,
        frame_indices: torch.Tensor,
        scaled_latents: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        guidance_scale: torch.Tensor,
        controlnet_cond_scale: float,
    ) -> torch.Tensor:
        """The guided v-prediction for one window, the adapter also given the window's pose images.

        Arguments as :meth:`FlowControlNetPipeline.predict_window`; the pose images of ``frame_indices`` are
        taken from the ones passed to ``__call__`` and repeated like the other conditions.
        """
        do_cfg = conditioning["image_embeddings"].shape[0] != scaled_latents.shape[0]
        num_window_frames = len(frame_indices)
        sample = torch.cat([scaled_latents] * 2) if do_cfg else scaled_latents
        image_latents = conditioning["image_latents"].unsqueeze(1).expand(-1, num_window_frames, -1, -1, -1)
        sample = torch.cat([sample, image_latents.to(sample.dtype)], dim=2)
        flow = conditioning["controlnet_flow"][:, frame_indices[1:] - 1]
        pose_images = self._pose_images[:, frame_indices.cpu()].to(sample.device, sample.dtype)
        pose_images = pose_images.repeat_interleave(scaled_latents.shape[0] // pose_images.shape[0], dim=0)
        if do_cfg:
            pose_images = torch.cat([pose_images] * 2)
        down_residuals, mid_residual, _, _ = self.controlnet(
            sample,
            timestep,
            encoder_hidden_states=conditioning["image_embeddings"],
            added_time_ids=conditioning["added_time_ids"],
            controlnet_cond=conditioning["controlnet_cond"],
            controlnet_flow=flow,
            landmarks=pose_images,
            conditioning_scale=controlnet_cond_scale,
            return_dict=False,
        )
        model_output = self.unet(
            sample,
            timestep,
            encoder_hidden_states=conditioning["image_embeddings"],
            added_time_ids=conditioning["added_time_ids"],
            down_block_additional_residuals=down_residuals,
            mid_block_additional_residual=mid_residual,
            return_dict=False,
        )[0]
        if do_cfg:
            uncond, cond = model_output.chunk(2)
            model_output = uncond + guidance_scale.to(model_output.dtype) * (cond - uncond)
        return model_output
