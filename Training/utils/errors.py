# Copied from MOFA-Video-Traj/utils/errors.py
"""User-facing error types, and how command-line entry points end on them.

Entry points run their work through :func:`run_command`: an :class:`InputError` prints its message as one line
(exit code 2), Ctrl-C or SIGTERM one line saying what was kept (exit 130 / 143); anything else is a programming
error and keeps its traceback.
"""

import os
import signal
import sys
from collections.abc import Callable


class InputError(ValueError):
    """Bad user input: a wrong file format, an empty trajectory, an out-of-range value."""


class CheckpointError(InputError):
    """A checkpoint file is missing or cannot be fetched. The message names the file and the fix."""


def require_file(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`InputError` unless ``path`` is a file: ``"<kind> file not found: <path>"``, or
    ``"<kind> path is a folder, not a file: <path>"``."""
    if os.path.isdir(path):
        raise InputError(f"{kind} path is a folder, not a file: {path}")
    if not os.path.isfile(path):
        raise InputError(f"{kind} file not found: {path}")


STOPPED_MESSAGE = (
    "stopped: finished outputs are kept and the unfinished one left nothing behind; run the same command again "
    "to continue"
)


class StopSignal(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that every clean-up (``finally``) runs."""


def run_command(work: Callable[[], int]) -> int:
    """A command-line entry point's ``work()`` (its exit status), ending in one line on bad input or a stop.

    Returns:
        ``work()``'s status; 2 after ``error: <message>`` for an :class:`InputError`; 130 (Ctrl-C) or 143
        (SIGTERM) after :data:`STOPPED_MESSAGE`. Outputs are written atomically, so a stop leaves finished ones
        whole and no partial files, and a rerun of a jobs file skips the finished jobs.
    """

    def stop(signum: int, frame: object) -> None:
        raise StopSignal

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return work()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(STOPPED_MESSAGE, file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(interrupt, StopSignal) else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
