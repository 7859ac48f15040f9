"""The command line of ``inference.py`` (headless trajectory animation): its options and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_arguments import HelpFormatter, add_device_arguments, add_temporal_context_argument, add_tiny_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``inference.py``'s options; one run (``--image --trajectories --output``) or ``--jobs``, not both."""
    parser = argparse.ArgumentParser(
        description="Animate an image along trajectories with MOFA-Video (no UI).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--image", type=Path, help="input image")
    parser.add_argument("--trajectories", type=Path, help="trajectories JSON (schema in the module docstring)")
    parser.add_argument(
        "--output", type=Path, help="run folder: output.mp4, flow.mp4, hint.png, input.png, settings.json"
    )
    parser.add_argument("--jobs", type=Path, help="JSON-lines file of runs (replaces --image/--trajectories/--output)")
    parser.add_argument("--num_frames", type=int, default=25, help="frames, first frame included (>25: windows)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 2 in tiny mode)")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--conditioning_scale", type=float, default=0.6, help="adapter strength (1.0 tends to distort)")
    parser.add_argument("--height", type=int, default=None, help="frame height (multiple of 64); with --width")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="frame width (multiple of 64); default: short side 512, cropped to multiples of 64",
    )
    parser.add_argument("--fps", type=float, default=20, help="playback rate of the written videos")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="fast mode: the adapter at every 4th step, residuals reused in between (~1.1x SVD time)",
    )
    add_temporal_context_argument(parser)
    add_device_arguments(parser, "high", "memory preset (see utils/memory.py)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet and the adapter (GPUs)")
    parser.add_argument("--decode_chunk_size", type=int, default=None, help="frames per VAE decode (default: preset)")
    add_tiny_argument(parser, "random tiny models, no weights needed, output is noise (also MOFA_TINY=1)")
    parser.add_argument("--ckpt_dir", type=Path, default=None, help="checkpoint folder ($MOFA_CKPT_DIR or ckpts/)")
    parser.add_argument(
        "--adapter",
        type=Path,
        default=None,
        help="adapter folder instead of <ckpt_dir>/controlnet, "
        "e.g. ../Training/runs/x/controlnet; with --tiny it runs on the tiny SVD if it fits",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.decode_chunk_size is not None and args.decode_chunk_size < 1:
        parser.error(f"--decode_chunk_size must be a positive integer, got {args.decode_chunk_size}")
    single = (args.image, args.trajectories, args.output)
    if args.jobs is None and None in single:
        parser.error("give --image, --trajectories and --output, or --jobs")
    if args.jobs is not None and any(value is not None for value in single):
        parser.error("--jobs cannot be combined with --image/--trajectories/--output")
    return args
