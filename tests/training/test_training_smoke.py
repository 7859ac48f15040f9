"""Training end to end with tiny models on CPU: steps, checkpoints, resume, stage 2, skipped videos, over-fitting."""

import csv
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.flow_controlnet import FlowControlNet
from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline
from train_utils.arguments import parse_args
from train_utils.checkpointing import prune_checkpoints
from train_utils.components import freeze, load_components, set_trainable_parameters
from train_utils.conditioning import ConditioningDropout, TrainingConventions
from train_utils.dataset import VideoClipDataset, read_video_csv
from train_utils.trainer import main
from train_utils.training_step import AdapterTrainingStep, StepConfig, TrainingRandomness


def adapter_state(folder):
    return load_file(Path(folder) / "diffusion_pytorch_model.safetensors")


def test_stage1_two_steps_checkpoint_holds_only_the_adapter_and_training_state(tmp_path, clips, train_on_clips):
    result = train_on_clips(
        1, tmp_path, clips, "--max_train_steps", 2, "--checkpointing_steps", 2, "--report_to", "tensorboard"
    )
    assert result.global_step == 2 and sorted(result.losses) == [1, 2]
    assert all(np.isfinite(loss) for loss in result.losses.values())
    checkpoint = tmp_path / "checkpoint-2"
    files = sorted(str(path.relative_to(checkpoint)) for path in checkpoint.rglob("*") if path.is_file())
    assert files == [
        "checkpoint.json",
        "controlnet/config.json",
        "controlnet/diffusion_pytorch_model.safetensors",
        "optimizer.bin",
        "random_states_0.pkl",
        "scheduler.bin",
        "trainer_state_0.pt",
    ]
    final = FlowControlNet.from_pretrained(tmp_path / "controlnet")
    saved = adapter_state(checkpoint / "controlnet")
    assert all(torch.equal(saved[name], value) for name, value in final.state_dict().items())
    trainable = (tmp_path / "trainable_parameters.txt").read_text().split()
    assert trainable == [name for name, _ in final.named_parameters()]
    assert (tmp_path / "frozen_parameters.txt").read_text() == ""
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_resume_from_latest_continues_at_the_same_step_with_identical_state(tmp_path, clips, train_on_clips):
    uninterrupted = train_on_clips(1, tmp_path / "straight", clips, "--max_train_steps", 4, "--checkpointing_steps", 2)
    train_on_clips(1, tmp_path / "resumed", clips, "--max_train_steps", 2, "--checkpointing_steps", 2)
    resumed = train_on_clips(
        1,
        tmp_path / "resumed",
        clips,
        "--max_train_steps",
        4,
        "--checkpointing_steps",
        2,
        "--resume_from_checkpoint",
        "latest",
    )
    assert sorted(resumed.losses) == [3, 4] and resumed.global_step == 4
    assert resumed.losses[3] == pytest.approx(uninterrupted.losses[3], rel=1e-5)
    assert resumed.losses[4] == pytest.approx(uninterrupted.losses[4], rel=1e-5)
    straight_state = torch.load(tmp_path / "straight/checkpoint-4/optimizer.bin", weights_only=False)
    resumed_state = torch.load(tmp_path / "resumed/checkpoint-4/optimizer.bin", weights_only=False)
    assert straight_state["state"].keys() == resumed_state["state"].keys()
    for index, moments in straight_state["state"].items():
        for key, value in moments.items():
            torch.testing.assert_close(resumed_state["state"][index][key], value, rtol=1e-5, atol=1e-7)
    straight_adapter = adapter_state(tmp_path / "straight/checkpoint-4/controlnet")
    resumed_adapter = adapter_state(tmp_path / "resumed/checkpoint-4/controlnet")
    for name, value in straight_adapter.items():
        torch.testing.assert_close(resumed_adapter[name], value, rtol=1e-5, atol=1e-7)


