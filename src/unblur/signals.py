"""Termination signals: SIGTERM is handled like SIGINT (Ctrl-C).

Inside :func:`handle_termination` both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so every clean-up that runs for Ctrl-C also runs for ``kill`` / a batch
scheduler's SIGTERM: temporary files are removed, a training run writes its resume checkpoint.
The command line exits with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as shells do.

Inside :func:`deferred` a signal is held until the block ends and raised there: the block (renaming
finished files into place, writing a checkpoint) always completes, so a signal never leaves a
half-committed result.

Outside the main thread (where Python cannot install handlers) both context managers do nothing.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

__all__ = ["Interrupted", "deferred", "handle_termination"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []
_depth = 0


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`handle_termination` on SIGINT or SIGTERM.

    ``signum`` is the signal; ``note`` what was kept (e.g. a resume checkpoint), or ``None`` when
    no partial output was written; ``exit_code`` is ``128 + signum``.
    """

    def __init__(self, signum: int = signal.SIGINT, note: str | None = None):
        self.signum = int(signum)
        self.note = note
        name = signal.Signals(self.signum).name
        super().__init__(f"{name}: {note}" if note else name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    if _depth:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextmanager
def handle_termination():
    """Raise :class:`Interrupted` on SIGINT and SIGTERM inside the block (previous handlers restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def deferred():
    """Hold SIGINT/SIGTERM until the block ends, then raise :class:`Interrupted` for the first one received."""
    global _depth
    with handle_termination():
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if not _depth and _pending:
                signum = _pending[0]
                _pending.clear()
                raise Interrupted(signum)
