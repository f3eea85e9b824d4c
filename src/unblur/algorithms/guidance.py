"""Measurement guidance for diffusion posterior sampling: DPS and PiGDM (reusable by other samplers).

Units.  The sampler state ``x_t`` and the x0-prediction are in [-1, 1] (DPS convention); the data
``y`` and the blur operator ``A`` are in the caller's [0, 1] units.  The residual is expressed in
[-1, 1] units::

    r(x0) = 2 * (y - A((x0 + 1) / 2))

which equals the reference code's ``y_pm - A x0_pm`` (``y_pm = 2 y - 1``) whenever ``A`` maps constants
to constants (circular, replicate, reflect boundaries) and stays the exact [0, 1] model otherwise.
A noise sigma given in [0, 1] units is ``2 * sigma`` in these units.

DPS (Chung et al. 2023, Algorithm 1; reference code DPS2022/diffusion-posterior-sampling)::

    x_{t-1} = x'_{t-1} - zeta_t * grad_{x_t} ||y - A x0_hat(x_t)||          (default, the reference code)
    x_{t-1} = x'_{t-1} - zeta_t * grad_{x_t} ||y - A x0_hat(x_t)||^2        (``squared=True``)

where ``x'_{t-1}`` is the unconditional ancestral sample from ``x_t`` and the gradient is taken with
respect to ``x_t`` (the state *before* the step), through the prior by autograd.  The paper writes
``zeta_t = zeta / ||y - A x0_hat||`` times the squared-norm gradient, which is ``2 zeta`` times the
unsquared-norm gradient; the reference code uses the unsquared norm with a constant ``zeta`` (0.3 for
Gaussian deblurring, ``configs/gaussian_deblur_config.yaml``), in [-1, 1] units as here.  Step schedule
(``zeta_schedule``):

* ``"constant"``: ``zeta_t = zeta`` (the DPS paper and its reference code);
* ``"sqrt_abar"``: ``zeta_t = zeta * sqrt(abar_t)``, small at high noise and ``~ zeta`` at the end.  This
  is the "gradually increasing scale that shows stable performance" of the BlindDPS code (Chung et al.,
  CVPR 2023, same code base, ``BlindDPS.p_sample_loop``) and the step of the Fast Diffusion EM code
  (claroche-r/FastDiffusionEM, ``guided_diffusion/gaussian_diffusion.py``, samplers ``dps`` and
  ``fastem_dps``, which use it with ``zeta = 1``).  A larger final step helps more than the schedule
  itself, so ``"constant"`` is the default (measurements: BENCHMARKS.md, DPS).

PiGDM (Song et al. 2023, eq. 7)::

    g = ( (y - H x0_hat)^T (r_t^2 H H^T + sigma_y^2 I)^{-1} H  d x0_hat / d x_t )^T
    x_s = x'_s + weight * c_t * g            (x'_s: the ancestral sample from x_t; g w.r.t. x_t)

``g`` approximates the likelihood score ``grad_{x_t} log p(y | x_t)`` under ``x0 | x_t ~ N(x0_hat, r_t^2 I)``.
It does not depend on the units: computed in [0, 1] units (residual, ``sigma_y`` and ``r_t^2`` all
halved / quartered) it is the same vector.  The inverse is the operator's ``solve_gram``: exact in
Fourier for a circular blur (``H H^T`` has eigenvalues ``|otf|^2``), conjugate gradient otherwise.

``r_choice`` selects ``r_t^2`` (in [-1, 1] units) and the step factor ``c_t`` that goes with it.  Notation:
``alpha = abar_t / abar_s`` and ``v = (1 - alpha) (1 - abar_s) / (1 - abar_t)``, the variance of the DDPM
step ``q(x_s | x_t, x0)``, both for the *respaced* pair ``(t, s)``.

* ``"paper"``: ``r_t^2 = 1 - abar_t``, the paper's ``sigma_t^2 / (1 + sigma_t^2)`` (``sigma_t^2 = (1 - abar_t)
  / abar_t``, the VE noise level of ``x_t``), i.e. the exact ``Var[x0 | x_t]`` for a unit-variance Gaussian
  data prior; ``c_t = (1 - alpha) / sqrt(alpha)``: the conditional Tweedie estimate
  ``x0_hat + (1 - abar_t) / sqrt(abar_t) g`` put into the ancestral posterior mean of :mod:`.ddpm` (whose
  ``x0`` coefficient is ``sqrt(abar_s) (1 - alpha) / (1 - abar_t)``) moves it by exactly ``c_t g``, i.e. the
  likelihood score enters the DDPM step as the prior score does (the paper writes its Algorithm 1 with
  a DDIM step; this is the same conditional score in the ancestral step).
* ``"fastem"``: the Fast Diffusion EM authors' code
  (claroche-r/FastDiffusionEM, ``guided_diffusion/gaussian_diffusion.py``, samplers ``pigdm`` and
  ``fastem_pigdm``, with ``util/utils_agem.deblurring_guidance``), which computes ``g`` in [0, 1] units with
  ``r^2 = v / (1 + v)`` and adds ``sqrt(abar_t) r^2 sqrt(1 / (1 + v)) g``.  In the units here:
  ``r_t^2 = 4 v / (1 + v)`` and ``c_t = sqrt(abar_t) v / (1 + v)^(3/2)``.  ``v`` is not ``Var[x0 | x_t]``:
  it is much smaller than ``1 - abar_t`` except near ``t = 0`` (less damped ``g``), and ``c_t`` is much
  smaller than the Tweedie factor at high noise and 0 at the last step (``s = -1``, ``v = 0``).  The two
  go together: ``r_t^2 = 4 v / (1 + v)`` with the Tweedie factor over-amplifies noise.  ``"fastem"`` is
  the better choice with many steps (100 or more), but ``v`` (hence ``r_t^2`` and ``c_t``) grows as the
  number of steps falls, and with few steps it over-amplifies noise where ``"paper"`` does not; so
  ``"paper"`` is the default of non-blind PiGDM, while Fast Diffusion EM and Diffusion EM (100 steps by
  default) use ``"fastem"``, their authors' choice (:mod:`unblur.blind.diffusion_em.fast_em`;
  measurements: BENCHMARKS.md, PiGDM and Fast Diffusion EM).
"""

