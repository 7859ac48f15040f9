"""How the Training command-line entry points report user errors: one line on stderr and exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

from utils.errors import InputError

Arguments = ParamSpec("Arguments")

INPUT_ERROR_EXIT_STATUS = 2


def reports_input_errors(main: Callable[Arguments, int]) -> Callable[Arguments, int]:
    """Wrap an entry point's ``main`` so that an :class:`InputError` prints ``error: <message>`` to stderr and
    returns exit status 2 instead of raising. Any other exception is a programming error and keeps its traceback.
    """

    @functools.wraps(main)
    def main_reporting_input_errors(*args: Arguments.args, **kwargs: Arguments.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            return INPUT_ERROR_EXIT_STATUS

    return main_reporting_input_errors
