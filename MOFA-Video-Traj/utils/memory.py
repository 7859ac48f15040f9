"""Memory presets: one word (``high``, ``balanced``, ``low``) for the levers that trade speed for GPU memory.

=========  =====================================  ============  ============  ============  ============
preset     where the weights live                 VAE decode    CMP batch     feed-forward  attention
=========  =====================================  ============  ============  ============  ============
high       all on the accelerator                 8 frames      all flows     whole         PyTorch SDPA
balanced   model CPU offload (one model at once)  8 frames      8 flows       chunked       PyTorch SDPA
low        sequential CPU offload (per layer)     2 frames      2 flows       chunked       PyTorch SDPA
=========  =====================================  ============  ============  ============  ============

Decoding 8 frames at a time is what the released demos did (the temporal decoder sees one chunk at a time).
Any preset can also compile the UNet and the adapter with ``torch.compile`` (``compile_models=True``): slower
first step, faster later ones, on GPUs.

Weights are fp16 on an accelerator (``bf16`` or ``fp32`` on request) and fp32 on the CPU. On the CPU the
offload levers do nothing useful, so they are skipped unless asked for (tests use that to check the hooks).
Use :func:`memory_plan` to see what a preset means for a device and :func:`apply_memory_preset` to apply it
to a diffusers pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from .errors import InputError

MEMORY_PRESETS = ("high", "balanced", "low")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

_PRESET_TABLE = {
    # preset: (offload, decode_chunk_size, cmp_chunk_size, forward_chunking)
    "high": ("none", 8, None, False),
    "balanced": ("model", 8, 8, True),
    "low": ("sequential", 2, 2, True),
}


@dataclass(frozen=True)
class MemoryPlan:
    """What a preset does on one device.

    Attributes:
        preset: ``high``, ``balanced`` or ``low``.
        device: the execution device.
        dtype: weight dtype of the diffusion models.
        decode_chunk_size: frames decoded by the VAE at a time.
        cmp_chunk_size: hint frames CMP turns into dense flow at a time (None: all at once).
        offload: ``none``, ``model`` (whole models moved on demand) or ``sequential`` (layer by layer).
        forward_chunking: feed-forward layers run one frame at a time.
        compile_models: the UNet and the adapter are compiled with ``torch.compile``.
    """

    preset: str
    device: torch.device
    dtype: torch.dtype
    decode_chunk_size: int
    cmp_chunk_size: int | None
    offload: str
    forward_chunking: bool
    compile_models: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly settings (for logs and the ``out.json`` of a run)."""
        settings = asdict(self)
        settings["device"] = str(self.device)
        settings["dtype"] = dtype_name(self.dtype)
        return settings


def dtype_name(dtype: torch.dtype) -> str:
    """``fp32`` / ``fp16`` / ``bf16`` for a torch dtype."""
    return {value: key for key, value in DTYPES.items()}[dtype]


def resolve_dtype(name: str | None, device: torch.device | str) -> torch.dtype:
    """The weight dtype: ``name`` if given (``fp32``, ``fp16``, ``bf16`` or ``auto``), else fp16 on an
    accelerator and fp32 on the CPU.

    Raises:
        InputError: an unknown dtype name.
    """
    if name in (None, "auto"):
        return torch.float32 if torch.device(device).type == "cpu" else torch.float16
    if name not in DTYPES:
        raise InputError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]


def memory_plan(
    preset: str,
    device: torch.device | str,
    dtype: str | None = None,
    offload: bool | None = None,
    compile_models: bool = False,
) -> MemoryPlan:
    """What ``preset`` means on ``device``.

    Args:
        preset: ``high``, ``balanced`` or ``low``.
        device: execution device (``cpu``, ``cuda``, ``cuda:1``, ``mps``...).
        dtype: ``fp32`` / ``fp16`` / ``bf16`` / ``auto`` (None = auto: fp16 on accelerators, fp32 on CPU).
        offload: None = the preset's offload on accelerators and none on the CPU; True = the preset's
            offload even on the CPU; False = never offload.
        compile_models: compile the UNet and the adapter with ``torch.compile``.

    Raises:
        InputError: an unknown preset or dtype.
    """
    if preset not in _PRESET_TABLE:
        raise InputError(f"memory preset must be one of {', '.join(MEMORY_PRESETS)}; got {preset!r}")
    device = torch.device(device)
    offload_mode, decode_chunk_size, cmp_chunk_size, forward_chunking = _PRESET_TABLE[preset]
    if offload is False or (offload is None and device.type == "cpu"):
        offload_mode = "none"
    return MemoryPlan(
        preset,
        device,
        resolve_dtype(dtype, device),
        decode_chunk_size,
        cmp_chunk_size,
        offload_mode,
        forward_chunking,
        compile_models,
    )


def set_forward_chunking(module: torch.nn.Module, chunk_size: int | None = 1, dim: int = 0) -> int:
    """Runs every feed-forward layer below ``module`` in chunks of ``chunk_size`` along ``dim`` (None: whole).

    Works on any module tree that holds diffusers transformer blocks (the UNet and the adapters alike);
    temporal blocks always chunk over their token axis, which divides by any ``chunk_size`` of 1.

    Returns:
        The number of blocks set.
    """
    blocks = [child for child in module.modules() if hasattr(child, "set_chunk_feed_forward")]
    for block in blocks:
        block.set_chunk_feed_forward(chunk_size=chunk_size, dim=dim)
    return len(blocks)


def use_sdpa_attention(module: torch.nn.Module) -> int:
    """Makes every diffusers ``Attention`` below ``module`` use PyTorch's scaled-dot-product attention.

    Returns:
        The number of attention layers set.
    """
    layers = [child for child in module.modules() if isinstance(child, Attention)]
    for layer in layers:
        layer.set_processor(AttnProcessor2_0())
    return len(layers)


def apply_memory_preset(
    pipe,
    preset: str,
    device: torch.device | str,
    dtype: str | None = None,
    offload: bool | None = None,
    compile_models: bool = False,
) -> MemoryPlan:
    """Casts, places and configures a diffusers pipeline for ``preset`` (see the module table).

    Weights are cast to the plan's dtype, attention is set to SDPA, feed-forward chunking is switched on for
    ``balanced`` and ``low``, and the models are either moved to ``device`` or put behind accelerate's
    offload hooks with ``device`` as the execution device. The pipeline's denoising loop must then be called
    with ``decode_chunk_size=plan.decode_chunk_size``.

    Args:
        pipe: a ``DiffusionPipeline`` (``model_cpu_offload_seq`` set).
        preset, device, dtype, offload, compile_models: see :func:`memory_plan`.

    Returns:
        The applied :class:`MemoryPlan`.
    """
    plan = memory_plan(preset, device, dtype, offload, compile_models)
    pipe.remove_all_hooks()
    models = [component for component in pipe.components.values() if isinstance(component, torch.nn.Module)]
    for model in models:
        if next(model.parameters()).dtype != plan.dtype:
            model.to(dtype=plan.dtype)
        use_sdpa_attention(model)
        set_forward_chunking(model, 1 if plan.forward_chunking else None)
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=plan.device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    if plan.compile_models:
        for name in ("unet", "controlnet"):
            model = getattr(pipe, name, None)
            if model is not None:
                model.compile()
    return plan
