"""The fake-tensor memory estimator (tests/bench/memory_estimate.py) counts what PyTorch's allocator allocates.

A tiny SVD UNet step is estimated with fake tensors and then run for real on the CPU, where PyTorch's profiler
reports every allocation and free of the CPU allocator: the estimator's peak must be the allocator's peak.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "tests" / "bench"
MiB = 2**20


@pytest.fixture(scope="module")
def estimate():
    spec = importlib.util.spec_from_file_location("bench_memory_estimate", BENCH_DIR / "memory_estimate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tiny_svd_unet():
    """diffusers' SVD UNet with two small levels (the stock class of case (a))."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    return UNetSpatioTemporalConditionModel(
        sample_size=32, in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal"), up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
        layers_per_block=2, cross_attention_dim=32, num_attention_heads=(2, 4), num_frames=4,
    ).eval()  # fmt: skip


def unet_inputs():
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 48, 48, generator=generator)
    return sample, torch.tensor(1.0), torch.randn(2, 1, 32, generator=generator), torch.randn(2, 3, generator=generator)


def allocator_peak(run) -> int:
    """Peak bytes the CPU allocator held above its level at the start of ``run()``, replayed from the profiler's
    allocation and free events in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def test_fake_estimate_of_a_unet_step_is_the_cpu_allocators_peak(estimate):
    unet = tiny_svd_unet()
    inputs = unet_inputs()

    def step(model, args):
        with torch.no_grad():
            model(*args, return_dict=False)

    truth = allocator_peak(lambda: step(unet, inputs))

    mode = estimate.fake_mode()
    with mode:
        fake_unet = estimate.place(tiny_svd_unet(), "cpu", torch.float32)
        fake_inputs = tuple(mode.from_tensor(tensor) for tensor in inputs)
        counter = estimate.LiveMemory(device_type="cpu", block_bytes=1)
        with counter, counter.phase("unet.forward"):
            step(fake_unet, fake_inputs)
    assert truth > 20 * MiB  # a real workload, not a handful of small tensors
    assert counter.phases[-1].peak_bytes == pytest.approx(truth, rel=0.01)
    assert counter.live_bytes == 0  # everything the step made was freed and counted as freed


def test_fake_cuda_attention_keeps_no_score_matrix(estimate):
    """On fake CUDA tensors attention runs the fused kernel a GPU would: output + log-sum-exp, no L x L scores."""
    heads, tokens, width = 4, 4096, 64
    mode = estimate.fake_mode()
    with mode, estimate.gpu_attention_kernels():
        query = torch.empty(2, heads, tokens, width, device="cuda", dtype=torch.float16)
        counter = estimate.LiveMemory()
        with counter:
            out = torch.nn.functional.scaled_dot_product_attention(query, query, query)
    output_bytes = out.numel() * 2
    log_sum_exp_bytes = 2 * heads * tokens * 4
    random_state_bytes = 2 * estimate.CUDA_BLOCK_BYTES  # the kernel's dropout seed and offset, one block each
    assert counter.peak_bytes == output_bytes + log_sum_exp_bytes + random_state_bytes
    assert counter.peak_bytes < 2 * heads * tokens * tokens * 2  # far below one fp16 score matrix


def _phases(estimate, *names_and_peaks):
    return [estimate.Phase(name, 0, peak) for name, peak in names_and_peaks]


def test_offload_accounting_follows_the_hooks(estimate):
    """Model offload keeps a chain model until the next one starts and a hooked model once loaded; sequential
    offload holds the largest layer of the running model plus the models kept whole."""
    Component = estimate.Component
    components = {
        "image_encoder": Component("image_encoder", 100, 10, "chain"),
        "unet": Component("unet", 300, 30, "chain"),
        "vae": Component("vae", 20, 2, "chain", whole_when_sequential=True),
        "controlnet": Component("controlnet", 150, 15, "hooked"),
        "cmp": Component("cmp", 5, 1, "resident"),
    }
    chain = ["image_encoder", "unet", "vae"]
    phases = _phases(estimate, ("image_encoder.forward", 1), ("vae.encode", 2), ("controlnet.forward", 3),
                     ("unet.forward", 4), ("between", 2), ("vae.decode", 6))  # fmt: skip
    model = estimate.resident_weights("model", components, chain, phases)
    assert model == [5 + 100, 5 + 100 + 20, 5 + 100 + 20 + 150, 5 + 20 + 150 + 300, 5 + 20 + 150 + 300, 5 + 20 + 150]
    sequential = estimate.resident_weights("sequential", components, chain, phases)
    assert sequential == [25 + 10, 25, 25 + 15, 25 + 30, 25, 25]
    assert estimate.resident_weights("none", components, chain, phases) == [575] * 6
    peak = estimate.preset_peak("model", components, chain, phases)
    assert (peak["phase"], peak["peak_bytes"]) == ("unet.forward", 475 + 4)
