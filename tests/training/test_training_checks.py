"""Arguments and data checked before any network is built; --tiny defaults giving way to flags; fixed validation
clips across a resume; the skipped-files summary; checkpoints that are complete or not there."""

import csv
import json
import logging

import av
import numpy as np
import pytest
from accelerate.state import AcceleratorState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train_utils.trainer as trainer
from train_utils.arguments import TINY_DEFAULTS, parse_args
from train_utils.checkpointing import finish_checkpoint, list_checkpoints, prune_checkpoints, resolve_resume_checkpoint
from utils.errors import InputError


@pytest.fixture(scope="module")
def clips(clips):
    """The shared clips plus broken files in their folder: (data_root, training CSV)."""
    root, _ = clips
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom not really a video" * 20)
    (root / "empty.mp4").write_bytes(b"")
    (root / "a_file").write_text("")
    return clips


def write_csv(path, rows):
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["path"], *[[row] for row in rows]])
    return path


# ------------------------------------------------------------------------------------------------ arguments

TINY_OVERRIDES = {
    "controlnet_model_name_or_path": "some/adapter", "height": 64, "width": 48, "train_height": 24, "train_width": 40,
    "num_frames": 6, "sample_stride": 3, "s2d_size": 96, "learning_rate": 3e-4, "max_train_steps": 9,
    "checkpointing_steps": 5, "checkpoints_total_limit": 7, "validation_steps": 6, "num_validation_images": 3,
    "num_inference_steps": 4, "mixed_precision": "bf16", "num_workers": 2, "flow_estimator": "raft",
    "raft_pairs_per_call": 3,
}  # fmt: skip


def test_every_tiny_default_gives_way_to_an_explicit_flag():
    flags = {"use_8bit_adam": "--use_8bit_adam", "gradient_checkpointing": "--gradient_checkpointing"}
    assert set(TINY_DEFAULTS) == set(TINY_OVERRIDES) | set(flags)
    argv = ["--tiny", *flags.values()]
    for name, value in TINY_OVERRIDES.items():
        assert value != TINY_DEFAULTS[name]
        argv += [f"--{name}", str(value)]
    args = parse_args(2, argv)
    assert {name: getattr(args, name) for name in TINY_OVERRIDES} == TINY_OVERRIDES
    assert args.use_8bit_adam is True and args.gradient_checkpointing is True


@pytest.mark.parametrize("stage", [1, 2])
def test_tiny_height_and_width_also_set_the_training_size(stage):
    args = parse_args(stage, ["--tiny", "--height", "64", "--width", "48"])
    assert (args.height, args.width, args.train_height, args.train_width) == (64, 48, 64, 48)
    tiny = parse_args(stage, ["--tiny"])
    assert (tiny.train_height, tiny.train_width) == (32, 32)


def bad_cases(root, csv_path):
    train = ["--train_csv", str(csv_path), "--data_root", str(root), "--output_dir", str(root / "out")]
    return [
        ([*train, "--learning_rate=-1e-4"], "--learning_rate must be positive, got -0.0001"),
        ([*train, "--learning_rate", "-1e-4"], "--learning_rate must be positive, got -0.0001"),
        ([*train, "--learning_rate"], "argument --learning_rate: expected one argument (see --help)"),
        (
            [*train[:4], "--output_dir", str(root / "a_file/run")],
            f"--output_dir {root}/a_file/run: {root}/a_file is a file, not a folder",
        ),
        ([*train, "--max_train_steps", "0"], "--max_train_steps must be positive, got 0"),
        ([*train, "--max_train_steps", "-2"], "--max_train_steps must be positive, got -2"),
        ([*train, "--checkpointing_steps", "0"], "--checkpointing_steps must be positive, got 0"),
        ([*train, "--per_gpu_batch_size", "0"], "--per_gpu_batch_size must be positive, got 0"),
        ([*train, "--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be positive, got 0"),
        ([*train, "--height", "20"], "--height must be a positive multiple of 8, got 20"),
        ([*train, "--conditioning_dropout_prob", "0.5"], "--conditioning_dropout_prob must be in [0, 1/3]"),
        ([*train, "--lr_scheduler", "sometimes"], "argument --lr_scheduler: invalid choice: 'sometimes'"),
        ([*train[:2], "--data_root", str(root / "nowhere"), *train[4:]], f"--data_root: no such folder {root}/nowhere"),
        (["--train_csv", str(root / "nothing.csv"), *train[2:]], f"--train_csv: no such file {root}/nothing.csv"),
        (
            ["--train_csv", str(write_csv(root / "gone.csv", ["missing.mp4", "empty.mp4"])), *train[2:]],
            f"--train_csv {root}/gone.csv: none of its 2 videos is under --data_root {root} "
            "(first: missing.mp4: no such file)",
        ),
        (
            [*train, "--val_csv", str(write_csv(root / "val.csv", ["corrupt.mp4", "missing.mp4"]))],
            f"validation set (--val_csv {root}/val.csv): none of its 2 videos could be read "
            "(first: corrupt.mp4: cannot be decoded",
        ),
        (
            [*train, "--resume_from_checkpoint", str(root)],
            f"--resume_from_checkpoint: {root} is not a checkpoint-<step> folder",
        ),
    ]


def test_bad_arguments_and_data_are_one_line_before_any_network_is_built(clips, capsys, monkeypatch, tiny_clip_args):
    root, csv_path = clips
    built = []
    monkeypatch.setattr(trainer, "load_components", lambda *args, **kwargs: built.append(args) or pytest.fail("built"))
    for argv, expected in bad_cases(root, csv_path):
        AcceleratorState._reset_state(reset_partial_state=True)
        code = trainer.main(1, [*tiny_clip_args, *argv])
        error = capsys.readouterr().err
        assert code == 2 and error.startswith(f"error: {expected}") and error.count("\n") == 1, (argv, error)
    assert built == []  # no network was built


@pytest.mark.skipif(__import__("importlib").util.find_spec("wandb") is not None, reason="wandb is installed")
def test_report_to_wandb_without_wandb_is_an_error(tmp_path, capsys):
    assert trainer.main(1, ["--tiny", "--output_dir", str(tmp_path), "--report_to", "wandb"]) == 2
    assert (
        capsys.readouterr().err
        == "error: --report_to wandb needs wandb: pip install wandb (or use --report_to tensorboard)\n"
    )


# ---------------------------------------------------------------------------------------------- checkpoints


def test_latest_is_the_newest_complete_checkpoint_and_pruning_spares_incomplete_ones(tmp_path):
    for step in (2, 4, 6):
        partial = tmp_path / f"checkpoint-{step}.partial"
        partial.mkdir()
        finish_checkpoint(partial, step, num_processes=1)
    (tmp_path / "checkpoint-8").mkdir()  # no checkpoint.json: killed while saving by an older version
    (tmp_path / "checkpoint-10.partial").mkdir()
    assert resolve_resume_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-6"
    assert json.loads((tmp_path / "checkpoint-6/checkpoint.json").read_text()) == {"step": 6, "num_processes": 1}
    with pytest.raises(InputError, match="checkpoint-8 is incomplete"):
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-8"))
    with pytest.raises(InputError, match="no such folder"):
        resolve_resume_checkpoint(tmp_path, "stabilityai/not-a-local-folder")  # never looked up on the hub
    assert [path.name for path in prune_checkpoints(tmp_path, keep=2)] == ["checkpoint-2"]
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6"]
    assert (tmp_path / "checkpoint-8").is_dir()


# ------------------------------------------------------------------------------------- validation, skipping


def ground_truth_column(path, size=16):
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24")[:, -size:] for frame in container.decode(video=0)]).astype(
            float
        )


