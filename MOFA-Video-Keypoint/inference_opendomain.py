"""Portrait + speech -> talking-head video of any length (landmark MOFA-Adapter, periodic sampling).

    python inference_opendomain.py --img_path portrait.jpg --audio_path speech.wav --save_root results
    python inference_opendomain.py ... --ldmk_render sadtalker   # landmarks from the 3DMM path
    python inference_opendomain.py ... --tiny            # random tiny models, synthetic landmarks, offline

Writes, under ``<save_root>/<ldmk_render>/``:
    ldmk/<image>/<audio>_<time>/input.png         the prepared reference frame (the input is never modified)
    ldmk/<image>/<audio>_<time>/landmarks.npy     (1 + N, 68, 2) float64 landmarks in pixels of input.png,
                                                  N = ceil(25 s) (aniportrait) or floor(25 s) (sadtalker)
    ldmk/<image>/<audio>_<time>/landmarks.mp4     reference | drawn landmarks, 25 fps
    out_video/<image>/<audio>_<time>.mp4          the video, 25 fps, with the audio (AAC, padded or cut to the video)
    out_video/<image>/<audio>_<time>_panels.mp4   with --panels: reference | flow | pose | dots | video
    out_video/<image>/<audio>_<time>.json         the settings used
Bad input prints one line ``error: ...`` and exits with status 2, before any file is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from utils.errors import InputError

RENDERERS = ("aniportrait", "sadtalker")  # pipeline.keypoint_animator.LANDMARK_RENDERERS, without importing torch
FPS = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ldmk_render", choices=RENDERERS, default="aniportrait", help="audio -> landmark generator")
    parser.add_argument(
        "--ckpt_dir",
        default=None,
        help="checkpoint folder (ckpts/; default $MOFA_CKPT_DIR or <repo>/ckpts), or the landmark adapter folder "
        "itself (…/ckpts/mofa/ldmk_controlnet), whose ckpts/ is then used for the rest",
    )
    parser.add_argument("--audio_path", required=True, help="speech: wav, mp3, m4a, flac, ogg, ...")
    parser.add_argument("--img_path", required=True, help="portrait image (not modified)")
    parser.add_argument("--save_root", required=True, help="output folder")
    parser.add_argument("--max_frame_len", type=int, default=125, help="most output frames, reference included")
    parser.add_argument(
        "--landmarks", default=None, help="(N, 68, 2) .npy in pixels of the prepared frame; skips audio->landmarks"
    )
    parser.add_argument("--panels", action="store_true", help="also write the 5-panel comparison video")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("MOFA_TINY") == "1",
                        help="random tiny models and synthetic landmarks (no checkpoints; the video is noise)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: the best available)")
    parser.add_argument("--dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto")
    parser.add_argument("--memory", choices=("high", "balanced", "low"), default="high", help="memory preset")
    parser.add_argument("--seed", type=int, default=41, help="seed of the diffusion noise (41, as released)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (25; 2 with --tiny)")
    parser.add_argument("--fast", action="store_true", help="run the adapter in the first 40%% of the steps only")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser.parse_args(argv)


def split_ckpt_dir(path: str | None) -> tuple[Path | None, Path | None]:
    """``(ckpt_dir, adapter_dir)`` from ``--ckpt_dir``: an adapter folder (has ``config.json``) means
    ``<ckpts>/mofa/ldmk_controlnet``, the released CLI's convention; anything else is the ``ckpts/`` root."""
    if path is None:
        return None, None
    path = Path(path)
    if (path / "config.json").is_file():
        return path.parent.parent, path
    return path, None


