# Copied from MOFA-Video-Traj/pipeline/pipeline_flow_controlnet.py
"""FlowControlNetPipeline: Stable Video Diffusion image-to-video steered by a dense flow through the MOFA-Adapter.

At every denoising step the adapter (:class:`models.flow_controlnet.FlowControlNet`) turns the first frame and
its flow to every later frame into residuals that the UNet adds to its skip connections. The defaults are what
the released weights were used with:

- 25 Euler steps (Karras sigmas 700 -> 0.002, v-prediction; the scheduler SVD-xt ships with);
- classifier-free guidance growing per frame, ``linspace(1, 3, T)``; the unconditional half gets zero image
  embeddings and zero image latents but the same first frame and flow for the adapter;
- micro-conditioning ``[fps_id, motion_bucket_id, noise_aug_strength] = [6, 128, 0.02]`` (diffusers' ``fps`` minus
  one: ``fps_id`` is the id itself);
- the CLIP image encoder sees the image resized to 224x224 in [0, 1], without CLIP's mean/std normalisation
  (``normalize_clip_input=True`` normalises, as SVD itself does);
- image latents are the VAE posterior's mode, not multiplied by the scaling factor.

Videos longer than ``window_size`` frames (25, the clip length the adapter was trained on) are denoised as
frame-0-anchored overlapping windows whose latents are averaged after every step (periodic sampling,
:mod:`utils.periodic_sampling`); the CLIP and VAE encodings are computed once and shared by all windows.

Work that does not depend on the noisy latents is done once per video: the adapter's warped first-frame
features (:meth:`models.flow_controlnet.FlowControlNet.prepare_condition`) are computed at the first step
for all frames and sliced per window afterwards, which leaves the results unchanged. ``adapter_schedule``
(:mod:`utils.adapter_schedule`) can run the adapter at fewer steps (fast mode), reusing or leaving out its
residuals at the others.

``__call__`` is a sequence of steps that subclasses with other adapters reuse: :meth:`encode_conditions` and
:meth:`double_for_guidance`, :meth:`prepare_noise`, :meth:`plan_windows` and :meth:`guidance_ramp`,
:meth:`denoise` (given a per-window prediction, usually built on :meth:`guided_prediction`) and :meth:`finish`;
:meth:`denoise_and_decode` runs everything after the encoding and releases the cached adapter state
(:meth:`release_adapter_state`) in ``finally``. An adapter that reads more than the first frame and flow gets it
from :meth:`adapter_kwargs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLTemporalDecoder, DiffusionPipeline, EulerDiscreteScheduler
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from models.flow_controlnet import FlowControlNet
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, check_temporal_context
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
from utils.adapter_schedule import FAITHFUL, REUSE, RUN, AdapterSchedule
from utils.errors import InputError
from utils.periodic_sampling import get_views, periodic_denoise_step, weighted_views, window_frame_indices

ImageInput = PIL.Image.Image | list[PIL.Image.Image] | torch.Tensor
WindowEndCallback = Callable[[int, int, int], None]
"""``fn(step_index, window_index, num_windows)``: a window of a periodic-sampling step is done."""
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class FlowControlNetPipelineOutput(BaseOutput):
    """Output of :class:`FlowControlNetPipeline`.

    Args:
        frames: per video, T frames: a list of lists of PIL images (``output_type="pil"``), a float array
            ``(B, T, H, W, 3)`` in [0, 1] (``"np"``), a float tensor ``(B, T, 3, H, W)`` in [0, 1] (``"pt"``), or
            the final latents ``(B, T, 4, h, w)`` (``"latent"``).
        controlnet_flow: ``(B, T-1, 2, H, W)`` float32, the flow the adapter was conditioned on, in pixels.
    """

    frames: list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor
    controlnet_flow: torch.Tensor


@dataclass
class AdapterState:
    """Per-video adapter work kept across denoising steps.

    Attributes:
        schedule: which steps run the adapter.
        keeps_residuals: whether some step reuses residuals (so they are kept).
        action: what the current step does (``run``, ``reuse`` or ``skip``).
        warped_condition: the warped first-frame features of all N frames, one ``(B'·N, C_k, h_k, w_k)``
            tensor per level, computed at the first step that runs the adapter.
        residuals: the latest ``(down, mid)`` residuals of each window ``(first frame, length)``, kept only
            when the schedule reuses them.
    """

    schedule: AdapterSchedule
    keeps_residuals: bool = False
    action: str = RUN
    warped_condition: list[torch.Tensor] | None = None
    residuals: dict[tuple[int, int], tuple[tuple[torch.Tensor, ...], torch.Tensor]] = field(default_factory=dict)


class FlowControlNetPipeline(DiffusionPipeline):
    """Image + dense flow -> video, with SVD-xt and the trajectory MOFA-Adapter.

    Args:
        vae: the SVD temporal-decoder VAE.
        image_encoder: CLIP ViT-H/14 vision tower with projection (1024-d image embedding).
        unet: SVD UNet that accepts adapter residuals.
        controlnet: the MOFA-Adapter.
        scheduler: ``EulerDiscreteScheduler`` configured as SVD's.
        feature_extractor: CLIP preprocessing config; only its mean/std are read (``normalize_clip_input``).
    """

    model_cpu_offload_seq = "image_encoder->unet->vae"
    _exclude_from_cpu_offload = ["vae"]  # small; kept whole so its fp32 upcast for encoding works under offload
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNetSpatioTemporalConditionControlNetModel,
        controlnet: FlowControlNet,
        scheduler: EulerDiscreteScheduler,
        feature_extractor: CLIPImageProcessor | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            image_encoder=image_encoder,
            unet=unet,
            controlnet=controlnet,
            scheduler=scheduler,
            feature_extractor=feature_extractor,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.video_processor = VideoProcessor(do_resize=True, vae_scale_factor=self.vae_scale_factor)

    # ------------------------------------------------------------------------------------------------ inputs

    @staticmethod
    def batch_size_of(image: ImageInput) -> int:
        """Number of input images: 1 for a PIL image or a ``(3, H, W)`` tensor."""
        if isinstance(image, PIL.Image.Image):
            return 1
        if isinstance(image, list):
            return len(image)
        return 1 if image.ndim == 3 else image.shape[0]

    def check_inputs(
        self,
        image: ImageInput,
        controlnet_condition: ImageInput | None,
        controlnet_flow: torch.Tensor,
        height: int,
        width: int,
        num_frames: int,
        num_inference_steps: int,
        decode_chunk_size: int,
        num_videos_per_prompt: int,
        window_size: int,
        window_stride: int | None,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Raise :class:`InputError` naming the first argument that is wrong."""
        for name, value in (("image", image), ("controlnet_condition", controlnet_condition)):
            if value is None and name == "controlnet_condition":
                continue
            if isinstance(value, list):
                if not value or not all(isinstance(item, PIL.Image.Image) for item in value):
                    raise InputError(f"`{name}` as a list must hold one or more PIL images")
            elif isinstance(value, torch.Tensor):
                if value.ndim not in (3, 4) or value.shape[-3] != 3:
                    raise InputError(f"`{name}` tensor must be (3, H, W) or (B, 3, H, W), got {tuple(value.shape)}")
            elif not isinstance(value, PIL.Image.Image):
                raise InputError(f"`{name}` must be a PIL image, a list of them or a tensor, got {type(value)}")
        batch_size = self.batch_size_of(image)
        if controlnet_condition is not None and self.batch_size_of(controlnet_condition) != batch_size:
            raise InputError(
                f"`controlnet_condition` holds {self.batch_size_of(controlnet_condition)} images, `image` {batch_size}"
            )
        self.check_flow(controlnet_flow)
        if controlnet_flow.shape[0] != batch_size:
            raise InputError(f"`controlnet_flow` has batch size {controlnet_flow.shape[0]}, `image` has {batch_size}")
        multiple = self.controlnet.size_multiple
        if height % multiple or width % multiple:
            raise InputError(f"`height` and `width` must be multiples of {multiple}, got {height} and {width}")
        if tuple(controlnet_flow.shape[-2:]) != (height, width):
            raise InputError(
                f"`controlnet_flow` is {controlnet_flow.shape[-1]}x{controlnet_flow.shape[-2]} (WxH), "
                f"the video {width}x{height}"
            )
        if num_frames < 2:
            raise InputError(f"`num_frames` must be at least 2, got {num_frames}")
        if controlnet_flow.shape[1] != num_frames - 1:
            raise InputError(
                f"`controlnet_flow` must hold num_frames - 1 = {num_frames - 1} flows, got {controlnet_flow.shape[1]}"
            )
        for name, value in (
            ("num_inference_steps", num_inference_steps),
            ("decode_chunk_size", decode_chunk_size),
            ("num_videos_per_prompt", num_videos_per_prompt),
        ):
            if int(value) != value or value < 1:
                raise InputError(f"`{name}` must be a positive integer, got {value}")
        if window_size < 2:
            raise InputError(f"`window_size` must be at least 2, got {window_size}")
        if window_stride is not None and not 1 <= window_stride < window_size:
            raise InputError(f"`window_stride` must be between 1 and window_size - 1, got {window_stride}")
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"`output_type` must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise InputError(
                f"`callback_on_step_end_tensor_inputs` may only name {self._callback_tensor_inputs}, got {unknown}"
            )

    @staticmethod
    def check_flow(flow: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``flow`` is a ``(B, T-1, 2, H, W)`` tensor."""
        if not isinstance(flow, torch.Tensor) or flow.ndim != 5 or flow.shape[2] != 2:
            shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow)
            raise InputError(f"`controlnet_flow` must be a (B, T-1, 2, H, W) tensor, got {shape}")

    @classmethod
    def default_sizes(
        cls,
        flow: torch.Tensor,
        height: int | None,
        width: int | None,
        num_frames: int | None,
        decode_chunk_size: int | None,
    ) -> tuple[int, int, int, int]:
        """``(height, width, num_frames, decode_chunk_size)``, each defaulting to what the ``(B, T-1, 2, H, W)``
        flow implies: its H and W, T frames, all T decoded at once.

        Raises:
            InputError: ``flow`` is not a ``(B, T-1, 2, H, W)`` tensor (checked first: its shape is read here).
        """
        cls.check_flow(flow)
        height = height or flow.shape[-2]
        width = width or flow.shape[-1]
        num_frames = num_frames if num_frames is not None else flow.shape[1] + 1
        return height, width, num_frames, num_frames if decode_chunk_size is None else decode_chunk_size

    def image_to_tensor(self, image: ImageInput) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 in [0, 1] at the image's own size (tensors are taken as [0, 1])."""
        if isinstance(image, torch.Tensor):
            return (image[None] if image.ndim == 3 else image).float()
        images = image if isinstance(image, list) else [image]
        return self.video_processor.numpy_to_pt(self.video_processor.pil_to_numpy(images))

    # ------------------------------------------------------------------------------------------- encoding

    def encode_image(self, pixels: torch.Tensor, device: torch.device, normalize: bool = False) -> torch.Tensor:
        """CLIP image embedding.

        Args:
            pixels: ``(B, 3, H, W)`` in [0, 1].
            device: execution device.
            normalize: apply CLIP's mean/std (SVD does; the released MOFA pipelines did not).

        Returns:
            ``(B, 1, D)`` in the image encoder's dtype.
        """
        size = self.image_encoder.config.image_size
        pixels = _resize_with_antialiasing(pixels.to(device), (size, size))
        if normalize:
            mean = getattr(self.feature_extractor, "image_mean", None) or CLIP_MEAN
            std = getattr(self.feature_extractor, "image_std", None) or CLIP_STD
            mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
            std = torch.tensor(std, device=device).view(1, 3, 1, 1)
            pixels = (pixels - mean) / std
        embeddings = self.image_encoder(pixels.to(dtype=self.image_encoder.dtype)).image_embeds
        return embeddings.unsqueeze(1)

    def encode_vae_image(
        self,
        image: ImageInput,
        height: int,
        width: int,
        noise_aug_strength: float,
        generator: torch.Generator | list[torch.Generator] | None,
        device: torch.device,
    ) -> torch.Tensor:
        """First-frame latents: ``mode()`` of the VAE posterior of the noise-augmented image, unscaled.

        Args:
            image: the first frame(s); resized to ``height`` x ``width`` and mapped to [-1, 1].
            noise_aug_strength: standard deviation of the Gaussian noise added to the [-1, 1] image.

        Returns:
            ``(B, 4, h, w)`` float (the VAE's dtype, upcast to fp32 for fp16 VAEs that ask for it).
        """
        pixels = self.video_processor.preprocess(image, height=height, width=width).to(device)
        noise = randn_tensor(pixels.shape, generator=generator, device=device, dtype=pixels.dtype)
        pixels = pixels + noise_aug_strength * noise
        needs_upcasting = self.vae.dtype == torch.float16 and self.vae.config.force_upcast
        if needs_upcasting:
            self.vae.to(dtype=torch.float32)
        latents = self.vae.encode(pixels.to(dtype=self.vae.dtype)).latent_dist.mode()
        if needs_upcasting:
            self.vae.to(dtype=torch.float16)
        return latents

    def get_add_time_ids(
        self, fps_id: int, motion_bucket_id: int, noise_aug_strength: float, batch_size: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """``(batch_size, 3)`` micro-conditioning ``[fps_id, motion_bucket_id, noise_aug_strength]``."""
        ids = [fps_id, motion_bucket_id, noise_aug_strength]
        expected = self.unet.add_embedding.linear_1.in_features
        if self.unet.config.addition_time_embed_dim * len(ids) != expected:
            raise ValueError(f"the UNet expects {expected} added-time features, not 3 x addition_time_embed_dim")
        return torch.tensor([ids], dtype=dtype).repeat(batch_size, 1)

    def prepare_latents(
        self,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial noise ``(B, T, 4, h, w)``, times the scheduler's initial sigma."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != tuple(shape):
            raise InputError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma

    def encode_conditions(
        self,
        image: ImageInput,
        controlnet_condition: ImageInput | None,
        height: int,
        width: int,
        fps_id: int,
        motion_bucket_id: int,
        noise_aug_strength: float,
        normalize_clip_input: bool,
        num_videos_per_prompt: int,
        generator: torch.Generator | list[torch.Generator] | None,
        device: torch.device,
    ) -> dict[str, torch.Tensor]:
        """The conditions every window and step share, encoded once per call, without the guidance halves.

        Arguments as for :meth:`__call__`; the VAE encoding draws its noise from ``generator``.

        Returns:
            ``image_embeddings (B, 1, D)`` (CLIP), ``image_latents (B, 4, h, w)`` (VAE), ``added_time_ids
            (B, 3)`` and ``controlnet_cond (B, 3, H, W)`` in [-1, 1] (the adapters' first frame), B = images
            times ``num_videos_per_prompt``, on ``device`` in the image encoder's dtype.
        """
        pixels = self.image_to_tensor(image)
        image_embeddings = self.encode_image(pixels, device, normalize_clip_input)
        image_latents = self.encode_vae_image(image, height, width, noise_aug_strength, generator, device)
        dtype = image_embeddings.dtype
        batch_size = self.batch_size_of(image) * num_videos_per_prompt
        added_time_ids = self.get_add_time_ids(fps_id, motion_bucket_id, noise_aug_strength, batch_size, dtype)
        cond_image = self.video_processor.preprocess(
            image if controlnet_condition is None else controlnet_condition, height=height, width=width
        )
        return {
            "image_embeddings": image_embeddings.repeat_interleave(num_videos_per_prompt, dim=0),
            "image_latents": image_latents.to(dtype).repeat_interleave(num_videos_per_prompt, dim=0),
            "added_time_ids": added_time_ids.to(device),
            "controlnet_cond": cond_image.to(device, dtype).repeat_interleave(num_videos_per_prompt, dim=0),
        }

    @staticmethod
    def double_for_guidance(conditioning: dict[str, torch.Tensor], names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """``conditioning`` with the two halves of classifier-free guidance, unconditional first.

        The unconditional half gets zero ``image_embeddings`` and ``image_latents``; the tensors in ``names``
        (micro-conditioning, the adapters' inputs) are the same in both halves; other entries are kept as given.
        """
        doubled = dict(conditioning)
        for name in ("image_embeddings", "image_latents"):
            doubled[name] = torch.cat([torch.zeros_like(conditioning[name]), conditioning[name]])
        for name in names:
            doubled[name] = torch.cat([conditioning[name]] * 2)
        return doubled

    @staticmethod
    def adapter_flow(flow: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The flow as the adapters get it: float32 on ``device``, first rounded to float16 when the models run in
        float16 (the released pipelines cast the flow to the weights' dtype; splatting then upcasts it)."""
        if dtype == torch.float16:
            flow = flow.to(device, torch.float16)
        return flow.to(device, torch.float32)

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int) -> torch.Tensor:
        """``(B, T, 4, h, w)`` latents -> ``(B, 3, T, H, W)`` float32 frames in about [-1, 1].

        As the released pipelines: the latents are cast to the VAE's dtype first, then multiplied by the
        reciprocal of the scaling factor (which rounds differently from dividing by it)."""
        batch_size, num_frames = latents.shape[:2]
        latents = 1 / self.vae.config.scaling_factor * latents.flatten(0, 1).to(dtype=self.vae.dtype)
        frames = []
        for start in range(0, latents.shape[0], decode_chunk_size):
            chunk = latents[start : start + decode_chunk_size]
            frames.append(self.vae.decode(chunk, num_frames=chunk.shape[0]).sample)
        frames = torch.cat(frames).reshape(batch_size, num_frames, *frames[0].shape[1:])
        return frames.permute(0, 2, 1, 3, 4).float()

    # ------------------------------------------------------------------------------------------ denoising

    def window_condition(
        self, conditioning: dict[str, torch.Tensor], frame_indices: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The adapter's flow and warped first-frame features for one window.

        The warped features of all frames are computed once per video (at the first call) and sliced here.

        Args:
            conditioning: as for :meth:`predict_window`.
            frame_indices: ``(L,)`` the window's frames, ``[0, a, a+1, ..., b-1]``.
            dtype: the dtype of the UNet input (the features are added to it).

        Returns:
            ``(flow, warped)``: ``(B', L-1, 2, H, W)`` flow (a view of the video's) and one
            ``(B'·L, C_k, h_k, w_k)`` tensor per level.
        """
        video_flow = conditioning["controlnet_flow"]
        state = self._adapter_state
        if state.warped_condition is None:
            state.warped_condition = self.controlnet.prepare_condition(
                conditioning["controlnet_cond"], video_flow, dtype
            )
        first, length = int(frame_indices[1]), len(frame_indices)  # windows are frame 0 + frames a..b-1
        flow = video_flow[:, first - 1 : first - 1 + length - 1]
        if length == video_flow.shape[1] + 1:
            return flow, state.warped_condition
        num_videos = video_flow.shape[0]
        warped = [
            level.unflatten(0, (num_videos, -1))[:, frame_indices].flatten(0, 1) for level in state.warped_condition
        ]
        return flow, warped

    def adapter_kwargs(
        self, sample: torch.Tensor, conditioning: dict[str, torch.Tensor], frame_indices: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Extra keyword arguments of the adapter's call for one window: none for the trajectory adapter.

        A subclass whose adapter reads more per frame (the landmark adapter's pose images) returns it here, in
        the batch layout of ``sample`` ``(B', L, 8, h, w)``; ``frame_indices`` ``(L,)`` are the window's frames.
        """
        return {}

    def adapter_residuals(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        frame_indices: torch.Tensor,
        conditioning_scale: float,
    ) -> tuple[tuple[torch.Tensor, ...] | None, torch.Tensor | None]:
        """The adapter's residuals for one window at the current step, as the adapter schedule says.

        Args:
            sample: ``(B', L, 8, h, w)`` the UNet's input for the window.
            timestep, conditioning, conditioning_scale: as for :meth:`predict_window`.
            frame_indices: ``(L,)`` the window's frames.

        Returns:
            ``(down, mid)`` residuals (``(B'·L, C, h_j, w_j)`` each), or ``(None, None)`` at a skipped step.
        """

        def run_adapter() -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            flow, warped = self.window_condition(conditioning, frame_indices, sample.dtype)
            return self.controlnet(
                sample,
                timestep,
                encoder_hidden_states=conditioning["image_embeddings"],
                added_time_ids=conditioning["added_time_ids"],
                controlnet_cond=conditioning["controlnet_cond"],
                controlnet_flow=flow,
                conditioning_scale=conditioning_scale,
                return_dict=False,
                warped_condition=warped,
                **self.adapter_kwargs(sample, conditioning, frame_indices),
            )[:2]

        return self.scheduled_residuals(frame_indices, run_adapter)

    def scheduled_residuals(
        self,
        frame_indices: torch.Tensor,
        run_adapters: Callable[[], tuple[tuple[torch.Tensor, ...], torch.Tensor]],
    ) -> tuple[tuple[torch.Tensor, ...] | None, torch.Tensor | None]:
        """The residuals for one window at the current step, as the adapter schedule says: ``run_adapters()`` at
        a ``run`` step (kept when the schedule reuses them), the window's kept ones at a ``reuse`` step, none
        (``(None, None)``) at a ``skip`` step.

        Args:
            frame_indices: ``(L,)`` the window's frames (``[0, a, ..., b-1]``); a window is kept per ``(a, L)``.
            run_adapters: computes the window's ``(down, mid)`` residuals now.
        """
        state = self._adapter_state
        window = (int(frame_indices[1]), len(frame_indices))
        if state.action == REUSE and window in state.residuals:
            return state.residuals[window]
        if state.action not in (RUN, REUSE):
            return None, None
        residuals = run_adapters()
        if state.keeps_residuals:
            state.residuals[window] = residuals
        return residuals

    def start_adapter_step(self, step_index: int, num_steps: int) -> None:
        """Before denoising step ``step_index`` of ``num_steps``: set what the adapter does at it (schedule)."""
        self._adapter_state.action = self._adapter_state.schedule.action(step_index, num_steps)

    def guided_prediction(
        self,
        scaled_latents: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        guidance_scale: torch.Tensor,
        residuals_fn: Callable[[torch.Tensor], tuple[tuple[torch.Tensor, ...] | None, torch.Tensor | None]],
    ) -> torch.Tensor:
        """The guided v-prediction for one window, given how to get the adapter residuals for it.

        The UNet's input is the window's latents (doubled when ``conditioning`` holds the two guidance halves)
        with the first-frame latents concatenated on channels; the output's halves are mixed per position.

        Args:
            scaled_latents: ``(B, L, 4, h, w)`` noisy latents already divided by ``sqrt(sigma^2 + 1)``.
            timestep: the UNet timestep (``0.25·ln sigma``).
            conditioning: at least ``image_embeddings (B', 1, D)``, ``image_latents (B', 4, h, w)`` and
                ``added_time_ids (B', 3)``, B' = 2B (unconditional half first) with guidance, else B.
            guidance_scale: ``(1, L, 1, 1, 1)`` per-position guidance.
            residuals_fn: ``fn(sample (B', L, 8, h, w)) -> (down, mid)`` residuals for the UNet (or Nones).

        Returns:
            ``(B, L, 4, h, w)`` model output.
        """
        do_cfg = conditioning["image_embeddings"].shape[0] != scaled_latents.shape[0]
        num_window_frames = scaled_latents.shape[1]
        sample = torch.cat([scaled_latents] * 2) if do_cfg else scaled_latents
        image_latents = conditioning["image_latents"].unsqueeze(1).expand(-1, num_window_frames, -1, -1, -1)
        sample = torch.cat([sample, image_latents.to(sample.dtype)], dim=2)
        down_residuals, mid_residual = residuals_fn(sample)
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

    def predict_window(
        self,
        frame_indices: torch.Tensor,
        scaled_latents: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: dict[str, torch.Tensor],
        guidance_scale: torch.Tensor,
        conditioning_scale: float,
    ) -> torch.Tensor:
        """The guided v-prediction for one window of frames, with the adapter's residuals.

        Args:
            frame_indices: ``(L,)`` the window's frames in the video, frame 0 first.
            scaled_latents: ``(B, L, 4, h, w)`` noisy latents already divided by ``sqrt(sigma^2 + 1)``.
            timestep: the UNet timestep (``0.25·ln sigma``).
            conditioning: ``image_embeddings (B', 1, D)``, ``image_latents (B', 4, h, w)``,
                ``added_time_ids (B', 3)``, ``controlnet_cond (B', 3, H, W)`` and ``controlnet_flow
                (B', T-1, 2, H, W)``, where B' = 2B (unconditional half first) with guidance, else B.
            guidance_scale: ``(1, L, 1, 1, 1)`` per-position guidance.
            conditioning_scale: multiplies the adapter's residuals.

        Returns:
            ``(B, L, 4, h, w)`` model output.
        """
        return self.guided_prediction(
            scaled_latents,
            timestep,
            conditioning,
            guidance_scale,
            lambda sample: self.adapter_residuals(sample, timestep, conditioning, frame_indices, conditioning_scale),
        )

    def prepare_noise(
        self,
        num_inference_steps: int,
        batch_size: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the scheduler's steps and draw the initial latents.

        Returns:
            ``(timesteps, latents)``: the scheduler's timesteps and ``(B, T, 4, h, w)`` latents (``latents`` if
            given, else noise from ``generator``) times the initial sigma.
        """
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latent_shape = (
            batch_size, num_frames, self.vae.config.latent_channels,
            height // self.vae_scale_factor, width // self.vae_scale_factor,
        )  # fmt: skip
        return self.scheduler.timesteps, self.prepare_latents(latent_shape, dtype, device, generator, latents)

    def plan_windows(self, num_frames: int, window_size: int, window_stride: int | None) -> list[tuple[int, int]]:
        """The denoising windows ``[(a, b), ...]`` (:func:`utils.periodic_sampling.get_views`); more than one
        needs a scheduler periodic sampling can step (:meth:`check_periodic_scheduler`)."""
        views = get_views(num_frames, window_size, window_stride)
        if len(views) > 1:
            self.check_periodic_scheduler()
        return views

    @staticmethod
    def guidance_ramp(
        min_guidance_scale: float, max_guidance_scale: float, window_length: int, device: torch.device
    ) -> torch.Tensor:
        """``(1, L, 1, 1, 1)`` guidance per position in a window, growing linearly from min to max."""
        guidance_scale = torch.linspace(min_guidance_scale, max_guidance_scale, window_length, device=device)
        return guidance_scale.view(1, window_length, 1, 1, 1)

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        views: list[tuple[int, int]],
        predict_window_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        callback_on_step_end: Callable[..., dict] | None,
        callback_on_step_end_tensor_inputs: list[str],
        before_step: Callable[[int, int], None] | None = None,
        callback_on_window_end: WindowEndCallback | None = None,
    ) -> torch.Tensor:
        """The denoising loop: one window steps with the scheduler, several with periodic sampling.

        Args:
            latents: ``(B, T, 4, h, w)`` initial latents (:meth:`prepare_noise`).
            timesteps: the scheduler's timesteps.
            views: the windows (:meth:`plan_windows`).
            predict_window_fn: ``fn(frame_indices (L,), scaled_latents (B, L, 4, h, w), timestep)`` -> the
                window's guided model output ``(B, L, 4, h, w)``.
            callback_on_step_end, callback_on_step_end_tensor_inputs: as for :meth:`__call__`.
            before_step: ``fn(step_index, num_steps)`` called before every step.
            callback_on_window_end: as for :meth:`__call__`.

        Returns:
            ``(B, T, 4, h, w)`` denoised latents.
        """
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step_index, timestep in enumerate(timesteps):
                if before_step is not None:
                    before_step(step_index, len(timesteps))
                if len(views) == 1:
                    scaled = self.scheduler.scale_model_input(latents, timestep)
                    model_output = predict_window_fn(window_frame_indices(views[0], latents.device), scaled, timestep)
                    latents = self.scheduler.step(model_output, timestep, latents).prev_sample
                else:
                    latents = self.periodic_step(
                        latents, views, predict_window_fn, step_index, timestep, callback_on_window_end
                    )
                if callback_on_step_end is not None:
                    available = {"latents": latents}
                    tensors = {name: available[name] for name in callback_on_step_end_tensor_inputs}
                    latents = callback_on_step_end(self, step_index, timestep, tensors).pop("latents", latents)
                progress_bar.update()
        return latents

    def periodic_step(
        self,
        latents: torch.Tensor,
        views: list[tuple[int, int]],
        predict_window_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        step_index: int,
        timestep: torch.Tensor,
        callback_on_window_end: WindowEndCallback | None = None,
    ) -> torch.Tensor:
        """One step of periodic sampling: every window from the same sigma pair, with the functional Euler step,
        averaged (:func:`utils.periodic_sampling.periodic_denoise_step`). Shapes as for :meth:`denoise`;
        ``callback_on_window_end`` as for :meth:`__call__`."""
        sigma = self.scheduler.sigmas[step_index].item()
        sigma_next = self.scheduler.sigmas[step_index + 1].item()
        num_windows = len(weighted_views(views))
        done_windows = iter(range(num_windows))

        def denoise_window(frame_indices: torch.Tensor, window_latents: torch.Tensor) -> torch.Tensor:
            model_output = predict_window_fn(frame_indices, window_latents / (sigma**2 + 1) ** 0.5, timestep)
            if callback_on_window_end is not None:
                callback_on_window_end(step_index, next(done_windows), num_windows)
            return model_output

        return periodic_denoise_step(latents, views, denoise_window, sigma, sigma_next)

    def finish(
        self, latents: torch.Tensor, output_type: str, decode_chunk_size: int
    ) -> list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor:
        """The frames of the denoised ``(B, T, 4, h, w)`` latents as ``output_type`` asks (see
        :class:`FlowControlNetPipelineOutput`), then the models' offload hooks released."""
        if output_type == "latent":
            frames = latents
        else:
            frames = self.decode_latents(latents, decode_chunk_size)
            frames = self.video_processor.postprocess_video(video=frames, output_type=output_type)
        self.maybe_free_model_hooks()
        return frames

    def denoise_and_decode(
        self,
        conditioning: dict[str, torch.Tensor],
        predict_window_fn: Callable[..., torch.Tensor],
        *,
        batch_size: int,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        min_guidance_scale: float,
        max_guidance_scale: float,
        window_size: int,
        window_stride: int | None,
        adapter_schedule: AdapterSchedule | None,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        output_type: str,
        decode_chunk_size: int,
        callback_on_step_end: Callable[..., dict] | None,
        callback_on_step_end_tensor_inputs: list[str],
        device: torch.device,
        callback_on_window_end: WindowEndCallback | None = None,
    ) -> list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor:
        """The steps after the conditions are encoded, shared by every pipeline built on this one: the scheduler's
        steps and the initial noise (:meth:`prepare_noise`), the windows (:meth:`plan_windows`) and the guidance
        per window position (:meth:`guidance_ramp`), the denoising loop with the adapter state of
        ``adapter_schedule`` (:meth:`denoise`, :meth:`start_adapter_step`), then :meth:`finish`.

        Whatever happens once the conditions are encoded, the cached adapter state is released
        (:meth:`release_adapter_state`) before decoding or on an error.

        Args:
            conditioning: the encoded conditions (see :meth:`predict_window`), ``image_embeddings`` ``(B', 1, D)``
                giving the latents' dtype; what the subclass caches in it is released here.
            predict_window_fn: ``fn(frame_indices (L,), scaled_latents (B, L, 4, h, w), timestep, *,
                conditioning, guidance_scale (1, L, 1, 1, 1)) -> (B, L, 4, h, w)`` the guided model output of one
                window (:meth:`predict_window` with its adapter strengths bound).
            batch_size: B, the videos (images times ``num_videos_per_prompt``).
            device: execution device. Other arguments as for :meth:`__call__`.

        Returns:
            The frames as ``output_type`` asks (see :class:`FlowControlNetPipelineOutput`).
        """
        try:
            timesteps, latents = self.prepare_noise(
                num_inference_steps, batch_size, num_frames, height, width, conditioning["image_embeddings"].dtype,
                device, generator, latents,
            )  # fmt: skip
            views = self.plan_windows(num_frames, window_size, window_stride)
            window_length = min(num_frames, window_size)
            guidance_scale = self.guidance_ramp(min_guidance_scale, max_guidance_scale, window_length, device)
            schedule = adapter_schedule or FAITHFUL
            self._adapter_state = AdapterState(schedule, keeps_residuals=REUSE in schedule.actions(len(timesteps)))
            predict = partial(predict_window_fn, conditioning=conditioning, guidance_scale=guidance_scale)
            latents = self.denoise(
                latents, timesteps, views, predict, callback_on_step_end, callback_on_step_end_tensor_inputs,
                before_step=self.start_adapter_step, callback_on_window_end=callback_on_window_end,
            )  # fmt: skip
        finally:
            self.release_adapter_state(conditioning)  # before decoding, or on an error
        return self.finish(latents, output_type, decode_chunk_size)

    def release_adapter_state(self, conditioning: dict[str, torch.Tensor]) -> None:
        """Free the per-video adapter work kept across steps: the :class:`AdapterState` (warped features, kept
        residuals). A subclass that caches more in ``conditioning`` removes it here too."""
        vars(self).pop("_adapter_state", None)  # absent when preparing the noise failed

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        controlnet_flow: torch.Tensor,
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
        conditioning_scale: float = 1.0,
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
    ) -> FlowControlNetPipelineOutput | tuple:
        """Generate videos that start at ``image`` and move along ``controlnet_flow``.

        Args:
            image: first frame(s): a PIL image, a list of B PIL images, or a float tensor ``(3, H, W)`` /
                ``(B, 3, H, W)`` in [0, 1]; resized to ``height`` x ``width`` for the VAE.
            controlnet_flow: ``(B, T-1, 2, H, W)`` flow from frame 0 to frames 1..T-1 in pixels (x first).
            controlnet_condition: the adapter's first frame (default: ``image``), same forms as ``image``.
            height, width: frame size; default the flow's; multiples of ``controlnet.size_multiple`` (64).
            num_frames: T (>= 2); default ``controlnet_flow.shape[1] + 1``.
            num_inference_steps: denoising steps (25).
            min_guidance_scale, max_guidance_scale: guidance grows linearly over the frames of a window from
                min to max; ``max_guidance_scale <= 1`` disables classifier-free guidance (one batch, faster).
            fps_id: micro-conditioning frame-rate id (6, what the released weights were used with; diffusers'
                ``fps`` minus one). Not the playback rate of a written video.
            motion_bucket_id: micro-conditioning motion amount (128).
            noise_aug_strength: noise added to the first frame before encoding, and its micro-conditioning id.
            conditioning_scale: multiplies the adapter's residuals (the demos use 0.6).
            normalize_clip_input: apply CLIP's mean/std before the image encoder (off, as released).
            decode_chunk_size: frames decoded at a time (default: all T).
            window_size: frames per denoising window, frame 0 included (25, the adapter's training length);
                longer videos use overlapping frame-0-anchored windows averaged after every step.
            window_stride: shift between windows (default ``window_size // 2``).
            adapter_schedule: at which steps the adapter runs (:mod:`utils.adapter_schedule`); default every
                step. ``utils.adapter_schedule.FAST`` runs it every 4th step and reuses its residuals in between
                (fast mode).
            temporal_context: the image embedding each temporal cross-attention sees
                (:mod:`models.temporal_context`): ``"original"`` as diffusers 0.24 computed it for the released
                results, or ``"per_video"`` as today's diffusers does; they differ only with guidance or B > 1.
            num_videos_per_prompt: videos per input image.
            generator: random generator(s) for the noise augmentation and the initial latents.
            latents: initial noise ``(B·num_videos_per_prompt, T, 4, h, w)`` (before the initial sigma).
            output_type: ``pil``, ``np``, ``pt`` or ``latent`` (see :class:`FlowControlNetPipelineOutput`).
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict`` after every step; a returned
                ``latents`` replaces the current ones.
            callback_on_step_end_tensor_inputs: names passed in ``tensors`` (default ``["latents"]``).
            callback_on_window_end: ``fn(step_index, window_index, num_windows)`` after each window of a step of
                periodic sampling (videos longer than ``window_size``), e.g. for progress within a step.
            return_dict: return a :class:`FlowControlNetPipelineOutput` rather than ``(frames, flow)``.

        Returns:
            :class:`FlowControlNetPipelineOutput` with the frames and the flow used
            (``(B·num_videos_per_prompt, T-1, 2, H, W)`` float32).
        """
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        height, width, num_frames, decode_chunk_size = self.default_sizes(
            controlnet_flow, height, width, num_frames, decode_chunk_size
        )
        self.check_inputs(
            image, controlnet_condition, controlnet_flow, height, width, num_frames, num_inference_steps,
            decode_chunk_size, num_videos_per_prompt, window_size, window_stride, output_type,
            callback_on_step_end_tensor_inputs,
        )  # fmt: skip
        device = self._execution_device
        self.set_temporal_context(temporal_context)

        # 1. conditions, encoded once; the unconditional half gets zero image embeddings and latents only
        conditioning = self.encode_conditions(
            image, controlnet_condition, height, width, fps_id, motion_bucket_id, noise_aug_strength,
            normalize_clip_input, num_videos_per_prompt, generator, device,
        )  # fmt: skip
        flow = self.adapter_flow(controlnet_flow, conditioning["image_embeddings"].dtype, device)
        conditioning["controlnet_flow"] = flow.repeat_interleave(num_videos_per_prompt, dim=0)
        if max_guidance_scale > 1.0:
            same_in_both_halves = ("added_time_ids", "controlnet_cond", "controlnet_flow")
            conditioning = self.double_for_guidance(conditioning, same_in_both_halves)

        # 2.-4. noise, denoising with the adapter as the schedule says, decoding
        frames = self.denoise_and_decode(
            conditioning,
            partial(self.predict_window, conditioning_scale=conditioning_scale),
            batch_size=self.batch_size_of(image) * num_videos_per_prompt,
            num_frames=num_frames, height=height, width=width, num_inference_steps=num_inference_steps,
            min_guidance_scale=min_guidance_scale, max_guidance_scale=max_guidance_scale, window_size=window_size,
            window_stride=window_stride, adapter_schedule=adapter_schedule, generator=generator, latents=latents,
            output_type=output_type, decode_chunk_size=decode_chunk_size, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, device=device,
            callback_on_window_end=callback_on_window_end,
        )  # fmt: skip
        flow_used = flow.to(controlnet_flow.device).repeat_interleave(num_videos_per_prompt, dim=0)
        if not return_dict:
            return frames, flow_used
        return FlowControlNetPipelineOutput(frames=frames, controlnet_flow=flow_used)

    def set_temporal_context(self, temporal_context: str) -> None:
        """Set ``temporal_context`` (:mod:`models.temporal_context`) on every component that has one."""
        check_temporal_context(temporal_context)
        for component in self.components.values():
            if hasattr(component, "set_temporal_context"):
                component.set_temporal_context(temporal_context)

    def check_periodic_scheduler(self) -> None:
        """Periodic sampling steps every window with its own Euler update; it needs SVD's Euler v-prediction."""
        config = self.scheduler.config
        if not hasattr(self.scheduler, "sigmas") or config.get("prediction_type") != "v_prediction":
            raise ValueError(
                "videos longer than `window_size` need an Euler v-prediction scheduler (SVD's), "
                f"got {type(self.scheduler).__name__} with prediction_type={config.get('prediction_type')!r}"
            )
