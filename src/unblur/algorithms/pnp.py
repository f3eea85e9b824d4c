"""Plug-and-play solvers with a denoiser prior ``D(x, sigma)``: PnP-ADMM, HQS with a decreasing sigma
schedule (DPIR) and Poisson PnP-ADMM.  Everything in [0, 1] units; the denoiser is the proximal map of
the prior (:class:`unblur.optim.DenoiserPrior`: ``prox(v, gamma) = D(v, sqrt(gamma))``).

Gaussian noise: PnP-ADMM and DPIR alternate the data step (the operator's ``prox_l2``: exact in
Fourier for ``boundary="circular"``, conjugate gradient otherwise; :func:`data_step`)

    x = argmin_x 1/2 ||A x - y||^2 + mu/2 ||x - v||^2 = (A^T A + mu I)^{-1} (A^T y + mu v)

with a denoising step.

PnP-ADMM (Venkatakrishnan et al. 2013; Chan et al. 2017), penalty ``rho_k``::

    x = data_step(v = z - u, mu = rho_k);  z = D(x + u, sigma / sqrt(rho_k));  u = u + x - z

With the MAP objective ``1/(2 sigma^2) ||A x - y||^2 + R(x)``, the z-step is the proximal map of a
denoiser at ``sigma_d = sigma / sqrt(rho)`` (``denoiser_sigma`` overrides it).  With a constant penalty
the iterates creep from the blurred start towards the solution, far too slowly for long kernels; as in
Chan et al. 2017 the penalty increases instead: ``rho_k`` grows geometrically from
``(sigma / sigma_start)^2`` (a denoiser at ``sigma_start = 49/255``, DPIR's first level) to ``rho`` over
the first three quarters of the iterations (:func:`admm_schedule`), the scaled dual ``u`` rescaled by
``rho_{k-1} / rho_k`` at each change.  Defaults ``rho = 0.02``, 24 iterations (chosen on Set12 fields
against ``rho`` 0.01-0.2, noise 0.003-0.03: ``benchmarks/choices/pnp-admm-penalty.toml``; BENCHMARKS.md,
"Non-blind methods per kernel size");
``sigma_start=None`` gives the constant penalty of the RL-diffusion paper's baseline (``rho = 0.2``,
12 iterations).

DPIR (Zhang et al., TPAMI 2021, HQS): ``sigma_k`` log-spaced from ``sigma_1 = 49/255`` down to the noise
sigma over ``K = 8`` iterations, ``mu_k = lam sigma^2 / sigma_k^2`` with ``lam = 0.23``::

    x = data_step(v = z, mu = mu_k);  z = D(x, sigma_k)

Boundaries and noise level.  Every learned non-blind method (PnP-ADMM, DPIR and the diffusion samplers DPS,
PiGDM, RL-diffusion) defaults to ``boundary="valid"``: the image is the valid
part of the blur of a larger object, which the data step estimates by conjugate gradient and the result
crops.  Padding models (``replicate``, ``reflect``) invent the blurred values beyond the edge; the error
spans a band as wide as the kernel and, as the data-step weight grows over the iterations, is deconvolved
into ringing that crosses the image, so that the loss grows with the kernel size (DPIR with ``replicate``
keeps little of its gain over Richardson-Lucy on 70-75 px camera-shake kernels; BENCHMARKS.md, "Non-blind
methods per kernel size").  The noise sigma is floored
(:func:`unblur.algorithms.common.robust_noise_sigma`): the last HQS steps weigh the data by
``lam sigma^2 / sigma_K^2`` with ``sigma_K = sigma``, so an underestimated sigma fits the noise.

Poisson noise (:func:`poisson_pnp`): ``y`` counts ``gain`` photons per unit intensity,
``gain y ~ Poisson(gain A x)``.  The MAP problem ``min_x gain KL(y, A x) + R(x)`` is split as
``u1 = A x``, ``u2 = x`` (PIDAL, Figueiredo & Bioucas-Dias 2010) with one ADMM penalty ``rho``::

    x  = (A^T A + I)^-1 (A^T (u1 + d1) + (u2 + d2))              (the operator's solve_normal)
    u1 = prox_{(gain/rho) KL(y, .)}(A x - d1)                     (per pixel, closed form)
    u2 = D(x - d2, 1 / sqrt(rho))                                 (the denoiser prior)
    d1 = d1 - (A x - u1);  d2 = d2 - (x - u2)

so ``rho = 1 / sigma_d^2`` for the denoiser level ``sigma_d``, whose default is the Poisson noise level
at the mean intensity, ``sqrt(mean(y) / gain)``.  The per-pixel KL prox is
:func:`unblur.optim.poisson_prox`; the iterate returned is ``u2`` (denoised, non-negative).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch

from ..errors import require
from ..optim.driver import iterate
from ..optim.fidelity import poisson_prox
from ..solvers.problem import censored
from .common import start

if TYPE_CHECKING:
    from ..models.base import Denoiser


def data_step(op, y: torch.Tensor, v: torch.Tensor, mu: float, x0: torch.Tensor | None = None,
              method: str = "auto", max_iter: int = 50, tol: float = 1e-5) -> torch.Tensor:
    """``(A^T A + mu I)^{-1} (A^T y + mu v)``: the operator's ``prox_l2`` (exact in Fourier for a circular
    blur, conjugate gradient from ``x0`` otherwise; ``method`` forces one)."""
    require(mu > 0, f"the data-step weight must be > 0, got {mu}")
    return op.prox_l2(v, y, mu, x0=x0, max_iter=max_iter, tol=tol, method=method)


def admm_schedule(num_iter: int, rho: float, noise_sigma: float, sigma_start: float | None,
                  ramp: float = 0.75) -> list[float]:
    """Penalties ``rho_k``: constant ``rho`` without ``sigma_start``; otherwise increasing geometrically from
    ``rho_0 = (sigma / sigma_start)^2`` (denoiser level ``sigma_start``) to ``rho``, reached after
    ``ramp * num_iter`` iterations and kept (the continuation of Chan et al. 2017)."""
    if not sigma_start:
        return [rho] * num_iter
    rho0 = min(rho, (max(noise_sigma, 1e-3) / sigma_start) ** 2)
    n = max(1, round(ramp * num_iter))
    if n == 1:
        return [rho] * num_iter
    a, b = math.log(rho0), math.log(rho)
    return [math.exp(a + (b - a) * min(k, n - 1) / (n - 1)) for k in range(num_iter)]


def admm_iterations(op, y: torch.Tensor, prior, rhos: list[float], noise_sigma: float,
                    cg_iter: int = 50, progress=None, clipped: torch.Tensor | None = None) -> torch.Tensor:
    """The PnP-ADMM loop on tensors (data in [0, 1]) with penalties ``rhos`` (one per iteration; the scaled
    dual ``u`` is rescaled by ``rho_{k-1} / rho_k`` when the penalty changes) and denoiser levels
    ``noise_sigma / sqrt(rho_k)``; returns the last denoised iterate ``z``.  ``clipped``: saturated pixels,
    censored before each data step (:func:`unblur.solvers.problem.censored`)."""
    x = op.initial_object(y)
    u = torch.zeros_like(x)

    def step(z, it):
        nonlocal x, u
        rho = rhos[it]
        if it > 0 and rhos[it - 1] != rho:
            u = u * (rhos[it - 1] / rho)
        x = data_step(op, censored(y, clipped, op, x), z - u, rho, x0=x, max_iter=cg_iter)
        z = prior(x + u, noise_sigma / math.sqrt(rho))
        u = u + x - z
        return z, None

    with torch.no_grad():
        z, _ = iterate(step, x.clone(), len(rhos), progress=progress)
    return z


def pnp_admm(image, psf, *, rho: float = 0.02, num_iter: int = 24, denoiser_sigma: float | None = None,
             sigma_start: float | None = 49 / 255, prior: Denoiser | str | None = None, noise_sigma: float | None = None,
             boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid", cg_iter: int = 50,
             saturation: str | float | None = None, seed: int | None = 0, device: str | None = None,
             progress: bool = False, callback=None):
    """PnP-ADMM deblurring (module docstring) of a gray or colour image in [0, 1].

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    rho : float
        ADMM penalty (> 0); the denoiser level is ``noise_sigma / sqrt(rho)``.
    num_iter : int
        ADMM iterations (one denoiser evaluation each).
    denoiser_sigma : float, optional
        Denoiser noise level in [0, 1] units; default ``noise_sigma / sqrt(rho)``.
    sigma_start : float, optional
        Denoiser level of the first iteration in [0, 1] units: the penalty then grows geometrically from
        ``(noise_sigma / sigma_start)^2`` to its final value over the first three quarters of the iterations
        (:func:`admm_schedule`); ``None`` or 0 keeps the penalty constant.
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec or a Denoiser; default: the embedded unblur network.
    noise_sigma : float, optional
        Gaussian noise sigma in [0, 1] image units; estimated if omitted.
    boundary : {"valid", "replicate", "circular", "zero", "reflect"}
        Blur boundary model; ``"valid"`` (default) does not ring from the borders (module docstring).
    cg_iter : int
        Conjugate-gradient iterations of the data step (non-circular boundaries).
    saturation : "auto", float or None
        Clipped pixels (:mod:`unblur.physics.saturation`) taken as lower bounds: before each data step their
        data are ``max(y, A x)`` (censored data).
    seed : int, optional
        Random seed (the method is deterministic; kept for a uniform interface).
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(iteration, z, info)`` after each iteration.

    Returns
    -------
    restored : array
        Same layout as ``image``.
    info : dict
        ``nfe``, ``time_s``, ``iterations``, ``rho``, ``denoiser_sigma``, ``denoiser_sigma_start``,
        ``noise_sigma``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.models import GaussianSmoother
    >>> restored, info = pnp_admm(np.full((16, 16), 0.5), np.ones((3, 3)) / 9, prior=GaussianSmoother(), num_iter=3)
    >>> restored.shape, info["nfe"]
    ((16, 16), 3)
    """
    require(rho > 0, f"rho must be > 0, got {rho}")
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}")
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device,
                saturation=saturation)
    y, op = run.y, run.op
    sigma = max(run.sigma, 1e-3)
    sd = denoiser_sigma if denoiser_sigma is not None else sigma / math.sqrt(rho)
    require(sd > 0, f"denoiser_sigma must be > 0, got {sd}")
    rhos = admm_schedule(num_iter, (sigma / sd) ** 2, sigma, sigma_start)
    bar = run.progress(num_iter, "PnP-ADMM", progress, callback)
    z = admm_iterations(op, y, run.prior, rhos, sigma, cg_iter=cg_iter, progress=bar, clipped=run.problem.clipped)
    bar.close()
    return run.finish(z, {"method": "pnp-admm", "iterations": num_iter, "rho": rho, "denoiser_sigma": sd,
                          "denoiser_sigma_start": sigma / math.sqrt(rhos[0])})


def dpir_schedule(num_iter: int, sigma: float, sigma_start: float = 49 / 255) -> list[float]:
    """Log-spaced denoiser sigmas from ``sigma_start`` to ``max(sigma, 1e-3)`` (DPIR)."""
    end = max(sigma, 1e-3)
    if num_iter == 1:
        return [end]
    a, b = math.log(sigma_start), math.log(end)
    return [math.exp(a + (b - a) * k / (num_iter - 1)) for k in range(num_iter)]


def dpir(image, psf, *, num_iter: int = 8, lam: float = 0.23, sigma_start: float = 49 / 255,
         prior: Denoiser | str | None = None, noise_sigma: float | None = None,
         boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid", cg_iter: int = 50,
         saturation: str | float | None = None, seed: int | None = 0, device: str | None = None,
         progress: bool = False, callback=None):
    """DPIR / HQS deblurring (module docstring) of a gray or colour image in [0, 1].

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    num_iter : int
        HQS iterations (one denoiser evaluation each).
    lam : float
        Data-step weight factor (``mu_k = lam sigma^2 / sigma_k^2``).
    sigma_start : float
        First denoiser level in [0, 1] units (log-spaced down to the noise sigma).
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec or a Denoiser; default: the embedded unblur network.
    noise_sigma : float, optional
        Gaussian noise sigma in [0, 1] image units; estimated if omitted.
    boundary : {"valid", "replicate", "circular", "zero", "reflect"}
        Blur boundary model; ``"valid"`` (default) does not ring from the borders (module docstring).
    cg_iter : int
        Conjugate-gradient iterations of the data step (non-circular boundaries).
    saturation : "auto", float or None
        Clipped pixels (:mod:`unblur.physics.saturation`) taken as lower bounds: before each data step their
        data are ``max(y, A x)`` (censored data).
    seed : int, optional
        Random seed (the method is deterministic; kept for a uniform interface).
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(iteration, z, info)`` after each iteration.

    Returns
    -------
    restored : array
        Same layout as ``image``.
    info : dict
        ``nfe``, ``time_s``, ``iterations``, ``sigmas``, ``lam``, ``noise_sigma``.
    """
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}")
    require(lam > 0 and sigma_start > 0, "lam and sigma_start must be > 0")
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device,
                saturation=saturation)
    y, op, clipped = run.y, run.op, run.problem.clipped
    sigmas = dpir_schedule(num_iter, run.sigma, sigma_start)
    x = op.initial_object(y)

    def step(z, it):
        nonlocal x
        mu = lam * max(run.sigma, 1e-3) ** 2 / sigmas[it] ** 2
        x = data_step(op, censored(y, clipped, op, x), z, mu, x0=x, max_iter=cg_iter)
        return run.prior(x, sigmas[it]), None

    bar = run.progress(num_iter, "DPIR", progress, callback)
    with torch.no_grad():
        z, _ = iterate(step, x, num_iter, progress=bar, info=lambda it: {"sigma": sigmas[it]})
    bar.close()
    return run.finish(z, {"method": "dpir", "iterations": num_iter, "sigmas": sigmas, "lam": lam})


def poisson_pnp(image, psf, *, gain: float = 100.0, num_iter: int = 30, denoiser_sigma: float | None = None,
                prior: Denoiser | str | None = None,
                boundary: Literal["replicate", "circular", "zero", "reflect", "valid"] = "replicate",
                cg_iter: int = 30, seed: int | None = 0, device: str | None = None, progress: bool = False,
                callback=None):
    """Poisson PnP-ADMM (PIDAL splitting with a denoiser prior; module docstring) of an image in [0, 1].

    Parameters
    ----------
    image : array
        Blurred Poisson-noisy image in [0, 1] (counts divided by ``gain``), gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    gain : float
        Photons per unit intensity (``gain * image`` are the photon counts), > 0.
    num_iter : int
        ADMM iterations (one denoiser evaluation each).
    denoiser_sigma : float, optional
        Denoiser level in [0, 1] units (sets the ADMM penalty ``rho = 1 / sigma^2``); default: the
        Poisson noise level at the mean intensity, ``sqrt(mean(image) / gain)``.
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec or a Denoiser; default: the embedded unblur network.
    boundary : {"replicate", "circular", "zero", "reflect", "valid"}
        Blur boundary model.
    cg_iter : int
        Conjugate-gradient iterations of the x-step (non-circular boundaries).
    seed : int, optional
        Random seed (the method is deterministic; kept for a uniform interface).
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(iteration, u2, info)`` after each iteration.

    Returns
    -------
    restored : array
        Same layout as ``image``.
    info : dict
        ``nfe``, ``time_s``, ``iterations``, ``gain``, ``denoiser_sigma``.
    """
    require(gain > 0, f"gain must be > 0, got {gain}", "give the photons per unit intensity (e.g. 100)")
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}")
    run = start(image, psf, boundary=boundary, noise_sigma=0.0, prior=prior, seed=seed, device=device,
                floor_sigma=False)
    y, op = run.y.clamp_min(0), run.op
    sd = denoiser_sigma if denoiser_sigma is not None else math.sqrt(max(float(y.mean()), 1e-6) / gain)
    require(sd > 0, f"denoiser_sigma must be > 0, got {sd}")
    rho = 1.0 / sd**2
    x = op.initial_object(y)
    u1, d1, d2 = y.clone(), torch.zeros_like(y), torch.zeros_like(x)

    def step(u2, it):
        nonlocal x, u1, d1, d2
        x = op.solve_normal(op.A_adjoint(u1 + d1) + u2 + d2, 1.0, x0=x, max_iter=cg_iter)
        Ax = op.A(x)
        u1 = poisson_prox(Ax - d1, y, gain / rho)
        u2 = run.prior(x - d2, sd)
        d1 = d1 - (Ax - u1)
        d2 = d2 - (x - u2)
        return u2, None

    bar = run.progress(num_iter, "Poisson PnP", progress, callback)
    with torch.no_grad():
        z, _ = iterate(step, x.clone(), num_iter, progress=bar)
    bar.close()
    info = {"method": "poisson-pnp", "iterations": num_iter, "gain": gain, "denoiser_sigma": sd}
    restored, info = run.finish(z, info)
    info.pop("noise_sigma", None)
    return restored, info
