"""Metrics of the deep-blind-deconvolution literature (numpy in, float out), on top of :mod:`unblur.metrics`.

* :func:`psnr_gt` -- PSNR/SSIM against the sharp image after the shift-tolerant alignment
  (:func:`unblur.metrics.shift_tolerant`; blind methods recover the image up to a translation).
* :func:`psnr_nb` -- PSNR against the *no-blur solution* (the blurred image itself, i.e. ``x = y`` with
  a Dirac kernel), shift-tolerant too.  A high value (the blurred image itself scores infinity;
  in practice above ~35 dB) means the method collapsed to the no-blur solution (Brozova & Smidl 2024).
* :func:`isnr` -- improvement in SNR over the blurred image (:func:`unblur.metrics.isnr`), each of
  the two registered to the sharp image by its own best shift (:func:`unblur.metrics.align`), so the
  blurred image scores 0.

Kernels are compared with :func:`unblur.metrics.kernel_error`.
"""

from __future__ import annotations

import numpy as np

from ... import metrics as _m


def psnr_gt(x, sharp, crop: int = 15, max_shift: float = 10) -> dict:
    """Shift-tolerant PSNR and SSIM against the sharp image (dict with ``psnr``, ``ssim``, ``shift``)."""
    return _m.shift_tolerant(x, sharp, crop=crop, max_shift=max_shift)


def psnr_nb(x, blurred, crop: int = 15, max_shift: float = 10) -> float:
    """Shift-tolerant PSNR of ``x`` against the no-blur solution (the blurred image)."""
    return _m.aligned_psnr(x, blurred, crop=crop, max_shift=max_shift)


def isnr(x, blurred, sharp, crop: int = 15, max_shift: float = 10) -> float:
    """ISNR (dB) of ``x`` registered to ``sharp`` by its best shift, on the cropped interior."""
    x, blurred, sharp = (np.asarray(a, np.float64) for a in (x, blurred, sharp))
    inner = (slice(crop, x.shape[0] - crop), slice(crop, x.shape[1] - crop))

    def aligned(a):
        return _m.align(a, sharp, max_shift=max_shift, crop=crop)[0][inner]

    return _m.isnr(aligned(x), aligned(blurred), sharp[inner])


__all__ = ["isnr", "psnr_gt", "psnr_nb"]
