"""Memory-estimate worker (started by ``bench.py --memory-estimate``, one process per sub-project).

    python tests/bench/memory_worker.py CONFIG.json RESULT.json

Runs from a sub-project's folder with it first on ``sys.path``, builds that sub-project's full-size models as
fake CUDA tensors (:mod:`memory_estimate`) and runs one denoising step of the real pipeline for each memory
preset, recording the live bytes of every model call. Cases, by the config's ``case``:

- ``traj`` (MOFA-Video-Traj): (a) diffusers' ``StableVideoDiffusionPipeline`` and (b) our
  ``FlowControlNetPipeline`` with CMP;
- ``keypoint`` (MOFA-Video-Keypoint): (c) the landmark pipeline with CMP;
- ``hybrid`` (MOFA-Video-Hybrid): (d) both adapters with CMP.

The result holds, per case and preset, the phases (name, live bytes at start, peak) and the models (weight
bytes, largest layer, how offload treats them); ``bench.py`` turns them into peaks per preset.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBPROJECTS = {"traj": "MOFA-Video-Traj", "keypoint": "MOFA-Video-Keypoint", "hybrid": "MOFA-Video-Hybrid"}

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / SUBPROJECTS[json.loads(Path(sys.argv[1]).read_text())["case"]]))

import torch  # noqa: E402
from memory_estimate import (  # noqa: E402
    Component,
    FloatSigmaEuler,
    LiveMemory,
    assume_true_conditions,
    cast_for_real,
    fake_mode,
    gpu_attention_kernels,
    largest_layer_bytes,
    place,
    quick_chunked_feed_forward,
    readable_frame_indices,
    run_for_real,
    watch,
    weight_bytes,
)

UNET_LISTING = ROOT / "tests" / "traj" / "state_dicts" / "svd_unet.tsv"
SVD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}
"""SVD-xt's ``vae/config.json`` (AutoencoderKLTemporalDecoder)."""
SVD_CLIP_CONFIG = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 16,
    "num_hidden_layers": 32,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
"""SVD-xt's ``image_encoder/config.json`` (CLIP ViT-H/14 vision tower with projection)."""
ADAPTERS = {"a": 0, "b": 1, "c": 1, "d": 2}
"""How many adapters each case runs (for the analytic model)."""


def unet_config() -> dict:
    """The SVD-xt UNet config recorded with the released state-dict listing."""
    for line in UNET_LISTING.read_text().splitlines():
        if line.startswith("# config: "):
            return json.loads(line[len("# config: ") :])
    raise RuntimeError(f"no config line in {UNET_LISTING}")


def build(builder, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A full-size model from ``builder()`` as fake tensors on ``device`` in ``dtype``, in eval mode."""
    return place(builder().eval(), device, dtype)


def svd_parts(device: str, dtype: torch.dtype) -> dict:
    """Fake full-size ``vae``, ``image_encoder`` and ``unet`` (our UNet class; stock SVD without residuals)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

    return {
        "vae": build(lambda: AutoencoderKLTemporalDecoder(**SVD_VAE_CONFIG), device, dtype),
        "image_encoder": build(
            lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_CLIP_CONFIG)), device, dtype
        ),
        "unet": build(lambda: UNetSpatioTemporalConditionControlNetModel(**unet_config()), device, dtype),
    }


def components_of(pipe, extra: dict[str, torch.nn.Module]) -> dict[str, Component]:
    """Offload accounting entries for the pipeline's models (chain, hooked outside it, or excluded) and
    ``extra`` models outside the pipeline (resident: CMP)."""
    chain = pipe.model_cpu_offload_seq.split("->")
    excluded = set(getattr(pipe, "_exclude_from_cpu_offload", []))
    models = {name: value for name, value in pipe.components.items() if isinstance(value, torch.nn.Module)}
    entries = {}
    for name, model in {**models, **extra}.items():
        offload = "resident" if name in extra else "chain" if name in chain else "hooked"
        entries[name] = Component(name, weight_bytes(model), largest_layer_bytes(model), offload, name in excluded)
    return entries


