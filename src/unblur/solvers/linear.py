"""Linear deconvolution: Wiener and Tikhonov (closed form for circular blur, CG otherwise).

Both minimise ``||A x - y||^2 + lam * ||L x||^2`` with ``L`` the identity or the gradient:

* :func:`tikhonov`: ``lam`` given (default 1e-3), ``reg="identity"`` or ``"gradient"`` (default).
* :func:`wiener`: the same with ``lam = sigma^2 / signal variance`` (the Wiener-Hunt balance); sigma
  is given or estimated from the image (wavelet MAD).

Both solve with the operator's ``regularized_inverse`` (:mod:`unblur.physics.operator`): exact in
Fourier for ``boundary="circular"``.  Wiener's default ``boundary="valid"`` (the image is the valid part
of the blur of a larger object) and Tikhonov's non-circular boundaries solve the normal equations by
conjugate gradient on that operator, which does not ring from the borders with large kernels;
Wiener's ``reflect`` / ``replicate`` keep the classical "pad then crop" filter (the image is extended by
the PSF size, solved circularly, and cropped).
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from ..errors import require
from ..optim.driver import Progress
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

    Rule: ``c`` is fitted on the data in the band where the blur transfers well, ``|H|^2 > 0.1`` (widened
    to the 64 best-transferred frequencies when fewer pass, as for very long motion kernels), and the
    data are above the noise, ``|Y|^2 / N > 2 sigma^2``: there ``(|Y|^2 / N - sigma^2) * |L|^2 / |H|^2``
    estimates ``c``, and the median is taken (robust to the few frequencies that carry the border
    discontinuity of a non-periodic image).  When fewer than 8 frequencies of the band are above the
    noise, the image is mostly noise and ``c`` is taken from the whole band with ``|Y|^2 / N - sigma^2``
    floored at ``0.1 sigma^2`` (a strong balance, never a near-inverse filter).  The balance is
    ``sigma^2 / c``; a noise-free image (``sigma = 0``) gets ``1e-6``.  ``op`` is the circular convolution on
    ``y``'s grid.
    """
    if sigma <= 0:
        return 1e-6
    shape = tuple(y.shape[2:])
    dims = tuple(range(-len(shape), 0))
    H2 = op.transfer_power()
    Sy = torch.fft.rfftn(y, dim=dims).abs() ** 2 / float(torch.tensor(shape).prod())
    L2 = op.regulariser_symbol(reg, y.dtype).expand_as(H2)
    flat = H2.flatten()
    thr = min(0.1, float(torch.topk(flat, min(64, flat.numel())).values[-1]))
    band = ((H2 >= thr) & (L2 > 0)).expand_as(Sy)
    sel = band & (Sy > 2 * sigma**2)
    if int(sel.sum()) < 8:
        sel, Sy = band, Sy.clamp_min(1.1 * sigma**2)
    ratio = ((Sy - sigma**2) * L2 / H2.clamp_min(1e-12)).expand_as(Sy)
    c = torch.median(ratio[sel])
    return max(float(sigma**2 / c.clamp_min(1e-30)), 1e-8)


def tikhonov(image, psf, *, lam: float | None = None, reg: Literal["gradient", "identity"] = "gradient",
             boundary: Literal["valid", "reflect", "circular", "zero", "replicate"] = "valid",
             noise_sigma: float | None = None, max_iter: int = 100, tol: float = 1e-5, channel_axis: int | None = None,
             device: str | None = None, progress: bool = False, callback=None, return_info: bool = False):
    """Tikhonov-regularised deconvolution ``argmin_x ||A x - y||^2 + lam ||L x||^2``.

    Exact in Fourier for ``boundary="circular"``, conjugate gradient on the boundary model otherwise
    (:meth:`unblur.physics.operator.LinearOperator.regularized_inverse`).  Without ``lam`` the weight is
    Wiener's fitted noise-to-signal balance ``noise_sigma^2 / c`` (:func:`_wiener_balance`, with the
    signal spectrum ``c / |L(f)|^2`` fitted on the data); a space-varying operator has no such spectrum
    and needs ``lam``.  With the default ``boundary="valid"`` and no ``lam`` this is :func:`wiener` with
    its defaults; the other boundary models (``"zero"`` included) keep the same fitted weight.

    Parameters
    ----------
    image : array or tensor
        ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)`` or torch ``(B, C, ...)``; float64 in
        gives float64 out (computed in float32).
    psf : array or LinearOperator
        The PSF (normalised to sum 1), or a linear operator (space-varying blur; solved by CG).
    lam : float or None
        Regularisation weight, > 0; default: fitted from the noise level (above).
    reg : str
        ``"gradient"`` penalises the image gradient (forward differences), ``"identity"`` its energy.
    boundary : str
        Blur boundary model (see :mod:`unblur.physics.convolution`); ignored for an operator.  ``"valid"``
        (default) is the non-circulant model of a photograph: no ringing from padded borders.
    noise_sigma : float or None
        Noise standard deviation in image units, used only to fit ``lam``; estimated when omitted
        (:func:`unblur.physics.estimate_noise_sigma`).
    max_iter : int
        Conjugate-gradient iterations (non-circular boundaries).
    tol : float
        Conjugate-gradient relative-residual tolerance.
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    progress : bool
        Show a progress bar of the conjugate-gradient iterations.
    callback : callable or None
        ``callback(iteration, x, info)`` after each conjugate-gradient iteration (``x`` on the object grid).
    return_info : bool
        Also return a dict (solver, lam, noise sigma, time).

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers import tikhonov
    >>> tikhonov(np.ones((16, 16)), np.ones((3, 3)) / 9, lam=1e-2).shape
    (16, 16)
    """
    t0 = time.perf_counter()
    regulariser_normal(reg)
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device)
    op = problem.op
    if lam is None:
        if noise_sigma is None:
            noise_sigma = estimate_noise_sigma(problem.y)
        require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
        require(problem.psf is not None, "tikhonov fits lam from the PSF's spectrum, and an operator has none",
                "pass lam (e.g. lam=1e-3) with a space-varying operator")
        circ = Convolution(problem.psf, tuple(problem.y.shape[2:]), "circular")
        lam = _wiener_balance(problem.y, circ, noise_sigma, reg)
    require(lam > 0, f"regularisation weight must be > 0, got {lam}")
    bar = Progress(max_iter, "Tikhonov-CG", progress, callback)
    x = op.regularized_inverse(problem.y, lam, reg=reg, max_iter=max_iter, tol=tol, progress=bar)
    bar.close()
    info = {"solver": "fourier" if op.diagonal_in_fourier else "cg", "lam": lam, "noise_sigma": noise_sigma,
            "time_s": time.perf_counter() - t0, "notes": problem.notes}
    out = problem.output(x)
    return (out, info) if return_info else out


