"""Errors raised by unblur.

Every error a user can cause is an :class:`InputError` (a ``ValueError``) whose message says what is
wrong and what to do.  The CLI turns it into a one-line message and exit code 2; anything else that
escapes is a bug (exit code 1).
"""


class UnblurError(Exception):
    """Base class of unblur's own errors."""


class InputError(UnblurError, ValueError):
    """Bad input: a file, an array or a parameter that unblur cannot use.

    ``str(err)`` is "<what is wrong>; <what to do>" and fits on one line.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}; {fix}")


def require(condition: bool, problem: str, fix: str | None = None) -> None:
    """Raise :class:`InputError` unless ``condition`` holds."""
    if not condition:
        raise InputError(problem, fix)
