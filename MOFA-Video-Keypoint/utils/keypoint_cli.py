"""The command line of ``inference_opendomain.py`` (portrait + speech -> talking head): options and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_arguments import HelpFormatter, add_device_arguments, add_temporal_context_argument, add_tiny_argument
from .landmark_renderers import LANDMARK_RENDERERS

DESCRIPTION = "Portrait + speech -> talking-head video of any length (landmark MOFA-Adapter, periodic sampling)."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``inference_opendomain.py``'s options: one run (``--img_path --save_root`` with ``--audio_path`` and/or
    ``--landmarks``) or ``--jobs``."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument(
        "--ldmk_render", choices=LANDMARK_RENDERERS, default="aniportrait", help="audio -> landmark generator"
    )
    parser.add_argument(
        "--ckpt_dir",
        default=None,
        help="checkpoint folder (ckpts/; default $MOFA_CKPT_DIR or <repo>/ckpts), or the landmark adapter folder "
        "itself (…/ckpts/mofa/ldmk_controlnet), whose ckpts/ is then used for the rest",
    )
    parser.add_argument("--audio_path", default=None, help="speech: wav, mp3, m4a, flac, ogg, ...")
    parser.add_argument("--img_path", default=None, help="portrait image (not modified)")
    parser.add_argument("--save_root", default=None, help="output folder (with --jobs: for jobs that set none)")
    parser.add_argument("--jobs", default=None, help="JSON-lines file of runs (replaces --img_path/--audio_path)")
    parser.add_argument(
        "--max_frame_len",
        type=int,
        default=None,
        help="most output frames, reference included (default: the whole audio or landmark file)",
    )
    parser.add_argument(
        "--landmarks", default=None, help="(N, 68, 2) .npy in pixels of the prepared frame; skips audio->landmarks"
    )
    parser.add_argument("--panels", action="store_true", help="also write the 5-panel comparison video")
    add_tiny_argument(
        parser, "random tiny models and stand-in landmark motion on the real face (no checkpoints; the video is noise)"
    )
    add_device_arguments(parser, "high", "memory preset")
    parser.add_argument("--seed", type=int, default=41, help="seed of the diffusion noise, as released")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (25; 2 with --tiny)")
    parser.add_argument(
        "--fast", action="store_true", help="fast mode: the adapter at every 4th step, its residuals reused in between"
    )
    add_temporal_context_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.jobs is not None and any(value is not None for value in (args.img_path, args.audio_path, args.landmarks)):
        parser.error("--jobs cannot be combined with --img_path/--audio_path/--landmarks")
    if args.jobs is None and (args.img_path is None or args.save_root is None):
        parser.error("give --img_path and --save_root (with --audio_path and/or --landmarks), or --jobs")
    if args.jobs is None and args.audio_path is None and args.landmarks is None:
        parser.error("give --audio_path, --landmarks or both")
    return args


def split_ckpt_dir(path: str | None) -> tuple[Path | None, Path | None]:
    """``(ckpt_dir, adapter_dir)`` from ``--ckpt_dir``: an adapter folder (has ``config.json``) means
    ``<ckpts>/mofa/ldmk_controlnet``, the released CLI's convention; anything else is the ``ckpts/`` root."""
    if path is None:
        return None, None
    path = Path(path)
    if (path / "config.json").is_file():
        return path.parent.parent, path
    return path, None
