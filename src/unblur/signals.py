"""Termination signals: SIGTERM is handled like SIGINT (Ctrl-C).

Inside :func:`handle_termination` both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so every clean-up that runs for Ctrl-C also runs for ``kill`` / a batch
scheduler's SIGTERM: temporary files are removed, a training run writes its resume checkpoint.
The command line exits with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as shells do.

Inside :func:`deferred` a signal is held until the block ends and raised there: the block (renaming
finished files into place, writing a checkpoint) always completes, so a signal never leaves a
half-committed result.

Inside :func:`held_during_import` the import of the named modules runs as a :func:`deferred` block: a
signal handled while torch's C++ extension initialises would otherwise surface as a C++ error that aborts
the process ("terminate called after throwing an instance of 'pybind11::error_already_set'", exit -6).

Outside the main thread (where Python cannot install handlers) these context managers do nothing.
"""

from __future__ import annotations

import importlib.abc
import signal
import sys
import threading
from contextlib import contextmanager

__all__ = ["Interrupted", "deferred", "handle_termination", "held_during_import"]

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


class _HeldLoader(importlib.abc.Loader):
    """A module loader whose ``exec_module`` runs with SIGINT/SIGTERM held (:func:`deferred`)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):  # resource readers and the like: the wrapped loader's
        return getattr(self.inner, name)

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            self.inner.exec_module(module)
            return
        with deferred():
            self.inner.exec_module(module)


class _HeldImportFinder(importlib.abc.MetaPathFinder):
    """Finds ``names`` with the other finders and wraps their loader in :class:`_HeldLoader`."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HeldLoader(spec.loader)
                return spec
        return None


@contextmanager
def held_during_import(*names: str):
    """Inside the block, importing one of ``names`` (top-level modules such as ``"torch"``) holds
    SIGINT/SIGTERM until the import is complete; the signal is then raised as :class:`Interrupted`."""
    if threading.current_thread() is not threading.main_thread() or all(n in sys.modules for n in names):
        yield
        return
    finder = _HeldImportFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
