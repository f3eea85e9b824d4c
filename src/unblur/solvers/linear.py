"""Linear deconvolution: Wiener and Tikhonov (closed form for circular blur, CG otherwise).

Both minimise ``||A x - y||^2 + lam * ||L x||^2`` with ``L`` the identity or the gradient:

* :func:`tikhonov`: ``lam`` given (default 1e-3), ``reg="identity"`` or ``"gradient"`` (default).
* :func:`wiener`: the same with ``lam = sigma^2 / signal variance`` (the Wiener-Hunt balance); sigma
  is given or estimated from the image (wavelet MAD).

Both solve with the operator's ``regularized_inverse`` (:mod:`unblur.physics.operator`): exact in
Fourier for ``boundary="circular"``.  For other boundaries, Wiener uses the usual "pad then crop"
trick (the image is extended by the PSF size with ``reflect`` or ``replicate`` padding, solved
circularly, and cropped); Tikhonov solves the normal equations by conjugate gradient on the chosen
operator (exact for the boundary model, including ``valid``).
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from ..errors import require
from ..physics.convolution import BOUNDARIES, Convolution, _pad_nd
from ..physics.noise import estimate_noise_sigma
from ..physics.operator import REGULARISERS, LinearOperator, regulariser_normal
from .problem import setup_problem


def tikhonov_solve(op: LinearOperator, y: torch.Tensor, lam: float = 1e-3, reg: str = "gradient", max_iter: int = 100,
                   tol: float = 1e-5, x0: torch.Tensor | None = None) -> torch.Tensor:
    """``argmin_x ||A x - y||^2 + lam ||L x||^2`` for any linear operator (``op.regularized_inverse``).

    ``y`` is ``(B, C, *out_shape)``; the result lives on the object grid ``(B, C, *in_shape)`` (crop
    it with ``op.crop_object`` for the ``valid`` model).  Exact in Fourier for a circular
    convolution, else conjugate gradient from ``x0`` (default ``op.initial_object(y)``).
    """
    regulariser_normal(reg)
    require(lam > 0, f"regularisation weight must be > 0, got {lam}")
    return op.regularized_inverse(y, lam, reg=reg, x0=x0, max_iter=max_iter, tol=tol)


def _wiener_balance(y, op: Convolution, sigma, reg):
    """Noise-to-signal ratio for a signal power spectrum ``S_x(f) = c / |L(f)|^2``.

    ``c`` is fitted on the data: in the band where the blur transfers well (``|H|^2 > 0.1``) and the
    data are above the noise, ``(|Y|^2 / N - sigma^2) * |L|^2 / |H|^2`` is an estimate of ``c``; the
    median is taken.  The balance is ``sigma^2 / c``.  ``op`` is the circular convolution on ``y``'s grid.
    """
    shape = tuple(y.shape[2:])
    dims = tuple(range(-len(shape), 0))
    H2 = op.transfer_power()
    Sy = torch.fft.rfftn(y, dim=dims).abs() ** 2 / float(torch.tensor(shape).prod())
    L2 = op.regulariser_symbol(reg, y.dtype).expand_as(H2)
    sel = (H2 > 0.1) & (Sy > 2 * sigma**2) & (L2 > 0)
    if sigma <= 0 or int(sel.sum()) < 8:
        return 1e-6
    c = torch.median(((Sy - sigma**2) * L2 / H2)[sel])
    return max(float(sigma**2 / c.clamp_min(1e-30)), 1e-8)


def tikhonov(image, psf, *, lam: float = 1e-3, reg: Literal["gradient", "identity"] = "gradient",
             boundary: Literal["reflect", "circular", "zero", "replicate", "valid"] = "reflect",
             max_iter: int = 100, tol: float = 1e-5, channel_axis: int | None = None, device: str | None = None,
             return_info: bool = False):
    """Tikhonov-regularised deconvolution ``argmin_x ||A x - y||^2 + lam ||L x||^2``.

    Exact in Fourier for ``boundary="circular"``, conjugate gradient on the boundary model otherwise
    (:meth:`unblur.physics.operator.LinearOperator.regularized_inverse`).

    Parameters
    ----------
    image : array or tensor
        ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)`` or torch ``(B, C, ...)``; float64 in
        gives float64 out (computed in float32).
    psf : array or LinearOperator
        The PSF (normalised to sum 1), or a linear operator (space-varying blur; solved by CG).
    lam : float
        Regularisation weight, > 0.
    reg : str
        ``"gradient"`` penalises the image gradient (forward differences), ``"identity"`` its energy.
    boundary : str
        Blur boundary model (see :mod:`unblur.physics.convolution`); ignored for an operator.
    max_iter : int
        Conjugate-gradient iterations (non-circular boundaries).
    tol : float
        Conjugate-gradient relative-residual tolerance.
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    return_info : bool
        Also return a dict (solver, lam, time).

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers import tikhonov
    >>> tikhonov(np.ones((16, 16)), np.ones((3, 3)) / 9, lam=1e-2).shape
    (16, 16)
    """
    t0 = time.perf_counter()
    regulariser_normal(reg)
    require(lam > 0, f"regularisation weight must be > 0, got {lam}")
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device)
    op = problem.op
    x = op.regularized_inverse(problem.y, lam, reg=reg, max_iter=max_iter, tol=tol)
    info = {"solver": "fourier" if op.diagonal_in_fourier else "cg", "lam": lam,
            "time_s": time.perf_counter() - t0, "notes": problem.notes}
    out = problem.output(x)
    return (out, info) if return_info else out


def wiener(image, psf, *, noise_sigma: float | None = None, balance: float | None = None,
           reg: Literal["gradient", "identity"] = "gradient", boundary: Literal["reflect", "circular", "replicate"] = "reflect",
           channel_axis: int | None = None, device: str | None = None, return_info: bool = False):
    """Wiener(-Hunt) deconvolution: ``argmin_x ||A x - y||^2 + balance ||L x||^2`` as a Fourier filter.

    ``reg="gradient"`` assumes a ``1/|f|^2`` image spectrum, ``"identity"`` a flat one.  Without
    ``balance``, ``balance = noise_sigma^2 / c`` with ``c`` the signal spectrum amplitude fitted on the
    data (:func:`_wiener_balance`) and ``noise_sigma`` given or estimated (wavelet MAD, per channel,
    :func:`unblur.physics.estimate_noise_sigma`).  Non-circular boundaries use the "pad then crop"
    filter: the image is extended by the PSF size (mirror or edge values), filtered circularly and
    cropped, which suppresses edge ringing.  Unlike ``skimage.restoration.wiener``, whose third
    positional argument is ``balance``, every argument after ``psf`` is keyword-only.

    Parameters
    ----------
    image : array or tensor
        ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)`` or torch ``(B, C, ...)``; float64 in
        gives float64 out.
    psf : array
        The PSF (normalised to sum 1); an operator is refused (this is a Fourier filter).
    noise_sigma : float or None
        Noise standard deviation in image units, used to set the balance; estimated when omitted.
    balance : float or None
        Noise-to-signal power ratio; overrides ``noise_sigma`` when given.
    reg : str
        ``"gradient"`` or ``"identity"`` (the assumed image spectrum).
    boundary : str
        ``"reflect"`` (mirror padding), ``"replicate"`` (edge padding) or ``"circular"`` (no padding).
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    return_info : bool
        Also return a dict (balance, noise sigma, time).

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers import wiener
    >>> wiener(np.ones((16, 16)), np.ones((3, 3)) / 9, balance=0.01).shape
    (16, 16)
    """
    t0 = time.perf_counter()
    regulariser_normal(reg)
    require(boundary in ("circular", "reflect", "replicate"), f"wiener supports circular, reflect or replicate boundaries, not {boundary!r}",
            "use tikhonov for the zero/valid models")
    require(not isinstance(psf, LinearOperator), "wiener needs a PSF (it is a Fourier filter)",
            "use tikhonov or richardson_lucy with a space-varying operator")
    problem = setup_problem(image, psf, "circular", channel_axis=channel_axis, device=device)
    y, op = problem.y, problem.op
    if balance is None:
        if noise_sigma is None:
            noise_sigma = estimate_noise_sigma(y)
        require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
        balance = _wiener_balance(y, op, noise_sigma, reg)
    require(balance > 0, f"balance must be > 0, got {balance}")
    if boundary != "circular":
        k = op.kernel_shape
        pad = []
        for n in reversed(k):
            pad += [n, n]
        yp = _pad_nd(y, pad, boundary)
        padded = Convolution(problem.psf, tuple(yp.shape[2:]), "circular")
        x = padded.regularized_inverse(yp, balance, reg=reg)
        x = x[(Ellipsis,) + tuple(slice(n, n + s) for n, s in zip(k, y.shape[2:]))]
    else:
        x = op.regularized_inverse(y, balance, reg=reg)
    info = {"balance": balance, "noise_sigma": noise_sigma, "time_s": time.perf_counter() - t0, "notes": problem.notes}
    out = problem.output(x)
    return (out, info) if return_info else out


__all__ = ["wiener", "tikhonov", "tikhonov_solve", "REGULARISERS", "BOUNDARIES"]
