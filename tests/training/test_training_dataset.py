"""Training data: CSV layouts, clip sampling, resizing, skipped videos, precomputed flow, make_csv."""

import random

import numpy as np
import pytest
import soundfile
import torch

from train_utils.arguments import parse_args
from train_utils.dataset import (
    SkippedVideos,
    UnreadableVideoError,
    VideoClipDataset,
    VideoEntry,
    collate_clips,
    precomputed_flow_path,
    read_video_csv,
    resize_geometry,
    sample_frame_indices,
)
from train_utils.make_csv import main as make_csv_main
from train_utils.precompute_flow import main as precompute_main
from train_utils.synthetic import make_synthetic_dataset
from utils.errors import InputError
from utils.video_io import write_video


def brightness_coded_video(path, num_frames=30, height=32, width=48):
    """Frame i is a flat grey of level 6*i, so the decoded brightness tells which frame was read."""
    levels = (np.arange(num_frames) * 6).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()
    return write_video(path, frames, fps=8)


def decoded_frame_indices(pixel_values):
    return [round(float(level)) for level in (pixel_values.mean(dim=(1, 2, 3)) * 255 / 6)]


def test_webvid_csv_follows_the_videos_page_dir_videoid_rule(tmp_path):
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("videoid,page_dir,name\n1066,000001_000050,a cat\n0042,000051_000100,a dog\n")
    entries = read_video_csv(csv_path, tmp_path / "WebVid")
    assert entries == [
        VideoEntry(tmp_path / "WebVid/videos/000001_000050/1066.mp4", "000001_000050/1066.mp4"),
        VideoEntry(tmp_path / "WebVid/videos/000051_000100/0042.mp4", "000051_000100/0042.mp4"),
    ]


