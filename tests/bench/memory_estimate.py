"""Peak GPU memory of the full-size models, estimated on the CPU with fake tensors (``bench.py --memory-estimate``).

PyTorch's ``FakeTensorMode`` runs the real model code on tensors that have a shape, a dtype and a device (here
a fake ``cuda``) but no storage, so SVD's 1.5-billion-parameter UNet runs a 25-frame 512x512 step on the CPU in
seconds. :class:`LiveMemory` counts, op by op, the bytes of every tensor storage an op creates until the storage
is freed (each rounded up to the CUDA caching allocator's 512-byte blocks), which is what
``torch.cuda.max_memory_allocated`` counts above the weights; it keeps the peak of every named phase (one
model call: the image encoder, VAE encode, CMP, an adapter, the UNet, VAE decode).

What it does not see: buffers a kernel allocates outside PyTorch's allocator (cuDNN convolution workspaces,
cuBLAS workspaces; tens to a few hundred MB) and the CUDA context (about 0.5 GB, outside
``max_memory_allocated`` too). The same counter run on real CPU tensors matches the CPU allocator's own
report byte for byte (``tests/repo/test_repo_memory_estimate.py``).

:func:`preset_peak` turns the phases into a preset's peak by adding the weights resident during each phase:
all of them without offload; with model CPU offload, the models that accelerate's hooks keep on the device
when that phase runs (the pipeline's ``model_cpu_offload_seq`` offloads a model when the next one in the
chain starts; models outside the chain stay once loaded); with sequential offload, the largest single layer
of the running model plus the models excluded from offload. The module imports nothing from a sub-project.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

CUDA_BLOCK_BYTES = 512
"""The CUDA caching allocator rounds every allocation up to a multiple of 512 bytes."""


def allocated_bytes(nbytes: int, block_bytes: int) -> int:
    """``nbytes`` rounded up to a whole number of ``block_bytes`` blocks."""
    return -(-nbytes // block_bytes) * block_bytes


GAP_PHASE = "between"
"""The name of the phases of work done between model calls (preprocessing, guidance, scheduler steps)."""


@dataclass
class Phase:
    """One named stretch of a run: the live bytes when it began and the most that were live during it."""

    name: str
    start_bytes: int
    peak_bytes: int


class LiveMemory(TorchDispatchMode):
    """Counts the bytes of tensor storages created by PyTorch ops while the mode is active, until each is freed.

    A storage is counted once, when an op returns it for the first time and it is not one of the op's inputs
    (views and in-place results add nothing), and uncounted when it is garbage-collected. Tensors that existed
    before the mode (weights, inputs) are not counted. Works on real and on fake tensors alike.

    Args:
        device_type: only storages on this kind of device count (``cuda``; ``cpu`` for the CPU check).
        block_bytes: every storage is rounded up to a multiple of this (``CUDA_BLOCK_BYTES`` for a GPU).
    """

    def __init__(self, device_type: str = "cuda", block_bytes: int = CUDA_BLOCK_BYTES):
        super().__init__()
        self.device_type = device_type
        self.block_bytes = block_bytes
        self.live_bytes = 0
        self.peak_bytes = 0
        self.phases: list[Phase] = []
        self._open: list[Phase] = []
        self._counted: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _release(self, nbytes: int) -> None:
        self.live_bytes -= nbytes

    def _count(self, tensor: torch.Tensor, input_storages: set[int]) -> None:
        if tensor.device.type != self.device_type:
            return
        storage = tensor.untyped_storage()
        if id(storage) in input_storages or storage in self._counted:
            return
        nbytes = allocated_bytes(storage.nbytes(), self.block_bytes)
        self._counted[storage] = weakref.finalize(storage, self._release, nbytes)
        self.live_bytes += nbytes

    def disown(self, tensors: Iterable[torch.Tensor]) -> None:
        """Stop counting the storages of ``tensors`` (weights made inside the mode and accounted as weights)."""
        for tensor in tensors:
            finalizer = self._counted.get(tensor.untyped_storage())
            if finalizer is not None and finalizer.alive:
                self._release(finalizer.detach()[2][0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self._open:  # work between model calls is a phase of its own
            self._start(GAP_PHASE)
        out = func(*args, **kwargs)
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self._count(tensor, inputs)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        for phase in self._open:
            phase.peak_bytes = max(phase.peak_bytes, self.live_bytes)
        return out

    def clear_phases(self) -> None:
        """Forget the recorded phases (between runs that share the counter)."""
        self.phases = []

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Record the peak live bytes of the code run inside ``with counter.phase(name):`` as a :class:`Phase`."""
        if self._open and self._open[0].name == GAP_PHASE:
            self._open.clear()
        phase = self._start(name)
        try:
            yield phase
        finally:
            self._open.remove(phase)

    def _start(self, name: str) -> Phase:
        phase = Phase(name, self.live_bytes, self.live_bytes)
        self.phases.append(phase)
        self._open.append(phase)
        return phase


