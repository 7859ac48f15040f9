"""Benchmark worker for MOFA-Video-Traj (started by ``bench.py``, one process per task).

    python tests/bench/traj_worker.py CONFIG.json RESULT.json

Runs with MOFA-Video-Traj first on ``sys.path`` (its ``models``, ``pipeline`` and ``utils``). Tasks:

- ``main``: (a) diffusers' ``StableVideoDiffusionPipeline`` and (b) our ``FlowControlNetPipeline`` built from
  the same UNet, VAE, CLIP and scheduler config, faithful and fast, timed interleaved at the same size,
  frames, steps and seed; the fast schedule's quality against the faithful video (and, with
  ``fast_candidates``, other schedules of the same adapter budget); FLOP floors; (d) CMP + hint
  construction alone; periodic sampling seconds per window for several video lengths.
- ``preset``: one memory preset (``high``/``balanced``/``low``) of the faithful pipeline, alone in its
  process so its peak GPU memory is its own.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "MOFA-Video-Traj"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from measure import (  # noqa: E402
    MemoryProbe,
    count_flops,
    flow_following_error,
    mean_abs_difference,
    module_bytes,
    peak_memory,
    psnr,
    synchronize,
    time_cases,
)
from PIL import Image  # noqa: E402

from utils.adapter_schedule import FAITHFUL, FAST, REUSE, SKIP, AdapterSchedule  # noqa: E402
from utils.periodic_sampling import get_views, weighted_views  # noqa: E402
from utils.trajectories import resample_track  # noqa: E402

FAST_CANDIDATES = {
    "every 4th step, reused in between (FAST)": FAST,
    "every 3rd step, reused in between": AdapterSchedule(every=3, active_fraction=1.0, after_active=REUSE),
    "first 30% of steps, then none": AdapterSchedule(every=1, active_fraction=0.3, after_active=SKIP),
    "first 30% of steps, then reused": AdapterSchedule(every=1, active_fraction=0.3, after_active=REUSE),
    "every 2nd step in the first 60%, then none": AdapterSchedule(every=2, active_fraction=0.6, after_active=SKIP),
}
"""Schedules of about the same adapter budget as FAST, compared by their distance to the faithful video."""


def bench_image(size: int) -> Image.Image:
    """A deterministic test picture: colour gradients, a checker texture and a bright disc where the drag starts."""
    coords = np.linspace(0.0, 1.0, size)
    x, y = np.meshgrid(coords, coords)
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2) * 0.25
    disc = ((x - 0.3) ** 2 + (y - 0.5) ** 2 < 0.006) * 0.6
    rgb = np.stack([0.2 + 0.5 * x + checker, 0.3 + 0.4 * y + disc, 0.6 - 0.3 * x + checker * 0.5 + disc], -1)
    return Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def bench_tracks(size: int) -> list[list[tuple[float, float]]]:
    """One drag from the disc to the right and one pinned point, in pixels of a ``size`` x ``size`` frame."""
    return [[(0.3 * size, 0.5 * size), (0.65 * size, 0.5 * size)], [(0.5 * size, 0.2 * size)]]


def build_animator(config: dict, memory: str = "high", layout: str | None = None):
    """The released models, or tiny ones with the UNet ``layout`` (default: the profile's)."""
    from pipeline.trajectory_animator import TrajectoryAnimator

    if config["tiny"]:
        return TrajectoryAnimator.tiny(
            device=config["device"],
            memory=memory,
            tiny_layout=layout or config.get("layout", "small"),
            show_progress=False,
        )
    return TrajectoryAnimator.from_pretrained(
        config["ckpt_dir"], device=config["device"], memory=memory, show_progress=False
    )


def plain_svd_pipeline(pipe):
    """diffusers' own SVD pipeline on the same modules (and an equal, separate scheduler)."""
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline

    plain = StableVideoDiffusionPipeline(
        vae=pipe.vae,
        image_encoder=pipe.image_encoder,
        unet=pipe.unet,
        scheduler=EulerDiscreteScheduler.from_config(pipe.scheduler.config),
        feature_extractor=pipe.feature_extractor,
    )
    plain.set_progress_bar_config(disable=True)
    return plain


class Runner:
    """Calls of the plain and our pipeline on one input, with the settings they share."""

    def __init__(self, animator, config: dict, size: int, num_frames: int, steps: int):
        self.animator, self.config = animator, config
        self.pipe = animator.pipe
        self.plain = plain_svd_pipeline(self.pipe)
        self.frame = animator.prepare_image(bench_image(size), height=size, width=size)
        self.tracks = bench_tracks(size)
        self.flow, _ = animator.dense_flow(self.frame, self.tracks, None, num_frames)
        self.common = {
            "height": size,
            "width": size,
            "num_frames": num_frames,
            "num_inference_steps": steps,
            "min_guidance_scale": 1.0,
            "max_guidance_scale": 3.0,
            "decode_chunk_size": animator.memory.decode_chunk_size,
            "output_type": "np",
        }
        self.outputs: dict[str, np.ndarray] = {}

    def generator(self) -> torch.Generator:
        return torch.Generator("cpu").manual_seed(self.config["seed"])

    def run_plain(self, name: str = "plain_svd", **overrides) -> np.ndarray:
        settings = {**self.common, **overrides}
        frames = self.plain(self.frame, generator=self.generator(), **settings).frames[0]
        self.outputs[name] = frames
        return frames

    def run_ours(self, schedule: AdapterSchedule, name: str, **overrides) -> np.ndarray:
        settings = {**self.common, **overrides}
        frames = self.pipe(
            image=self.frame,
            controlnet_flow=self.flow[None],
            conditioning_scale=self.config["conditioning_scale"],
            adapter_schedule=schedule,
            generator=self.generator(),
            **settings,
        ).frames[0]
        self.outputs[name] = frames
        return frames

    def expected_drag(self, num_frames: int) -> np.ndarray:
        return resample_track(np.asarray(self.tracks[0]), num_frames)


def flop_floors(runner: Runner, steps: int) -> dict:
    """End-to-end FLOP ratios (ours / plain) extrapolated to ``steps`` from 1- and 2-step counts."""
    counts, device = {}, runner.pipe.unet.device
    for name, run in (
        ("plain_svd", lambda n: runner.run_plain("flops", num_inference_steps=n)),
        ("faithful", lambda n: runner.run_ours(FAITHFUL, "flops", num_inference_steps=n)),
    ):
        one, two = count_flops(partial(run, 1), device), count_flops(partial(run, 2), device)
        counts[name] = {"fixed": 2 * one - two, "per_step": two - one}
    plain, ours = counts["plain_svd"], counts["faithful"]
    adapter_per_step = ours["per_step"] - plain["per_step"]

    def total(entry, step_count):
        return entry["fixed"] + entry["per_step"] * step_count

    fast_total = ours["fixed"] + plain["per_step"] * steps + adapter_per_step * FAST.num_runs(steps)
    return {
        "unet_step_flops": plain["per_step"],
        "adapter_step_flops": adapter_per_step,
        "adapter_over_unet": adapter_per_step / plain["per_step"],
        "floor_faithful": total(ours, steps) / total(plain, steps),
        "floor_fast": fast_total / total(plain, steps),
    }


@torch.no_grad()
def step_time_ratio(pipe, config: dict, size: int, num_frames: int) -> dict:
    """Time of one guided step's model calls, UNet + adapter (precomputed condition) over the UNet alone, on
    random inputs of the benchmark's shapes: the floor the whole pipeline's ratio can reach."""
    device, dtype = pipe.unet.device, pipe.unet.dtype
    generator = torch.Generator().manual_seed(0)
    latent = size // pipe.vae_scale_factor

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device, dtype)

    sample = randn(2, num_frames, pipe.unet.config.in_channels, latent, latent)
    embeddings = randn(2, 1, pipe.unet.config.cross_attention_dim)
    time_ids = torch.tensor([[6.0, 128.0, 0.02]] * 2, device=device, dtype=dtype)
    condition = randn(2, 3, size, size).clamp(-1, 1)
    flow = randn(2, num_frames - 1, 2, size, size) * 3
    warped = pipe.controlnet.prepare_condition(condition, flow, dtype)
    timestep = torch.tensor(0.5, device=device)

    def unet_alone():
        pipe.unet(sample, timestep, embeddings, time_ids)

    def unet_and_adapter():
        down, mid, _ = pipe.controlnet(sample, timestep, embeddings, time_ids, condition, flow, return_dict=False,
                                       warped_condition=warped)  # fmt: skip
        pipe.unet(sample, timestep, embeddings, time_ids, down_block_additional_residuals=down,
                  mid_block_additional_residual=mid)  # fmt: skip

    timed = time_cases({"unet": unet_alone, "unet_adapter": unet_and_adapter}, torch.device(device), 5, 1)
    key = "median_cpu_s" if device.type == "cpu" else "median_s"
    unet_s, both_s = timed["unet"].as_dict()[key], timed["unet_adapter"].as_dict()[key]
    return {"unet_step_s": unet_s, "unet_adapter_step_s": both_s, "step_time_ratio": both_s / unet_s}


