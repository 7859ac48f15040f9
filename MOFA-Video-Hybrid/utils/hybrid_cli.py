"""The command line of the headless Hybrid ``inference.py``: its options and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_arguments import HelpFormatter, add_device_arguments, add_temporal_context_argument, add_tiny_argument
from .landmark_renderers import LANDMARK_RENDERERS

DESCRIPTION = (
    "Headless Hybrid animation: portrait + (speech | driving video) [+ drags] -> a run folder like the demos'."
)

MASK_MODES = ("auto", "painted", "landmarks", "none")  # utils.face_mask's rules


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``inference.py``'s options: one run (``--image`` with ``--audio`` or ``--video``) or ``--jobs``."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--image", type=Path, help="portrait (any image; not modified)")
    driver = parser.add_mutually_exclusive_group()
    driver.add_argument("--audio", type=Path, help="speech driving the face (wav, mp3, m4a, flac, ogg, ...)")
    driver.add_argument("--video", type=Path, help="driving video whose expression and head pose the face follows")
    parser.add_argument("--trajectories", type=Path, help="drags JSON (and motion brush), input-image pixels")
    parser.add_argument("--landmark_mask", type=Path, help="painted landmark mask: image of the input's size")
    parser.add_argument("--mask_mode", choices=MASK_MODES, default="auto", help="which landmark mask is used")
    parser.add_argument(
        "--renderer",
        choices=LANDMARK_RENDERERS,
        default="aniportrait",
        help="audio -> landmarks (a driving video always uses sadtalker)",
    )
    parser.add_argument("--jobs", type=Path, help="JSON-lines file of runs (replaces --image/--audio/--video)")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs"), help="parent of the run folders")
    parser.add_argument("--num_frames", type=int, default=None, help="frames (default: as long as the driver)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (25; 2 with --tiny)")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--trajectory_conditioning_scale", type=float, default=0.6, help="drag adapter strength")
    parser.add_argument("--landmark_conditioning_scale", type=float, default=1.0, help="landmark adapter strength")
    parser.add_argument("--fast", action="store_true", help="both adapters at every 4th step, residuals reused")
    parser.add_argument("--comparison", action="store_true", help="also write the 7-panel comparison.mp4")
    add_temporal_context_argument(parser)
    add_tiny_argument(parser, "random tiny models, stand-in landmark motion on the real face (the video is noise)")
    parser.add_argument("--ckpt_dir", default=None, help="checkpoint folder (default $MOFA_CKPT_DIR or ../ckpts)")
    add_device_arguments(parser, "balanced", "memory preset")
    args = parser.parse_args(argv)
    if args.jobs is not None and any(value is not None for value in (args.image, args.audio, args.video)):
        parser.error("--jobs cannot be combined with --image/--audio/--video")
    if args.jobs is None and (args.image is None or (args.audio is None and args.video is None)):
        parser.error("give --image and --audio or --video, or --jobs")
    return args