from __future__ import annotations

import math

import torch

from ..diffusion.schedule import VPSchedule
from ..errors import require
from .ddpm import posterior_variance

R_CHOICES = ("paper", "fastem")
ZETA_SCHEDULES = ("constant", "sqrt_abar")


def data_residual(y: torch.Tensor, op, x0_pm: torch.Tensor) -> torch.Tensor:
    """``2 (y - A((x0 + 1) / 2))``: the residual in [-1, 1] units of a [-1, 1] estimate ``x0_pm``."""
    return 2.0 * (y - op.A((x0_pm + 1.0) / 2.0))


class DPSGuidance:
    """DPS guidance (module docstring).  ``predict(x_t, t)`` is the differentiable x0-predictor.

    ``schedule`` (the VP schedule of the sampler) is needed for ``zeta_schedule="sqrt_abar"``; None is
    unblur's linear schedule (:class:`~unblur.diffusion.schedule.VPSchedule`).
    """

    def __init__(self, predict, y: torch.Tensor, op, zeta: float = 0.3, squared: bool = False,
                 zeta_schedule: str = "constant", schedule: VPSchedule | None = None):
        require(zeta >= 0, f"zeta must be >= 0, got {zeta}")
        require(zeta_schedule in ZETA_SCHEDULES, f"unknown zeta schedule {zeta_schedule!r}",
                f"use one of {', '.join(ZETA_SCHEDULES)}")
        self.predict, self.y, self.op, self.zeta, self.squared = predict, y, op, zeta, squared
        self.zeta_schedule = zeta_schedule
        self.schedule = schedule if schedule is not None else VPSchedule()

    def step_size(self, t: int) -> float:
        """``zeta_t``: ``zeta`` or ``zeta * sqrt(abar_t)`` (``zeta_schedule``)."""
        if self.zeta_schedule == "constant":
            return self.zeta
        return self.zeta * math.sqrt(float(self.schedule.alpha_bar(t)))

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
        return x0, -self.step_size(t) * g


