"""Image-quality metrics of the deblurring literature (numpy in, float out).

* :func:`psnr` -- ``10 log10(data_range^2 / MSE)``; ``data_range`` defaults to 1 (images in [0, 1]).
* :func:`ssim` -- Wang et al. (2004), computed like ``skimage.metrics.structural_similarity``:
  7x7 uniform window with sample covariance by default, or the 11x11 Gaussian window (sigma 1.5)
  with ``gaussian_weights=True``; colour images are averaged over channels; 3-D stacks use 3-D windows.
* :func:`isnr` -- improvement in SNR of a restoration over the blurred data, in dB.
* :func:`shift_tolerant` -- the blind-deblurring protocol (Levin et al. 2009 / Köhler et al. 2012):
  crop a border, search the best sub-pixel translation of the estimate (default +-10 px by 0.25 px,
  bilinear interpolation: integer search first, then quarter-pixel refinement around the best integer
  shift) and report PSNR/SSIM there.
* :func:`error_ratio` -- ``MSE(estimate) / MSE(reference restoration)`` (Levin et al. 2009).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import require


def _pair(a, b):
    a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu().numpy() if hasattr(b, "detach") else b, dtype=np.float64)
    require(a.shape == b.shape, f"shape mismatch: {a.shape} vs {b.shape}", "compare images of the same shape")
    return a, b


def mse(x, ref) -> float:
    x, ref = _pair(x, ref)
    return float(np.mean((x - ref) ** 2))


def psnr(x, ref, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``x`` against ``ref``."""
    m = mse(x, ref)
    return float("inf") if m == 0 else float(10 * np.log10(data_range**2 / m))


def ssim(x, ref, data_range: float = 1.0, channel_axis: int | None = None, gaussian_weights: bool = False,
         win_size: int | None = None) -> float:
    """Structural similarity (see module docstring); ``channel_axis=-1`` for colour ``(H, W, C)``."""
    x, ref = _pair(x, ref)
    if channel_axis is not None:
        x, ref = np.moveaxis(x, channel_axis, 0), np.moveaxis(ref, channel_axis, 0)
        return float(np.mean([ssim(a, b, data_range, None, gaussian_weights, win_size) for a, b in zip(x, ref)]))
    K1, K2 = 0.01, 0.03
    if gaussian_weights:
        sigma = 1.5
        win = win_size or 11
        filt = lambda im: ndimage.gaussian_filter(im, sigma, mode="reflect", truncate=((win - 1) / 2) / sigma)  # noqa: E731
        cov_norm = 1.0
    else:
        win = win_size or 7
        filt = lambda im: ndimage.uniform_filter(im, size=win, mode="reflect")  # noqa: E731
        npix = win**x.ndim
        cov_norm = npix / (npix - 1)
    require(min(x.shape) >= win, f"image {x.shape} smaller than the SSIM window {win}", "use a smaller win_size")
    ux, uy = filt(x), filt(ref)
    uxx, uyy, uxy = filt(x * x), filt(ref * ref), filt(x * ref)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    C1, C2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux**2 + uy**2 + C1) * (vx + vy + C2))
    pad = (win - 1) // 2
    return float(S[tuple(slice(pad, n - pad) for n in S.shape)].mean())


def isnr(x, blurred, ref) -> float:
    """Improvement in SNR (dB): ``10 log10(||y - ref||^2 / ||x - ref||^2)``."""
    x, ref = _pair(x, ref)
    blurred = np.asarray(blurred, dtype=np.float64)
    return float(10 * np.log10(np.sum((blurred - ref) ** 2) / max(np.sum((x - ref) ** 2), 1e-300)))


def _shift(img, dy, dx):
    """Bilinear translation of a 2-D (or H, W, C) image, edge values replicated."""
    shift = (dy, dx) + (0,) * (img.ndim - 2)
    return ndimage.shift(img, shift, order=1, mode="nearest")


def best_shift(x, ref, max_shift: float = 10, step: float = 0.25, crop: int = 15):
    """Translation ``(dy, dx)`` of ``x`` that minimises the MSE to ``ref`` on the cropped interior."""
    x, ref = _pair(x, ref)
    require(min(x.shape[:2]) > 2 * crop + 2, f"image {x.shape[:2]} too small for a {crop}-px crop",
            "use a smaller crop")
    inner = (slice(crop, x.shape[0] - crop), slice(crop, x.shape[1] - crop))
    r = ref[inner]

    def err(dy, dx):
        return np.mean((_shift(x, dy, dx)[inner] - r) ** 2)

    ints = np.arange(-int(max_shift), int(max_shift) + 1)
    # integer shifts are exact rolls: evaluate them fast
    best = min(((err(float(a), float(b)), a, b) for a in ints for b in ints), key=lambda t: t[0])
    _, by, bx = best
    fine = np.arange(-1 + step, 1, step)
    cands = [(err(by + a, bx + b), by + a, bx + b) for a in fine for b in fine
             if abs(by + a) <= max_shift and abs(bx + b) <= max_shift]
    e, dy, dx = min(cands + [best], key=lambda t: t[0])
    return float(dy), float(dx)


def shift_tolerant(x, ref, data_range: float = 1.0, max_shift: float = 10, step: float = 0.25, crop: int = 15,
                   channel_axis: int | None = None) -> dict:
    """PSNR/SSIM at the best sub-pixel alignment (see module docstring).  Returns a dict."""
    x, ref = _pair(x, ref)
    dy, dx = best_shift(x, ref, max_shift, step, crop)
    xs = _shift(x, dy, dx)
    inner = (slice(crop, x.shape[0] - crop), slice(crop, x.shape[1] - crop))
    return {"psnr": psnr(xs[inner], ref[inner], data_range),
            "ssim": ssim(xs[inner], ref[inner], data_range, channel_axis=channel_axis),
            "shift": (dy, dx)}


def error_ratio(x, reference_restoration, ref, **kw) -> float:
    """Levin et al.'s error ratio: shift-tolerant MSE of ``x`` over that of a reference restoration."""
    a = shift_tolerant(x, ref, **kw)["psnr"]
    b = shift_tolerant(reference_restoration, ref, **kw)["psnr"]
    return float(10 ** ((b - a) / 10))
