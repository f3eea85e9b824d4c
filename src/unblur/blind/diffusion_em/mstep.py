"""The M-step of (Fast) Diffusion EM: the blur kernel from n image particles (Laroche et al. 2024, eqs. 21-25).

Given the observation ``y`` (one image, C channels, [0, 1] units), n image estimates ``x_i`` (particles,
same units) and the noise sigma, the kernel ``k`` (one per image, shared by the channels) solves

    min_k  (1 / (2 sigma^2)) sum_i ||y - k * x_i||^2  +  n lambda R(k)                       (eq. 21)
    s.t.   k >= 0, sum(k) = 1, support k x k.

Half-quadratic splitting (eqs. 22-25) alternates, ``iters`` times, warm-started from the previous kernel:

* data step, closed form in Fourier (circular blur; ``F`` the unnormalised DFT, ``K`` the kernel
  zero-padded to the image with its centre ``n // 2`` at the origin)::

      Z = F^-1[ (F(y) sum_i conj F(x_i) + n beta sigma^2 F(K)) / (sum_i |F(x_i)|^2 + n beta sigma^2) ]

  (the minimiser of ``(1/(2 sigma^2)) sum_i ||y - z * x_i||^2 + (n beta / 2) ||z - k||^2``; channels are
  summed with the particles, the weight stays ``n beta sigma^2``), then cropped to the ``k x k`` support;
* prior step ``K = prox_{(lambda/beta) R}(Z)``: with the plug-and-play kernel denoiser (the paper's
  choice, Sec. 3.2) ``K = D_{sqrt(lambda/beta)}(Z)``; ``"l1"`` is soft thresholding at ``lambda/beta``
  (the Fig. 4 ablation); ``"l2"`` (``R = ||k||^2 / 2``) is folded into the data step (its prox is a
  scaling that the sum-to-one normalisation would cancel), i.e. ``n lambda sigma^2`` is added to the
  denominator; ``"none"`` keeps ``Z``;
* constraints: negatives set to 0, normalised to sum 1, re-centred so that the centre of mass lies on
  the pixel ``n // 2`` (integer circular shift inside the support box).

``x_variance`` (>= 0, [0, 1] units squared) is the PiGDM variant of the M-step (Laroche et al. 2024,
Sec. 3.3 eq. 33 and Appendix D, eq. D.9).  Under PiGDM's approximation ``x0 | x_t ~ N(x0_hat, r_t^2 I)``
the M-step maximises the *expected* log-likelihood ``E ||y - k * x||^2 = ||y - k * x0_hat||^2 +
r_t^2 M ||k||^2`` (``M = H W`` pixels per channel), whose data step is

    Z = F^-1[ (F(y) sum_i conj F(x_i) + n beta sigma^2 F(K)) / (sum_i |F(x_i)|^2 + n C M r^2 + n beta sigma^2) ]

Eq. D.9 writes the extra term as ``r_t^2`` because the paper's Fourier transform there is unitary (white
noise of variance r^2 stays white with variance r^2); with the unnormalised DFT used here (and in the
authors' code) ``E |F(x)(j)|^2 = |F(x0_hat)(j)|^2 + M r^2``, hence ``M r^2`` per particle and channel
(``C`` channels); the ``beta`` term keeps the authors' code convention (``n beta sigma^2``, unnormalised DFT).
The authors' public code does not use this variant (its PiGDM M-step is the plain one).
``x_variance = 0`` (the default) is the plain M-step of Algorithm 2 / A.1 (eq. 24, App. C).

``mask`` (``(H, W)``, 1 where ``y`` is observed, 0 elsewhere) makes the data term ``||m (y - k * x_i)||^2``:
the non-circulant (``valid``) model of a photograph, observed on a window of a larger periodic grid whose
band (at least ``k - 1`` pixels wide) is unobserved, so that the circular blur on the grid equals the
linear blur on the window.  The masked data term has no closed form in Fourier; it is minimised by
majorisation-minimisation, the EM of missing data (Dempster, Laird & Rubin 1977): at every HQS
iteration the unobserved pixels are filled with the current prediction, ``y_i = m y + (1 - m) (k * x_i)``,
which makes the complete-data term ``||y_i - z * x_i||^2`` an upper bound of the masked one, equal at
``z = k``, and the data step above (with ``sum_i conj F(x_i) F(y_i)``) its exact minimiser; the masked
objective therefore does not increase from one iteration to the next.

Everything is plain torch; :func:`m_step` takes tensors ``y (C, H, W)``, ``x (n, C, H, W)``.
"""

