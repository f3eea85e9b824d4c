"""Linear deconvolution: Wiener and Tikhonov (closed form for circular blur, CG otherwise).

Both minimise ``||A x - y||^2 + lam * ||L x||^2`` with ``L`` the identity or the gradient:

* :func:`tikhonov`: ``lam`` given (default 1e-3), ``reg="identity"`` or ``"gradient"`` (default).
* :func:`wiener`: the same with ``lam = sigma^2 / signal variance`` (the Wiener-Hunt balance); sigma
  is given or estimated from the image (wavelet MAD).

For ``boundary="circular"`` the solution is exact in Fourier.  For other boundaries, Wiener uses the
usual "pad then crop" trick (the image is extended by the PSF size with ``reflect`` or ``replicate``
padding, solved circularly, and cropped); Tikhonov solves the normal equations by conjugate gradient on the chosen
operator (exact for the boundary model, including ``valid``).
"""

from __future__ import annotations

import time

import torch

from ..errors import require
from ..physics.convolution import Convolution, _pad_nd, psf_to_otf
from ..physics.noise import estimate_noise_sigma
from ..physics.operator import LinearOperator
from .cg import conjugate_gradient
from .problem import setup_problem

REGULARISERS = ("identity", "gradient")


def _reg_symbol(shape, reg, dtype, device):
    """Fourier symbol of L^T L on an rfft grid of ``shape``."""
    if reg == "identity":
        return torch.ones((), dtype=dtype, device=device)
    sym = 0
    d = len(shape)
    for ax, n in enumerate(shape):
        freqs = torch.fft.rfftfreq(n) if ax == d - 1 else torch.fft.fftfreq(n)
        w = (2 - 2 * torch.cos(2 * torch.pi * freqs)).to(dtype=dtype, device=device)
        view = [1] * d
        view[ax] = -1
        sym = sym + w.view(view)
    return sym


def _grad_ata(x):
    """L^T L x for L = forward-difference gradient with circular wrap (matches :func:`_reg_symbol`)."""
    out = torch.zeros_like(x)
    for ax in range(2, x.ndim):
        out = out + 2 * x - torch.roll(x, 1, ax) - torch.roll(x, -1, ax)
    return out


def _fourier_solve(y, psf, lam, reg):
    shape = tuple(y.shape[2:])
    dims = tuple(range(-len(shape), 0))
    H = psf_to_otf(psf, shape)
    num = H.conj() * torch.fft.rfftn(y, dim=dims)
    den = H.abs() ** 2 + lam * _reg_symbol(shape, reg, y.dtype, y.device)
    return torch.fft.irfftn(num / den, s=shape, dim=dims)


def tikhonov_solve(op, y: torch.Tensor, lam: float = 1e-3, reg: str = "gradient", max_iter: int = 100,
                   tol: float = 1e-5, x0: torch.Tensor | None = None) -> torch.Tensor:
    """``argmin_x ||A x - y||^2 + lam ||L x||^2`` by conjugate gradient, for any linear operator.

    ``y`` is ``(B, C, *out_shape)``; the result lives on the object grid ``(B, C, *in_shape)`` (crop
    it with ``op.crop_object`` for the ``valid`` model).  Starts from ``op.initial_object(y)`` when
    the operator has it, else from ``A^T y``.
    """
    require(reg in REGULARISERS, f"unknown regulariser {reg!r}", f"use one of {', '.join(REGULARISERS)}")
    require(lam > 0, f"regularisation weight must be > 0, got {lam}")
    L = (lambda v: v) if reg == "identity" else _grad_ata
    if x0 is None:
        x0 = op.initial_object(y) if hasattr(op, "initial_object") else op.A_adjoint(y)
    return conjugate_gradient(lambda v: op.AtA(v) + lam * L(v), op.A_adjoint(y), x0=x0, max_iter=max_iter, tol=tol)


def _linear_solve(problem, lam, reg, boundary, max_iter, tol):
    require(reg in REGULARISERS, f"unknown regulariser {reg!r}", f"use one of {', '.join(REGULARISERS)}")
    require(lam > 0, f"regularisation weight must be > 0, got {lam}")
    if boundary == "circular" and problem.psf is not None:
        return _fourier_solve(problem.y, problem.psf, lam, reg), {"solver": "fourier"}
    return tikhonov_solve(problem.op, problem.y, lam, reg, max_iter, tol), {"solver": "cg"}


