"""Timing, peak-memory, FLOP and video-quality helpers shared by the benchmark workers.

Imported by the workers (``traj_worker.py``, ``keypoint_worker.py``), which run with a sub-project first on
``sys.path``; this module imports nothing from any sub-project.

Time: wall-clock seconds (after a device synchronise) and the process's CPU seconds are both recorded. On a
GPU the wall clock is what counts. On a CPU with one torch thread the CPU seconds are the steadier figure on a
shared machine: they do not count the time other processes hold the core.

Peak memory:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
  before the call (the weights already on the device), reported as ``peak_activation_bytes``; the absolute
  peak is ``peak_total_bytes``.
- CPU: the process's peak resident set size (``VmHWM``) after resetting it through ``/proc/self/clear_refs``,
  minus the resident size before the call. Before measuring, glibc is told to map every large buffer on
  its own and to return freed memory (``mallopt``, ``malloc_trim``), so memory freed by earlier calls does not
  hide in the baseline. This slows allocation down, so memory is measured in separate calls after all timing
  (:func:`peak_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 64 * 1024


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_freed_memory(libc: ctypes.CDLL | None) -> None:
    """Give freed heap memory back to the OS so the resident size counts live memory only."""
    gc.collect()
    if libc is not None:
        libc.malloc_trim(0)


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (None where there is no procfs)."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_cpu_peak() -> bool:
    """Reset the process's peak RSS to its current RSS; False where the kernel does not allow it."""
    try:
        PROC_CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Peak memory of one call on ``device`` (bytes; None when it could not be measured)."""

    device: str
    peak_activation_bytes: int | None
    peak_total_bytes: int | None


class MemoryProbe:
    """Measures the peak memory of the code run inside ``with probe:`` (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.result: PeakMemory | None = None

    def __enter__(self) -> MemoryProbe:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            self.can_reset = reset_cpu_peak()
            self.baseline = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result = PeakMemory(str(self.device), peak - self.baseline, peak)
            return
        peak_kib = _status_kib("VmHWM")
        if peak_kib is None or self.baseline is None or not self.can_reset:
            self.result = PeakMemory("cpu", None, None if peak_kib is None else peak_kib * 1024)
        else:
            self.result = PeakMemory("cpu", (peak_kib - self.baseline) * 1024, peak_kib * 1024)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class CaseResult:
    """Timings (seconds) and peak memory of one benchmark case."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_activation_bytes: int | None = None
    peak_total_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_seconds)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "median_s": self.median if self.seconds else None,
            "cpu_seconds": self.cpu_seconds,
            "median_cpu_s": self.median_cpu if self.cpu_seconds else None,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_total_bytes": self.peak_total_bytes,
            **self.extra,
        }


def time_cases(
    cases: dict[str, Callable[[], object]], device: torch.device, repeats: int = 3, warmup: int = 1
) -> dict[str, CaseResult]:
    """Median-of-``repeats`` timing of several cases, interleaved round by round after ``warmup`` rounds.

    Interleaving (a, b, c, a, b, c, ...) spreads any slow-down of a shared machine over all cases alike, so
    their ratios stay fair.
    """
    results = {name: CaseResult(name) for name in cases}
    for _ in range(warmup):
        for run in cases.values():
            run()
    for _ in range(repeats):
        for name, run in cases.items():
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            synchronize(device)
            results[name].seconds.append(time.perf_counter() - start)
            results[name].cpu_seconds.append(time.process_time() - cpu_start)
    return results


def peak_memory(cases: dict[str, Callable[[], object]], device: torch.device, results: dict[str, CaseResult]) -> None:
    """Run each case once more and store its peak memory in ``results[name]`` (call after all timing: on the
    CPU it switches glibc to map large buffers on their own for the rest of the process)."""
    libc = _glibc() if device.type != "cuda" else None
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    for name, run in cases.items():
        release_freed_memory(libc)
        with MemoryProbe(device) as probe:
            run()
        results[name].peak_activation_bytes = probe.result.peak_activation_bytes
        results[name].peak_total_bytes = probe.result.peak_total_bytes


def count_flops(run: Callable[[], object], device: torch.device) -> int:
    """FLOPs of ``run()`` as PyTorch's FLOP counter sees them.

    On the CPU, attention runs in its plain-matmul form while counting (the counter has no formula for the
    fused CPU kernel); on a GPU the fused kernels are counted as they are, which keeps memory low.
    """
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    attention = sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else nullcontext()
    with attention, FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def module_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``modules`` (each counted once)."""
    seen, total = set(), 0
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


# ------------------------------------------------------------------------------------------------ quality


def psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of ``frames`` against ``reference``, both float arrays in [0, 1] (inf when identical)."""
    mse = float(np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def mean_abs_difference(frames: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference in 8-bit levels (0..255) of two float videos in [0, 1]."""
    return float(np.mean(np.abs(frames.astype(np.float64) - reference.astype(np.float64))) * 255.0)


def track_point(frames: np.ndarray, start_xy: tuple[float, float]) -> np.ndarray:
    """Follow one point through a video with pyramidal Lucas-Kanade, frame to frame.

    Args:
        frames: ``(T, H, W, 3)`` float in [0, 1] or uint8.
        start_xy: ``(x, y)`` of the point in frame 0, pixels.

    Returns:
        ``(T, 2)`` float positions (frame 0 is ``start_xy``); once the tracker loses the point its last
        position is kept.
    """
    import cv2

    video = frames if frames.dtype == np.uint8 else np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video]
    window = max(7, (min(gray[0].shape) // 24) | 1)
    point = np.array([[start_xy]], dtype=np.float32)
    positions = [point[0, 0].copy()]
    for previous, current in zip(gray, gray[1:]):
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, point, None, winSize=(window, window),
                                                    maxLevel=3)  # fmt: skip
        if status is not None and status[0, 0] == 1:
            point = moved
        positions.append(point[0, 0].copy())
    return np.stack(positions).astype(np.float64)


def flow_following_error(frames: np.ndarray, expected_xy: np.ndarray) -> float:
    """Mean distance (pixels) over frames 1.. between the tracked dragged point and where the drag puts it.

    Args:
        frames: ``(T, H, W, 3)`` the generated video.
        expected_xy: ``(T, 2)`` the drag's position at every frame, ``expected_xy[0]`` the start.
    """
    tracked = track_point(frames, tuple(expected_xy[0]))
    return float(np.linalg.norm(tracked[1:] - expected_xy[1:], axis=1).mean())