def test_path_csv_is_relative_to_data_root_unless_absolute(tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(f"path\nsub/a.mp4\n{tmp_path / 'b.mp4'}\n")
    entries = read_video_csv(csv_path, tmp_path / "root")
    assert [entry.path for entry in entries] == [tmp_path / "root/sub/a.mp4", tmp_path / "b.mp4"]


def test_csv_without_known_columns_is_an_input_error(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("file,caption\na.mp4,x\n")
    with pytest.raises(InputError, match="'path' column or the WebVid columns"):
        read_video_csv(csv_path, tmp_path)


def test_quirk_clip_needs_stride_times_frames_one_stride_more_than_it_uses():
    rng = random.Random(0)
    for _ in range(20):
        indices = sample_frame_indices(100, 25, 4, rng)
        assert indices == [indices[0] + 4 * i for i in range(25)]
    assert sample_frame_indices(100, 25, 4, rng)[0] == 0  # no slack: start 0
    with pytest.raises(UnreadableVideoError, match="needs 100"):
        sample_frame_indices(99, 25, 4, rng)


def test_dataset_reads_the_strided_frames_resized_to_the_training_size(tmp_path):
    video = brightness_coded_video(tmp_path / "v.mp4", num_frames=30)
    dataset = VideoClipDataset([VideoEntry(video, "v.mp4")], num_frames=5, sample_stride=3, height=16, width=24)
    sample = dataset[0]
    assert sample["pixel_values"].shape == (5, 3, 16, 24)
    assert sample["pixel_values"].dtype == torch.float32
    assert 0.0 <= sample["pixel_values"].min() and sample["pixel_values"].max() <= 1.0
    indices = decoded_frame_indices(sample["pixel_values"])
    assert indices == [indices[0] + 3 * i for i in range(5)]
    assert 0 <= indices[0] <= 30 - 15
    assert sample["skipped"] == []


def test_clip_start_depends_only_on_seed_epoch_and_index(tmp_path):
    video = brightness_coded_video(tmp_path / "v.mp4", num_frames=30)
    entries = [VideoEntry(video, "v.mp4")]
    starts = {}
    for epoch in range(6):
        first = VideoClipDataset(entries, 3, 2, 8, 8, seed=5)
        again = VideoClipDataset(entries, 3, 2, 8, 8, seed=5)
        first.set_epoch(epoch)
        again.set_epoch(epoch)
        starts[epoch] = decoded_frame_indices(first[0]["pixel_values"])[0]
        assert decoded_frame_indices(again[0]["pixel_values"])[0] == starts[epoch]
    assert len(set(starts.values())) > 1


def test_quirk_training_frames_are_squashed_to_the_size_by_default():
    assert parse_args(1, ["--output_dir", "unused"]).resize_mode == "squash"
    assert resize_geometry((64, 32), 32, 32, "squash").resized_size == (32, 32)
    crop = resize_geometry((64, 32), 32, 32, "center_crop")
    assert (crop.resized_size, crop.left, crop.top) == ((64, 32), 16, 0)
    tall = resize_geometry((30, 60), 20, 20, "center_crop")
    assert (tall.resized_size, tall.left, tall.top) == ((20, 40), 0, 10)


def test_center_crop_takes_the_middle_of_a_wide_frame(tmp_path):
    frames = np.zeros((8, 16, 48, 3), dtype=np.uint8)
    frames[:, :, 16:32] = 255  # white middle third
    video = write_video(tmp_path / "wide.mp4", frames, fps=8)
    dataset = VideoClipDataset([VideoEntry(video, "wide.mp4")], 2, 1, 16, 16, resize_mode="center_crop")
    assert dataset[0]["pixel_values"].mean() > 0.95
    squashed = VideoClipDataset([VideoEntry(video, "wide.mp4")], 2, 1, 16, 16)[0]["pixel_values"]
    assert 0.2 < squashed.mean() < 0.5


def test_missing_corrupt_and_short_videos_are_replaced_by_random_rows_and_reported(tmp_path):
    good = brightness_coded_video(tmp_path / "good.mp4", num_frames=20)
    other = brightness_coded_video(tmp_path / "other.mp4", num_frames=20)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    short = brightness_coded_video(tmp_path / "short.mp4", num_frames=4)
    entries = [
        VideoEntry(tmp_path / "missing.mp4", "missing.mp4"),
        VideoEntry(corrupt, "corrupt.mp4"),
        VideoEntry(short, "short.mp4"),
        VideoEntry(good, "good.mp4"),
        VideoEntry(other, "other.mp4"),
    ]
    dataset = VideoClipDataset(entries, num_frames=4, sample_stride=2, height=8, width=8)
    reasons = {"missing.mp4": "no such file", "corrupt.mp4": "cannot be decoded", "short.mp4": "has 4 frames, needs 8"}
    replacements = []
    for epoch in range(12):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        assert sample["skipped"][0] == ("missing.mp4", "no such file")
        assert all(reason.startswith(reasons[name]) for name, reason in sample["skipped"])
        replacements.append(sample["video_name"])
    # a broken row's draw goes to a random readable row, not always to the next one
    assert set(replacements) == {"good.mp4", "other.mp4"}

    skipped = SkippedVideos()
    assert skipped.add([("a.mp4", "no such file"), ("b.mp4", "empty file"), ("a.mp4", "no such file")]) == [
        ("a.mp4", "no such file"),
        ("b.mp4", "empty file"),
    ]
    assert skipped.add([("a.mp4", "no such file")]) == []
    assert skipped.summary() == "skipped 2 unreadable or too-short videos (4 times in all): a.mp4, b.mp4"
    skipped.add([(f"clip{index:02d}.mp4", "empty file") for index in range(30)])
    assert skipped.summary().endswith("clip17.mp4 and 12 more")
    batch = collate_clips([dataset[3], dataset[0]])
    assert batch["pixel_values"].shape == (2, 4, 3, 8, 8) and batch["skipped"][0] == ("missing.mp4", "no such file")


def test_a_dataset_with_no_readable_video_raises_instead_of_looping(tmp_path):
    dataset = VideoClipDataset([VideoEntry(tmp_path / "nope.mp4", "nope.mp4")], 2, 1, 8, 8)
    with pytest.raises(InputError, match="none of the 1 videos could be read .1 tries; e.g. nope.mp4."):
        dataset[0]


def test_precomputed_flow_uses_its_frame_indices_and_is_rescaled(tmp_path):
    video = brightness_coded_video(tmp_path / "v.mp4", num_frames=20, height=32, width=48)
    flow = np.zeros((2, 2, 8, 12), dtype=np.float16)
    flow[:, 0], flow[:, 1] = 1.0, 2.0  # on a 12x8 grid
    np.savez(precomputed_flow_path(video), frame_indices=np.array([3, 7, 11]), flow=flow)
    dataset = VideoClipDataset([VideoEntry(video, "v.mp4")], 3, 4, 16, 24, use_precomputed_flow=True)
    sample = dataset[0]
    assert decoded_frame_indices(sample["pixel_values"]) == [3, 7, 11]
    assert sample["flow"].shape == (2, 2, 16, 24)
    assert torch.allclose(sample["flow"][:, 0], torch.tensor(2.0))  # 1 px of 12 -> 2 px of 24
    assert torch.allclose(sample["flow"][:, 1], torch.tensor(4.0))  # 2 px of 8 -> 4 px of 16


def test_make_csv_lists_every_readable_video_under_a_folder(tmp_path, capsys):
    make_synthetic_dataset(tmp_path / "data", num_videos=2, num_frames=4, height=16, width=16)
    (tmp_path / "data/notes.txt").write_text("not a video")
    (tmp_path / "data/notes.mp4").write_text("a text file named .mp4")
    (tmp_path / "data/zero.mov").write_bytes(b"")
    assert make_csv_main([str(tmp_path / "data"), "--output", str(tmp_path / "list.csv")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote 2 videos to {tmp_path / 'list.csv'}",
        "left out 2 empty or unreadable files: notes.mp4, zero.mov",
    ]
    entries = read_video_csv(tmp_path / "list.csv", tmp_path / "data")
    assert [entry.name for entry in entries] == ["videos/synthetic/clip000.mp4", "videos/synthetic/clip001.mp4"]
    assert all(entry.path.is_file() for entry in entries)
    assert make_csv_main([str(tmp_path / "empty"), "--output", str(tmp_path / "x.csv")]) == 2
    assert "error: no such folder" in capsys.readouterr().err


def test_precompute_flow_writes_files_the_dataset_reads_back(tmp_path, capsys):
    csv_path = make_synthetic_dataset(tmp_path, num_videos=2, num_frames=10, height=32, width=32)
    audio_only = tmp_path / "videos/synthetic/sound.mp4"  # a file without a video stream
    soundfile.write(audio_only, np.zeros(800, np.float32), 8000, format="WAV")
    (tmp_path / "list.csv").write_text(csv_path.read_text() + "missing,synthetic,gone\nsound,synthetic,audio only\n")
    argv = [
        "--train_csv",
        str(tmp_path / "list.csv"),
        "--data_root",
        str(tmp_path),
        "--num_frames",
        "3",
        "--sample_stride",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--flow_estimator",
        "farneback",
        "--device",
        "cpu",
    ]
    assert precompute_main(argv) == 0
    assert "wrote 2 flow files, skipped 2" in capsys.readouterr().out
    entries = read_video_csv(csv_path, tmp_path)
    with np.load(precomputed_flow_path(entries[0].path)) as stored:
        assert stored["flow"].shape == (2, 2, 32, 32) and stored["flow"].dtype == np.float16
        indices = stored["frame_indices"].tolist()
    assert indices == [indices[0], indices[0] + 2, indices[0] + 4]
    sample = VideoClipDataset(entries, 3, 2, 16, 16, use_precomputed_flow=True)[0]
    assert sample["flow"].shape == (2, 2, 16, 16)
    square_motion = sample["flow"].abs().amax()
    assert 0 < square_motion < 16


def test_precompute_flow_reports_a_bad_estimator_as_one_error_line(tmp_path, capsys):
    code = precompute_main(["--train_csv", str(tmp_path / "list.csv"), "--flow_estimator", "precomputed"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --flow_estimator precomputed cannot precompute; choose raft, farneback or module:callable"
    )