from __future__ import annotations

import math

import torch

from ...errors import InputError, require
from ...physics.convolution import psf_to_otf

REGULARIZERS = ("denoiser", "l1", "l2", "none")
# lambda of eq. 21 with unblur's shipped kernel denoiser.  The paper's lambda = 1 is tied to its own
# kernel denoiser (the prior step calls D with sigma = sqrt(lambda / beta)); with ours, 0.3 is chosen
# from a sweep on held-out crops (BENCHMARKS.md, Fast Diffusion EM).  l1/l2/none keep the paper's 1.
DENOISER_LAM = 0.3


def default_lam(regularizer: str) -> float:
    """The M-step's default lambda for ``regularizer`` (:data:`DENOISER_LAM` for the kernel denoiser, else 1)."""
    return DENOISER_LAM if regularizer == "denoiser" else 1.0
EVEN_RULES = ("refuse", "fftshift")


def check_kernel_size(kernel_size: int, image_shape, even_rule: str = "refuse") -> int:
    """Validate a kernel size against the image; even sizes need ``even_rule="fftshift"`` (centre ``n // 2``)."""
    require(even_rule in EVEN_RULES, f"unknown even_rule {even_rule!r}", f"use one of {', '.join(EVEN_RULES)}")
    if not isinstance(kernel_size, (int,)) or isinstance(kernel_size, bool) or kernel_size < 1:
        raise InputError(f"kernel size must be a positive integer, got {kernel_size!r}", "e.g. 33")
    H, W = (int(s) for s in image_shape[-2:])
    require(kernel_size <= min(H, W), f"kernel size {kernel_size} is larger than the image {H}x{W}",
            "use a smaller kernel size or a larger image")
    if kernel_size % 2 == 0 and even_rule == "refuse":
        raise InputError(f"kernel size {kernel_size} is even, so its centre pixel is ambiguous",
                         "use an odd size, or pass even_rule='fftshift' / --even-rule fftshift (centre at pixel n // 2, unblur's convention)")
    return kernel_size


def check_sigma(sigma: float, name: str = "noise sigma") -> float:
    s = float(sigma)
    require(math.isfinite(s) and s >= 0, f"{name} must be a finite number >= 0, got {sigma!r}",
            "give a standard deviation in [0, 1] image units (e.g. 10/255)")
    return s


