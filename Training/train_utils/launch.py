"""What ``train_stage1.sh`` / ``train_stage2.sh`` run: check, then ``accelerate launch``, and stop cleanly.

    python -m train_utils.launch <stage> <accelerate config> [training arguments...]

1. The arguments, the data and the checkpoint files are checked in this one process
   (:func:`train_utils.arguments.check_arguments`, :func:`train_utils.preflight.check_data`): a problem is
   one ``error: ...`` line and exit status 2, before accelerate starts or a network is built.
2. ``accelerate launch`` runs ``train_stage<stage>.py`` in its own session, so a Ctrl-C in the terminal
   reaches only this process.
3. SIGINT or SIGTERM to this process is passed on (as SIGTERM) to every training process; they finish the
   step, save a checkpoint, print ``stopped at step N; ...``, and this process exits with 130 (SIGINT) or
   143 (SIGTERM). Otherwise the exit status is the launcher's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from train_utils.arguments import check_arguments, parse_args
from train_utils.entry_point import reports_input_errors
from train_utils.preflight import check_data, prepare_tiny_data
from train_utils.stopping import SUPERVISED_ENV, StopRequest, stop_on_signals

TRAINING_FOLDER = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.2


def training_processes(launcher: subprocess.Popen, script: Path) -> list[psutil.Process]:
    """The processes the launcher started that run ``script`` (one per rank; direct children both of accelerate's
    simple launcher and of torchrun, not the ranks' own loader workers, which a signal would kill)."""
    try:
        children = psutil.Process(launcher.pid).children()
    except psutil.NoSuchProcess:
        return []
    ranks = []
    for child in children:
        try:
            if str(script) in child.cmdline():
                ranks.append(child)
        except psutil.Error:  # ended meanwhile
            continue
    return ranks


def supervise(launcher: subprocess.Popen, script: Path, stop: StopRequest) -> int:
    """Wait for the launcher; once a stop signal came, pass SIGTERM to each training process (also to one
    that starts later). Returns the exit status."""
    signalled: set[int] = set()
    while True:
        try:
            code = launcher.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        if stop.signal_number:
            for rank in training_processes(launcher, script):
                if rank.pid not in signalled:
                    signalled.add(rank.pid)
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rank.send_signal(signal.SIGTERM)
        if code is not None:
            return 128 + stop.signal_number if stop.signal_number else code


@reports_input_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage, config, training_argv = int(argv[0]), argv[1], argv[2:]
    logging.basicConfig(level=logging.ERROR)  # the checks' warnings come again, once, from the main training process
    with stop_on_signals() as stop:
        args = parse_args(stage, training_argv)
        check_arguments(args)
        if args.tiny:
            prepare_tiny_data(args)
        check_data(args)
        if stop.signal_number:
            return 128 + stop.signal_number
        script = TRAINING_FOLDER / f"train_stage{stage}.py"
        command = [
            sys.executable,
            "-P",
            "-m",
            "accelerate.commands.launch",
            "--quiet",
            "--config_file",
            config,
            str(script),
        ]
        environment = {**os.environ, SUPERVISED_ENV: "1"}
        launcher = subprocess.Popen([*command, *training_argv], start_new_session=True, env=environment)
        return supervise(launcher, script, stop)


if __name__ == "__main__":
    sys.exit(main())