def configure_models(models, chunked: bool) -> None:
    """SDPA attention and feed-forward chunking on or off, as :func:`utils.memory.apply_memory_preset` sets them."""
    from utils.memory import set_forward_chunking, use_sdpa_attention

    for model in models:
        use_sdpa_attention(model)
        set_forward_chunking(model, 1 if chunked else None)


def record(pipe, counter: LiveMemory) -> None:
    """Phases for every model call of ``pipe``: ``<model>.forward`` and ``vae.encode`` / ``vae.decode``."""
    for name, value in pipe.components.items():
        if isinstance(value, torch.nn.Module) and name != "vae":
            watch(counter, value, "forward", f"{name}.forward")
    watch(counter, pipe.vae, "encode", "vae.encode")
    watch(counter, pipe.vae, "decode", "vae.decode")


def run_cmp(cmp, counter: LiveMemory, num_flows: int, chunk_size: int | None, device: str) -> None:
    """CMP on the 384 grid for ``num_flows`` hint sets, as the animators call it (``cmp.dense_flow`` phase)."""
    from models.cmp import CMP_GRID_SIZE

    grid = CMP_GRID_SIZE
    image = torch.rand(1, 3, grid, grid, device=device)
    sparse = torch.zeros(num_flows, 2, grid, grid, device=device)
    mask = torch.zeros(num_flows, 2, grid, grid, device=device)
    with counter:
        flow = cmp.dense_flow(image, sparse, mask, chunk_size=chunk_size)
    del flow


def prepare(mode, pipe, counter: LiveMemory, scheduler, pipeline_module) -> None:
    """Make ``pipe`` runnable on fake tensors (see :mod:`memory_estimate`)."""
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = FloatSigmaEuler(scheduler)
    run_for_real(mode, pipe.video_processor, "preprocess")
    cast_for_real(counter, pipe.vae)
    if hasattr(pipeline_module, "window_frame_indices"):
        readable_frame_indices(mode, pipeline_module)


def run_case(config: dict) -> dict:
    """Every preset of the worker's case: ``{label: {preset: {"phases": [...], "components": {...}}}}``."""
    from PIL import Image

    from utils.memory import memory_plan
    from utils.scheduling import build_svd_scheduler

    device, dtype = "cuda", torch.float16
    size, frames, steps = config["size"], config["frames"], config["steps"]
    scheduler = build_svd_scheduler()
    mode = fake_mode()
    results: dict = {}
    with mode, gpu_attention_kernels(), quick_chunked_feed_forward(), assume_true_conditions():
        parts = svd_parts(device, dtype)
        pipelines, cmp = build_pipelines(config["case"], parts, device, dtype)
        image = Image.new("RGB", (size, size), (128, 96, 64))
        counter = LiveMemory()
        watch(counter, cmp, "dense_flow", "cmp.dense_flow")
        for label, (pipe, module, call) in pipelines.items():
            results[label] = {}
            prepare(mode, pipe, counter, scheduler, module)
            record(pipe, counter)
            uses_cmp = label != "a"
            for preset in config["presets"]:
                plan = memory_plan(preset, device, "fp16")
                models = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
                configure_models(models, plan.forward_chunking)
                counter.clear_phases()
                started = time.monotonic()
                if uses_cmp:
                    run_cmp(cmp, counter, frames - 1, plan.cmp_chunk_size, device)
                with counter, torch.no_grad():
                    call(pipe, image, size, frames, steps, plan.decode_chunk_size)
                extra = {"cmp": cmp} if uses_cmp else {}
                results[label][preset] = {
                    "plan": plan.as_dict(),
                    "phases": [vars(phase) for phase in counter.phases],
                    "components": {name: vars(entry) for name, entry in components_of(pipe, extra).items()},
                    "chain": pipe.model_cpu_offload_seq.split("->"),
                    "adapters": ADAPTERS[label],
                    "geometry": geometry(pipe, size, frames),
                    "seconds": time.monotonic() - started,
                }
                print(
                    f"[memory] {config['case']} {label} {preset}: {time.monotonic() - started:.0f} s", file=sys.stderr
                )
    return results


