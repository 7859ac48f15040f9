"""The training loop shared by both stages, on top of `accelerate` (one GPU to many nodes).

Stage 1 trains the whole adapter on dense flow; stage 2 freezes its reference encoder and feeds it
CMP's flow propagated from sparse hints. Launch through ``train_stage1.sh`` / ``train_stage2.sh``.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, set_seed
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from train_utils.arguments import check_arguments, parse_args, save_args
from train_utils.checkpointing import (
    ADAPTER_FOLDER,
    checkpoint_processes,
    checkpoint_step,
    finish_checkpoint,
    partial_folder,
    prune_checkpoints,
    register_adapter_hooks,
    resolve_resume_checkpoint,
)
from train_utils.components import TrainingComponents, freeze, load_components, set_trainable_parameters
from train_utils.conditioning import ConditioningDropout, TrainingConventions
from train_utils.dataset import SkippedVideos, VideoClipDataset, collate_clips
from train_utils.entry_point import reports_input_errors
from train_utils.flow_estimation import FlowEstimator, RAFTFlowEstimator, build_flow_estimator
from train_utils.preflight import RunData, check_data, prepare_tiny_data
from train_utils.stopping import STOP_MESSAGE, StopRequest, stop_on_signals
from train_utils.training_step import AdapterTrainingStep, StepConfig, TrainingRandomness
from train_utils.validation import ValidationSettings, inference_copy, preview_image, run_validation, validation_clips
from utils.errors import InputError

logger = logging.getLogger("train_utils.trainer")

TINY_NOTICE = (
    "--tiny: random tiny models, synthetic clips, OpenCV Farneback flow (no RAFT weights offline); "
    "the adapter learns nothing useful"
)


@dataclass
class TrainingResult:
    """What a run did: last step, per-step loss (averaged over processes), skipped videos, and the signal
    that stopped it (0: it ran to the end)."""

    global_step: int
    losses: dict[int, float] = field(default_factory=dict)
    skipped_videos: int = 0
    skip_summary: str = ""
    stopped_by: int = 0


@reports_input_errors
def main(stage: int, argv: list[str] | None = None) -> int:
    """Entry point of ``train_stage{stage}.py``: parse, train, print errors as one line (exit 2); a run
    stopped by SIGINT/SIGTERM exits with 130/143 after saving a checkpoint."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    result = train(parse_args(stage, argv))
    return StopRequest.exit_status(result.stopped_by) if result.stopped_by else 0


def build_accelerator(args: argparse.Namespace) -> Accelerator:
    output_dir = Path(args.output_dir)
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        cpu=args.tiny,
    )