def task_main(config: dict) -> dict:
    device = torch.device(config["device"])
    animator = build_animator(config)
    size, num_frames, steps = config["size"], config["frames"], config["steps"]
    runner = Runner(animator, config, size, num_frames, steps)
    pipe = runner.pipe
    result: dict = {"memory_plan": animator.memory.as_dict()}

    # (a), (b): plain SVD, faithful and fast, interleaved
    cases = {
        "plain_svd": lambda: runner.run_plain(),
        "faithful": lambda: runner.run_ours(FAITHFUL, "faithful"),
        "fast": lambda: runner.run_ours(FAST, "fast"),
    }
    timed = time_cases(cases, device, config["repeats"], config["warmup"])
    result["weights_bytes"] = {
        "plain_svd": module_bytes(pipe.unet, pipe.vae, pipe.image_encoder),
        "ours": module_bytes(pipe.unet, pipe.vae, pipe.image_encoder, pipe.controlnet),
    }

    # quality of fast mode against the faithful video of the same seed, and how well each follows the drag
    faithful = runner.outputs["faithful"]
    expected = runner.expected_drag(num_frames)
    result["quality"] = {
        "fast_vs_faithful": {
            "psnr_db": psnr(runner.outputs["fast"], faithful),
            "mean_abs_diff_8bit": mean_abs_difference(runner.outputs["fast"], faithful),
        },
        "tracked_point_error_px": {
            name: flow_following_error(runner.outputs[name], expected) for name in ("plain_svd", "faithful", "fast")
        },
    }
    if config["fast_candidates"]:
        candidates = []
        for label, schedule in FAST_CANDIDATES.items():
            if schedule == FAST:
                runner.outputs[label] = runner.outputs["fast"]
                timing = timed["fast"].as_dict()
            else:
                run = partial(runner.run_ours, schedule, label)
                timing = time_cases({label: run}, device, 1, 0)[label].as_dict()
            frames = runner.outputs[label]
            candidates.append({
                "schedule": label,
                **schedule.as_dict(),
                "adapter_runs": schedule.num_runs(steps),
                "median_s": timing["median_s"],
                "median_cpu_s": timing["median_cpu_s"],
                "psnr_db": psnr(frames, faithful),
                "mean_abs_diff_8bit": mean_abs_difference(frames, faithful),
                "tracked_point_error_px": flow_following_error(frames, expected),
            })  # fmt: skip
        result["fast_candidates"] = candidates

    result["flops"] = flop_floors(runner, steps)
    result["step_time"] = step_time_ratio(pipe, config, size, num_frames)

    # (d) CMP + hint construction alone
    cmp_cases = {"cmp_hints": lambda: animator.dense_flow(runner.frame, runner.tracks, None, num_frames)}
    cmp_timed = time_cases(cmp_cases, device, config["repeats"], config["warmup"])

    # periodic sampling: seconds per window for several lengths (every window has the same shape); tiny
    # models use the small layout here, as 25-frame windows of the SVD layout would take minutes on a CPU
    periodic_animator = build_animator(config, layout="small") if config["tiny"] else animator
    result["periodic"] = periodic_timings(periodic_animator, config, config["periodic"])

    # peak memory last: measuring it slows the CPU allocator down for the rest of the process
    peak_memory(cases, device, timed)
    peak_memory(cmp_cases, device, cmp_timed)
    result["cases"] = {name: case.as_dict() for name, case in timed.items()}
    result["cases"]["fast"]["adapter_runs"] = FAST.num_runs(steps)
    result["cases"]["faithful"]["adapter_runs"] = steps
    result["cmp_hints"] = cmp_timed["cmp_hints"].as_dict()
    return result


