"""Write the golden fixtures in ``tests/golden/`` from the reference software stack (diffusers 0.24.0).

Dev-only: ``make golden`` (never part of ``make test``). The script installs the reference packages into a
temporary directory with ``pip install --no-deps --target``, runs itself again with that directory first on
``sys.path`` (torch, numpy and safetensors come from the project's environment), and writes:

- ``unet.safetensors``: a tiny stock 0.24 ``UNetSpatioTemporalConditionModel`` at batch 2 (unconditional and
  conditional rows with different image embeddings), its output without residuals, and with residuals added
  the way the released UNet does (inside the down-block loop, to every skip collected so far).
- ``adapter.safetensors``: the adapter's encoder as the original builds it (0.24 down blocks and mid block)
  with its warped-feature injections and zero convs, at batch 2, given fixed warped features.
- ``guided_loop.safetensors``: a 3-step guided denoising loop of 0.24's Euler scheduler, UNet and adapter.

Weights are rounded to fp16 and stored as fp16 (computations are fp32), so the files stay small. Nothing
here imports the project's code; the tests load the fixtures into the project's models and compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent
REFERENCE_PACKAGES = ("diffusers==0.24.0", "huggingface_hub==0.23.5", "transformers==4.41.1", "tokenizers==0.19.1")
INNER_FLAG = "--inside-reference-stack"

BATCH, FRAMES, LATENT_SIZE = 2, 3, 8
UNET_CONFIG = {
    "sample_size": 32,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
    "block_out_channels": [32, 32],
    "addition_time_embed_dim": 32,
    "projection_class_embeddings_input_dim": 96,
    "layers_per_block": 2,
    "cross_attention_dim": 32,
    "num_attention_heads": [2, 4],
    "num_frames": 4,
}
ADAPTER_ENCODER_PREFIXES = ("conv_in.", "time_embedding.", "add_embedding.", "down_blocks.", "mid_block.")
LOOP_STEPS, MIN_GUIDANCE, MAX_GUIDANCE, CONDITIONING_SCALE = 3, 1.0, 3.0, 0.7
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def install_and_rerun() -> None:
    with tempfile.TemporaryDirectory() as target:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target]
        subprocess.run([*pip, *REFERENCE_PACKAGES], check=True)
        env = dict(os.environ, PYTHONPATH=target, HF_HUB_OFFLINE="1", HF_HOME=str(Path(target) / "hf_home"))
        subprocess.run([sys.executable, __file__, INNER_FLAG], check=True, env=env)


def main_in_reference_stack() -> None:  # noqa: C901 - one linear script
    import diffusers
    import torch
    from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    assert diffusers.__version__ == "0.24.0", diffusers.__version__
    torch.manual_seed(0)

    def tiny_model(seed: int) -> UNetSpatioTemporalConditionModel:
        torch.manual_seed(seed)
        model = UNetSpatioTemporalConditionModel(**UNET_CONFIG).eval()
        with torch.no_grad():
            for parameter in model.parameters():  # zero-initialised layers become non-zero; fp16-exact values
                parameter.add_(0.05 * torch.randn_like(parameter))
                parameter.copy_(parameter.half().float())
        return model

    def fp16_exact(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.half().float()

    def embedding(model, timestep, added_time_ids, num_frames):
        """The original's time embedding: ``(B·T, C_emb)``."""
        batch = added_time_ids.shape[0]
        timesteps = timestep.reshape(1).expand(batch)
        emb = model.time_embedding(model.time_proj(timesteps).to(torch.float32))
        time_embeds = model.add_time_proj(added_time_ids.flatten()).reshape(batch, -1)
        emb = emb + model.add_embedding(time_embeds)
        return emb.repeat_interleave(num_frames, dim=0)

    def run_block(block, hidden, emb, context, indicator):
        if getattr(block, "has_cross_attention", False):
            return block(hidden_states=hidden, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator)
        return block(hidden_states=hidden, temb=emb, image_only_indicator=indicator)

    def unet_with_residuals(model, sample, timestep, context, added_time_ids, down_residuals, mid_residual):
        """The released UNet's forward: the residuals are added to every skip so far after each down block."""
        batch, num_frames = sample.shape[:2]
        emb = embedding(model, timestep, added_time_ids, num_frames)
        context = context.repeat_interleave(num_frames, dim=0)
        hidden = model.conv_in(sample.flatten(0, 1))
        indicator = torch.zeros(batch, num_frames)
        skips = (hidden,)
        for block in model.down_blocks:
            hidden, block_skips = run_block(block, hidden, emb, context, indicator)
            skips += block_skips
            skips = tuple(skip + residual for skip, residual in zip(skips, down_residuals))
        hidden = model.mid_block(
            hidden_states=hidden, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator
        )
        hidden = hidden + mid_residual
        for block in model.up_blocks:
            block_skips, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            if getattr(block, "has_cross_attention", False):
                hidden = block(
                    hidden_states=hidden,
                    temb=emb,
                    res_hidden_states_tuple=block_skips,
                    encoder_hidden_states=context,
                    image_only_indicator=indicator,
                )
            else:
                hidden = block(
                    hidden_states=hidden, temb=emb, res_hidden_states_tuple=block_skips, image_only_indicator=indicator
                )
        hidden = model.conv_out(model.conv_act(model.conv_norm_out(hidden)))
        return hidden.reshape(batch, num_frames, *hidden.shape[1:])

    def adapter_forward(encoder, zero_convs, mid_zero_conv, sample, timestep, context, added_time_ids, warped, scale):
        """The original adapter's forward after its warped features: W0 after conv_in, W(k+1) after down block k
        (clamped to the coarsest), the coarsest again before the mid block; skips taken before each addition."""
        batch, num_frames = sample.shape[:2]
        emb = embedding(encoder, timestep, added_time_ids, num_frames)
        context = context.repeat_interleave(num_frames, dim=0)
        indicator = torch.zeros(batch, num_frames)
        hidden = encoder.conv_in(sample.flatten(0, 1)) + warped[0]
        skips = (hidden,)
        for index, block in enumerate(encoder.down_blocks):
            hidden, block_skips = run_block(block, hidden, emb, context, indicator)
            skips += block_skips
            hidden = hidden + warped[min(index + 1, len(warped) - 1)]
        hidden = hidden + warped[-1]
        mid = encoder.mid_block(
            hidden_states=hidden, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator
        )
        down = [conv(skip) * scale for conv, skip in zip(zero_convs, skips)]
        return down, mid_zero_conv(mid) * scale

    metadata = {
        "generator": "tests/golden/generate_golden.py",
        "reference_packages": json.dumps(REFERENCE_PACKAGES),
        "unet_config": json.dumps(UNET_CONFIG),
    }
    with torch.no_grad():
        # --- UNet ------------------------------------------------------------------------------------------
        unet = tiny_model(seed=1)
        sample = fp16_exact(torch.randn(BATCH, FRAMES, 8, LATENT_SIZE, LATENT_SIZE))
        timestep = torch.tensor(0.25 * torch.log(torch.tensor(30.0)).item())
        context = fp16_exact(torch.randn(BATCH, 1, UNET_CONFIG["cross_attention_dim"]))
        context[0] = 0.0  # the unconditional half of guidance: zero image embedding
        added_time_ids = torch.tensor([[6.0, 128.0, 0.02]] * BATCH)
        plain = unet(sample, timestep, context, added_time_ids, return_dict=False)[0]
        skip_shapes = []
        hidden = unet.conv_in(sample.flatten(0, 1))
        skip_shapes.append(hidden.shape)
        emb = embedding(unet, timestep, added_time_ids, FRAMES)
        indicator = torch.zeros(BATCH, FRAMES)
        for block in unet.down_blocks:
            hidden, block_skips = run_block(block, hidden, emb, context.repeat_interleave(FRAMES, 0), indicator)
            skip_shapes += [skip.shape for skip in block_skips]
        down_residuals = [fp16_exact(0.1 * torch.randn(shape)) for shape in skip_shapes]
        mid_residual = fp16_exact(0.1 * torch.randn(hidden.shape))
        with_residuals = unet_with_residuals(
            unet, sample, timestep, context, added_time_ids, down_residuals, mid_residual
        )
        tensors = {f"unet.{name}": value.half() for name, value in unet.state_dict().items()}
        tensors |= {
            "sample": sample,
            "timestep": timestep,
            "encoder_hidden_states": context,
            "added_time_ids": added_time_ids,
            "mid_residual": mid_residual,
            "output_without_residuals": plain,
            "output_with_residuals": with_residuals,
        }
        tensors |= {f"down_residual.{index}": residual for index, residual in enumerate(down_residuals)}
        save_file({k: v.contiguous() for k, v in tensors.items()}, OUT_DIR / "unet.safetensors", metadata)

        # --- adapter ---------------------------------------------------------------------------------------
        encoder = tiny_model(seed=2)
        torch.manual_seed(3)
        zero_convs = [torch.nn.Conv2d(shape[1], shape[1], 1) for shape in skip_shapes]
        mid_zero_conv = torch.nn.Conv2d(hidden.shape[1], hidden.shape[1], 1)
        for conv in [*zero_convs, mid_zero_conv]:
            conv.weight.copy_(fp16_exact(conv.weight))
            conv.bias.copy_(fp16_exact(conv.bias))
        level_shapes = [skip_shapes[0], skip_shapes[-1]]  # level 0 at the latent grid, level 1 one down
        warped = [fp16_exact(0.5 * torch.randn(shape)) for shape in level_shapes]
        down, mid = adapter_forward(
            encoder, zero_convs, mid_zero_conv, sample, timestep, context, added_time_ids, warped, CONDITIONING_SCALE
        )
        tensors = {
            f"adapter.{name}": value.half()
            for name, value in encoder.state_dict().items()
            if name.startswith(ADAPTER_ENCODER_PREFIXES)
        }
        for index, conv in enumerate(zero_convs):
            tensors |= {f"adapter.controlnet_down_blocks.{index}.{k}": v.half() for k, v in conv.state_dict().items()}
        tensors |= {f"adapter.controlnet_mid_block.{k}": v.half() for k, v in mid_zero_conv.state_dict().items()}
        tensors |= {f"warped.{index}": level for index, level in enumerate(warped)}
        tensors |= {f"down.{index}": residual for index, residual in enumerate(down)}
        tensors |= {"mid": mid, "conditioning_scale": torch.tensor(CONDITIONING_SCALE)}
        save_file({k: v.contiguous() for k, v in tensors.items()}, OUT_DIR / "adapter.safetensors", metadata)

        # --- guided loop: scheduler + adapter + UNet, guidance per frame ------------------------------------
        scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
        scheduler.set_timesteps(LOOP_STEPS)
        noise = fp16_exact(torch.randn(1, FRAMES, 4, LATENT_SIZE, LATENT_SIZE))
        image_latents = fp16_exact(torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE))
        both_image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
        both_image_latents = both_image_latents.unsqueeze(1).repeat(1, FRAMES, 1, 1, 1)
        guidance = torch.linspace(MIN_GUIDANCE, MAX_GUIDANCE, FRAMES).view(1, FRAMES, 1, 1, 1)
        latents = noise * scheduler.init_noise_sigma
        for step_timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), step_timestep)
            model_input = torch.cat([model_input, both_image_latents], dim=2)
            down, mid = adapter_forward(
                encoder,
                zero_convs,
                mid_zero_conv,
                model_input,
                step_timestep,
                context,
                added_time_ids,
                warped,
                CONDITIONING_SCALE,
            )
            prediction = unet_with_residuals(unet, model_input, step_timestep, context, added_time_ids, down, mid)
            uncond, cond = prediction.chunk(2)
            prediction = uncond + guidance * (cond - uncond)
            latents = scheduler.step(prediction, step_timestep, latents).prev_sample
        tensors = {
            "noise": noise,
            "image_latents": image_latents,
            "timesteps": scheduler.timesteps.float(),
            "sigmas": scheduler.sigmas.float(),
            "latents": latents,
            "guidance": torch.tensor([MIN_GUIDANCE, MAX_GUIDANCE]),
        }
        save_file({k: v.contiguous() for k, v in tensors.items()}, OUT_DIR / "guided_loop.safetensors", metadata)
    for name in ("unet", "adapter", "guided_loop"):
        print(f"wrote {OUT_DIR / name}.safetensors ({(OUT_DIR / f'{name}.safetensors').stat().st_size} bytes)")


if __name__ == "__main__":
    if INNER_FLAG in sys.argv:
        main_in_reference_stack()
    else:
        install_and_rerun()