def wiener(image, psf, *, noise_sigma: float | None = None, balance: float | None = None,
           reg: Literal["gradient", "identity"] = "gradient",
           boundary: Literal["valid", "reflect", "circular", "replicate"] = "valid", max_iter: int = 100,
           tol: float = 1e-6, channel_axis: int | None = None, device: str | None = None, return_info: bool = False):
    """Wiener(-Hunt) deconvolution: ``argmin_x ||A x - y||^2 + balance ||L x||^2``.

    ``reg="gradient"`` assumes a ``1/|f|^2`` image spectrum, ``"identity"`` a flat one.  Without
    ``balance``, ``balance = noise_sigma^2 / c`` with ``c`` the signal spectrum amplitude fitted on the
    data (:func:`_wiener_balance`) and ``noise_sigma`` given or estimated (wavelet MAD, per channel,
    :func:`unblur.physics.estimate_noise_sigma`).

    Boundaries.  ``"valid"`` (default) is the non-circulant model of a photograph: ``y`` is the valid
    part of the blur of a larger object, and the minimiser over that object is found by conjugate
    gradient (``max_iter``, ``tol``), then cropped.  ``"circular"`` is the exact Fourier filter;
    ``"reflect"`` / ``"replicate"`` use the "pad then crop" filter (the image extended by the PSF size with
    mirror or edge values, filtered circularly, cropped).  Padding invents the blurred values beyond the
    edge; they disagree with the blur of the true scene by up to the image contrast over a band as wide
    as the PSF, and the inverse filter amplifies that disagreement into ringing across the whole image,
    the more so the larger the kernel (motion kernels of 25 px and more).  The fitted balance is not the
    cause: with the valid model the same fitted balance is above Richardson-Lucy on camera-shake kernels of
    15-75 px, while pad-then-crop falls below it from 25 px on (BENCHMARKS.md, "Non-blind methods per
    kernel size").
    Unlike ``skimage.restoration.wiener``, whose third positional argument is ``balance``, every
    argument after ``psf`` is keyword-only.

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
        ``"valid"`` (non-circulant model, conjugate gradient), ``"reflect"`` (mirror padding),
        ``"replicate"`` (edge padding) or ``"circular"`` (exact Fourier filter, no padding).
    max_iter : int
        Conjugate-gradient iterations (``boundary="valid"``).
    tol : float
        Conjugate-gradient relative-residual tolerance (``boundary="valid"``).
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    return_info : bool
        Also return a dict (balance, noise sigma, solver, boundary, time).

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers import wiener
    >>> wiener(np.ones((16, 16)), np.ones((3, 3)) / 9, balance=0.01).shape
    (16, 16)
    """
    t0 = time.perf_counter()
    regulariser_normal(reg)
    require(boundary in ("valid", "circular", "reflect", "replicate"),
            f"wiener supports valid, circular, reflect or replicate boundaries, not {boundary!r}",
            "use tikhonov for the zero model")
    require(not isinstance(psf, LinearOperator), "wiener needs a PSF (its balance is fitted in Fourier)",
            "use tikhonov or richardson_lucy with a space-varying operator")
    require(max_iter >= 1 and tol > 0, f"max_iter must be >= 1 and tol > 0, got {max_iter}, {tol}")
    problem = setup_problem(image, psf, "valid" if boundary == "valid" else "circular", channel_axis=channel_axis,
                            device=device)
    y = problem.y
    op = problem.op if boundary != "valid" else Convolution(problem.psf, tuple(y.shape[2:]), "circular")
    if balance is None:
        if noise_sigma is None:
            noise_sigma = estimate_noise_sigma(y)
        require(noise_sigma >= 0, f"noise_sigma must be >= 0, got {noise_sigma}")
        balance = _wiener_balance(y, op, noise_sigma, reg)
    require(balance > 0, f"balance must be > 0, got {balance}")
    if boundary == "valid":
        x = problem.op.regularized_inverse(y, balance, reg=reg, max_iter=max_iter, tol=tol)
    elif boundary != "circular":
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
    info = {"balance": balance, "noise_sigma": noise_sigma, "solver": "cg" if boundary == "valid" else "fourier",
            "boundary": boundary, "time_s": time.perf_counter() - t0, "notes": problem.notes}
    out = problem.output(x)
    return (out, info) if return_info else out


__all__ = ["wiener", "tikhonov", "tikhonov_solve", "REGULARISERS", "BOUNDARIES"]
