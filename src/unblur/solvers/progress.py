"""Progress reporting and stopping rules: they live in :mod:`unblur.optim.driver` (re-exported here)."""

from ..optim.driver import Progress, StoppingRule

__all__ = ["Progress", "StoppingRule"]
