"""utils.errors.run_command: how a command-line entry point ends on bad input, Ctrl-C and SIGTERM."""

import os
import signal

import pytest

from utils.errors import STOPPED_MESSAGE, InputError, run_command


def test_the_work_s_status_comes_back_and_sigterm_s_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    assert run_command(lambda: 7) == 7
    assert signal.getsignal(signal.SIGTERM) is before


def _raise(error: BaseException):
    raise error


@pytest.mark.parametrize(
    ("work", "status", "line"),
    [
        (lambda: _raise(InputError("clip.mp4 is not a readable video")), 2, "error: clip.mp4 is not a readable video"),
        (lambda: _raise(KeyboardInterrupt()), 130, STOPPED_MESSAGE),
        (lambda: os.kill(os.getpid(), signal.SIGTERM), 143, STOPPED_MESSAGE),
    ],
    ids=["bad input", "ctrl-c", "sigterm"],
)
def test_bad_input_and_stops_end_in_one_line_and_their_status(capsys, work, status, line):
    assert run_command(work) == status
    assert capsys.readouterr().err == line + "\n"


def test_other_errors_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 / 0)