def test_validation_clips_are_fixed_readable_distinct_and_the_same_after_a_resume(
    tmp_path, clips, caplog, tiny_clip_args
):
    root, _ = clips
    val_csv = write_csv(
        root / "val_mixed.csv",
        [
            "corrupt.mp4",
            "videos/synthetic/clip001.mp4",
            "missing.mp4",
            "videos/synthetic/clip001.mp4",
            "videos/synthetic/clip000.mp4",
        ],
    )
    argv = [
        *tiny_clip_args, "--output_dir", str(tmp_path), "--data_root", str(root),
        "--train_csv", str(root / "train.csv"), "--val_csv", str(val_csv),
        "--num_validation_images", "2", "--validation_steps", "1", "--checkpointing_steps", "2",
        "--report_to", "tensorboard",
    ]  # fmt: skip
    trainer.train(parse_args(1, [*argv, "--max_train_steps", "2"]))
    AcceleratorState._reset_state(reset_partial_state=True)
    with caplog.at_level(logging.INFO):
        trainer.train(parse_args(1, [*argv, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"]))
    assert "resuming from" in caplog.text
    expected = ["000-videos_synthetic_clip001.mp4", "001-videos_synthetic_clip000.mp4"]
    folders = sorted((tmp_path / "validation_images").iterdir())
    assert [folder.name for folder in folders] == ["step_1_val_img", "step_2_val_img", "step_3_val_img"]
    for folder in folders:
        assert sorted(path.name for path in folder.iterdir()) == expected
    first, resumed = (
        ground_truth_column(tmp_path / f"validation_images/step_{step}_val_img/{expected[0]}") for step in (1, 3)
    )
    other = ground_truth_column(tmp_path / "validation_images/step_1_val_img" / expected[1])
    assert np.abs(first - resumed).mean() < 2 < np.abs(first - other).mean()
    images = {}
    for events in (tmp_path / "logs").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events)).Reload()
        if "validation" in accumulator.Tags()["images"]:
            images.update({event.step: (event.height, event.width) for event in accumulator.Images("validation")})
    assert images == {1: (2 * 16, 4 * 16), 2: (2 * 16, 4 * 16), 3: (2 * 16, 4 * 16)}  # 2 clips x 4 columns of 16 px


def test_the_summary_names_the_skipped_files_and_epochs_count_readable_clips(tmp_path, clips, caplog, tiny_clip_args):
    root, _ = clips
    train_csv = write_csv(
        root / "train_mixed.csv",
        ["videos/synthetic/clip000.mp4", "missing.mp4", "corrupt.mp4", "empty.mp4", "videos/synthetic/clip001.mp4"],
    )
    argv = [*tiny_clip_args, "--output_dir", str(tmp_path), "--data_root", str(root), "--train_csv", str(train_csv),
            "--validation_steps", "0", "--max_train_steps", "6", "--checkpointing_steps", "100"]  # fmt: skip
    with caplog.at_level(logging.INFO):
        result = trainer.train(parse_args(1, argv))
    assert "3 clips, 3 steps per epoch" in caplog.text  # missing.mp4 and empty.mp4 left out
    assert result.skipped_videos == 3
    summary = result.skip_summary
    assert summary.startswith("skipped 3 unreadable or too-short videos (") and summary.endswith(
        "): corrupt.mp4, empty.mp4, missing.mp4"
    )
    assert caplog.text.count("skipping video corrupt.mp4: cannot be decoded") == 1  # once, however often it is drawn