def consistency_step(op, y: torch.Tensor, x01: torch.Tensor, sigma: float, tau: float,
                     max_iter: int = 50) -> torch.Tensor:
    """Final data-consistency step of a sampler, in [0, 1] units::

        x = argmin_x ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2 = (A^T A + mu I)^{-1} (A^T y + mu x_s),

    ``mu = sigma^2 / tau^2``: the MAP estimate when the sample ``x_s`` is taken as a Gaussian prior mean with
    per-pixel deviation ``tau``.  Frequencies the blur passes with ``|H|^2 tau^2 >> sigma^2`` are taken from
    the data (low-frequency colour and brightness errors of the sample disappear); the others stay the
    sample's.  Exact in Fourier for a circular blur, conjugate gradient otherwise (``op.prox_l2``).
    ``tau <= 0`` returns ``x_s`` unchanged.
    """
    if tau <= 0:
        return x01
    mu = max(float(sigma), 1e-4) ** 2 / float(tau) ** 2
    with torch.no_grad():
        return op.prox_l2(x01, y, mu, max_iter=max_iter)


def finish_sample(run, x01: torch.Tensor, consistency_tau: float, info: dict, diagnostics: bool = False):
    """The last stage shared by the samplers (DPS, PiGDM, RL-diffusion): the final data-consistency step
    (:func:`consistency_step` with ``tau = consistency_tau`` and the run's noise sigma) around the [0, 1]
    sample ``x01`` (object grid, clipped to [0, 1] first), the re-blur residual of the result when
    ``diagnostics`` (:func:`unblur.diagnostics.residual_info`), then ``run.finish``.  Returns
    ``(restored, info)`` with ``consistency_tau`` added to ``info``."""
    from ..diagnostics import residual_info

    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}",
            "use 0 (no final data-consistency step) or a positive tau in [0, 1] image units")
    x = consistency_step(run.op, run.y, x01.clamp(0, 1), run.sigma, consistency_tau)
    info["consistency_tau"] = consistency_tau
    if diagnostics:
        info.update(residual_info(run, x))
    return run.finish(x, info)


def solve_regularized_gram(op, r: torch.Tensor, r2: float, s2: float, method: str = "auto",
                           max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """``(r2 A A^T + s2 I)^{-1} r`` in data space: the operator's ``solve_gram`` (exact in Fourier for a
    circular blur, conjugate gradient otherwise)."""
    require(r2 >= 0 and s2 >= 0 and r2 + s2 > 0, "the regularised Gram system needs r^2 + sigma^2 > 0")
    return op.solve_gram(r, s2, weight=r2, max_iter=max_iter, tol=tol, method=method)


class PiGDMGuidance:
    """PiGDM guidance (module docstring).  ``sigma`` is the noise std in [0, 1] units.

    ``r_choice``: ``"paper"`` or ``"fastem"`` (``r_t^2`` and step factor ``c_t``); ``weight`` multiplies the
    step.  ``sigma_floor`` ([-1, 1] units) keeps the system well posed for noiseless data.
    """

    def __init__(self, predict, y: torch.Tensor, op, sigma: float, schedule, r_choice: str = "paper",
                 weight: float = 1.0, solver: str = "auto", cg_iter: int = 100, sigma_floor: float = 1e-3):
        require(r_choice in R_CHOICES, f"unknown r_t choice {r_choice!r}", f"use one of {', '.join(R_CHOICES)}")
        require(sigma >= 0, f"noise sigma must be >= 0, got {sigma}")
        self.predict, self.y, self.op, self.schedule = predict, y, op, schedule
        self.s2 = max(2.0 * sigma, sigma_floor) ** 2
        self.r_choice, self.weight, self.solver, self.cg_iter = r_choice, weight, solver, cg_iter

    def r_squared(self, t: int, s: int) -> float:
        """``r_t^2`` in [-1, 1] units (module docstring)."""
        if self.r_choice == "paper":
            return 1.0 - float(self.schedule.alpha_bar(t))
        v = posterior_variance(self.schedule, t, s)
        return 4.0 * v / (1.0 + v)

    def coefficient(self, t: int, s: int) -> float:
        """``weight * c_t``, the factor of ``g`` in the update (module docstring)."""
        ab_t = float(self.schedule.alpha_bar(t))
        if self.r_choice == "paper":
            alpha = ab_t / (1.0 if s < 0 else float(self.schedule.alpha_bar(s)))
            return self.weight * (1.0 - alpha) / math.sqrt(alpha)
        v = posterior_variance(self.schedule, t, s)
        return self.weight * math.sqrt(ab_t) * v / (1.0 + v) ** 1.5

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
        return x0, self.coefficient(t, s) * g
