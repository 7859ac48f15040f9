"""What a run checks before any network is built: the data, the validation clips, the checkpoint files.

``train_stage*.sh`` runs :func:`check_arguments` and :func:`check_data` once before launching the
training processes (:mod:`train_utils.launch`), and every process runs them again; a problem is one
``error: ...`` line and exit status 2, before a model or a GPU is touched.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from train_utils.checkpointing import resolve_resume_checkpoint
from train_utils.dataset import VideoClipDataset, VideoEntry, present_entries, read_video_csv, select_validation_clips
from train_utils.synthetic import make_synthetic_dataset
from utils.checkpoints import SVD_FILES, require_files
from utils.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from accelerate import Accelerator

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """The checked data of a run.

    Attributes:
        train_entries: training rows whose file exists and is not empty (an epoch is made of these).
        absent: ``(name, reason)`` of the rows left out.
        validation: the validation clips' dataset (validation size, clips drawn as in epoch 0).
        validation_indices: the fixed validation clips, entry indices of ``validation``.
    """

    train_entries: list[VideoEntry]
    absent: list[tuple[str, str]]
    validation: VideoClipDataset
    validation_indices: list[int]


def prepare_tiny_data(args: argparse.Namespace, accelerator: Accelerator | None = None) -> None:
    """``--tiny`` without ``--train_csv``: write synthetic clips under ``--data_root`` once (on the main process)."""
    if args.train_csv is not None:
        return
    csv_path = Path(args.data_root) / "train.csv"
    if (accelerator is None or accelerator.is_main_process) and not csv_path.is_file():
        frames_needed = args.num_frames * args.sample_stride + 8
        make_synthetic_dataset(
            args.data_root, num_videos=2, num_frames=frames_needed, height=64, width=64, seed=args.seed
        )
    if accelerator is not None:
        accelerator.wait_for_everyone()
    args.train_csv = str(csv_path)


def check_data(args: argparse.Namespace) -> RunData:
    """Check the model files, the resume checkpoint, the data folder and CSVs; choose the validation clips.

    Raises:
        InputError: the first problem found, naming its flag.
    """
    check_model_files(args)
    resolve_resume_checkpoint(Path(args.output_dir), args.resume_from_checkpoint)
    if args.train_csv is None:
        raise InputError("--train_csv is required (or use --tiny for synthetic clips)")
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        raise InputError(f"--data_root: no such folder {data_root}")
    entries = read_video_csv(args.train_csv, data_root, flag="--train_csv")
    train_entries, absent = present_entries(entries)
    if not train_entries:
        name, reason = absent[0]
        raise InputError(
            f"--train_csv {args.train_csv}: none of its {len(entries)} videos is under --data_root {data_root} "
            f"(first: {name}: {reason})"
        )
    if absent:
        logger.warning(
            "left out %d of %d training videos (missing or empty files), e.g. %s",
            len(absent),
            len(entries),
            absent[0][0],
        )
    validation, label = validation_dataset(args, train_entries)
    count = args.num_validation_images if args.validation_steps > 0 else 0
    return RunData(train_entries, absent, validation, select_validation_clips(validation, count, label))


def validation_dataset(args: argparse.Namespace, train_entries: list[VideoEntry]) -> tuple[VideoClipDataset, str]:
    """The validation videos (``--val_csv``, else the training ones) at the validation size, and their name."""
    if args.val_csv:
        entries = read_video_csv(args.val_csv, args.data_root, flag="--val_csv")
        label = f"validation set (--val_csv {args.val_csv})"
    else:
        entries, label = train_entries, f"validation set (the training videos of {args.train_csv})"
    dataset = VideoClipDataset(
        entries,
        args.num_frames,
        args.sample_stride,
        args.height,
        args.width,
        args.resize_mode,
        seed=args.seed,
        use_precomputed_flow=args.flow_estimator == "precomputed",
    )
    return dataset, label


def check_model_files(args: argparse.Namespace) -> Path | None:
    """Check that the files the run loads exist (nothing is read); returns the adapter folder to start from.

    Raises:
        CheckpointError: a missing file, naming it and ``make fetch MODE=training``.
    """
    adapter = adapter_path(args)
    if not args.tiny:
        require_files(
            Path(args.pretrained_model_name_or_path),
            [name for name in SVD_FILES if name != "model_index.json"],
            "training",
        )
        cmp_path = Path(args.cmp_checkpoint)
        if args.stage == 2 and not cmp_path.is_file():
            raise CheckpointError(
                f"missing checkpoint {cmp_path}; run `make fetch MODE=training` (or pass --cmp_checkpoint)"
            )
    return adapter


def adapter_path(args: argparse.Namespace) -> Path | None:
    """The adapter folder to start from (checked before any heavy loading), or None to initialise one."""
    if not args.controlnet_model_name_or_path:
        return None
    path = Path(args.controlnet_model_name_or_path)
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"--controlnet_model_name_or_path: no adapter (config.json) in {path}"
            + ("; stage 2 starts from the stage-1 output's controlnet/ folder" if args.stage == 2 else "")
        )
    return path
