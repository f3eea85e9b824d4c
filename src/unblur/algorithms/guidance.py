"""Measurement guidance for diffusion posterior sampling: DPS and PiGDM (reusable by other samplers).

Units.  The sampler state ``x_t`` and the x0-prediction are in [-1, 1] (DPS convention); the data
``y`` and the blur operator ``A`` are in the caller's [0, 1] units.  The residual is expressed in
[-1, 1] units::

    r(x0) = 2 * (y - A((x0 + 1) / 2))

which equals the reference code's ``y_pm - A x0_pm`` (``y_pm = 2 y - 1``) whenever ``A`` maps constants
to constants (circular, replicate, reflect boundaries) and stays the exact [0, 1] model otherwise.
A noise sigma given in [0, 1] units is ``2 * sigma`` in these units.

DPS (Chung et al. 2023, Algorithm 1)::

    x_{t-1} = x'_{t-1} - zeta * grad_{x_t} ||y - A x0_hat(x_t)||          (default, the reference code)
    x_{t-1} = x'_{t-1} - zeta * grad_{x_t} ||y - A x0_hat(x_t)||^2        (``squared=True``)

(the paper writes ``zeta_t = zeta / ||y - A x0_hat||`` times the squared-norm gradient, which is
``2 zeta`` times the unsquared-norm gradient).  The gradient goes through the prior by autograd.

PiGDM (Song et al. 2023, eq. 7 and Algorithm 1)::

    g = ( (y - H x0_hat)^T (r_t^2 H H^T + sigma_y^2 I)^{-1} H  d x0_hat / d x_t )^T
    x_s = x'_s + weight * (1 - alpha) / sqrt(alpha) * g,     alpha = abar_t / abar_s

``g`` approximates the likelihood score ``grad_{x_t} log p(y | x_t)``; unblur adds it to the prior score
inside the shared DDPM ancestral step, whose mean is ``(x_t + (1 - alpha) score) / sqrt(alpha)`` -- hence
the factor (the paper writes its Algorithm 1 with a DDIM step; the factor here is the same conditional
score entering an ancestral step, and ``weight`` scales it).

The inverse is exact in Fourier for a circulant blur (``H H^T`` has eigenvalues ``|otf|^2``) and is
solved by conjugate gradient otherwise.  ``r_t^2`` (the assumed variance of x0 given x_t, [-1, 1] units):
``"paper"`` = ``1 - abar_t`` (the paper's choice for a unit-variance data prior) or ``"posterior"`` = the
DDPM posterior variance ``beta_t (1 - abar_{t-1}) / (1 - abar_t)`` used by some public code.
"""

from __future__ import annotations

import math

import torch

from ..errors import require
from ..solvers.cg import conjugate_gradient
from .ddpm import posterior_variance

R_CHOICES = ("paper", "posterior")


def data_residual(y: torch.Tensor, op, x0_pm: torch.Tensor) -> torch.Tensor:
    """``2 (y - A((x0 + 1) / 2))``: the residual in [-1, 1] units of a [-1, 1] estimate ``x0_pm``."""
    return 2.0 * (y - op.A((x0_pm + 1.0) / 2.0))


class DPSGuidance:
    """DPS guidance (module docstring).  ``predict(x_t, t)`` is the differentiable x0-predictor."""

    def __init__(self, predict, y: torch.Tensor, op, zeta: float = 0.3, squared: bool = False):
        require(zeta >= 0, f"zeta must be >= 0, got {zeta}")
        self.predict, self.y, self.op, self.zeta, self.squared = predict, y, op, zeta, squared

    def loss(self, x0_pm: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of ``||r||`` (or ``||r||^2``): each image's gradient is its own."""
        n2 = (data_residual(self.y, self.op, x0_pm) ** 2).flatten(1).sum(1)
        return n2.sum() if self.squared else n2.clamp_min(1e-30).sqrt().sum()

    def gradient(self, x_t: torch.Tensor, t: int):
        """``(x0_hat, grad_{x_t} loss)`` with one network evaluation."""
        with torch.enable_grad():
            x_t = x_t.detach().requires_grad_(True)
            x0 = self.predict(x_t, t)
            (g,) = torch.autograd.grad(self.loss(x0), x_t)
        return x0.detach(), g

    def __call__(self, x_t, t, s):
        x0, g = self.gradient(x_t, t)
        return x0, -self.zeta * g


def solve_regularized_gram(op, r: torch.Tensor, r2: float, s2: float, method: str = "auto",
                           max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """``(r2 A A^T + s2 I)^{-1} r`` in data space: exact in Fourier for circulant ``A``, else CG."""
    require(r2 >= 0 and s2 >= 0 and r2 + s2 > 0, "the regularised Gram system needs r^2 + sigma^2 > 0")
    if method == "auto":
        method = "fourier" if getattr(op, "is_circulant", False) else "cg"
    if method == "fourier":
        dims = tuple(range(-op.spatial_ndim, 0))
        R = torch.fft.rfftn(r, dim=dims)
        denom = r2 * (op.otf.abs() ** 2) + s2
        return torch.fft.irfftn(R / denom, s=r.shape[-op.spatial_ndim:], dim=dims)
    return conjugate_gradient(lambda v: r2 * op.A(op.A_adjoint(v)) + s2 * v, r, max_iter=max_iter, tol=tol)


class PiGDMGuidance:
    """PiGDM guidance (module docstring).  ``sigma`` is the noise std in [0, 1] units.

    ``sigma_floor`` ([-1, 1] units) keeps the system well posed for noiseless data.
    """

    def __init__(self, predict, y: torch.Tensor, op, sigma: float, schedule, r_choice: str = "paper",
                 weight: float = 1.0, solver: str = "auto", cg_iter: int = 100, sigma_floor: float = 1e-3):
        require(r_choice in R_CHOICES, f"unknown r_t choice {r_choice!r}", f"use one of {', '.join(R_CHOICES)}")
        require(sigma >= 0, f"noise sigma must be >= 0, got {sigma}")
        self.predict, self.y, self.op, self.schedule = predict, y, op, schedule
        self.s2 = max(2.0 * sigma, sigma_floor) ** 2
        self.r_choice, self.weight, self.solver, self.cg_iter = r_choice, weight, solver, cg_iter

    def r_squared(self, t: int, s: int) -> float:
        if self.r_choice == "paper":
            return 1.0 - float(self.schedule.alpha_bar(t))
        return posterior_variance(self.schedule, t, s)

    def vector(self, x0_pm: torch.Tensor, r2: float) -> torch.Tensor:
        """``H^T (r^2 H H^T + sigma^2 I)^{-1} (y - H x0)`` (the vector pulled back through the prior)."""
        res = data_residual(self.y, self.op, x0_pm)
        return self.op.A_adjoint(solve_regularized_gram(self.op, res, r2, self.s2, self.solver, self.cg_iter))

    def gradient(self, x_t: torch.Tensor, t: int, s: int):
        """``(x0_hat, g)``: one network evaluation and one vector-Jacobian product."""
        with torch.enable_grad():
            x_t = x_t.detach().requires_grad_(True)
            x0 = self.predict(x_t, t)
            v = self.vector(x0.detach(), self.r_squared(t, s))
            (g,) = torch.autograd.grad(x0, x_t, grad_outputs=v)
        return x0.detach(), g

    def __call__(self, x_t, t, s):
        x0, g = self.gradient(x_t, t, s)
        ab_s = 1.0 if s < 0 else float(self.schedule.alpha_bar(s))
        alpha = float(self.schedule.alpha_bar(t)) / ab_s
        return x0, self.weight * (1.0 - alpha) / math.sqrt(alpha) * g
