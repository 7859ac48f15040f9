"""Benchmark worker for MOFA-Video-Keypoint (started by ``bench.py``).

    python tests/bench/keypoint_worker.py CONFIG.json RESULT.json

Runs with MOFA-Video-Keypoint first on ``sys.path``. Times the landmark pipeline on a long video (periodic
sampling over frame-0-anchored windows) with a synthetic landmark flow and synthetic pose images: their
content does not change the work done. Writes ``{"available": false, "reason": ...}`` when the Keypoint
pipeline cannot be imported, so the orchestrator can fall back to the Traj long-video path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "MOFA-Video-Keypoint"))

import torch  # noqa: E402
from measure import peak_memory, time_cases  # noqa: E402


def synthetic_conditions(num_frames: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image (3, S, S) in [0, 1], flow (1, T-1, 2, S, S) pixels, pose images (1, T, 3, S, S) in [0, 1])``:
    a slow sideways sway of the whole face and one white landmark dot per frame."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, size, size, generator=generator)
    phase = torch.linspace(0, 6.28, num_frames)[1:]
    flow = torch.zeros(1, num_frames - 1, 2, size, size)
    flow[0, :, 0] = (torch.sin(phase) * size * 0.05).view(-1, 1, 1)
    pose_images = torch.zeros(1, num_frames, 3, size, size)
    for frame in range(num_frames):
        column = int(size / 2 + torch.sin(torch.tensor(frame * 0.25)) * size * 0.05)
        pose_images[0, frame, :, size // 2, column] = 1.0
    return image, flow, pose_images


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    try:
        from pipeline.keypoint_animator import KeypointAnimator
        from utils.periodic_sampling import get_views, weighted_views
    except ImportError as error:
        Path(sys.argv[2]).write_text(json.dumps({"available": False, "reason": f"import failed: {error}"}))
        return

    device = torch.device(config["device"])
    if config["tiny"]:
        animator = KeypointAnimator(tiny=True, device=device, show_progress=False)
    else:
        animator = KeypointAnimator(ckpt_dir=config["ckpt_dir"], device=device, show_progress=False)
    num_frames, size, steps = config["frames"], config["size"], config["steps"]
    window, stride = config["window"], config["stride"]
    image, flow, pose_images = synthetic_conditions(num_frames, size)

    def run() -> None:
        animator.pipe(
            image,
            flow,
            pose_images,
            num_inference_steps=steps,
            window_size=window,
            window_stride=stride,
            decode_chunk_size=animator.memory.decode_chunk_size,
            generator=torch.Generator("cpu").manual_seed(config["seed"]),
            output_type="np",
        )

    cases = {"keypoint": run}
    all_timed = time_cases(cases, device, config["repeats"], config["warmup"])
    peak_memory(cases, device, all_timed)
    timed = all_timed["keypoint"]
    num_windows = len(weighted_views(get_views(num_frames, window, stride)))  # windows actually denoised
    result = {
        "available": True,
        **timed.as_dict(),
        "num_frames": num_frames,
        "windows": num_windows,
        "steps": steps,
        "size": size,
        "s_per_window_step": timed.median / (num_windows * steps),
        "cpu_s_per_window_step": timed.median_cpu / (num_windows * steps),
    }
    Path(sys.argv[2]).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