def load_inputs(args: argparse.Namespace):
    """Image, waveform and optional landmark file, validated before any model loads."""
    from aniportrait.audio import load_audio
    from utils.landmark_conditions import check_landmarks
    from utils.video_io import load_image

    if args.max_frame_len < 2:
        raise InputError(
            f"--max_frame_len must be at least 2 (the reference and one more frame), got {args.max_frame_len}"
        )
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be positive, got {args.steps}")
    image = load_image(args.img_path)
    waveform = load_audio(args.audio_path)
    landmarks = None
    if args.landmarks is not None:
        try:
            landmarks = check_landmarks(np.load(args.landmarks, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read landmarks {args.landmarks}: {error}") from None
    return image, waveform, landmarks


def run(args: argparse.Namespace) -> Path:
    """Generate and write everything; returns the video path."""
    from pipeline.keypoint_animator import TINY_LANDMARK_NOTICES, TINY_NOTICE, KeypointAnimator
    from utils.landmark_conditions import landmark_preview_frames
    from utils.video_io import atomic_output, mux_audio, save_png, write_video

    image, waveform, landmarks = load_inputs(args)
    ckpt_dir, adapter_dir = split_ckpt_dir(args.ckpt_dir)
    animator = KeypointAnimator(
        ckpt_dir=ckpt_dir,
        adapter_dir=adapter_dir,
        device=args.device,
        dtype=args.dtype,
        memory=args.memory,
        tiny=args.tiny,
        landmark_renderers=(args.ldmk_render,) if landmarks is None else (),
    )
    notices = [TINY_NOTICE] if args.tiny else []
    frame = animator.prepare_image(image)
    if landmarks is None:
        landmarks = animator.landmarks_from_audio(frame, waveform, Path(args.img_path).name, args.ldmk_render)
        if args.tiny:
            notices.append(TINY_LANDMARK_NOTICES[args.ldmk_render])
    for notice in notices:
        print(notice)

    run_name = f"{Path(args.audio_path).stem}_{int(time.time())}"
    render_root = Path(args.save_root) / args.ldmk_render
    landmark_dir = render_root / "ldmk" / Path(args.img_path).stem / run_name
    video_path = render_root / "out_video" / Path(args.img_path).stem / f"{run_name}.mp4"
    panels_path = video_path.with_name(f"{run_name}_panels.mp4")
    settings_path = video_path.with_suffix(".json")
    outputs = [landmark_dir / name for name in ("input.png", "landmarks.npy", "landmarks.mp4")]
    outputs += [video_path, settings_path]
    outputs += [panels_path] if args.panels else []
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not args.overwrite:
        raise InputError(f"{existing[0]} already exists; pass --overwrite to replace it")

    save_png(landmark_dir / "input.png", frame, overwrite=args.overwrite)
    with atomic_output(landmark_dir / "landmarks.npy", args.overwrite) as temporary:
        np.save(temporary, landmarks.astype(np.float64))
    preview = landmark_preview_frames(np.asarray(frame), landmarks)
    write_video(landmark_dir / "landmarks.mp4", preview, fps=FPS, overwrite=args.overwrite)

    result = animator.animate(
        frame, landmarks, max_frames=args.max_frame_len, steps=args.steps, seed=args.seed, fast=args.fast
    )
    video_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=video_path.parent, prefix=".silent.") as scratch:
        silent = write_video(Path(scratch) / "video.mp4", result.frames, fps=FPS)
        mux_audio(silent, args.audio_path, video_path, overwrite=args.overwrite, keep_all_frames=True)
        if args.panels:
            silent_panels = write_video(Path(scratch) / "panels.mp4", result.panel_frames(), fps=FPS)
            mux_audio(silent_panels, args.audio_path, panels_path, overwrite=args.overwrite, keep_all_frames=True)
    settings = {
        **{key: value for key, value in vars(args).items()},
        "frames": len(result.frames),
        "width": frame.width,
        "height": frame.height,
        "fps": FPS,
        "steps": args.steps or animator.default_steps,
        "dtype": str(animator.memory.dtype).removeprefix("torch."),
        "device": str(animator.device),
        "notices": notices,
    }
    with atomic_output(settings_path, args.overwrite) as temporary:
        temporary.write_text(json.dumps(settings, indent=2))
    print(f"landmarks: {landmark_dir / 'landmarks.npy'}")
    print(f"video: {video_path} ({len(result.frames)} frames, {frame.width}x{frame.height}, {FPS} fps, with audio)")
    return video_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
