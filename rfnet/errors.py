"""Errors a user can fix, and how a command-line tool reports them.

Library code raises; it never calls ``sys.exit`` or raises ``SystemExit``. Inside ComfyUI a
``SystemExit`` ends the worker thread and the whole queue stalls, so only a CLI's ``main()``
turns an error into an exit code, through :func:`cli_errors`.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager


class InputError(ValueError):
    """A bad argument, file or folder that the user can fix. The message says what was wrong
    and what to do, in one line where it can."""


# What a CLI reports in one line (exit code 2) instead of a traceback: bad input and missing
# files (weights, generators, datasets: their messages name the file and the folders searched).
USER_ERRORS = (InputError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


@contextmanager
def cli_errors(prog: str):
    """Run a CLI's body; a user error becomes ``prog: error: MESSAGE`` on stderr and exit 2."""
    try:
        yield
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
