"""Command-line arguments of the two training stages, with the released hyper-parameters as defaults.

``--tiny`` swaps in tiny random models, synthetic clips and CPU-sized settings (every one of which an
explicit flag still overrides), so a whole run with checkpoints, validation and resume takes seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import torch

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS
from train_utils.conditioning import FPS_ID, MOTION_BUCKET_ID, NOISE_AUG_STRENGTH
from utils.checkpoints import CMP_CHECKPOINT, default_ckpt_dir
from utils.errors import InputError

SVD_FOLDER = "stable-video-diffusion-img2vid-xt-1-1"

STAGE_DEFAULTS: dict[int, dict] = {
    1: {
        "output_dir": "logs/train_stage1",
        "controlnet_model_name_or_path": None,
        "height": 384,
        "width": 384,
        "train_height": None,
        "train_width": None,
        "max_train_steps": None,
        "use_8bit_adam": False,
    },
    2: {
        "output_dir": "logs/train_stage2",
        "controlnet_model_name_or_path": "logs/train_stage1/controlnet",
        "height": 384,
        "width": 384,
        "train_height": 320,
        "train_width": 320,
        "max_train_steps": 1_000_000,
        "use_8bit_adam": True,
    },
}

TINY_DEFAULTS: dict = {
    "controlnet_model_name_or_path": None,
    "height": 32,
    "width": 32,
    "train_height": None,  # = height/width, so that --height/--width also set the training size
    "train_width": None,
    "num_frames": 4,
    "sample_stride": 2,
    "s2d_size": 64,
    "learning_rate": 1e-4,
    "max_train_steps": 4,
    "checkpointing_steps": 2,
    "checkpoints_total_limit": 2,
    "validation_steps": 2,
    "num_validation_images": 1,
    "num_inference_steps": 2,
    "mixed_precision": "no",
    "use_8bit_adam": False,
    "gradient_checkpointing": False,
    "num_workers": 0,
    "flow_estimator": "farneback",
    "raft_pairs_per_call": 8,
}


REPORT_TO = ("tensorboard", "wandb", "all", "none")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# a negative number argparse would take for an option (it only knows "-1" and "-1.5", not "-1e-4")
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$", re.IGNORECASE)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`InputError` (``error: <message>``, exit 2, no usage block)."""

    def error(self, message: str):
        raise InputError(f"{message} (see --help)")


