"""Plug-and-play solvers with a denoiser prior ``D(x, sigma)``: PnP-ADMM and HQS with a decreasing
sigma schedule (DPIR).  Everything in [0, 1] units.

Both alternate the data step

    x = argmin_x 1/2 ||A x - y||^2 + mu/2 ||x - v||^2 = (A^T A + mu I)^{-1} (A^T y + mu v)

(exact in Fourier for ``boundary="circular"``, conjugate gradient otherwise; :func:`data_step`) with a
denoising step.

PnP-ADMM (Venkatakrishnan et al. 2013; Chan et al. 2017), penalty ``rho``::

    x = data_step(v = z - u, mu = rho);  z = D(x + u, sigma_d);  u = u + x - z

With the MAP objective ``1/(2 sigma^2) ||A x - y||^2 + R(x)``, the z-step is the proximal map of a
denoiser at ``sigma_d = sigma / sqrt(rho)`` (the default; ``denoiser_sigma`` overrides it).
Defaults: the RL-diffusion paper's baseline (``rho = 0.2``, 12 iterations).

DPIR (Zhang et al., TPAMI 2021, HQS): ``sigma_k`` log-spaced from ``sigma_1 = 49/255`` down to the noise
sigma over ``K = 8`` iterations, ``mu_k = lam sigma^2 / sigma_k^2`` with ``lam = 0.23``::

    x = data_step(v = z, mu = mu_k);  z = D(x, sigma_k)
"""

from __future__ import annotations

import math

import torch

from ..errors import require
from .common import start


def data_step(op, y: torch.Tensor, v: torch.Tensor, mu: float, x0: torch.Tensor | None = None,
              method: str = "auto", max_iter: int = 50, tol: float = 1e-5) -> torch.Tensor:
    """``(A^T A + mu I)^{-1} (A^T y + mu v)``: the operator's ``prox_l2`` (exact in Fourier for a circular
    blur, conjugate gradient from ``x0`` otherwise; ``method`` forces one)."""
    require(mu > 0, f"the data-step weight must be > 0, got {mu}")
    return op.prox_l2(v, y, mu, x0=x0, max_iter=max_iter, tol=tol, method=method)


def admm_iterations(op, y: torch.Tensor, prior, rho: float, num_iter: int, denoiser_sigma: float,
                    cg_iter: int = 50, progress=None) -> torch.Tensor:
    """The PnP-ADMM loop on tensors (data in [0, 1]); returns the last denoised iterate ``z``."""
    x = op.initial_object(y)
    z, u = x.clone(), torch.zeros_like(x)
    with torch.no_grad():
        for it in range(num_iter):
            x = data_step(op, y, z - u, rho, x0=x, max_iter=cg_iter)
            z = prior(x + u, denoiser_sigma)
            u = u + x - z
            if progress is not None:
                progress.update(it, z)
    return z


def pnp_admm(image, psf, *, rho: float = 0.2, num_iter: int = 12, denoiser_sigma: float | None = None,
             prior=None, noise_sigma: float | None = None, boundary: str = "replicate", cg_iter: int = 50,
             seed: int | None = 0, device=None, progress: bool = False, callback=None):
    """PnP-ADMM deblurring (module docstring) of a gray or colour image in [0, 1]; returns ``(restored, info)``.

    ``noise_sigma`` in [0, 1] units (estimated if omitted); ``nfe = num_iter``.
    """
    require(rho > 0, f"rho must be > 0, got {rho}")
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}")
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    y, op = run.y, run.op
    sd = denoiser_sigma if denoiser_sigma is not None else max(run.sigma, 1e-3) / math.sqrt(rho)
    require(sd > 0, f"denoiser_sigma must be > 0, got {sd}")
    bar = run.progress(num_iter, "PnP-ADMM", progress, callback)
    z = admm_iterations(op, y, run.prior, rho, num_iter, sd, cg_iter=cg_iter, progress=bar)
    bar.close()
    return run.finish(z, {"method": "pnp-admm", "iterations": num_iter, "rho": rho, "denoiser_sigma": sd})


def dpir_schedule(num_iter: int, sigma: float, sigma_start: float = 49 / 255) -> list[float]:
    """Log-spaced denoiser sigmas from ``sigma_start`` to ``max(sigma, 1e-3)`` (DPIR)."""
    end = max(sigma, 1e-3)
    if num_iter == 1:
        return [end]
    a, b = math.log(sigma_start), math.log(end)
    return [math.exp(a + (b - a) * k / (num_iter - 1)) for k in range(num_iter)]


def dpir(image, psf, *, num_iter: int = 8, lam: float = 0.23, sigma_start: float = 49 / 255, prior=None,
         noise_sigma: float | None = None, boundary: str = "replicate", cg_iter: int = 50, seed: int | None = 0,
         device=None, progress: bool = False, callback=None):
    """DPIR / HQS deblurring (module docstring) of a gray or colour image in [0, 1]; ``nfe = num_iter``."""
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}")
    require(lam > 0 and sigma_start > 0, "lam and sigma_start must be > 0")
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    y, op = run.y, run.op
    sigmas = dpir_schedule(num_iter, run.sigma, sigma_start)
    z = op.initial_object(y)
    x = z
    bar = run.progress(num_iter, "DPIR", progress, callback)
    with torch.no_grad():
        for it, sk in enumerate(sigmas):
            mu = lam * max(run.sigma, 1e-3) ** 2 / sk**2
            x = data_step(op, y, z, mu, x0=x, max_iter=cg_iter)
            z = run.prior(x, sk)
            bar.update(it, z, sigma=sk)
    bar.close()
    return run.finish(z, {"method": "dpir", "iterations": num_iter, "sigmas": sigmas, "lam": lam})
