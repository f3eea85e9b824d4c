"""Kernel-estimation metrics of the blind benchmarks (numpy in, float out).

* :func:`kernel_mse` -- mean squared error between an estimated and a true kernel *up to a translation*
  (a blind method recovers the kernel only up to a shift that moves into the image): both kernels are
  zero-padded to a common square size, the estimate is shifted by every integer offset in
  ``[-max_shift, max_shift]^2`` (zero fill, no wrap), then refined on a sub-pixel grid (``step``) around
  the best integer offset by a Fourier shift; the smallest mean over the pixels of the common support is
  returned.
* :func:`reblur_loss` -- re-blur consistency (Laroche et al. 2024, eq. 34):
  ``L_reblur = ||H x - y||^2 - sigma^2 M`` with ``H`` the circular blur by the estimated kernel and ``M``
  the number of measurements (pixels times channels); ``per_pixel=True`` divides by M
  (``mean((Hx - y)^2) - sigma^2``, which is what the benchmark tables print).  A value near 0 means the
  estimate explains the data down to the noise level; large positive values mean it does not.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ...errors import require
from ...physics.convolution import convolve


def _as_np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _pad_to(k: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad a 2-D kernel to ``n x n`` keeping its centre pixel (``size // 2``) at ``n // 2``."""
    out = np.zeros((n, n))
    o0, o1 = n // 2 - k.shape[0] // 2, n // 2 - k.shape[1] // 2
    out[o0:o0 + k.shape[0], o1:o1 + k.shape[1]] = k
    return out


def kernel_mse(estimate, truth, max_shift: int = 5, step: float = 0.25, normalize: bool = True) -> float:
    """MSE between kernels up to an integer + sub-pixel shift (see module docstring).

    ``normalize`` rescales both kernels to sum 1 first.  Returns the mean over the common
    ``n x n`` box (``n`` the larger kernel size plus ``2 * max_shift`` zero margin).
    """
    e, t = _as_np(estimate), _as_np(truth)
    require(e.ndim == 2 and t.ndim == 2, f"kernels must be 2-D, got {e.shape} and {t.shape}")
    require(max_shift >= 0 and 0 < step <= 1, "invalid shift search", "use max_shift >= 0 and 0 < step <= 1")
    if normalize:
        e = e / max(e.sum(), 1e-300)
        t = t / max(t.sum(), 1e-300)
    n = max(e.shape + t.shape) + 2 * max_shift
    e, t = _pad_to(e, n), _pad_to(t, n)
    # the MSE is normalised by the larger kernel's area so that the zero margin does not dilute it
    area = max(_as_np(estimate).size, _as_np(truth).size)

    def err(shifted):
        return float(((shifted - t) ** 2).sum() / area)

    best = (np.inf, 0, 0)
    for a in range(-max_shift, max_shift + 1):
        for b in range(-max_shift, max_shift + 1):
            v = err(ndimage.shift(e, (a, b), order=0, mode="constant"))
            if v < best[0]:
                best = (v, a, b)
    _, a0, b0 = best
    E = np.fft.fft2(e)
    fine = np.arange(-1 + step, 1 - 1e-9, step)
    for da in fine:
        for db in fine:
            s = np.real(np.fft.ifft2(ndimage.fourier_shift(E, (a0 + da, b0 + db))))
            best = min(best, (err(s), a0 + da, b0 + db), key=lambda x: x[0])
    return best[0]


def reblur_loss(x, y, kernel, sigma: float, per_pixel: bool = True) -> float:
    """``||k * x - y||^2 - sigma^2 M`` (eq. 34; circular blur).  ``x``, ``y``: (H, W) or (H, W, C) arrays."""
    xa, ya = _as_np(x), _as_np(y)
    require(xa.shape == ya.shape and xa.ndim in (2, 3), f"image shapes {xa.shape} and {ya.shape} do not match",
            "give the restored image and the observation, (H, W) or (H, W, C)")
    require(sigma >= 0, f"noise sigma must be >= 0, got {sigma}")
    to_t = (lambda a: torch.from_numpy(a)[None, None]) if xa.ndim == 2 else \
        (lambda a: torch.from_numpy(np.moveaxis(a, -1, 0))[None])
    hx = convolve(to_t(xa), torch.from_numpy(_as_np(kernel)), "circular")
    r = float(((hx - to_t(ya)) ** 2).sum())
    M = ya.size
    return r / M - sigma**2 if per_pixel else r - sigma**2 * M


__all__ = ["kernel_mse", "reblur_loss"]
