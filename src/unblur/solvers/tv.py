"""Total-variation deconvolution by ADMM (TV-ADMM): Gaussian fidelity + isotropic TV.

Solves, for any linear operator ``A`` (2-D or 3-D, every boundary model)::

    min_x  1/2 ||A x - y||^2 + lam TV(x)

by ADMM on the splitting ``z = x`` (Boyd et al. 2011; Afonso, Bioucas-Dias & Figueiredo 2010), with
penalty ``rho``::

    x = (A^T A + rho I)^-1 (A^T y + rho (z - u))     the operator's prox_l2 (Fourier or CG)
    z = prox_{(lam / rho) TV}(x + u)                 exact TV prox (FGP, Beck & Teboulle 2009)
    u = u + x - z

The TV prox is warm-started from the previous dual.  ``TV`` is isotropic with forward differences
(:class:`unblur.optim.TotalVariation`); the data keep their units (no positivity constraint, like
Tikhonov).  Iterations stop at ``num_iter`` or when ``||z_k - z_{k-1}|| / ||z_{k-1}|| < tol``.
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from ..errors import require
from ..optim.driver import Progress, StoppingRule, iterate
from ..optim.fidelity import L2Fidelity
from ..optim.prior import TotalVariation
from .problem import censored, setup_problem


def tv_admm_iterations(op, y: torch.Tensor, lam: float, rho: float, num_iter: int, *, tv_iter: int = 20,
                       cg_iter: int = 30, tol: float = 1e-4, progress: Progress | None = None,
                       clipped: torch.Tensor | None = None):
    """The TV-ADMM loop on tensors ``(B, C, *out_shape)``; returns ``(z, info)`` on the object grid.

    ``clipped`` (1 at saturated pixels): their data are lower bounds; before each data step they are replaced
    by ``max(y, A x)`` (the censored-data majorisation: no pull down to the ceiling, only up to it)."""
    data, tv = L2Fidelity(op, y), TotalVariation(lam, prox_iter=tv_iter)
    x = op.initial_object(y)
    u = torch.zeros_like(x)

    def step(z, it):
        nonlocal x, u, data
        if clipped is not None:
            data = L2Fidelity(op, censored(y, clipped, op, x))
        x = data.prox(z - u, 1.0 / rho, x0=x, max_iter=cg_iter)
        z = tv.prox(x + u, 1.0 / rho, warm_start=True)
        u = u + x - z
        return z, None

    with torch.no_grad():
        return iterate(step, x.clone(), num_iter, stop=StoppingRule("relative-change", tol=tol), progress=progress)


def tv_admm(image, psf, *, lam: float | None = None, noise_sigma: float | None = None, lam_factor: float = 8.0,
            rho: float | None = None, num_iter: int = 100, tol: float = 1e-4, tv_iter: int = 20, cg_iter: int = 30,
            boundary: Literal["valid", "reflect", "circular", "zero", "replicate"] = "valid",
            missing: Literal["error", "mask"] = "error", saturation: str | float | None = None,
            channel_axis: int | None = None, device: str | None = None, progress: bool = False, callback=None,
            return_info: bool = False):
    """Total-variation deconvolution ``argmin_x 1/2 ||A x - y||^2 + lam TV(x)`` by ADMM (module docstring).

    Parameters
    ----------
    image : array or tensor
        ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)`` or torch ``(B, C, ...)``; float64 in gives
        float64 out.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear operator (space-varying blur).
    lam : float or None
        TV weight, > 0, in the image's units; default ``lam_factor * noise_sigma^2`` (the MAP weight of a
        Laplacian gradient prior, ``sigma^2 / b``, with the gradient scale ``b = 1 / lam_factor``).
    noise_sigma : float or None
        Noise standard deviation in image units, used only for the default ``lam``; estimated when omitted
        (:func:`unblur.physics.estimate_noise_sigma`).
    lam_factor : float
        ``lam = lam_factor * noise_sigma^2`` when ``lam`` is not given, > 0.
    rho : float or None
        ADMM penalty, > 0; default ``10 lam`` (clamped to [1e-3, 1]).
    num_iter : int
        Maximum ADMM iterations.
    tol : float
        Stop when the relative change of the iterate falls below this.
    tv_iter : int
        FGP iterations of each TV prox (warm-started).
    cg_iter : int
        Conjugate-gradient iterations of the data step (non-circular boundaries).
    boundary : str
        Blur boundary model (see :mod:`unblur.physics.convolution`); ignored for an operator.  ``"valid"``
        (default) is the non-circulant model of a photograph: no ringing from padded borders.
    missing : {"error", "mask"}
        NaN/Inf pixels: refused, or left out of the data term (``"mask"``: ``1/2 ||M (A x - y)||^2`` with ``M``
        the observed pixels, data step by conjugate gradient), NaN in the result where no observed pixel
        constrains it (as :func:`unblur.solvers.richardson_lucy`).
    saturation : "auto", float or None
        Clipped pixels as lower bounds (:mod:`unblur.physics.saturation`; as :func:`unblur.solvers.richardson_lucy`):
        before each data step their data are ``max(y, A x)``.
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    progress : bool
        Show a progress bar.
    callback : callable or None
        ``callback(iteration, z, info)`` after each iteration.
    return_info : bool
        Also return a dict (iterations, stopping reason, lam, noise sigma, rho, time), as :func:`unblur.solvers.tikhonov`.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers.tv import tv_admm
    >>> tv_admm(np.ones((16, 16)), np.ones((3, 3)) / 9, num_iter=5).shape
    (16, 16)
    """
    t0 = time.perf_counter()
    require(num_iter >= 1 and tv_iter >= 1, "num_iter and tv_iter must be >= 1")
    require(lam_factor > 0, f"lam_factor must be > 0, got {lam_factor}")
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device, missing=missing,
                            saturation=saturation)
    if lam is None:
        if noise_sigma is None:
            noise_sigma = problem.noise_sigma()
        require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
        lam = lam_factor * max(noise_sigma, 1e-3) ** 2
    require(lam > 0, f"lam must be > 0, got {lam}", "use tikhonov for a quadratic regulariser")
    rho = min(max(10 * lam, 1e-3), 1.0) if rho is None else rho
    require(rho > 0, f"rho must be > 0, got {rho}")
    bar = Progress(num_iter, "TV-ADMM", progress, callback)
    z, info = tv_admm_iterations(problem.op, problem.y, lam, rho, num_iter, tv_iter=tv_iter, cg_iter=cg_iter,
                                 tol=tol, progress=bar, clipped=problem.clipped)
    bar.close()
    info.update(lam=lam, noise_sigma=noise_sigma, rho=rho, time_s=time.perf_counter() - t0, notes=problem.notes)
    out = problem.output(z)
    return (out, info) if return_info else out


__all__ = ["tv_admm", "tv_admm_iterations"]
