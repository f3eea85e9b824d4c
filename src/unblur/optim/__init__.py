"""Building blocks of the iterative solvers: data fidelities, priors and the one iteration driver.

* :mod:`.fidelity` -- :class:`L2Fidelity` (Gaussian), :class:`PoissonKL` (Poisson);
* :mod:`.prior` -- :class:`DenoiserPrior` (plug-and-play), :class:`TotalVariation` (exact prox by FGP),
  :class:`TikhonovPrior`;
* :mod:`.driver` -- :func:`iterate` with stopping rules, Biggs-Andrews / Nesterov acceleration,
  progress and callbacks.

The operators' quadratic solves (``solve_normal``, ``prox_l2``) are in :mod:`unblur.physics.operator`.
"""

from .driver import ACCELERATIONS, Progress, StoppingRule, iterate, poisson_deviance
from .fidelity import L2Fidelity, PoissonKL, poisson_prox
from .prior import DenoiserPrior, TikhonovPrior, TotalVariation, tv_prox

__all__ = ["iterate", "Progress", "StoppingRule", "poisson_deviance", "ACCELERATIONS", "L2Fidelity", "PoissonKL",
           "poisson_prox", "DenoiserPrior", "TikhonovPrior", "TotalVariation", "tv_prox"]
