"""MOFA-Video-Traj Gradio demo: upload an image, draw trajectories (and a motion brush), animate it.

    python run_gradio.py                 # real weights from ckpts/ (falls back to tiny mode if missing)
    python run_gradio.py --tiny          # tiny random models: the workflow on a CPU, outputs are noise
    python run_gradio.py --port 7861 --memory low

The page is served on 127.0.0.1 unless ``--host`` says otherwise; ``--share`` makes a public link.
Each browser session keeps its own image, tracks and brush (``demo.demo_state``); the models are loaded
once and shared. Every run writes its files to a new folder under ``--output_dir``. The page is
``demo/traj_page.py``, its event handlers ``demo/traj_handlers.py``.
"""

from __future__ import annotations

import argparse
import sys

from demo.demo_cli import demo_argument_parser
from demo.demo_page import CSS, serve_page
from demo.traj_page import build_demo
from pipeline.trajectory_animator import TrajectoryAnimator
from utils.checkpoints import fetch_command
from utils.errors import CheckpointError, InputError


def tiny_banner(reason: str | None = None) -> str:
    """The banner shown in tiny mode: outputs are noise, and how to get the real weights."""
    why = f" ({reason})" if reason else ""
    return (
        f"⚠️ **Tiny mode{why}.** The models are tiny and randomly initialised, so every video is noise: "
        "this shows the workflow only. Fetch the real weights with "
        f"`{fetch_command('traj')}` and restart the demo."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = demo_argument_parser(
        "MOFA-Video-Traj Gradio demo.",
        tiny_help="tiny random models, no weights needed; outputs are noise",
        default_memory="high",
    )
    return parser.parse_args(argv)


def load_animator(args: argparse.Namespace) -> tuple[TrajectoryAnimator, str | None]:
    """Loads the models once; returns ``(animator, banner)`` (banner None with real weights).

    Missing weights switch to tiny mode with a one-line notice on stderr instead of failing.
    """
    settings = {"device": args.device, "dtype": args.dtype, "memory": args.memory}
    if args.tiny:
        return TrajectoryAnimator.tiny(**settings), tiny_banner()
    try:
        return TrajectoryAnimator.from_pretrained(args.ckpt_dir, **settings), None
    except CheckpointError as error:
        print(f"{error}: starting in tiny mode instead (outputs are noise)", file=sys.stderr)
    return TrajectoryAnimator.tiny(**settings), tiny_banner("real weights not found")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        animator, banner = load_animator(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve_page(lambda output_dir: build_demo(animator, output_dir, banner, args.memory), args, CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