def build_optimizer(
    args: argparse.Namespace, parameters: list[torch.nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes AdamW8bit with ``--use_8bit_adam`` when it is installed and on CUDA."""
    optimizer_class = torch.optim.AdamW
    if args.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError:
            logger.warning(
                "--use_8bit_adam: bitsandbytes is not installed (pip install bitsandbytes); using torch AdamW"
            )
        else:
            if device.type == "cuda":
                optimizer_class = bitsandbytes.optim.AdamW8bit
            else:
                logger.warning("--use_8bit_adam: 8-bit AdamW needs CUDA; using torch AdamW on %s", device.type)
    return optimizer_class(
        parameters,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )


def place_frozen_networks(components: TrainingComponents, device: torch.device, weight_dtype: torch.dtype) -> None:
    """Frozen SVD parts to ``device`` in ``weight_dtype``; CMP in float32 (it always runs in fp32)."""
    freeze(components.vae, components.image_encoder, components.unet, components.cmp)
    for module in (components.vae, components.image_encoder, components.unet):
        module.to(device)
        if module.dtype != weight_dtype:
            module.to(dtype=weight_dtype)
    if components.cmp is not None:
        components.cmp.to(device)


def write_parameter_lists(output_dir: Path, trainable: list[str], frozen: list[str]) -> None:
    (output_dir / "trainable_parameters.txt").write_text("".join(f"{name}\n" for name in trainable))
    (output_dir / "frozen_parameters.txt").write_text("".join(f"{name}\n" for name in frozen))


def make_flow_estimator(args: argparse.Namespace, device: torch.device) -> FlowEstimator | None:
    estimator = build_flow_estimator(args.flow_estimator, args.raft_weights)
    if isinstance(estimator, RAFTFlowEstimator):
        estimator.pairs_per_call = args.raft_pairs_per_call
    if isinstance(estimator, torch.nn.Module):
        estimator.to(device)
    return estimator


def tracker_config(args: argparse.Namespace) -> dict:
    """Arguments TensorBoard can record as hyper-parameters (scalars and strings)."""
    return {key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))}


def train(args: argparse.Namespace) -> TrainingResult:
    """Run one stage as configured by ``args`` (see :func:`train_utils.arguments.build_parser`); SIGINT and
    SIGTERM stop it after the current step with a checkpoint (``stopped_by`` in the result)."""
    with stop_on_signals() as stop:
        return _train(args, stop)


def _train(args: argparse.Namespace, stop: StopRequest) -> TrainingResult:
    output_dir = Path(args.output_dir)
    check_arguments(args)
    accelerator = build_accelerator(args)
    if accelerator.mixed_precision == "fp16" and not accelerator.native_amp:
        raise InputError(f"--mixed_precision fp16 needs a GPU (running on {accelerator.device.type}); use bf16 or no")
    if not accelerator.is_main_process:  # warnings once, from the main process
        logging.getLogger("train_utils").setLevel(logging.ERROR)
    if args.tiny:
        logger.warning(TINY_NOTICE)
    set_seed(args.seed)
    if args.tiny:
        prepare_tiny_data(args, accelerator)
    run_data = check_data(args)  # data and files, before any network is built
    if accelerator.is_main_process:
        save_args(args, output_dir / "args.json")
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True

    # networks
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    components = load_components(args, weight_dtype)
    place_frozen_networks(components, accelerator.device, weight_dtype)
    controlnet = components.controlnet
    trainable, frozen = set_trainable_parameters(controlnet, args.stage)
    if accelerator.is_main_process:
        write_parameter_lists(output_dir, trainable, frozen)
    logger.info("stage %d: %d trainable adapter tensors, %d frozen", args.stage, len(trainable), len(frozen))
    if args.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
    if args.unet_gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
    controlnet.train()
    parameters = [parameter for parameter in controlnet.parameters() if parameter.requires_grad]
    optimizer = build_optimizer(args, parameters, accelerator.device)

    # data
    dataset = training_dataset(args, run_data)
    loader = DataLoader(
        dataset,
        batch_size=args.per_gpu_batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        collate_fn=collate_clips,
    )
    # each process sees 1/num_processes of the batches
    shard_batches = math.ceil(len(loader) / accelerator.num_processes)
    max_train_steps = args.max_train_steps or args.num_train_epochs * math.ceil(
        shard_batches / args.gradient_accumulation_steps
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )

    controlnet, optimizer, loader, lr_scheduler = accelerator.prepare(controlnet, optimizer, loader, lr_scheduler)
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    randomness = TrainingRandomness(args.seed, accelerator.process_index)
    dropout = ConditioningDropout(args.conditioning_dropout_prob)
    register_adapter_hooks(accelerator, {"randomness": randomness, "conditioning_dropout": dropout})
    flow_estimator = make_flow_estimator(args, accelerator.device)
    training_step = AdapterTrainingStep(
        components, step_config(args), flow_estimator, dropout, randomness, accelerator.device, weight_dtype
    )
    if accelerator.is_main_process and accelerator.log_with:
        accelerator.init_trackers(f"mofa_adapter_stage{args.stage}", config=tracker_config(args))

    global_step = resume(accelerator, output_dir, args.resume_from_checkpoint)
    first_epoch = global_step // steps_per_epoch
    resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    validation = Validator(args, components, run_data, flow_estimator, accelerator)
    result = TrainingResult(global_step=global_step)
    skipped = SkippedVideos()
    skipped.reasons.update(run_data.absent)  # left out before training: named in the summary too
    logger.info(
        "%d clips, %d steps per epoch, training to step %d (%d epochs), %d process(es)",
        len(dataset),
        steps_per_epoch,
        max_train_steps,
        num_epochs,
        accelerator.num_processes,
    )
    progress = tqdm(
        range(max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    result.stopped_by = stop.agreed(accelerator)  # a signal while the models loaded
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps or result.stopped_by:
            break
        dataset.set_epoch(epoch)
        loader.set_epoch(epoch)
        batches = (
            accelerator.skip_first_batches(loader, resume_batches)
            if epoch == first_epoch and resume_batches
            else loader
        )
        for batch in batches:
            for name, reason in skipped.add(batch["skipped"]):
                logger.warning("skipping video %s: %s", name, reason)
            with accelerator.accumulate(controlnet):
                output = training_step(batch, controlnet)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            loss = accelerator.gather(output.loss.detach()).mean().item()
            result.losses[global_step] = loss
            accelerator.log({"train_loss": loss, "lr": lr_scheduler.get_last_lr()[0]}, step=global_step)
            progress.update(1)
            progress.set_postfix(step_loss=f"{loss:.4f}", lr=lr_scheduler.get_last_lr()[0])
            result.stopped_by = stop.agreed(accelerator)
            if global_step % args.checkpointing_steps == 0 or result.stopped_by:
                save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
            if result.stopped_by:
                break
            if validation.due(global_step):
                validation(controlnet, global_step, weight_dtype)
            if global_step >= max_train_steps:
                break

    result.global_step = global_step
    if not result.stopped_by:
        save_final_adapter(accelerator, controlnet, output_dir)
    result.skipped_videos, result.skip_summary = summarise_skipped(accelerator, skipped)
    progress.close()
    if result.stopped_by:
        logger.info("%s", result.skip_summary)
        if accelerator.is_main_process:
            print(STOP_MESSAGE.format(step=global_step), file=sys.stderr, flush=True)
    else:
        logger.info("finished at step %d; %s", global_step, result.skip_summary)
    accelerator.end_training()
    return result


def training_dataset(args: argparse.Namespace, run_data: RunData) -> VideoClipDataset:
    """The training clips: the rows whose file exists (an epoch counts only these)."""
    return VideoClipDataset(
        run_data.train_entries,
        args.num_frames,
        args.sample_stride,
        args.train_height,
        args.train_width,
        args.resize_mode,
        seed=args.seed,
        use_precomputed_flow=args.flow_estimator == "precomputed",
    )


def step_config(args: argparse.Namespace) -> StepConfig:
    return StepConfig(
        stage=args.stage,
        conventions=TrainingConventions.from_flags(args.fix_train_inference_mismatch, args.time_ids_order),
        fps_id=args.fps_id,
        motion_bucket_id=args.motion_bucket_id,
        noise_aug_strength=args.noise_aug_strength,
        s2d_size=args.s2d_size,
        vae_encode_chunk_size=args.vae_encode_chunk_size,
    )


def resume(accelerator: Accelerator, output_dir: Path, resume_from: str | None) -> int:
    """Load the checkpoint named by ``--resume_from_checkpoint`` (if any); returns the step to continue from."""
    resume_path = resolve_resume_checkpoint(output_dir, resume_from)
    if resume_path is None:
        if resume_from:
            logger.info("no checkpoint in %s yet: starting from step 0", output_dir)
        return 0
    logger.info("resuming from %s", resume_path)
    written_by = checkpoint_processes(resume_path)
    if written_by != accelerator.num_processes:
        logger.warning(
            "%s was written by %d process(es) and is resumed by %d: the adapter, optimizer and step continue exactly, "
            "but the clip order and random draws from here on differ from an uninterrupted run",
            resume_path.name,
            written_by,
            accelerator.num_processes,
        )
    accelerator.load_state(str(resume_path))
    return checkpoint_step(resume_path)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, global_step: int, keep: int) -> None:
    """``output_dir/checkpoint-<step>``: adapter + optimizer/scheduler/scaler/RNG state, written under a temporary
    name and renamed when complete; then only the last ``keep`` are kept."""
    partial = partial_folder(output_dir, global_step)
    if accelerator.is_main_process and partial.exists():  # left by a run killed while saving
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path = finish_checkpoint(partial, global_step, accelerator.num_processes)
        prune_checkpoints(output_dir, keep)
        logger.info("saved %s", path)
    accelerator.wait_for_everyone()


def save_final_adapter(accelerator: Accelerator, controlnet: torch.nn.Module, output_dir: Path) -> None:
    """``output_dir/controlnet``: the adapter alone, loadable by ``FlowControlNet.from_pretrained``."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(controlnet)
    if accelerator.is_main_process:
        accelerator.unwrap_model(controlnet).save_pretrained(output_dir / ADAPTER_FOLDER, state_dict=state_dict)
        logger.info("saved the adapter to %s", output_dir / ADAPTER_FOLDER)


def summarise_skipped(accelerator: Accelerator, skipped: SkippedVideos) -> tuple[int, str]:
    """Merge every process's skipped videos; returns (distinct videos, one-line summary naming them)."""
    merged = SkippedVideos()
    for reasons, hits in gather_object([(skipped.reasons, skipped.hits)]):
        merged.reasons.update(reasons)
        merged.hits += hits
    return len(merged.reasons), merged.summary()


class Validator:
    """Runs validation on the main process at step 1 and every ``--validation_steps`` (0 disables it), on the
    same clips every time (chosen by :func:`train_utils.preflight.check_data`), and logs a preview image
    (the last frame of each video) to TensorBoard or wandb."""

    def __init__(
        self,
        args: argparse.Namespace,
        components: TrainingComponents,
        run_data: RunData,
        flow_estimator: FlowEstimator | None,
        accelerator: Accelerator,
    ) -> None:
        self.args = args
        self.components = components
        self.flow_estimator = flow_estimator
        self.accelerator = accelerator
        self.settings = ValidationSettings(
            stage=args.stage,
            num_inference_steps=args.num_inference_steps,
            decode_chunk_size=args.decode_chunk_size,
            s2d_size=args.s2d_size,
            seed=args.seed,
            temporal_context=args.temporal_context,
        )
        self.dataset = run_data.validation
        self.indices = run_data.validation_indices

    def due(self, global_step: int) -> bool:
        every = self.args.validation_steps
        return self.accelerator.is_main_process and every > 0 and (global_step == 1 or global_step % every == 0)

    def __call__(self, controlnet: torch.nn.Module, global_step: int, weight_dtype: torch.dtype) -> None:
        """Validate with the adapter as inference runs it: in the frozen networks' dtype (a copy if needed)."""
        adapter = self.accelerator.unwrap_model(controlnet)
        adapter.eval()
        validation_adapter = adapter if adapter.dtype == weight_dtype else inference_copy(adapter, weight_dtype)
        written = run_validation(
            self.components,
            validation_adapter,
            validation_clips(self.dataset, self.indices),
            self.flow_estimator,
            self.settings,
            global_step,
            Path(self.args.output_dir),
            self.accelerator.device,
        )
        del validation_adapter
        adapter.train()
        if written:
            self.log_preview(preview_image([grid for _, grid in written]), global_step)

    def log_preview(self, image: np.ndarray, global_step: int) -> None:
        """``image`` ``[H, W, 3]`` uint8 to every tracker that takes images."""
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("validation", image, global_step, dataformats="HWC")
            elif tracker.name == "wandb":
                tracker.log_images({"validation": [image]}, step=global_step)