def geometry(pipe, size: int, frames: int) -> dict:
    """The sizes the analytic model needs (:class:`memory_estimate.Geometry`), guidance on (B' = 2)."""
    config = pipe.unet.config
    return {
        "frames": frames,
        "batch": 2,
        "latent_size": size // pipe.vae_scale_factor,
        "size": size,
        "block_out_channels": list(config.block_out_channels),
        "layers_per_block": config.layers_per_block
        if isinstance(config.layers_per_block, int)
        else config.layers_per_block[0],
        "bytes_per_element": 2,
    }


def build_pipelines(case: str, parts: dict, device: str, dtype: torch.dtype) -> tuple[dict, object]:
    """``({label: (pipeline, its module, call)}, CMP)`` for the case (CMP in fp32, as the animators run it)."""
    from models.cmp import CMP

    cmp = build(CMP, device, torch.float32)
    if case == "traj":
        from diffusers import StableVideoDiffusionPipeline
        from diffusers.pipelines.stable_video_diffusion import pipeline_stable_video_diffusion as svd_module

        import pipeline.pipeline_flow_controlnet as traj_module
        from models.flow_controlnet import FlowControlNet
        from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline
        from utils.tiny import tiny_feature_extractor

        adapter = build(FlowControlNet, device, dtype)
        ours = FlowControlNetPipeline(controlnet=adapter, scheduler=None, **parts)
        plain = StableVideoDiffusionPipeline(feature_extractor=tiny_feature_extractor(), scheduler=None, **parts)
        return {"a": (plain, svd_module, call_plain_svd), "b": (ours, traj_module, call_traj)}, cmp
    if case == "keypoint":
        import pipeline.pipeline_flow_controlnet as base_module
        from models.ldmk_controlnet import LandmarkFlowControlNet
        from pipeline.pipeline_landmark_flow_controlnet import LandmarkFlowControlNetPipeline

        adapter = build(LandmarkFlowControlNet, device, dtype)
        pipe = LandmarkFlowControlNetPipeline(controlnet=adapter, scheduler=None, **parts)
        return {"c": (pipe, base_module, call_keypoint)}, cmp
    import pipeline.pipeline_flow_controlnet as base_module
    from models.flow_controlnet import FlowControlNet
    from models.ldmk_controlnet import LandmarkFlowControlNet
    from pipeline.pipeline_hybrid_flow_controlnet import HybridFlowControlNetPipeline

    trajectory, landmark = build(FlowControlNet, device, dtype), build(LandmarkFlowControlNet, device, dtype)
    pipe = HybridFlowControlNetPipeline(controlnet=trajectory, ldmk_controlnet=landmark, scheduler=None, **parts)
    return {"d": (pipe, base_module, call_hybrid)}, cmp


def _flow(frames: int, size: int) -> torch.Tensor:
    return torch.zeros(1, frames - 1, 2, size, size, device="cuda")


def call_plain_svd(pipe, image, size, frames, steps, decode_chunk):
    return pipe(image, height=size, width=size, num_frames=frames, num_inference_steps=steps,
                decode_chunk_size=decode_chunk, output_type="pt")  # fmt: skip


def call_traj(pipe, image, size, frames, steps, decode_chunk):
    return pipe(image, _flow(frames, size), num_inference_steps=steps, decode_chunk_size=decode_chunk,
                output_type="pt")  # fmt: skip


def call_keypoint(pipe, image, size, frames, steps, decode_chunk):
    pose_images = torch.zeros(1, frames, 3, size, size, device="cuda")
    return pipe(image, _flow(frames, size), pose_images, num_inference_steps=steps, decode_chunk_size=decode_chunk,
                output_type="pt")  # fmt: skip


def call_hybrid(pipe, image, size, frames, steps, decode_chunk):
    pose_images = torch.zeros(1, frames, 3, size, size, device="cuda")
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[: size // 2] = True  # both adapters in use
    return pipe(image, _flow(frames, size), _flow(frames, size), pose_images, mask, num_inference_steps=steps,
                decode_chunk_size=decode_chunk, output_type="pt")  # fmt: skip


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(config.get("threads") or 1)
    Path(sys.argv[2]).write_text(json.dumps(run_case(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