def frame_count_and_size(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.width, stream.height


def test_quirk_validation_runs_at_step_1_and_every_n_steps(tmp_path, clips, train_on_clips):
    train_on_clips(2, tmp_path, clips, "--max_train_steps", 2, "--checkpointing_steps", 100, "--validation_steps", 2)
    videos = sorted(path.relative_to(tmp_path).as_posix() for path in (tmp_path / "validation_images").rglob("*.mp4"))
    assert videos == [
        "validation_images/step_1_val_img/000-synthetic_clip000.mp4",
        "validation_images/step_2_val_img/000-synthetic_clip000.mp4",  # the same clip every time
    ]
    # stage 2: first frame | dense flow | hints | CMP flow | generated | ground truth, 16 px each, 3 frames
    assert frame_count_and_size(tmp_path / videos[0]) == (3, 6 * 16, 16)


def test_bf16_mixed_precision_trains_and_validates_with_the_fixed_conventions(tmp_path, clips, train_on_clips):
    result = train_on_clips(
        2,
        tmp_path,
        clips,
        "--max_train_steps",
        2,
        "--checkpointing_steps",
        2,
        "--validation_steps",
        2,
        "--mixed_precision",
        "bf16",
        "--fix_train_inference_mismatch",
        "--gradient_checkpointing",
        "--unet_gradient_checkpointing",
    )
    assert result.global_step == 2 and all(np.isfinite(loss) for loss in result.losses.values())
    assert len(list((tmp_path / "validation_images").rglob("*.mp4"))) == 2
    assert FlowControlNet.from_pretrained(tmp_path / "controlnet").dtype == torch.float32  # fp32 master weights


def test_saved_adapter_loads_into_the_traj_pipeline(tmp_path, clips, train_on_clips, tiny_clip_args):
    train_on_clips(1, tmp_path, clips, "--max_train_steps", 1, "--checkpointing_steps", 100)
    args = parse_args(1, [*tiny_clip_args, "--output_dir", str(tmp_path)])
    components = load_components(args)
    pipeline = FlowControlNetPipeline(
        vae=components.vae,
        image_encoder=components.image_encoder,
        unet=components.unet,
        controlnet=FlowControlNet.from_pretrained(tmp_path / "controlnet"),
        scheduler=components.scheduler,
    )
    pipeline.set_progress_bar_config(disable=True)
    frames = pipeline(
        torch.rand(3, 16, 16),
        controlnet_flow=torch.zeros(1, 2, 2, 16, 16),
        num_inference_steps=1,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, 3, 16, 16, 3) and np.isfinite(frames).all()


def test_checkpoint_limit_keeps_the_last_n(tmp_path, clips, train_on_clips):
    train_on_clips(
        1, tmp_path, clips, "--max_train_steps", 3, "--checkpointing_steps", 1, "--checkpoints_total_limit", 2
    )
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    for step in (5, 10, 7):
        shutil.copytree(tmp_path / "checkpoint-3", tmp_path / f"checkpoint-{step}")
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [path.name for path in removed] == ["checkpoint-2", "checkpoint-3", "checkpoint-5"]


def test_stage2_trains_the_fusion_encoder_and_leaves_the_reference_encoder_untouched(tmp_path, clips, train_on_clips):
    train_on_clips(1, tmp_path / "stage1", clips, "--max_train_steps", 1, "--checkpointing_steps", 100)
    start = adapter_state(tmp_path / "stage1/controlnet")
    result = train_on_clips(
        2,
        tmp_path / "stage2",
        clips,
        "--max_train_steps",
        2,
        "--checkpointing_steps",
        2,
        "--controlnet_model_name_or_path",
        tmp_path / "stage1/controlnet",
        "--learning_rate",
        1e-3,
        "--gradient_checkpointing",
        "--unet_gradient_checkpointing",
    )
    assert result.global_step == 2 and all(np.isfinite(loss) for loss in result.losses.values())
    end = adapter_state(tmp_path / "stage2/controlnet")
    frozen = (tmp_path / "stage2/frozen_parameters.txt").read_text().split()
    assert frozen and all(name.startswith(("controlnet_cond_embedding.", "flow_encoder.")) for name in frozen)
    assert all(torch.equal(end[name], start[name]) for name in frozen)
    changed = [name for name in end if name not in frozen and not torch.equal(end[name], start[name])]
    assert "conv_in.weight" in changed and "controlnet_mid_block.weight" in changed


def test_missing_and_corrupt_videos_are_skipped_counted_and_reported(tmp_path, clips, caplog, train_on_clips):
    data_root, _ = clips
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom not really a video" * 20)
    with (tmp_path / "list.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(
            [
                ["path"],
                ["videos/synthetic/clip000.mp4"],
                ["missing.mp4"],
                [str(tmp_path / "corrupt.mp4")],
                ["videos/synthetic/clip001.mp4"],
            ]
        )
    with caplog.at_level(logging.INFO):
        result = train_on_clips(
            1,
            tmp_path / "out",
            (data_root, tmp_path / "list.csv"),
            "--max_train_steps",
            4,
            "--checkpointing_steps",
            100,
        )
    assert result.global_step == 4
    assert result.skipped_videos == 2
    assert "left out 1 of 4 training videos (missing or empty files), e.g. missing.mp4" in caplog.text
    assert f"skipping video {tmp_path / 'corrupt.mp4'}: cannot be decoded" in caplog.text
    assert "skipped 2 unreadable or too-short videos (" in caplog.text
    assert caplog.text.rstrip().endswith(f"): {tmp_path / 'corrupt.mp4'}, missing.mp4")


def test_overfitting_one_clip_lowers_the_loss(clips, tiny_clip_args):
    data_root, csv_path = clips
    args = parse_args(1, [*tiny_clip_args, "--output_dir", "unused", "--data_root", str(data_root)])
    components = load_components(args)
    freeze(components.vae, components.image_encoder, components.unet)
    set_trainable_parameters(components.controlnet, stage=1)
    batch = {
        "pixel_values": VideoClipDataset(read_video_csv(csv_path, data_root), 3, 2, 16, 16)[0]["pixel_values"][None]
    }
    randomness = TrainingRandomness(seed=0)
    step = AdapterTrainingStep(
        components,
        StepConfig(stage=1, conventions=TrainingConventions()),
        flow_estimator=lambda frames: torch.zeros(frames.shape[0], frames.shape[1] - 1, 2, *frames.shape[-2:]),
        dropout=ConditioningDropout(0.0),
        randomness=randomness,
        device=torch.device("cpu"),
        weight_dtype=torch.float32,
    )
    optimizer = torch.optim.AdamW(components.controlnet.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        randomness.torch.manual_seed(3)  # the same noise level and noise every step
        loss = step(batch, components.controlnet).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_entry_point_reports_missing_weights_as_one_error_line(tmp_path, clips, capsys):
    _, csv_path = clips
    code = main(
        1,
        [
            "--ckpt_dir",
            str(tmp_path),
            "--train_csv",
            str(csv_path),
            "--output_dir",
            str(tmp_path / "out"),
            "--report_to",
            "none",
            "--mixed_precision",
            "no",
        ],
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error[-1].startswith("error: missing checkpoint ") and "make fetch MODE=training" in error[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 training works on a GPU")
def test_fp16_without_a_gpu_is_refused_with_one_line(tmp_path, clips, capsys, tiny_clip_args):
    data_root, csv_path = clips
    code = main(
        1,
        [
            *tiny_clip_args,
            "--output_dir",
            str(tmp_path),
            "--data_root",
            str(data_root),
            "--train_csv",
            str(csv_path),
            "--mixed_precision",
            "fp16",
        ],
    )
    assert code == 2
    assert (
        capsys.readouterr().err.strip() == "error: --mixed_precision fp16 needs a GPU (running on cpu); use bf16 or no"
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_script_runs_tiny_stage2_through_accelerate_launch(tmp_path, subproject_dir):
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [
            "bash",
            str(subproject_dir / "train_stage2.sh"),
            "--tiny",
            "--output_dir",
            str(tmp_path),
            "--max_train_steps",
            "2",
            "--validation_steps",
            "0",
            "--num_frames",
            "3",
            "--height",
            "16",
            "--width",
            "16",
            "--report_to",
            "none",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (
        completed.stderr.count(
            "stage 2 --tiny without --controlnet_model_name_or_path: starting from a random tiny adapter"
        )
        == 1
    )
    assert (tmp_path / "checkpoint-2/controlnet/config.json").is_file()
    assert FlowControlNet.from_pretrained(tmp_path / "controlnet").config.conditioning_channels == 3