def watch(counter: LiveMemory, owner: object, method: str, phase: str) -> None:
    """Make every call of ``owner.<method>`` a phase named ``phase`` of ``counter`` (an instance attribute wraps
    the bound method; ``forward`` of a module is wrapped the same way)."""
    original = getattr(owner, method)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        with counter.phase(phase):
            return original(*args, **kwargs)

    setattr(owner, method, wrapped)


# ------------------------------------------------------------------------------------------ fake models


@contextmanager
def gpu_attention_kernels() -> Iterator[None]:
    """Run ``scaled_dot_product_attention`` on fake CUDA tensors with the fused kernel a CUDA GPU would pick.

    With no GPU present PyTorch falls back to the plain-matmul path, which materialises every (tokens x
    tokens) score matrix. A GPU of compute capability 8.0 or newer runs FlashAttention for fp16/bf16 heads
    up to 256 wide without a mask, and the memory-efficient kernel otherwise; both keep only the output and
    a per-row log-sum-exp. Other calls go to PyTorch unchanged.
    """
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    def fused(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if query.device.type != "cuda" or enable_gqa:
            return original(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa=enable_gqa)
        aten = torch.ops.aten
        if attn_mask is None and query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256:
            return aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
        return aten._scaled_dot_product_efficient_attention(query, key, value, attn_mask, False, dropout_p, is_causal,
                                                             scale=scale)[0]  # fmt: skip

    F.scaled_dot_product_attention = fused
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


@contextmanager
def quick_chunked_feed_forward() -> Iterator[None]:
    """Diffusers' chunked feed-forward with one chunk computed and the others' outputs only allocated.

    A fake run does not need the values, and the memory is the same: the outputs of all chunks are held until
    they are concatenated, while one chunk's temporaries are live at a time. With chunks of one (temporal
    blocks chunk over 8192 pixel sequences) this makes a fake step several times faster.
    """
    from diffusers.models import attention

    original = attention._chunked_feed_forward

    def chunked(ff, hidden_states, chunk_dim, chunk_size):
        num_chunks = hidden_states.shape[chunk_dim] // chunk_size
        if num_chunks <= 1 or hidden_states.shape[chunk_dim] % chunk_size:
            return original(ff, hidden_states, chunk_dim, chunk_size)
        first = ff(hidden_states.narrow(chunk_dim, 0, chunk_size))
        return torch.cat([first, *(torch.empty_like(first) for _ in range(num_chunks - 1))], dim=chunk_dim)

    attention._chunked_feed_forward = chunked
    try:
        yield
    finally:
        attention._chunked_feed_forward = original


class _AssumeTrue(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch._subclasses.fake_tensor import FakeTensor

        if (
            func is torch.ops.aten._local_scalar_dense.default
            and isinstance(args[0], FakeTensor)
            and args[0].dtype == torch.bool
        ):
            constant = getattr(args[0], "constant", None)
            return True if constant is None else bool(constant)
        return func(*args, **(kwargs or {}))


@contextmanager
def assume_true_conditions() -> Iterator[None]:
    """Answer ``bool(tensor)`` with True for fake tensors that have no value.

    The Hybrid pipeline asks whether its mask uses each adapter (``mask.lt(1).any()``); the estimate takes
    the worst case, both adapters running.
    """
    with _AssumeTrue():
        yield


def fake_mode():
    """A ``FakeTensorMode`` that turns real inputs (numpy images, scheduler tables) into fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def place(model: torch.nn.Module, device: str | torch.device, dtype: torch.dtype | None) -> torch.nn.Module:
    """Move every parameter and buffer of ``model`` to ``device`` (floating ones cast to ``dtype``), in place.

    ``Module.to`` cannot swap the parameters of a fake model, so each one is replaced instead.
    """
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for name, tensor in store.items():
                if tensor is None:
                    continue
                target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
                moved = tensor.detach().to(device=device, dtype=target)
                store[name] = torch.nn.Parameter(moved, requires_grad=False) if store is module._parameters else moved
    return model


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``model``."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def largest_layer_bytes(model: torch.nn.Module) -> int:
    """Bytes of the module of ``model`` with the most direct parameters and buffers: what sequential offload
    (accelerate's per-module hooks) holds on the device at one time."""
    return max(
        sum(t.numel() * t.element_size() for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)])
        for m in model.modules()
    )


# -------------------------------------------------------------------------------------------- offload


@dataclass(frozen=True)
class Component:
    """A model of a run, for the offload accounting.

    Attributes:
        name: the phase name its calls are recorded under.
        weight_bytes: its parameters and buffers.
        largest_layer_bytes: its largest single module (:func:`largest_layer_bytes`).
        offload: ``chain`` (in the pipeline's ``model_cpu_offload_seq``), ``hooked`` (offloaded, outside the
            chain: loaded at its first call and kept), or ``resident`` (never offloaded: outside the pipeline,
            such as CMP).
        whole_when_sequential: sequential offload keeps it whole on the device (the pipeline's
            ``_exclude_from_cpu_offload``).
    """

    name: str
    weight_bytes: int
    largest_layer_bytes: int
    offload: str
    whole_when_sequential: bool = False


def resident_weights(
    offload: str, components: dict[str, Component], chain: list[str], phases: Iterable[Phase]
) -> list[int]:
    """The weight bytes on the device during each phase, as accelerate's hooks would place them.

    Args:
        offload: ``none``, ``model`` or ``sequential`` (:mod:`utils.memory`).
        components: every model of the run by name (phases of other names add no weights).
        chain: the pipeline's ``model_cpu_offload_seq`` order.
        phases: the run's phases in order.
    """
    always = sum(c.weight_bytes for c in components.values() if c.offload == "resident")
    everything = sum(c.weight_bytes for c in components.values())
    loaded: set[str] = set()
    result = []
    for phase in phases:
        component = components.get(phase.name.split(".")[0])
        if offload == "none":
            result.append(everything)
            continue
        if offload == "sequential":
            # excluded models stay whole; an offloaded model brings one layer at a time
            whole = [c for c in components.values() if c.offload == "resident" or c.whole_when_sequential]
            layer = component.largest_layer_bytes if component is not None and component not in whole else 0
            result.append(sum(c.weight_bytes for c in whole) + layer)
            continue
        if component is not None and component.offload == "chain":
            index = chain.index(component.name)
            if index > 0:
                loaded.discard(chain[index - 1])  # the hook offloads the previous model of the chain
        if component is not None and component.offload != "resident":
            loaded.add(component.name)
        result.append(always + sum(components[name].weight_bytes for name in loaded))
    return result


def preset_peak(offload: str, components: dict[str, Component], chain: list[str], phases: list[Phase]) -> dict:
    """The peak (weights on the device + live activations) over the phases, and the phase it happens in."""
    weights = resident_weights(offload, components, chain, phases)
    totals = [resident + phase.peak_bytes for resident, phase in zip(weights, phases)]
    index = max(range(len(phases)), key=totals.__getitem__)
    return {
        "peak_bytes": totals[index],
        "phase": phases[index].name,
        "weights_bytes": weights[index],
        "activation_bytes": phases[index].peak_bytes,
    }


# ------------------------------------------------------------------------------------------ fake-friendly


def run_for_real(mode, owner: object, method: str) -> None:
    """Run ``owner.<method>`` outside the fake mode and make its tensor outputs fake.

    For CPU preprocessing that reads tensor values (a ``min() < 0`` check on an image), which fake tensors
    cannot answer; its inputs must be real (PIL images, numbers).
    """
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    from torch.utils._pytree import tree_map_only

    original = getattr(owner, method)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        with unset_fake_temporarily():
            out = original(*args, **kwargs)
        return tree_map_only(torch.Tensor, mode.from_tensor, out)

    setattr(owner, method, wrapped)


def readable_frame_indices(mode, module: object) -> None:
    """Make ``module.window_frame_indices`` return fake tensors whose values can be read.

    The pipelines read a window's first frame with ``int(frame_indices[1])`` (a host read of a small device
    tensor); a fake tensor can answer it when it carries its real value as FakeTensor's ``constant``.
    """
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    original = module.window_frame_indices

    @functools.wraps(original)
    def window_frame_indices(view, device=None):
        with unset_fake_temporarily():
            real = original(view)
        fake = mode.from_tensor(real).to(device)
        fake.constant = real
        return fake

    module.window_frame_indices = window_frame_indices


def cast_for_real(counter: LiveMemory, model: torch.nn.Module) -> None:
    """Let ``model.to(...)`` work on a fake model (``Module.to`` cannot swap fake parameters).

    Weights cast away from the model's own dtype (the VAE's fp32 upcast for encoding) count as live memory
    until cast back; weights cast back to it are weights again and stop counting. While upcast, the
    original-dtype weights stay in the resident accounting too, which overstates that phase by their size.
    """
    home_dtype = next(model.parameters()).dtype

    def to(*args, **kwargs):
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        place(model, device or next(model.parameters()).device, dtype)
        if dtype in (None, home_dtype):
            counter.disown([*model.parameters(), *model.buffers()])
        return model

    model.to = to


class StepOutput:
    def __init__(self, prev_sample: torch.Tensor):
        self.prev_sample = prev_sample


class FloatSigmaEuler:
    """SVD's Euler v-prediction steps with the sigmas as Python floats, for fake runs.

    Diffusers' scheduler finds its step by comparing timestep values, which fake tensors do not have. This one
    counts its steps instead and does the same tensor arithmetic (a few latent-sized temporaries).

    Args:
        scheduler: the real ``EulerDiscreteScheduler`` (built outside the fake mode); its config and sigmas.
    """

    order = 1

    def __init__(self, scheduler):
        self.real = scheduler
        self.config = scheduler.config

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily():
            self.real.set_timesteps(num_inference_steps, device="cpu")
            self.sigma_values = [float(value) for value in self.real.sigmas]
            timesteps = [float(value) for value in self.real.timesteps]
            self.init_noise_sigma = float(self.real.init_noise_sigma)
        self.timesteps = torch.tensor(timesteps, device=device)
        self.sigmas = torch.tensor(self.sigma_values, device=device)
        self.step_index = 0

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return sample / (self.sigma_values[self.step_index] ** 2 + 1) ** 0.5

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor) -> StepOutput:
        sigma, sigma_next = self.sigma_values[self.step_index], self.sigma_values[self.step_index + 1]
        denoised = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        self.step_index += 1
        return StepOutput(sample + (sample - denoised) / sigma * (sigma_next - sigma))