def dirac_kernel(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """A ``size x size`` Dirac at the centre pixel ``size // 2`` (the EM starting point)."""
    k = torch.zeros(size, size, dtype=dtype, device=device)
    k[size // 2, size // 2] = 1
    return k


def circular_window(z_full: torch.Tensor, first: int, length: int) -> torch.Tensor:
    """Entries at circular offsets ``first .. first + length - 1`` (both spatial axes) of a ``(..., H, W)`` array
    whose offset 0 is at index 0 (gathered by index, no full-size copy)."""
    H, W = z_full.shape[-2:]
    i0 = torch.remainder(torch.arange(first, first + length, device=z_full.device), H)
    i1 = torch.remainder(torch.arange(first, first + length, device=z_full.device), W)
    return z_full.index_select(-2, i0).index_select(-1, i1)


def crop_support(z_full: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of the zero-padding of :func:`psf_to_otf`: the ``size x size`` box around the origin of a
    circular ``(..., H, W)`` array, returned with its centre at pixel ``size // 2``."""
    return circular_window(z_full, -(size // 2), size)


def recenter(k: torch.Tensor) -> torch.Tensor:
    """Circular integer shift of a ``(k, k)`` kernel so that its centre of mass lies on pixel ``k // 2``."""
    n0, n1 = k.shape[-2:]
    total = k.sum()
    if float(total) <= 0:
        return k
    g0 = torch.arange(n0, dtype=k.dtype, device=k.device)
    g1 = torch.arange(n1, dtype=k.dtype, device=k.device)
    c0 = float((k.sum(-1) * g0).sum() / total)
    c1 = float((k.sum(-2) * g1).sum() / total)
    s0, s1 = round(n0 // 2 - c0), round(n1 // 2 - c1)
    if s0 == 0 and s1 == 0:
        return k
    return torch.roll(k, shifts=(s0, s1), dims=(-2, -1))


def project_kernel(k: torch.Tensor, center: bool = True) -> torch.Tensor:
    """Non-negative, sum 1 and (optionally) re-centred; an all-zero kernel becomes a Dirac."""
    k = k.clamp_min(0)
    s = k.sum()
    if float(s) <= 0:
        return dirac_kernel(k.shape[-1], k.dtype, k.device)
    k = k / s
    return recenter(k) if center else k


def _prior_step(z: torch.Tensor, regularizer: str, lam: float, beta: float, kernel_denoiser) -> torch.Tensor:
    if regularizer == "denoiser":
        # K = D_{sqrt(lambda/beta)}(Z): the kernel denoiser takes (B, 1, k, k) like any Denoiser.
        with torch.no_grad():
            return kernel_denoiser(z.float()[None, None], math.sqrt(lam / beta))[0, 0]
    if regularizer == "l1":
        t = lam / beta
        return torch.sign(z) * (z.abs() - t).clamp_min(0)
    return z  # "l2" acts in the data step, "none" does nothing


def _l2_weight(regularizer: str, lam: float, n: int, sigma: float) -> float:
    """Weight of the ``"l2"`` regulariser folded into the data step (``n lambda sigma^2``; 0 otherwise)."""
    return n * lam * sigma**2 if regularizer == "l2" else 0.0


def _data_step_terms(y: torch.Tensor, x: torch.Tensor, sigma: float, beta: float, x_variance: float, l2: float):
    """Fourier terms of the data step: ``Z = (num + w F(K)) / D`` (rfft2 layout, channels and particles summed).

    ``w = n beta sigma^2`` (floored at 1e-8 of the largest ``sum |F(x_i)|^2`` so that sigma = 0 stays finite),
    ``D = sum_i |F(x_i)|^2 + w + n C M x_variance + l2``.
    """
    n, C = x.shape[0], y.shape[0]
    H, W = y.shape[-2:]
    Y = torch.fft.rfft2(y.to(torch.float32))                                 # (C, H, W//2+1)
    X = torch.fft.rfft2(x.to(torch.float32))                                 # (n, C, ...)
    num = (Y[None] * X.conj()).sum(dim=(0, 1))                              # sum_i,c conj(X) Y
    den = (X.abs() ** 2).sum(dim=(0, 1))
    w = max(n * beta * sigma**2, 1e-8 * float(den.max()))
    return num, w, den + w + n * C * x_variance * H * W + l2, X


def _filled_numerator(y: torch.Tensor, X: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_i,c conj F(x_i) F(y_i)`` with ``y_i = m y + (1 - m) (k * x_i)`` (module docstring: the missing
    pixels filled with the prediction of the current kernel)."""
    H, W = y.shape[-2:]
    pred = torch.fft.irfft2(X * psf_to_otf(kernel.to(torch.float32), (H, W)), s=(H, W))   # (n, C, H, W)
    filled = mask * y.to(torch.float32)[None] + (1 - mask) * pred
    return (torch.fft.rfft2(filled) * X.conj()).sum(dim=(0, 1))


def data_step(y: torch.Tensor, x: torch.Tensor, kernel: torch.Tensor, sigma: float, *, beta: float = 1e5,
              x_variance: float = 0.0) -> torch.Tensor:
    """One HQS data step (eq. 24; eq. D.9 when ``x_variance > 0``), cropped to the kernel support.

    The minimiser over full-size circular kernels ``z`` of
    ``(1 / (2 sigma^2)) sum_{i,c} (||y_c - z * x_ic||^2 + x_variance M ||z||^2) + (n beta / 2) ||z - kernel||^2``,
    returned as its ``(k, k)`` box around the centre (no projection, no prior).  Shapes as in :func:`m_step`.
    """
    num, w, D, _ = _data_step_terms(y, x, check_sigma(sigma), beta, x_variance, 0.0)
    H, W = y.shape[-2:]
    Z = (num + w * psf_to_otf(kernel.to(torch.float32), (H, W))) / D
    return crop_support(torch.fft.irfft2(Z, s=(H, W)), kernel.shape[-1])


def m_step(y: torch.Tensor, x: torch.Tensor, kernel: torch.Tensor, sigma: float, *, iters: int = 10,
           lam: float | None = None, beta: float = 1e5, regularizer: str = "denoiser", kernel_denoiser=None,
           x_variance: float = 0.0, center: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One M-step (HQS, eqs. 22-25).  Returns the new ``(k, k)`` kernel (non-negative, sum 1, centred).

    Parameters
    ----------
    y : (C, H, W) tensor
        Blurred, noisy observation ([0, 1] units; circular blur model).
    x : (n, C, H, W) tensor
        The n particles (current image estimates, same units as ``y``).
    kernel : (k, k) tensor
        Warm start (the previous kernel); its size is the support of the estimate.
    sigma : float
        Noise standard deviation of ``y`` (same units).  ``sigma = 0`` is allowed (exact data): the
        weights ``n beta sigma^2`` then vanish and a tiny floor (1e-8 relative) keeps the division finite.
    iters, lam, beta :
        HQS iterations, regularisation weight lambda and splitting weight beta (paper: 10, 1, 1e5;
        ``lam=None`` is :func:`default_lam`: 0.3 with the kernel denoiser, 1 otherwise).
    regularizer : {"denoiser", "l1", "l2", "none"}
        Kernel prior (see module docstring); ``"denoiser"`` needs ``kernel_denoiser`` ``D(k, sigma)``.
    x_variance : float
        PiGDM variance ``r_t^2`` of the particles in [0, 1] units (eq. D.9, module docstring); 0 for the plain M-step.
    mask : (H, W) tensor, optional
        1 where ``y`` is observed, 0 where it is not (the band of a periodised photograph): the masked
        data term, minimised by filling the unobserved pixels at every HQS iteration (module docstring).
        None: every pixel is observed (circular model).
    """
    require(regularizer in REGULARIZERS, f"unknown kernel regularizer {regularizer!r}",
            f"use one of {', '.join(REGULARIZERS)}")
    lam = default_lam(regularizer) if lam is None else lam
    require(lam >= 0, f"lambda must be >= 0, got {lam}")
    require(regularizer != "denoiser" or kernel_denoiser is not None,
            "the denoiser regularizer needs a kernel denoiser", "pass kernel_denoiser or use regularizer='l2'")
    require(y.ndim == 3 and x.ndim == 4 and tuple(x.shape[1:]) == tuple(y.shape),
            f"particles {tuple(x.shape)} do not match the observation {tuple(y.shape)}",
            "give y as (C, H, W) and x as (n, C, H, W)")
    require(kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1], f"kernel must be square 2-D, got {tuple(kernel.shape)}")
    sigma = check_sigma(sigma)
    require(iters >= 1 and lam >= 0 and beta > 0 and x_variance >= 0,
            "invalid M-step parameters", "use iters >= 1, lam >= 0, beta > 0, x_variance >= 0")
    size = kernel.shape[-1]
    H, W = y.shape[-2:]
    num, w, D, X = _data_step_terms(y, x, sigma, beta, x_variance, _l2_weight(regularizer, lam, x.shape[0], sigma))
    k = kernel.to(torch.float32)
    if mask is not None:
        require(tuple(mask.shape[-2:]) == (H, W), f"mask {tuple(mask.shape)} does not match the observation {(H, W)}",
                "give a (H, W) mask of the observed pixels")
        m = mask.to(device=y.device, dtype=torch.float32)
        for _ in range(iters):
            num = _filled_numerator(y, X, k, m)
            z = crop_support(torch.fft.irfft2((num + w * psf_to_otf(k, (H, W))) / D, s=(H, W)), size)
            k = project_kernel(_prior_step(z, regularizer, lam, beta, kernel_denoiser).to(torch.float32), center)
    elif 2 * size - 1 <= min(H, W):
        # Z = F^-1[num / D] + F^-1[w / D] (*) k: the kernel enters only through a small circular convolution,
        # so the support crop of Z is  a + (g (*) k)  with  a = crop(F^-1[num / D])  and  g = F^-1[w / D]
        # at offsets -(size-1) .. size-1 (exact while 2 size - 1 <= H, W); no FFT inside the loop.
        a = crop_support(torch.fft.irfft2(num / D, s=(H, W)), size)
        g = circular_window(torch.fft.irfft2(w / D, s=(H, W)), -(size - 1), 2 * size - 1)
        for _ in range(iters):
            z = a + torch.nn.functional.conv2d(g[None, None], k.flip(-2, -1)[None, None])[0, 0]
            k = project_kernel(_prior_step(z, regularizer, lam, beta, kernel_denoiser).to(torch.float32), center)
    else:  # kernel support too large for the short form: Fourier at every iteration
        for _ in range(iters):
            z = crop_support(torch.fft.irfft2((num + w * psf_to_otf(k, (H, W))) / D, s=(H, W)), size)
            k = project_kernel(_prior_step(z, regularizer, lam, beta, kernel_denoiser).to(torch.float32), center)
    return k.to(kernel.dtype)


__all__ = ["m_step", "data_step", "dirac_kernel", "crop_support", "circular_window", "recenter", "project_kernel", "check_kernel_size",
           "check_sigma", "REGULARIZERS", "EVEN_RULES"]
