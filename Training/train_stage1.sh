#!/usr/bin/env bash
# Stage 1 of MOFA-Adapter training. The defaults of train_stage1.py are the released hyper-parameters
# (384x384, 25 frames, stride 4, lr 2e-5, batch 1 per GPU, fp16, gradient checkpointing, checkpoint and
# validation every 2500 steps); arguments given here are passed through and override them, e.g.
#   bash train_stage1.sh --tiny --output_dir runs/tiny_stage1
#   bash train_stage1.sh --train_csv /data/WebVid/metadata/results_2M_train.csv --data_root /data/WebVid
# The machine layout comes from an accelerate config: ACCELERATE_CONFIG=configs/accelerate_8gpu.yaml bash train_stage1.sh ...
set -euo pipefail
cd "$(dirname "$0")"
exec accelerate launch --config_file "${ACCELERATE_CONFIG:-configs/accelerate_1gpu.yaml}" train_stage1.py "$@"