# ------------------------------------------------------------------------------------------- analytic

MAPS_PER_TRANSFORMER_BLOCK = 10
"""Finest-level feature maps live inside a UNet transformer block with a chunked feed-forward: its input and
residual, the normalised copy, query, key, value and attention output, the projection, and the up block's
concatenated (two-map) input."""
MAPS_PER_GEGLU = 16
"""Extra finest-level maps of an unchunked GEGLU feed-forward (4x width): the 8-map projection, then its
4-map GELU half and the 4-map product."""
MAPS_PER_DECODER_BLOCK = 8
"""Full-resolution 128-channel maps live in the VAE decoder's last up block: its 256-channel (two-map) input
and normalised copy, the spatial resnet's output, and the temporal resnet's input, output and mix."""


@dataclass(frozen=True)
class Geometry:
    """What the analytic model needs of a run: sizes and the UNet's levels."""

    frames: int  # T
    batch: int  # B' (2 with guidance)
    latent_size: int  # h = w
    size: int  # H = W
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    bytes_per_element: int  # 2 for fp16


def skip_bytes(geometry: Geometry) -> int:
    """Bytes of the UNet encoder's skips (one adapter's down residuals have the same shapes): ``conv_in``, then per
    level its resnets and, except the last, its downsampler, for all B'·T frames."""
    side, elements = geometry.latent_size, geometry.block_out_channels[0] * geometry.latent_size**2
    levels = len(geometry.block_out_channels)
    for level, channels in enumerate(geometry.block_out_channels):
        elements += geometry.layers_per_block * channels * side**2
        if level < levels - 1:
            side //= 2
            elements += channels * side**2
    return elements * geometry.batch * geometry.frames * geometry.bytes_per_element


