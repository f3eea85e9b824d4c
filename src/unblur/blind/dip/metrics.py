"""Metrics of the deep-blind-deconvolution literature (numpy in, float out).

* :func:`psnr_gt` -- PSNR/SSIM against the sharp image at the best sub-pixel shift
  (:func:`unblur.metrics.shift_tolerant`; blind methods recover the image up to a translation).
* :func:`psnr_nb` -- PSNR against the *no-blur solution* (the blurred image itself, i.e. ``x = y`` with
  a Dirac kernel), shift-tolerant too.  A high value (close to the blurred image's own PSNR-NB of
  infinity, in practice above ~35 dB) means the method collapsed to the no-blur solution
  (Brozova & Smidl 2024).
* :func:`isnr` -- improvement in SNR over the blurred image (:func:`unblur.metrics.isnr`), each of
  the two aligned to the sharp image by its own best shift (so the blurred image scores 0).
* :func:`kernel_error` -- relative L2 error ``||S k - k_true|| / ||k_true||`` minimised over
  translations ``S`` (integer search over the whole support, then a 0.25-pixel bilinear refinement):
  a kernel estimated up to a shift (which moves the image the other way) is not penalised.  A Dirac
  scores about 1 or more on spread-out (motion) kernels; 0 is perfect.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ... import metrics as _m


def psnr_gt(x, sharp, crop: int = 15, max_shift: float = 10) -> dict:
    """Shift-tolerant PSNR and SSIM against the sharp image (dict with ``psnr``, ``ssim``, ``shift``)."""
    return _m.shift_tolerant(x, sharp, crop=crop, max_shift=max_shift)


def psnr_nb(x, blurred, crop: int = 15, max_shift: float = 10) -> float:
    """Shift-tolerant PSNR of ``x`` against the no-blur solution (the blurred image)."""
    return _m.shift_tolerant(x, blurred, crop=crop, max_shift=max_shift)["psnr"]


def isnr(x, blurred, sharp, crop: int = 15, max_shift: float = 10) -> float:
    """ISNR (dB) of ``x`` aligned to ``sharp`` by its best shift, on the cropped interior."""
    x, blurred, sharp = (np.asarray(a, np.float64) for a in (x, blurred, sharp))
    def aligned(a):
        dy, dx = _m.best_shift(a, sharp, max_shift=max_shift, crop=crop)
        return ndimage.shift(a, (dy, dx), order=1, mode="nearest")[inner]

    inner = (slice(crop, x.shape[0] - crop), slice(crop, x.shape[1] - crop))
    return _m.isnr(aligned(x), aligned(blurred), sharp[inner])


def _embed(k, n):
    out = np.zeros((n, n))
    o0, o1 = (n - k.shape[0]) // 2, (n - k.shape[1]) // 2
    out[o0:o0 + k.shape[0], o1:o1 + k.shape[1]] = k
    return out


def kernel_error(k, k_true, step: float = 0.25) -> float:
    """Relative L2 kernel error up to a translation (see module docstring).  Sizes may differ."""
    k, k_true = np.asarray(k, np.float64), np.asarray(k_true, np.float64)
    n = 2 * max(k.shape + k_true.shape) + 1
    a, b = _embed(k, n), _embed(k_true, n)
    nb = np.linalg.norm(b)
    # integer shifts through the cross-correlation: ||S a - b||^2 = |a|^2 + |b|^2 - 2 <S a, b>
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    corr = np.real(np.fft.ifft2(np.conj(fa) * fb))
    iy, ix = np.unravel_index(np.argmax(corr), corr.shape)
    sy, sx = (iy if iy <= n // 2 else iy - n), (ix if ix <= n // 2 else ix - n)
    best = np.inf
    for dy in np.arange(-1, 1 + 1e-9, step):
        for dx in np.arange(-1, 1 + 1e-9, step):
            s = ndimage.shift(a, (sy + dy, sx + dx), order=1, mode="constant")
            best = min(best, float(np.linalg.norm(s - b)))
    return best / nb


__all__ = ["isnr", "kernel_error", "psnr_gt", "psnr_nb"]