def periodic_timings(animator, config: dict, periodic: dict) -> list[dict]:
    device = torch.device(config["device"])
    size, steps, window, stride = periodic["size"], periodic["steps"], periodic["window"], periodic["stride"]
    runners = {n: Runner(animator, config, size, n, steps) for n in periodic["frames"]}
    cases = {
        n: (lambda runner=runner: runner.run_ours(FAITHFUL, "periodic", window_size=window, window_stride=stride))
        for n, runner in runners.items()
    }
    first = next(iter(cases.values()))
    first()  # warm-up: every window has the same shape whatever the video length
    timed = time_cases({str(n): run for n, run in cases.items()}, device, config["repeats"], warmup=0)
    rows = []
    for n in periodic["frames"]:
        num_windows = len(weighted_views(get_views(n, window, stride)))  # windows actually denoised
        case = timed[str(n)]
        rows.append({
            "num_frames": n,
            "windows": num_windows,
            "steps": steps,
            **case.as_dict(),
            "s_per_window_step": case.median / (num_windows * steps),
            "cpu_s_per_window_step": case.median_cpu / (num_windows * steps),
        })  # fmt: skip
    return rows


def task_preset(config: dict) -> dict:
    """The faithful pipeline under one memory preset, alone in its process: one run, timed and measured."""
    device = torch.device(config["device"])
    animator = build_animator(config, memory=config["preset"])
    runner = Runner(animator, config, config["size"], config["frames"], config["steps"])
    with MemoryProbe(device) as probe:
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        runner.run_ours(FAITHFUL, "preset")
        synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": [seconds],
        "median_s": seconds,
        "median_cpu_s": cpu_seconds,
        "peak_activation_bytes": probe.result.peak_activation_bytes,
        "peak_total_bytes": probe.result.peak_total_bytes,
        "memory_plan": animator.memory.as_dict(),
    }


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    tasks = {"main": task_main, "preset": task_preset}
    result = tasks[config["task"]](config)
    Path(sys.argv[2]).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
