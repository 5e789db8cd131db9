"""What every command shares: turning expected errors into a message and exit code 1, never a traceback."""
from __future__ import annotations

import functools
import pickle
import sys

from data_utils.fileio import OutputExistsError, OutputPathError


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


# Errors a user can cause with their input; anything else is our bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, OutputExistsError, OutputPathError, pickle.UnpicklingError)


def handles_data_errors(handler):
    @functools.wraps(handler)
    def wrapper(args) -> int:
        try:
            return handler(args)
        except USER_ERRORS as e:
            return fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
    return wrapper