def attach_negative_numbers(argv: list[str]) -> list[str]:
    """``["--learning_rate", "-1e-4"]`` -> ``["--learning_rate=-1e-4"]``, so the value reaches the range checks."""
    joined: list[str] = []
    for token in argv:
        if joined and NEGATIVE_NUMBER.match(token) and joined[-1].startswith("--") and "=" not in joined[-1]:
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def build_parser(stage: int) -> argparse.ArgumentParser:
    """The parser of ``train_stage{stage}.py``."""
    parser = OneLineErrorParser(
        description=f"Train the MOFA-Adapter, stage {stage} "
        + ("(whole adapter, dense flow)." if stage == 1 else "(fusion encoder, CMP flow from sparse hints).")
    )
    models = parser.add_argument_group("models")
    models.add_argument("--tiny", action="store_true", help="tiny random models, synthetic clips, CPU-sized settings")
    models.add_argument("--ckpt_dir", default=None, help="checkpoint folder (default: $MOFA_CKPT_DIR or <repo>/ckpts)")
    models.add_argument(
        "--pretrained_model_name_or_path", default=None, help=f"SVD-xt 1.1 folder (default: <ckpt_dir>/{SVD_FOLDER})"
    )
    models.add_argument(
        "--controlnet_model_name_or_path",
        default=None,
        help="adapter to start from (stage 1 default: initialised from the UNet; stage 2 default: "
        "logs/train_stage1/controlnet)",
    )
    models.add_argument(
        "--cmp_checkpoint", default=None, help=f"stage 2: CMP weights (default: <ckpt_dir>/{CMP_CHECKPOINT})"
    )
    models.add_argument(
        "--s2d_size", type=int, default=384, help="stage 2: square grid CMP runs on (384 for the released CMP)"
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--train_csv", default=None, help="CSV of training videos (WebVid videoid,page_dir or a path column)"
    )
    data.add_argument("--val_csv", default=None, help="CSV of validation videos (default: the training CSV)")
    data.add_argument(
        "--data_root", default=None, help="folder the CSV paths are relative to (--tiny: <output_dir>/synthetic_data)"
    )
    data.add_argument("--num_frames", type=int, default=25)
    data.add_argument("--sample_stride", type=int, default=4)
    data.add_argument("--height", type=int, help="validation height (and training height unless --train_height)")
    data.add_argument("--width", type=int, help="validation width (and training width unless --train_width)")
    data.add_argument("--train_height", type=int)
    data.add_argument("--train_width", type=int)
    data.add_argument(
        "--resize_mode", choices=("squash", "center_crop"), default="squash", help="squash = the released training"
    )
    data.add_argument("--num_workers", type=int, default=8)
    data.add_argument(
        "--flow_estimator",
        default="raft",
        help="raft (torchvision RAFT-large), farneback (classical, no weights), precomputed (<video>.flow.npz), "
        "or module:callable returning your own estimator (e.g. UniMatch)",
    )
    data.add_argument(
        "--raft_weights", default=None, help="local RAFT-large weights (else torchvision's cache/download)"
    )
    data.add_argument("--raft_pairs_per_call", type=int, default=8, help="frame pairs per RAFT call (memory)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--seed", type=int, default=42)
    optim.add_argument("--learning_rate", type=float, default=2e-5)
    optim.add_argument("--per_gpu_batch_size", type=int, default=1)
    optim.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optim.add_argument("--num_train_epochs", type=int, default=5)
    optim.add_argument("--max_train_steps", type=int, help="overrides --num_train_epochs")
    optim.add_argument("--lr_scheduler", choices=LR_SCHEDULERS, default="constant")
    optim.add_argument("--lr_warmup_steps", type=int, default=500)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.999)
    optim.add_argument("--adam_weight_decay", type=float, default=1e-2)
    optim.add_argument("--adam_epsilon", type=float, default=1e-8)
    optim.add_argument("--use_8bit_adam", action=argparse.BooleanOptionalAction, help="bitsandbytes AdamW8bit (CUDA)")
    optim.add_argument(
        "--max_grad_norm", type=float, default=0.0, help="clip gradients to this norm; 0 = off (as released)"
    )
    optim.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default="fp16")
    optim.add_argument("--gradient_checkpointing", action=argparse.BooleanOptionalAction, default=True, help="adapter")
    optim.add_argument(
        "--unet_gradient_checkpointing",
        action="store_true",
        help="also recompute the frozen UNet's activations in the backward pass (less memory, slower; off as released)",
    )
    optim.add_argument("--allow_tf32", action="store_true")
    optim.add_argument("--vae_encode_chunk_size", type=int, default=8, help="frames per VAE encode call")

    objective = parser.add_argument_group("objective")
    objective.add_argument("--conditioning_dropout_prob", type=float, default=0.1)
    objective.add_argument(
        "--fix_train_inference_mismatch",
        action="store_true",
        help="train with the inference conventions: [-1,1] VAE and adapter inputs, pixel-noised first-frame "
        "latents, SVD time-id order",
    )
    objective.add_argument(
        "--time_ids_order", choices=("svd_xtend", "svd"), default=None, help="override the time-id order alone"
    )
    objective.add_argument(
        "--temporal_context",
        choices=TEMPORAL_CONTEXTS,
        default=DEFAULT_TEMPORAL_CONTEXT,
        help="temporal cross-attention context of the UNet and adapter: original = diffusers 0.24, as the released "
        "adapters were trained (default); per_video = today's diffusers. Identical at per-GPU batch 1",
    )
    objective.add_argument("--fps_id", type=int, default=FPS_ID, help="SVD micro-conditioning frame-rate id (6)")
    objective.add_argument("--motion_bucket_id", type=int, default=MOTION_BUCKET_ID)
    objective.add_argument("--noise_aug_strength", type=float, default=NOISE_AUG_STRENGTH)

    run = parser.add_argument_group("checkpoints, validation, logging")
    run.add_argument("--output_dir")
    run.add_argument("--logging_dir", default="logs", help="TensorBoard folder, relative to --output_dir")
    run.add_argument(
        "--report_to", choices=REPORT_TO, default="tensorboard", help="wandb and all need `pip install wandb`"
    )
    run.add_argument("--checkpointing_steps", type=int, default=2500)
    run.add_argument("--checkpoints_total_limit", type=int, default=100, help="keep the last N checkpoints")
    run.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint-N folder or 'latest'")
    run.add_argument("--validation_steps", type=int, default=2500, help="also validates at step 1")
    run.add_argument("--num_validation_images", type=int, default=4)
    run.add_argument("--num_inference_steps", type=int, default=25)
    run.add_argument("--decode_chunk_size", type=int, default=8)
    parser.set_defaults(stage=stage, **STAGE_DEFAULTS[stage])
    return parser


