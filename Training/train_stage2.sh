#!/usr/bin/env bash
# Stage 2 of MOFA-Adapter training. The defaults of train_stage2.py are the released hyper-parameters
# (adapter from logs/train_stage1/controlnet, 320x320 training clips, 384x384 validation, 25 frames,
# stride 4, lr 2e-5, 8-bit AdamW, fp16, gradient checkpointing, checkpoint and validation every 2500
# steps); arguments given here are passed through and override them, e.g.
#   bash train_stage2.sh --tiny --output_dir runs/tiny_stage2
#   bash train_stage2.sh --controlnet_model_name_or_path runs/stage1/controlnet --train_csv ... --data_root ...
# The machine layout comes from an accelerate config: ACCELERATE_CONFIG=configs/accelerate_8gpu.yaml bash train_stage2.sh ...
set -euo pipefail
cd "$(dirname "$0")"
exec accelerate launch --config_file "${ACCELERATE_CONFIG:-configs/accelerate_1gpu.yaml}" train_stage2.py "$@"
