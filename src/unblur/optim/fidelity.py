"""Data fidelities as objects: Gaussian (least squares) and Poisson (Kullback-Leibler).

Both hold the operator ``A`` and the data ``y`` (tensors ``(B, C, *out_shape)``) and offer the value,
the gradient and the proximal map they support:

* :class:`L2Fidelity` -- ``f(x) = 1/2 ||A x - y||^2`` (Gaussian noise).  ``gradient = A^T (A x - y)``;
  ``prox(v, gamma) = argmin_x gamma f(x) + 1/2 ||x - v||^2 = (A^T A + I / gamma)^-1 (A^T y + v / gamma)``,
  the operator's :meth:`~unblur.physics.operator.LinearOperator.prox_l2` (exact in Fourier for a
  circular blur, conjugate gradient otherwise).
* :class:`PoissonKL` -- ``f(x) = KL(y, A x + b) = sum y log(y / (A x + b)) + (A x + b) - y`` (Poisson
  noise, data in photon counts, ``b`` a known background).  ``gradient = A^T 1 - A^T (y / (A x + b))``
  (Richardson-Lucy is the multiplicative EM step on it, :mod:`unblur.solvers.richardson_lucy`).
  Its prox has no closed form for a blur; for ``A = I`` it is per pixel (:func:`poisson_prox`), which
  is what splitting methods use (Figueiredo & Bioucas-Dias 2010).
"""

from __future__ import annotations

import torch

from ..errors import require
from .driver import poisson_deviance


def poisson_prox(v: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
    """``argmin_u gamma (u - y log u) + 1/2 (u - v)^2 = ((v - gamma) + sqrt((v - gamma)^2 + 4 gamma y)) / 2``.

    The proximal map of ``gamma KL(y, .)`` for the identity operator, per pixel; non-negative, and
    positive wherever ``y > 0``.
    """
    a = v - gamma
    return 0.5 * (a + torch.sqrt(a * a + 4 * gamma * y.clamp_min(0)))


class L2Fidelity:
    """``1/2 ||A x - y||^2`` (module docstring)."""

    def __init__(self, op, y: torch.Tensor):
        self.op, self.y = op, y

    def value(self, x: torch.Tensor) -> float:
        return 0.5 * float(((self.op.A(x) - self.y) ** 2).sum())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.A_adjoint(self.op.A(x) - self.y)

    def prox(self, v: torch.Tensor, gamma: float, **solve) -> torch.Tensor:
        """``(A^T A + I / gamma)^-1 (A^T y + v / gamma)``; ``solve`` goes to ``op.prox_l2`` (``x0``, ``max_iter``, ``tol``)."""
        require(gamma > 0, f"the prox step must be > 0, got {gamma}")
        return self.op.prox_l2(v, self.y, 1.0 / gamma, **solve)


class PoissonKL:
    """``KL(y, A x + background)`` (module docstring); ``op=None`` is the identity."""

    def __init__(self, op, y: torch.Tensor, background: float = 0.0):
        require(background >= 0, f"the background must be >= 0, got {background}")
        self.op, self.y, self.background = op, y, background

    def model(self, x: torch.Tensor) -> torch.Tensor:
        m = x if self.op is None else self.op.A(x)
        return m + self.background if self.background else m

    def value(self, x: torch.Tensor) -> float:
        return float(poisson_deviance(self.y, self.model(x)))

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T 1 - A^T (y / (A x + b))`` (the ratio is 0 where the model is 0)."""
        m = self.model(x)
        ratio = torch.where(m > 0, self.y / m.clamp_min(1e-30), torch.zeros_like(m))
        if self.op is None:
            return 1 - ratio
        return self.op.adjoint_of_ones(self.y) - self.op.A_adjoint(ratio)

    def prox(self, v: torch.Tensor, gamma: float) -> torch.Tensor:
        """Per-pixel prox of ``gamma KL(y, . + b)`` (identity operator only)."""
        require(self.op is None, "the Poisson KL prox has a closed form only for the identity operator",
                "split u = A x (ADMM) and apply the prox to u")
        return poisson_prox(v + self.background, self.y, gamma) - self.background


__all__ = ["L2Fidelity", "PoissonKL", "poisson_prox"]
