"""Stage 2: fine-tune the adapter's fusion encoder on CMP flow from sparse hints (launch with train_stage2.sh)."""

import sys

from train_utils.trainer import main

if __name__ == "__main__":
    sys.exit(main(stage=2))
