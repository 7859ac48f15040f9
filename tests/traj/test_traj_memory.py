"""Memory presets (utils/memory.py) on the tiny pipeline: what each preset sets, and that each one runs."""

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pipeline.trajectory_animator import build_tiny_components
from utils.errors import InputError
from utils.memory import MEMORY_PRESETS, apply_memory_preset, memory_plan, resolve_dtype

SIZE = 16


def _pipe():
    pipe = build_tiny_components(0)[0]
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe, plan):
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(1, 2, 2, SIZE, SIZE)
    return pipe(
        image, flow, num_inference_steps=1, decode_chunk_size=plan.decode_chunk_size, output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).frames  # fmt: skip


def _high_frames(decode_chunk_size):
    """The high preset's frames decoded ``decode_chunk_size`` frames at a time (the temporal decoder sees one
    chunk at a time, so the chunk size itself changes the frames, as in diffusers' SVD)."""
    pipe = _pipe()
    plan = apply_memory_preset(pipe, "high", "cpu")
    return _generate(pipe, dataclasses.replace(plan, decode_chunk_size=decode_chunk_size))


def _chunk_sizes(module):
    return {child._chunk_size for child in module.modules() if hasattr(child, "set_chunk_feed_forward")}


def _devices(module):
    return {parameter.device.type for parameter in module.parameters()}


def test_presets_on_a_gpu_trade_speed_for_memory():
    high, balanced, low = (memory_plan(preset, "cuda") for preset in MEMORY_PRESETS)
    assert (high.offload, balanced.offload, low.offload) == ("none", "model", "sequential")
    assert high.decode_chunk_size >= balanced.decode_chunk_size > low.decode_chunk_size
    assert (high.forward_chunking, balanced.forward_chunking, low.forward_chunking) == (False, True, True)
    assert {plan.dtype for plan in (high, balanced, low)} == {torch.float16}
    assert memory_plan("low", "cuda:1", dtype="bf16").dtype == torch.bfloat16


def test_on_the_cpu_weights_are_fp32_and_offload_is_skipped_unless_asked():
    plan = memory_plan("low", "cpu")
    assert plan.dtype == torch.float32 and plan.offload == "none"
    assert memory_plan("low", "cpu", offload=True).offload == "sequential"
    assert memory_plan("balanced", "cuda", offload=False).offload == "none"
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert plan.as_dict()["dtype"] == "fp32" and plan.as_dict()["device"] == "cpu"


@pytest.mark.parametrize(("preset", "dtype"), [("turbo", None), ("low", "fp8")])
def test_unknown_preset_or_dtype_is_refused(preset, dtype):
    with pytest.raises(InputError, match="preset|dtype"):
        memory_plan(preset, "cpu", dtype)


def test_high_keeps_everything_in_place_with_sdpa_attention():
    pipe = _pipe()
    apply_memory_preset(pipe, "high", "cpu")
    attention = [m for name in ("unet", "controlnet", "vae") for m in getattr(pipe, name).modules()
                 if isinstance(m, Attention)]  # fmt: skip
    assert attention and all(isinstance(layer.processor, AttnProcessor2_0) for layer in attention)
    assert _chunk_sizes(pipe.unet) == {None} and _chunk_sizes(pipe.controlnet) == {None}
    assert not hasattr(pipe.unet, "_hf_hook") and _devices(pipe.unet) == {"cpu"}


def test_balanced_puts_models_behind_offload_hooks_and_chunks_feed_forward():
    pipe = _pipe()
    plan = apply_memory_preset(pipe, "balanced", "cpu", offload=True)
    assert plan.offload == "model"
    for name in ("image_encoder", "unet", "vae", "controlnet"):
        assert hasattr(getattr(pipe, name), "_hf_hook"), name
    assert _chunk_sizes(pipe.unet) == {1} and _chunk_sizes(pipe.controlnet) == {1}
    # offload moves weights, chunking splits the feed-forward and the decode: the frames stay the high preset's
    torch.testing.assert_close(_generate(pipe, plan), _high_frames(plan.decode_chunk_size), rtol=0, atol=1e-5)


def test_low_streams_weights_layer_by_layer_but_keeps_the_vae_whole():
    """Placement only: accelerate cannot stream layers to a CPU execution device, so this preset runs on GPUs."""
    pipe = _pipe()
    plan = apply_memory_preset(pipe, "low", "cpu", offload=True)
    assert plan.offload == "sequential" and plan.decode_chunk_size == 2
    for name in ("image_encoder", "unet", "controlnet"):
        model = getattr(pipe, name)
        assert _devices(model) == {"meta"}, name  # each layer is copied in from the CPU when it runs
    assert _devices(pipe.vae) == {"cpu"} and not hasattr(pipe.vae, "_hf_hook")
    assert pipe._execution_device == torch.device("cpu", 0)


@pytest.mark.parametrize("preset", MEMORY_PRESETS)
def test_every_preset_runs_on_the_cpu(preset):
    pipe = _pipe()
    plan = apply_memory_preset(pipe, preset, "cpu")
    assert plan.offload == "none"
    torch.testing.assert_close(_generate(pipe, plan), _high_frames(plan.decode_chunk_size), rtol=0, atol=1e-5)


def test_switching_back_to_high_removes_the_hooks_and_restores_the_weights():
    pipe = _pipe()
    reference = pipe.unet.conv_in.weight.detach().clone()
    apply_memory_preset(pipe, "low", "cpu", offload=True)
    apply_memory_preset(pipe, "high", "cpu")
    assert _devices(pipe.unet) == {"cpu"} and not hasattr(pipe.unet, "_hf_hook")
    torch.testing.assert_close(pipe.unet.conv_in.weight, reference)
    assert _chunk_sizes(pipe.unet) == {None}


def test_compile_option_compiles_the_unet_and_the_adapter_only():
    pipe = _pipe()
    plan = apply_memory_preset(pipe, "high", "cpu", compile_models=True)
    assert plan.compile_models and plan.as_dict()["compile_models"] is True
    assert pipe.unet._compiled_call_impl is not None and pipe.controlnet._compiled_call_impl is not None
    assert pipe.vae._compiled_call_impl is None and pipe.image_encoder._compiled_call_impl is None


def test_model_offload_loads_the_adapter_before_it_warps_the_first_frame():
    """Under model CPU offload the adapter's weights wait on the CPU until its offload hook moves them to the
    execution device. The pipeline computes the warped features (``prepare_condition``) before the adapter's
    first ``forward``, so that call must run the hook too; otherwise a GPU run meets CUDA inputs with CPU
    weights (found by the fake-tensor memory estimate, where that work ran outside every model call)."""
    pipe = _pipe()
    plan = apply_memory_preset(pipe, "balanced", "cpu", offload=True)
    hook = pipe.controlnet._hf_hook
    hook_calls = []
    load = hook.pre_forward

    def counting_pre_forward(module, *args, **kwargs):
        hook_calls.append(module)
        return load(module, *args, **kwargs)

    hook.pre_forward = counting_pre_forward
    loaded_when_embedding_ran = []
    embedding = pipe.controlnet.controlnet_cond_embedding
    embedding.register_forward_pre_hook(lambda *_: loaded_when_embedding_ran.append(len(hook_calls) > 0))
    _generate(pipe, plan)
    assert loaded_when_embedding_ran == [True]
    assert hook_calls and all(module is pipe.controlnet for module in hook_calls)
