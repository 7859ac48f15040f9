"""HybridFlowControlNetPipeline: SVD image-to-video steered by two MOFA-Adapters at once.

At every denoising step (fewer in fast mode, see below), on the same classifier-free-guidance-doubled input,

- the trajectory adapter (:class:`models.flow_controlnet.FlowControlNet`) reads the drag flow and the first
  frame, its residuals scaled by ``trajectory_conditioning_scale`` (0.6 as in the demos);
- the landmark adapter (:class:`models.ldmk_controlnet.LandmarkFlowControlNet`) reads the landmark flow, the
  rendered pose images and the first frame, its residuals scaled by ``landmark_conditioning_scale`` (1.0);
- their residuals are fused per resolution as ``face * M + traj * (1 - M)`` with the landmark mask ``M``
  (:mod:`pipeline.residual_fusion`), and the UNet denoises with the fused residuals.

Everything else is the trajectory pipeline's (:class:`pipeline.pipeline_flow_controlnet.FlowControlNetPipeline`,
whose condition encoding, noise, windows, denoising loop and decoding are reused): per-frame guidance
``linspace(1, 3, window)``, zero unconditional image embedding and latents but the same adapter conditions in
both halves, micro-conditioning ``[6, 128, 0.02]``, CLIP input without mean/std normalisation, unscaled
``mode()`` image latents. Videos longer than ``window_size`` (25) frames are denoised by periodic sampling
(:mod:`utils.periodic_sampling`), so a hybrid video may have any number of frames; the CLIP and VAE encodings
are computed once.

When the mask is empty only the trajectory adapter runs, and when it is full only the landmark adapter runs:
the fusion would discard the other's residuals anyway. Each adapter's warped first-frame features depend on the
first frame and its flow only, so they are computed once per video and sliced for every window and step.

``adapter_schedule`` (:mod:`utils.adapter_schedule`) says at which steps the adapters run, as in the trajectory
pipeline: at a ``run`` step both run and their fused residuals are kept per window; a ``reuse`` step adds the
window's kept fused residuals without running either adapter; a ``skip`` step adds none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from diffusers.utils import BaseOutput
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from models.flow_controlnet import FlowControlNet
from models.ldmk_controlnet import LandmarkFlowControlNet
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline, ImageInput, WindowEndCallback
from pipeline.residual_fusion import Residuals, fuse_residuals, mask_to_tensor
from utils.adapter_schedule import AdapterSchedule
from utils.errors import InputError


@dataclass
class HybridPipelineOutput(BaseOutput):
    """Output of :class:`HybridFlowControlNetPipeline`.

    Args:
        frames: as :class:`~pipeline.pipeline_flow_controlnet.FlowControlNetPipelineOutput` (``pil`` lists,
            ``np`` ``(B, T, H, W, 3)`` / ``pt`` ``(B, T, 3, H, W)`` in [0, 1], or ``latent``).
        trajectory_flow: ``(B, T-1, 2, H, W)`` float32 pixels, the drag flow used.
        landmark_flow: ``(B, T-1, 2, H, W)`` float32 pixels, the landmark flow used.
        landmark_mask: ``(H, W)`` float32 in [0, 1], the mask the residuals were fused with.
    """

    frames: list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor
    trajectory_flow: torch.Tensor
    landmark_flow: torch.Tensor
    landmark_mask: torch.Tensor


class HybridFlowControlNetPipeline(FlowControlNetPipeline):
    """Image + drag flow + landmark flow and pose images + landmark mask -> video (SVD-xt and two MOFA-Adapters).

    Args:
        vae, image_encoder, unet, scheduler, feature_extractor: as :class:`FlowControlNetPipeline`.
        controlnet: the trajectory adapter.
        ldmk_controlnet: the landmark adapter.
    """

    def __init__(
        self,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNetSpatioTemporalConditionControlNetModel,
        controlnet: FlowControlNet,
        ldmk_controlnet: LandmarkFlowControlNet,
        scheduler: EulerDiscreteScheduler,
        feature_extractor: CLIPImageProcessor | None = None,
    ):
        super().__init__(vae, image_encoder, unet, controlnet, scheduler, feature_extractor)
        self.register_modules(ldmk_controlnet=ldmk_controlnet)

    # ------------------------------------------------------------------------------------------------ inputs

    def check_hybrid_inputs(
        self,
        trajectory_flow: torch.Tensor,
        landmark_flow: torch.Tensor,
        pose_images: torch.Tensor,
        landmark_mask: np.ndarray | torch.Tensor,
    ) -> None:
        """Raise :class:`InputError` naming the landmark input whose shape does not match the drag flow's."""
        batch, num_flows, _, height, width = trajectory_flow.shape
        if not isinstance(landmark_flow, torch.Tensor) or tuple(landmark_flow.shape) != tuple(trajectory_flow.shape):
            shape = tuple(landmark_flow.shape) if isinstance(landmark_flow, torch.Tensor) else type(landmark_flow)
            raise InputError(
                f"`landmark_flow` must have the drag flow's shape {tuple(trajectory_flow.shape)}, got {shape}"
            )
        expected = (batch, num_flows + 1, 3, height, width)
        if not isinstance(pose_images, torch.Tensor) or tuple(pose_images.shape) != expected:
            shape = tuple(pose_images.shape) if isinstance(pose_images, torch.Tensor) else type(pose_images)
            raise InputError(f"`pose_images` must be (B, T, 3, H, W) = {expected}, got {shape}")
        if tuple(landmark_mask.shape) != (height, width):
            raise InputError(f"`landmark_mask` must be (H, W) = ({height}, {width}), got {tuple(landmark_mask.shape)}")

    # ------------------------------------------------------------------------------------------ denoising

    @staticmethod
    def prepare_warped_condition(
        adapter: FlowControlNet,
        reference: torch.Tensor,
        flow: torch.Tensor,
        dtype: torch.dtype,
        chunk_size: int,
    ) -> list[torch.Tensor]:
        """One adapter's warped first-frame features of every frame, computed once per video, in chunks of frames.

        They depend on the first frame and the flow only, so every window of every step slices them instead of
        recomputing them (the residuals are unchanged).

        Args:
            adapter: either adapter (both have ``prepare_condition``).
            reference: ``(B, 3, H, W)`` first frame in [-1, 1].
            flow: ``(B, T-1, 2, H, W)`` that adapter's flow.
            dtype: dtype of the UNet input the features are added to.
            chunk_size: flows warped at a time (bounds the memory of the warping).

        Returns:
            One ``(B, T, C_k, h_k, w_k)`` tensor per feature level, frame 0 (unwarped) first.
        """
        batch = flow.shape[0]
        levels: list[list[torch.Tensor]] = []
        for start in range(0, flow.shape[1], chunk_size):
            chunk = adapter.prepare_condition(reference, flow[:, start : start + chunk_size], dtype)
            chunk = [level.unflatten(0, (batch, -1)) for level in chunk]  # (B, 1 + n, C_k, h_k, w_k)
            if not levels:
                levels = [[level] for level in chunk]
            else:
                for parts, level in zip(levels, chunk):
                    parts.append(level[:, 1:])  # frame 0 is in the first chunk already
        return [torch.cat(parts, dim=1) for parts in levels]

    @staticmethod
    def window_features(warped: list[torch.Tensor], frame_indices: torch.Tensor, copies: int) -> list[torch.Tensor]:
        """The window's slice of :meth:`prepare_warped_condition`, repeated for guidance: ``(copies·B·L, C_k,
        h_k, w_k)`` per level, batch-major like the UNet input."""
        return [torch.cat([level[:, frame_indices]] * copies).flatten(0, 1) for level in warped]

    def warped_conditions(
        self, conditioning: dict[str, torch.Tensor], chunk_size: int
    ) -> dict[str, list[torch.Tensor] | None]:
        """``trajectory_warped`` and ``landmark_warped``: each adapter's warped first-frame features
        (:meth:`prepare_warped_condition`) from the conditioning's first frame and that adapter's flow, or None
        for an adapter the mask leaves out (an empty mask leaves out the landmark one, a full mask the other)."""
        mask, reference = conditioning["landmark_mask"], conditioning["controlnet_cond"]
        dtype = conditioning["image_embeddings"].dtype
        warped = {}
        for name, adapter, used in (
            ("trajectory", self.controlnet, bool(mask.lt(1).any())),
            ("landmark", self.ldmk_controlnet, bool(mask.gt(0).any())),
        ):
            flow = conditioning[f"{name}_flow"]
            warped[f"{name}_warped"] = (
                self.prepare_warped_condition(adapter, reference, flow, dtype, chunk_size) if used else None
            )
        return warped

    def release_adapter_state(self, conditioning: dict[str, torch.Tensor]) -> None:
        """Free the adapter state (:meth:`FlowControlNetPipeline.release_adapter_state`) and both adapters' warped
        first-frame features (:meth:`warped_conditions`) kept in ``conditioning``."""
        super().release_adapter_state(conditioning)
        conditioning.pop("trajectory_warped", None)
        conditioning.pop("landmark_warped", None)

    def fused_residuals(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        frame_indices: torch.Tensor,
        trajectory_conditioning_scale: float,
        landmark_conditioning_scale: float,
    ) -> Residuals:
        """Both adapters' residuals for one window, fused as ``face * M + traj * (1 - M)`` (only the adapters the
        mask uses run).

        Args:
            sample: ``(B', L, 8, h, w)`` the UNet's input for the window (B' = 2B with guidance, else B).
            timestep, conditioning, trajectory_conditioning_scale, landmark_conditioning_scale: as for
                :meth:`predict_hybrid_window`.
            frame_indices: ``(L,)`` the window's frames.

        Returns:
            ``(down, mid)`` residuals, ``(B'·L, C, h_j, w_j)`` each.
        """
        copies = sample.shape[0] // conditioning["trajectory_flow"].shape[0]
        shared = {
            "encoder_hidden_states": conditioning["image_embeddings"],
            "added_time_ids": conditioning["added_time_ids"],
            "controlnet_cond": conditioning["controlnet_cond"],
            "return_dict": False,
        }
        flow_frames = frame_indices[1:] - 1

        traj = face = None
        if conditioning["trajectory_warped"] is not None:
            traj = self.controlnet(
                sample,
                timestep,
                controlnet_flow=torch.cat([conditioning["trajectory_flow"][:, flow_frames]] * copies),
                conditioning_scale=trajectory_conditioning_scale,
                warped_condition=self.window_features(conditioning["trajectory_warped"], frame_indices, copies),
                **shared,
            )[:2]
        if conditioning["landmark_warped"] is not None:
            face = self.ldmk_controlnet(
                sample,
                timestep,
                controlnet_flow=torch.cat([conditioning["landmark_flow"][:, flow_frames]] * copies),
                pose_images=torch.cat([conditioning["pose_images"][:, frame_indices]] * copies).to(sample.dtype),
                conditioning_scale=landmark_conditioning_scale,
                warped_condition=self.window_features(conditioning["landmark_warped"], frame_indices, copies),
                **shared,
            )[:2]
        if traj is None:
            return face
        if face is None:
            return traj
        return fuse_residuals(*face, *traj, conditioning["landmark_mask"])

    def predict_hybrid_window(
        self,
        frame_indices: torch.Tensor,
        scaled_latents: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        guidance_scale: torch.Tensor,
        trajectory_conditioning_scale: float,
        landmark_conditioning_scale: float,
    ) -> torch.Tensor:
        """The guided v-prediction for one window of frames, with fused adapter residuals.

        Args:
            frame_indices: ``(L,)`` the window's frames in the video, frame 0 first.
            scaled_latents: ``(B, L, 4, h, w)`` noisy latents already divided by ``sqrt(sigma^2 + 1)``.
            timestep: the UNet timestep (``0.25·ln sigma``).
            conditioning: ``image_embeddings (B', 1, D)``, ``image_latents (B', 4, h, w)``, ``added_time_ids
                (B', 3)``, ``controlnet_cond (B', 3, H, W)`` (B' = 2B with guidance, unconditional half first),
                and, not doubled, ``trajectory_flow`` / ``landmark_flow`` ``(B, T-1, 2, H, W)``,
                ``pose_images (B, T, 3, H, W)``, ``landmark_mask (1, 1, H, W)`` and
                ``trajectory_warped`` / ``landmark_warped`` (:meth:`warped_conditions`).
            guidance_scale: ``(1, L, 1, 1, 1)`` per-position guidance.
            trajectory_conditioning_scale, landmark_conditioning_scale: multiply each adapter's residuals.

        Returns:
            ``(B, L, 4, h, w)`` model output.
        """
        scales = (trajectory_conditioning_scale, landmark_conditioning_scale)
        return self.guided_prediction(
            scaled_latents,
            timestep,
            conditioning,
            guidance_scale,
            lambda sample: self.scheduled_residuals(
                frame_indices,
                lambda: self.fused_residuals(sample, timestep, conditioning, frame_indices, *scales),
            ),
        )

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        trajectory_flow: torch.Tensor,
        landmark_flow: torch.Tensor,
        pose_images: torch.Tensor,
        landmark_mask: np.ndarray | torch.Tensor,
        controlnet_condition: ImageInput | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = 25,
        min_guidance_scale: float = 1.0,
        max_guidance_scale: float = 3.0,
        fps_id: int = 6,
        motion_bucket_id: int = 128,
        noise_aug_strength: float = 0.02,
        trajectory_conditioning_scale: float = 0.6,
        landmark_conditioning_scale: float = 1.0,
        normalize_clip_input: bool = False,
        decode_chunk_size: int | None = None,
        window_size: int = 25,
        window_stride: int | None = None,
        adapter_schedule: AdapterSchedule | None = None,
        temporal_context: str = DEFAULT_TEMPORAL_CONTEXT,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        callback_on_window_end: WindowEndCallback | None = None,
        return_dict: bool = True,
    ) -> HybridPipelineOutput | tuple:
        """Generate videos that start at ``image``, follow the drags outside the face and the landmarks inside it.

        Args:
            image: first frame(s): a PIL image, a list of B PIL images, or a float tensor ``(3, H, W)`` /
                ``(B, 3, H, W)`` in [0, 1].
            trajectory_flow: ``(B, T-1, 2, H, W)`` drag flow from frame 0 to frames 1..T-1 in pixels (x first).
            landmark_flow: ``(B, T-1, 2, H, W)`` landmark (CMP) flow, same layout.
            pose_images: ``(B, T, 3, H, W)`` rendered pose image of every frame in [0, 1], frame 0 first.
            landmark_mask: ``(H, W)`` where the landmark adapter drives the video: uint8 0/255, bool, or float
                in [0, 1] (:func:`pipeline.residual_fusion.mask_to_tensor`).
            controlnet_condition: the adapters' first frame (default: ``image``).
            height, width: frame size; default the flows'; multiples of the adapters' ``size_multiple`` (64).
            num_frames: T (>= 2); default ``trajectory_flow.shape[1] + 1``.
            num_inference_steps: denoising steps (25).
            min_guidance_scale, max_guidance_scale: per-position guidance ramp over a window (1 -> 3);
                ``max_guidance_scale <= 1`` disables classifier-free guidance.
            fps_id, motion_bucket_id, noise_aug_strength: micro-conditioning (6, 128, 0.02).
            trajectory_conditioning_scale: multiplies the trajectory adapter's residuals (0.6).
            landmark_conditioning_scale: multiplies the landmark adapter's residuals (1.0).
            normalize_clip_input: apply CLIP's mean/std before the image encoder (off, as released).
            decode_chunk_size: frames decoded at a time (default: all T).
            window_size, window_stride: periodic-sampling windows (25 frames, frame 0 included; stride 12).
            adapter_schedule: at which steps the two adapters run (:mod:`utils.adapter_schedule`); default every
                step. ``utils.adapter_schedule.FAST`` runs them at every fourth step and reuses their fused
                residuals in between (fast mode).
            temporal_context: ``"original"`` (the released results) or ``"per_video"`` (today's diffusers), for
                the UNet and both adapters (:mod:`models.temporal_context`).
            num_videos_per_prompt: videos per input image.
            generator: random generator(s) for the noise augmentation and the initial latents.
            latents: initial noise ``(B·num_videos_per_prompt, T, 4, h, w)`` (before the initial sigma).
            output_type: ``pil``, ``np``, ``pt`` or ``latent``.
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict`` after every step; a returned
                ``latents`` replaces the current ones.
            callback_on_step_end_tensor_inputs: names passed in ``tensors`` (default ``["latents"]``).
            callback_on_window_end: ``fn(step_index, window_index, num_windows)`` after each window of a step of
                periodic sampling (videos longer than ``window_size``), e.g. for progress within a step.
            return_dict: return a :class:`HybridPipelineOutput` rather than a tuple.

        Returns:
            :class:`HybridPipelineOutput`.
        """
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        height, width, num_frames, decode_chunk_size = self.default_sizes(
            trajectory_flow, height, width, num_frames, decode_chunk_size
        )
        self.check_inputs(
            image, controlnet_condition, trajectory_flow, height, width, num_frames, num_inference_steps,
            decode_chunk_size, num_videos_per_prompt, window_size, window_stride, output_type,
            callback_on_step_end_tensor_inputs,
        )  # fmt: skip
        self.check_hybrid_inputs(trajectory_flow, landmark_flow, pose_images, landmark_mask)
        device = self._execution_device
        self.set_temporal_context(temporal_context)

        # 1. conditions, encoded once; the adapters' inputs are doubled per window, not here
        conditioning = self.encode_conditions(
            image, controlnet_condition, height, width, fps_id, motion_bucket_id, noise_aug_strength,
            normalize_clip_input, num_videos_per_prompt, generator, device,
        )  # fmt: skip
        dtype = conditioning["image_embeddings"].dtype
        flow_device = trajectory_flow.device  # the flows used are returned where they were given
        trajectory_flow = self.adapter_flow(trajectory_flow, dtype, device)
        landmark_flow = self.adapter_flow(landmark_flow, dtype, device)
        conditioning.update(
            trajectory_flow=trajectory_flow.repeat_interleave(num_videos_per_prompt, 0),
            landmark_flow=landmark_flow.repeat_interleave(num_videos_per_prompt, 0),
            pose_images=pose_images.to(device, dtype).repeat_interleave(num_videos_per_prompt, 0),
            landmark_mask=mask_to_tensor(landmark_mask, device, dtype),
        )
        conditioning.update(self.warped_conditions(conditioning, chunk_size=min(num_frames, window_size) - 1))
        if max_guidance_scale > 1.0:
            conditioning = self.double_for_guidance(conditioning, ("added_time_ids", "controlnet_cond"))

        # 2.-4. noise, denoising with the adapters as the schedule says, decoding; the warped features are released
        frames = self.denoise_and_decode(
            conditioning,
            partial(
                self.predict_hybrid_window,
                trajectory_conditioning_scale=trajectory_conditioning_scale,
                landmark_conditioning_scale=landmark_conditioning_scale,
            ),
            batch_size=self.batch_size_of(image) * num_videos_per_prompt,
            num_frames=num_frames, height=height, width=width, num_inference_steps=num_inference_steps,
            min_guidance_scale=min_guidance_scale, max_guidance_scale=max_guidance_scale, window_size=window_size,
            window_stride=window_stride, adapter_schedule=adapter_schedule, generator=generator, latents=latents,
            output_type=output_type, decode_chunk_size=decode_chunk_size, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, device=device,
            callback_on_window_end=callback_on_window_end,
        )  # fmt: skip
        outputs = (
            frames,
            trajectory_flow.to(flow_device).repeat_interleave(num_videos_per_prompt, dim=0),
            landmark_flow.to(flow_device).repeat_interleave(num_videos_per_prompt, dim=0),
            conditioning["landmark_mask"][0, 0].float().cpu(),
        )
        if not return_dict:
            return outputs
        return HybridPipelineOutput(*outputs)
