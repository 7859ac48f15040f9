"""Stopping a run cleanly on SIGINT or SIGTERM: every process finishes its step, they agree on the step, a
checkpoint is saved, and the run exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

import torch
from accelerate import Accelerator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_MESSAGE = "stopped at step {step}; resume with --resume_from_checkpoint latest"
# set by train_utils.launch for the processes it starts: it reports the stop itself, so they exit 0 and the
# launcher in between stays quiet
SUPERVISED_ENV = "MOFA_TRAINING_SUPERVISED"


class StopRequest:
    """Remembers the first stop signal instead of dying (``signal_number`` 0: none yet)."""

    def __init__(self) -> None:
        self.signal_number = 0

    def record(self, signal_number: int, frame: object = None) -> None:
        """Signal handler: only sets a flag (the step in progress finishes first)."""
        self.signal_number = self.signal_number or signal_number

    def agreed(self, accelerator: Accelerator) -> int:
        """The stop signal of any process (0: none), the same on every process: call it on all of them."""
        if accelerator.num_processes == 1:
            return self.signal_number
        flag = torch.tensor([self.signal_number], device=accelerator.device)
        return int(accelerator.reduce(flag, reduction="max").item())

    @staticmethod
    def exit_status(signal_number: int) -> int:
        """128 + the signal (130 SIGINT, 143 SIGTERM); 0 under :mod:`train_utils.launch`, which reports it."""
        return 0 if os.environ.get(SUPERVISED_ENV) == "1" else 128 + signal_number


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set a :class:`StopRequest` (the previous handlers come back after)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield request
        return
    previous = {number: signal.signal(number, request.record) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