def parse_args(stage: int, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; ``--tiny`` first swaps in :data:`TINY_DEFAULTS`, then fills derived paths and sizes."""
    parser = build_parser(stage)
    argv = attach_negative_numbers(list(sys.argv[1:] if argv is None else argv))
    if parser.parse_known_args(argv)[0].tiny:
        parser.set_defaults(**TINY_DEFAULTS)
    args = parser.parse_args(argv)
    ckpt_dir = Path(args.ckpt_dir) if args.ckpt_dir else default_ckpt_dir()
    args.ckpt_dir = str(ckpt_dir)
    args.pretrained_model_name_or_path = args.pretrained_model_name_or_path or str(ckpt_dir / SVD_FOLDER)
    args.cmp_checkpoint = args.cmp_checkpoint or str(ckpt_dir / CMP_CHECKPOINT)
    args.train_height = args.train_height or args.height
    args.train_width = args.train_width or args.width
    if args.tiny and args.data_root is None:
        args.data_root = str(Path(args.output_dir) / "synthetic_data")
    args.data_root = args.data_root or "."
    return args


POSITIVE = (
    "learning_rate", "per_gpu_batch_size", "gradient_accumulation_steps", "num_train_epochs", "checkpointing_steps",
    "num_inference_steps", "decode_chunk_size", "vae_encode_chunk_size", "raft_pairs_per_call", "s2d_size",
    "adam_epsilon",
)  # fmt: skip
NON_NEGATIVE = (
    "num_workers", "lr_warmup_steps", "checkpoints_total_limit", "validation_steps", "num_validation_images",
    "max_grad_norm", "adam_weight_decay", "noise_aug_strength",
)  # fmt: skip


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values that would crash or silently misbehave later (before anything is built).

    Raises:
        InputError: the first bad value, naming its flag.
    """
    for name in POSITIVE + NON_NEGATIVE:
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0 or (value == 0 and name in POSITIVE):
            kind = "positive" if name in POSITIVE else "zero or more"
            raise InputError(f"--{name} must be {kind}, got {value}")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise InputError(f"--max_train_steps must be positive, got {args.max_train_steps}")
    if args.num_frames < 2 or args.sample_stride < 1:
        raise InputError(
            f"--num_frames must be 2 or more and --sample_stride 1 or more, got {args.num_frames}, {args.sample_stride}"
        )
    if not 0 <= args.conditioning_dropout_prob <= 1 / 3:
        raise InputError(
            "--conditioning_dropout_prob must be in [0, 1/3] (3p of the samples lose a condition), "
            f"got {args.conditioning_dropout_prob}"
        )
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise InputError(f"--{name} must be in [0, 1), got {getattr(args, name)}")
    multiple = 8 if args.tiny else 64
    for name in ("height", "width", "train_height", "train_width"):
        value = getattr(args, name)
        if value <= 0 or value % multiple:
            raise InputError(f"--{name} must be a positive multiple of {multiple}, got {value}")
    if args.report_to in ("wandb", "all") and importlib.util.find_spec("wandb") is None:
        raise InputError(
            f"--report_to {args.report_to} needs wandb: pip install wandb (or use --report_to tensorboard)"
        )
    if args.mixed_precision == "fp16" and (args.tiny or not torch.cuda.is_available()):  # --tiny runs on the CPU
        raise InputError("--mixed_precision fp16 needs a GPU (running on cpu); use bf16 or no")
    check_output_dir(Path(args.output_dir))


def check_output_dir(output_dir: Path) -> None:
    """``--output_dir`` must be a folder or creatable as one (no file on the way)."""
    for folder in (output_dir, *output_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"--output_dir {output_dir}: {folder} is a file, not a folder")
            return


def save_args(args: argparse.Namespace, path: Path) -> None:
    """Echo the resolved arguments as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")