def _wiener_balance(y, psf, sigma, reg):
    """Noise-to-signal ratio for a signal power spectrum ``S_x(f) = c / |L(f)|^2``.

    ``c`` is fitted on the data: in the band where the blur transfers well (``|H|^2 > 0.1``) and the
    data are above the noise, ``(|Y|^2 / N - sigma^2) * |L|^2 / |H|^2`` is an estimate of ``c``; the
    median is taken.  The balance is ``sigma^2 / c``.
    """
    shape = tuple(y.shape[2:])
    dims = tuple(range(-len(shape), 0))
    H2 = psf_to_otf(psf, shape).abs() ** 2
    Sy = torch.fft.rfftn(y, dim=dims).abs() ** 2 / float(torch.tensor(shape).prod())
    L2 = _reg_symbol(shape, reg, y.dtype, y.device).expand_as(H2)
    sel = (H2 > 0.1) & (Sy > 2 * sigma**2) & (L2 > 0)
    if sigma <= 0 or int(sel.sum()) < 8:
        return 1e-6
    c = torch.median(((Sy - sigma**2) * L2 / H2)[sel])
    return max(float(sigma**2 / c.clamp_min(1e-30)), 1e-8)


def tikhonov(image, psf, lam: float = 1e-3, *, reg: str = "gradient", boundary: str = "reflect",
             max_iter: int = 100, tol: float = 1e-5, channel_axis=None, device=None, return_info: bool = False):
    """Tikhonov-regularised deconvolution ``argmin ||A x - y||^2 + lam ||L x||^2``.

    ``reg="gradient"`` (default) penalises the image gradient, ``"identity"`` its energy.  Closed
    form for ``boundary="circular"``, conjugate gradient (``max_iter``, ``tol``) for the others.
    ``psf`` may be a linear operator instead (space-varying blur): solved by conjugate gradient.
    """
    t0 = time.perf_counter()
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device)
    x, info = _linear_solve(problem, lam, reg, boundary, max_iter, tol)
    info.update(lam=lam, time_s=time.perf_counter() - t0, notes=problem.notes)
    out = problem.output(x)
    return (out, info) if return_info else out


def wiener(image, psf, noise_sigma: float | None = None, balance: float | None = None, *, reg: str = "gradient",
           boundary: str = "reflect", channel_axis=None, device=None, return_info: bool = False):
    """Wiener(-Hunt) deconvolution.

    Minimises ``||A x - y||^2 + balance * ||L x||^2`` (``reg="gradient"``: a ``1/|f|^2`` image
    spectrum; ``"identity"``: a flat one).  ``balance`` (noise-to-signal power ratio) is used when
    given; otherwise ``balance = noise_sigma^2 / c`` with ``c`` the signal spectrum amplitude fitted
    on the data (see :func:`_wiener_balance`) and ``noise_sigma`` given or estimated by the wavelet MAD
    estimator (:func:`unblur.physics.estimate_noise_sigma`).  ``boundary="reflect"`` (default)
    pads the image by the PSF size with mirror images before the circular solve, which suppresses
    edge ringing (``"replicate"``: edge values instead); ``"circular"`` solves on the image as it is.
    """
    t0 = time.perf_counter()
    require(reg in REGULARISERS, f"unknown regulariser {reg!r}", f"use one of {', '.join(REGULARISERS)}")
    require(boundary in ("circular", "reflect", "replicate"), f"wiener supports circular, reflect or replicate boundaries, not {boundary!r}",
            "use tikhonov for the zero/valid models")
    require(not isinstance(psf, LinearOperator), "wiener needs a PSF (it is a Fourier filter)",
            "use tikhonov or richardson_lucy with a space-varying operator")
    problem = setup_problem(image, psf, "circular", channel_axis=channel_axis, device=device)
    y = problem.y
    if balance is None:
        if noise_sigma is None:
            noise_sigma = estimate_noise_sigma(y[0].mean(0))
        require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
        balance = _wiener_balance(y, problem.psf, noise_sigma, reg)
    require(balance > 0, f"balance must be > 0, got {balance}")
    if boundary != "circular":
        k = problem.op.kernel_shape
        pad = []
        for n in reversed(k):
            pad += [n, n]
        yp = _pad_nd(y, pad, boundary)
        x = _fourier_solve(yp, problem.psf, balance, reg)
        x = x[(Ellipsis,) + tuple(slice(n, n + s) for n, s in zip(k, y.shape[2:]))]
    else:
        x = _fourier_solve(y, problem.psf, balance, reg)
    info = {"balance": balance, "noise_sigma": noise_sigma, "time_s": time.perf_counter() - t0, "notes": problem.notes}
    out = problem.output(x)
    return (out, info) if return_info else out


__all__ = ["wiener", "tikhonov", "Convolution"]
