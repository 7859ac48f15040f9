"""The Hybrid Gradio demo shared by ``run_gradio_audio_driven.py`` and ``run_gradio_video_driven.py``.

Upload a portrait and a driving audio (or video); draw trajectories for what should move outside the face,
optionally paint a motion brush and a landmark mask; Run. The face follows landmarks generated from the audio
(AniPortrait or SadTalker) or from the driving video (SadTalker), everything else follows the drags.

Each browser session keeps its own state (:mod:`demo.hybrid_demo_state`); the models are loaded once and shared
(:class:`pipeline.hybrid_animator.HybridAnimator`). Every run writes its files and a ``settings.json`` to a new
folder under ``--output_dir``; uploaded files are only read. The page is ``demo/hybrid_page.py``, its event
handlers ``demo/hybrid_handlers.py``.
"""

from __future__ import annotations

import argparse
import sys

from demo.demo_cli import demo_argument_parser
from demo.demo_page import serve_page
from demo.hybrid_page import CSS, MODES, build_demo
from pipeline.hybrid_animator import HybridAnimator
from utils.checkpoints import default_ckpt_dir, fetch_command, require_mode
from utils.errors import CheckpointError, InputError


def tiny_banner(kind: str, reason: str | None = None) -> str:
    """The banner shown in tiny mode: outputs are noise, landmarks moved synthetically, and how to get the weights."""
    why = f" ({reason})" if reason else ""
    return (
        f"⚠️ **Tiny mode{why}.** The models are tiny and randomly initialised, so every video is noise, and the "
        f"landmarks are the portrait's own face (found by MediaPipe) moved by a synthetic stand-in "
        f"({MODES[kind]['synthetic']}) instead of the landmark models: this shows "
        "the workflow only. Images are worked on at a 64-px short side (512 with the real weights), shown magnified "
        f"on the drawing panel. Fetch the real weights with `{fetch_command('hybrid')}`"
        + (f" and `{fetch_command('sadtalker')}`" if kind == "video" else "")
        + " and restart the demo."
    )


def parse_args(kind: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = demo_argument_parser(
        f"{MODES[kind]['title']} Gradio demo.",
        tiny_help="tiny random models and synthetic landmarks, no weights needed; outputs are noise",
        default_memory="balanced",
    )
    return parser.parse_args(argv)


def load_animator(args: argparse.Namespace, kind: str) -> tuple[HybridAnimator, str | None]:
    """Loads the models once; returns ``(animator, banner)`` (banner None with real weights).

    Missing weights (the Hybrid ones, plus SadTalker's for the video-driven demo) switch to tiny mode with a
    one-line notice on stderr instead of failing.
    """
    settings = {"device": args.device, "dtype": args.dtype, "memory": args.memory}
    if args.tiny:
        return HybridAnimator.tiny(**settings), tiny_banner(kind)
    try:
        if kind == "video":
            require_mode(args.ckpt_dir or default_ckpt_dir(), "sadtalker")
        return HybridAnimator.from_pretrained(args.ckpt_dir, **settings), None
    except CheckpointError as error:
        print(f"{error}: starting in tiny mode instead (outputs are noise)", file=sys.stderr)
    return HybridAnimator.tiny(**settings), tiny_banner(kind, "real weights not found")


def main(kind: str, argv: list[str] | None = None) -> int:
    """Entry point of both demos: ``kind`` is ``audio`` or ``video``."""
    args = parse_args(kind, argv)
    try:
        animator, banner = load_animator(args, kind)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve_page(lambda output_dir: build_demo(animator, output_dir, kind, banner, args.memory), args, CSS)
    return 0
