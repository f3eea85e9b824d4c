"""Re-blur consistency of a blind estimate (numpy in, float out).

Kernels are compared with :func:`unblur.metrics.kernel_error`.

* :func:`reblur_loss` -- re-blur consistency (Laroche et al. 2024, eq. 34):
  ``L_reblur = ||H x - y||^2 - sigma^2 M`` with ``H`` the circular blur by the estimated kernel and ``M``
  the number of measurements (pixels times channels); ``per_pixel=True`` divides by M
  (``mean((Hx - y)^2) - sigma^2``, which is what the benchmark tables print).  A value near 0 means the
  estimate explains the data down to the noise level; large positive values mean it does not.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import require
from ...physics.convolution import convolve


def _as_np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


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


__all__ = ["reblur_loss"]
