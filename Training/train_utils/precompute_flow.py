"""Estimate the training flow once and store it next to each video (``clip.mp4 -> clip.flow.npz``).

Training with ``--flow_estimator precomputed`` then reads these files instead of running an estimator
every step. Each file holds the clip's ``frame_indices`` (one fixed clip per video, drawn from
``--seed``) and ``flow`` ``[T-1, 2, H, W]`` float16 pixels from frame 0 to each later frame, estimated
on frames squashed to ``--height`` x ``--width`` (covering the whole source frame).

Usage (from ``Training/``)::

    python -m train_utils.precompute_flow --train_csv meta.csv --data_root /data/WebVid --flow_estimator raft
"""

from __future__ import annotations

import argparse
import logging
import random
import sys

import numpy as np
import torch
from tqdm.auto import tqdm

from train_utils.dataset import (
    VIDEO_READ_ERRORS,
    VideoEntry,
    count_video_frames,
    decode_frames,
    frames_to_tensor,
    precomputed_flow_path,
    read_video_csv,
    resize_geometry,
    sample_frame_indices,
)
from train_utils.entry_point import reports_input_errors
from train_utils.flow_estimation import FlowEstimator, build_flow_estimator
from utils.errors import InputError

logger = logging.getLogger(__name__)


def precompute_video_flow(
    entry: VideoEntry,
    estimator: FlowEstimator,
    num_frames: int,
    stride: int,
    height: int,
    width: int,
    seed: int,
    device: torch.device,
) -> None:
    """Write ``entry``'s flow file (see the module docstring)."""
    rng = random.Random(f"{seed}-{entry.name}")
    indices = sample_frame_indices(count_video_frames(entry.path), num_frames, stride, rng)
    frames = decode_frames(entry.path, indices)
    pixel_values = frames_to_tensor(frames, resize_geometry(frames[0].size, height, width, "squash"))
    flow = estimator(pixel_values[None].to(device))[0]
    np.savez(
        precomputed_flow_path(entry.path),
        frame_indices=np.asarray(indices, dtype=np.int64),
        flow=flow.cpu().numpy().astype(np.float16),
    )


def precompute(args: argparse.Namespace) -> tuple[int, int]:
    """Process every CSV entry; returns (written, skipped)."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    estimator = build_flow_estimator(args.flow_estimator, args.raft_weights)
    if estimator is None:
        raise InputError("--flow_estimator precomputed cannot precompute; choose raft, farneback or module:callable")
    if isinstance(estimator, torch.nn.Module):
        estimator.to(device)
    written = skipped = 0
    for entry in tqdm(read_video_csv(args.train_csv, args.data_root), desc="flows"):
        if precomputed_flow_path(entry.path).is_file() and not args.overwrite:
            continue
        try:
            precompute_video_flow(
                entry, estimator, args.num_frames, args.sample_stride, args.height, args.width, args.seed, device
            )
        except VIDEO_READ_ERRORS as error:
            logger.warning("skipping video %s: %s", entry.name, error)
            skipped += 1
            continue
        written += 1
    return written, skipped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_csv", required=True)
    parser.add_argument("--data_root", default=".")
    parser.add_argument("--num_frames", type=int, default=25)
    parser.add_argument("--sample_stride", type=int, default=4)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--flow_estimator", default="raft", help="raft, farneback or module:callable")
    parser.add_argument("--raft_weights", default=None)
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing flow files")
    return parser


@reports_input_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = build_parser().parse_args(argv)
    written, skipped = precompute(args)
    print(f"wrote {written} flow files, skipped {skipped} unreadable or too-short videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
