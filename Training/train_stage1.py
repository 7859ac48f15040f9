"""Stage 1: train the whole MOFA-Adapter on dense optical flow (see README.md; launch with train_stage1.sh)."""

import sys

from train_utils.trainer import main

if __name__ == "__main__":
    sys.exit(main(stage=1))