def warped_cache_bytes(geometry: Geometry) -> int:
    """Bytes of one adapter's warped first-frame features: level k has ``block_out_channels[max(k-1, 0)]``
    channels at 1/2^k of the latent side, for all B'·T frames."""
    channels = geometry.block_out_channels
    elements = sum(channels[max(k - 1, 0)] * (geometry.latent_size >> k) ** 2 for k in range(len(channels)))
    return elements * geometry.batch * geometry.frames * geometry.bytes_per_element


def flow_bytes(geometry: Geometry, num_flows: int) -> int:
    """The fp32 dense flows the pipeline keeps: each adapter's ``(1, T-1, 2, H, W)``, its copy and both guidance
    halves."""
    return num_flows * 4 * (geometry.frames - 1) * 2 * geometry.size**2 * 4


def analytic_unet_step_bytes(geometry: Geometry, chunked: bool, adapters: int) -> int:
    """Live bytes at the peak of a guided UNet step: the UNet's skips and (with adapters) one set of residuals
    and each adapter's warped features and flows held, plus the working set of a transformer block at the
    finest level (:data:`MAPS_PER_TRANSFORMER_BLOCK`, :data:`MAPS_PER_GEGLU`)."""
    finest = geometry.batch * geometry.frames * geometry.block_out_channels[0] * geometry.latent_size**2
    maps = MAPS_PER_TRANSFORMER_BLOCK + (0 if chunked else MAPS_PER_GEGLU)
    held = skip_bytes(geometry) * (2 if adapters else 1)
    held += adapters * (warped_cache_bytes(geometry) + flow_bytes(geometry, 1))
    return held + maps * finest * geometry.bytes_per_element


def analytic_decode_bytes(geometry: Geometry, decode_chunk: int, adapters: int) -> int:
    """Live bytes at the peak of VAE decoding: :data:`MAPS_PER_DECODER_BLOCK` full-resolution 128-channel maps
    of ``decode_chunk`` frames, plus the flows the pipeline still holds."""
    maps = MAPS_PER_DECODER_BLOCK * decode_chunk * 128 * geometry.size**2 * geometry.bytes_per_element
    return maps + adapters * flow_bytes(geometry, 1)
