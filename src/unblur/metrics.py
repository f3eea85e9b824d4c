"""Image- and kernel-quality metrics of the deblurring literature (numpy in, float out).

* :func:`psnr`, :func:`ssim` -- scikit-image's ``peak_signal_noise_ratio`` and
  ``structural_similarity`` with unblur's conventions stated: ``data_range`` defaults to 1 (images in
  [0, 1]); SSIM (Wang et al. 2004) uses the 7x7 uniform window with sample covariance, or with
  ``gaussian_weights=True`` the 11x11 Gaussian window (sigma 1.5) with population covariance (Wang et
  al.'s setting); ``channel_axis=-1`` averages over the channels of a colour image; a 3-D stack gets
  3-D windows.
* :func:`isnr` -- improvement in SNR of a restoration over the blurred data, in dB.
* :func:`align` -- the translation that best registers an estimate to a reference (blind methods
  recover the image only up to a shift).  The mean squared error on the cropped interior,
  ``E(s) = mean_{i in interior} (x(i - s) - ref(i))^2``, is computed for every integer shift at once
  from two FFT cross-correlations (``sum w ref x(. - s)`` and the local energy ``sum w x^2(. - s)``,
  ``w`` the interior indicator, ``x`` mirror-extended); the best integer shift within ``max_shift`` is then
  refined to ``1 / upsample`` pixel by evaluating the trigonometric interpolant of ``E`` on a fine grid
  around it with a matrix-multiply DFT (the upsampled cross-correlation of Guizar-Sicairos, Thurman &
  Fienup 2008), and applied with a cubic-spline shift.
* :func:`shift_tolerant` (:func:`aligned_psnr`, :func:`aligned_ssim`) -- the blind-deblurring
  protocol (Levin et al. 2009; Köhler et al. 2012): PSNR/SSIM after :func:`align`, on the interior
  only, so that pixels shifted in from outside the image do not count.
* :func:`kernel_error` -- the shift-invariant normalised kernel error
  ``min_s ||k_hat(. - s) - k||^2 / ||k||^2`` (both kernels scaled to sum 1, zero-padded to a common
  size, sub-pixel ``s`` by the same machinery; 0 is perfect).  For kernels of equal L2 norm it is
  ``2 (1 - KS)`` with KS the kernel similarity of Hu & Yang (2012), the maximum normalised
  cross-correlation.
* :func:`error_ratio` -- ``MSE(estimate) / MSE(reference restoration)`` (Levin et al. 2009).

References: Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 13(4), 2004; Levin, Weiss, Durand & Freeman,
CVPR 2009; Köhler et al., ECCV 2012; Hu & Yang, ECCV 2012; Guizar-Sicairos, Thurman & Fienup,
Opt. Lett. 33(2), 2008.

Example
-------
>>> import numpy as np
>>> from scipy import ndimage
>>> ref = ndimage.gaussian_filter(np.random.default_rng(0).random((64, 64)), 2)
>>> moved = ndimage.shift(ref, (1.5, -2.25), order=3, mode="nearest")
>>> _, s = align(moved, ref, max_shift=5, crop=8)
>>> np.round(s, 1).tolist()
[-1.5, 2.2]
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
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB of ``x`` against ``ref``."""
    from skimage.metrics import peak_signal_noise_ratio

    x, ref = _pair(x, ref)
    return float("inf") if np.array_equal(x, ref) else float(peak_signal_noise_ratio(ref, x, data_range=data_range))


def ssim(x, ref, data_range: float = 1.0, channel_axis: int | None = None, gaussian_weights: bool = False,
         win_size: int | None = None) -> float:
    """Mean structural similarity (see module docstring); ``channel_axis=-1`` for colour ``(H, W, C)``."""
    from skimage.metrics import structural_similarity

    x, ref = _pair(x, ref)
    win = win_size or (11 if gaussian_weights else 7)
    spatial = [n for i, n in enumerate(x.shape) if channel_axis is None or i != channel_axis % x.ndim]
    require(min(spatial) >= win, f"image {x.shape} smaller than the SSIM window {win}", "use a smaller win_size")
    return float(structural_similarity(x, ref, data_range=data_range, channel_axis=channel_axis,
                                       gaussian_weights=gaussian_weights, sigma=1.5, win_size=win,
                                       use_sample_covariance=not gaussian_weights))


def isnr(x, blurred, ref) -> float:
    """Improvement in SNR (dB): ``10 log10(||y - ref||^2 / ||x - ref||^2)``."""
    x, ref = _pair(x, ref)
    blurred = np.asarray(blurred, dtype=np.float64)
    return float(10 * np.log10(np.sum((blurred - ref) ** 2) / max(np.sum((x - ref) ** 2), 1e-300)))


# -- alignment -----------------------------------------------------------------------------------

def _dft_at(spec: np.ndarray, points: list[np.ndarray]) -> np.ndarray:
    """``ifftn(spec)`` evaluated at the (fractional) shifts ``points[d]`` of each spatial axis d.

    The matrix-multiply DFT of Guizar-Sicairos et al. (2008): one small ``(len(points[d]), n_d)``
    matrix per axis instead of an upsampled FFT of the whole array.
    """
    out = spec
    for d, s in enumerate(points):
        n = spec.shape[d]
        m = np.exp(2j * np.pi * np.outer(s, np.fft.fftfreq(n))) / n
        out = np.moveaxis(np.tensordot(m, out, axes=([1], [d])), 0, d)
    return out.real


def _best_shift(spec: np.ndarray, limit: np.ndarray, upsample: int) -> tuple[np.ndarray, float]:
    """Minimiser ``s`` (|s_d| <= limit_d) of the surface ``E = ifftn(spec)`` and ``E(s)``."""
    surface = np.fft.ifftn(spec).real
    for d, n in enumerate(surface.shape):
        s = np.fft.fftfreq(n, 1.0 / n)
        far = np.abs(s) > limit[d]
        surface[(slice(None),) * d + (far,)] = np.inf
    idx = np.unravel_index(np.argmin(surface), surface.shape)
    s0 = np.array([i if i <= n // 2 else i - n for i, n in zip(idx, surface.shape)], dtype=np.float64)
    if upsample <= 1:
        return s0, float(surface[idx])
    fine = np.arange(-upsample, upsample + 1) / upsample
    points = [np.clip(s0[d] + fine, -limit[d], limit[d]) for d in range(len(s0))]
    local = _dft_at(spec, points)
    j = np.unravel_index(np.argmin(local), local.shape)
    return np.array([points[d][j[d]] for d in range(len(s0))]), float(local[j])


def _spatial_last_channel(a: np.ndarray, channel_axis):
    return a[..., None] if channel_axis is None else np.moveaxis(a, channel_axis, -1)


def align(x, ref, max_shift: float = 10, crop: int = 15, channel_axis: int | None = None, upsample: int = 20):
    """Register ``x`` to ``ref`` by the translation minimising the MSE on the cropped interior.

    Parameters
    ----------
    x, ref : array_like
        Images of the same shape: gray ``(H, W)``, a stack ``(Z, Y, X)``, or with channels on
        ``channel_axis`` (one shift shared by the channels).
    max_shift : float
        Largest translation searched, in pixels, on each spatial axis.
    crop : int
        Border (pixels, each side of each spatial axis) left out of the error.
    upsample : int
        Sub-pixel precision ``1 / upsample`` pixel; 1 keeps integer shifts.

    Returns
    -------
    aligned : ndarray
        ``x`` translated by ``shift`` (cubic spline, mirror boundary), float64, shape of ``x``.
    shift : tuple of float
        ``s`` with ``aligned(i) = x(i - s)`` (the ``scipy.ndimage.shift`` convention).
    """
    x, ref = _pair(x, ref)
    xs, rs = _spatial_last_channel(x, channel_axis), _spatial_last_channel(ref, channel_axis)
    shape = xs.shape[:-1]
    require(min(shape) > 2 * crop + 2, f"image {shape} too small for a {crop}-px crop", "use a smaller crop")
    require(0 <= max_shift < min(shape) / 2 and upsample >= 1, f"invalid shift search (max_shift {max_shift})",
            "use 0 <= max_shift < half the image size and upsample >= 1")
    m = int(np.ceil(max_shift))
    # mirror-extend x to twice its size, so that its periodic extension is continuous (no Gibbs
    # ringing from the FFT's wrap-around into the sub-pixel interpolation)
    pad = [(m, n - m) for n in shape] + [(0, 0)]
    xp = np.pad(xs, pad, mode="symmetric")
    w = np.zeros(xp.shape[:-1])
    w[tuple(slice(m + crop, m + n - crop) for n in shape)] = 1.0
    rw = np.pad(rs, pad) * w[..., None]
    axes = tuple(range(len(shape)))
    # E(s) * sum(w) - sum(w ref^2) = sum w x^2(. - s) - 2 sum w ref x(. - s), both as cross-correlations
    spec = (np.conj(np.fft.fftn(xp**2, axes=axes)) * np.fft.fftn(w, axes=axes)[..., None]
            - 2 * np.conj(np.fft.fftn(xp, axes=axes)) * np.fft.fftn(rw, axes=axes)).sum(-1)
    s, _ = _best_shift(spec, np.full(len(shape), float(max_shift)), upsample)
    shifted = ndimage.shift(xs, tuple(s) + (0.0,), order=3, mode="reflect") if np.any(s) else xs.copy()
    aligned = shifted[..., 0] if channel_axis is None else np.moveaxis(shifted, -1, channel_axis)
    return aligned, tuple(float(v) for v in s)


def _interior(shape, crop: int, channel_axis):
    ca = None if channel_axis is None else channel_axis % len(shape)
    return tuple(slice(None) if i == ca else slice(crop, n - crop) for i, n in enumerate(shape))


def shift_tolerant(x, ref, data_range: float = 1.0, max_shift: float = 10, crop: int = 15,
                   channel_axis: int | None = None, upsample: int = 20) -> dict:
    """PSNR and SSIM after :func:`align`, on the cropped interior (dict ``psnr``, ``ssim``, ``shift``)."""
    xa, s = align(x, ref, max_shift, crop, channel_axis, upsample)
    _, ref = _pair(x, ref)
    inner = _interior(ref.shape, crop, channel_axis)
    return {"psnr": psnr(xa[inner], ref[inner], data_range),
            "ssim": ssim(xa[inner], ref[inner], data_range, channel_axis=channel_axis),
            "shift": s}


def aligned_psnr(x, ref, **kw) -> float:
    """Shift-tolerant PSNR (dB): :func:`shift_tolerant`'s ``psnr``."""
    return shift_tolerant(x, ref, **kw)["psnr"]


def aligned_ssim(x, ref, **kw) -> float:
    """Shift-tolerant SSIM: :func:`shift_tolerant`'s ``ssim``."""
    return shift_tolerant(x, ref, **kw)["ssim"]


def error_ratio(x, reference_restoration, ref, **kw) -> float:
    """Levin et al.'s error ratio: shift-tolerant MSE of ``x`` over that of a reference restoration."""
    a = aligned_psnr(x, ref, **kw)
    b = aligned_psnr(reference_restoration, ref, **kw)
    return float(10 ** ((b - a) / 10))


# -- kernels -------------------------------------------------------------------------------------

def kernel_error(k_hat, k, upsample: int = 20) -> float:
    """Shift-invariant normalised kernel error ``min_s ||k_hat(. - s) - k||^2 / ||k||^2``.

    Parameters
    ----------
    k_hat, k : array_like
        Estimated and true kernels (2-D or 3-D, same number of axes, sizes may differ); each is
        scaled to sum 1 and both are zero-padded to a common size with their centres (``n // 2``)
        aligned.
    upsample : int
        Sub-pixel precision of the translation ``s`` (``1 / upsample`` pixel, Fourier shift); 1 keeps
        integer translations.

    Returns
    -------
    float
        0 for a perfect estimate up to translation; a Dirac against a kernel spread over ``m``
        equal pixels scores ``m - 1``.
    """
    a, b = (np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float64) for v in (k_hat, k))
    require(a.ndim == b.ndim and a.ndim in (2, 3), f"kernels must both be 2-D or 3-D, got {a.shape} and {b.shape}",
            "give two kernels with the same number of axes")
    require(abs(a.sum()) > 0 and abs(b.sum()) > 0, "a kernel sums to 0", "give non-negative kernels")
    a, b = a / a.sum(), b / b.sum()
    n = [p + q for p, q in zip(a.shape, b.shape)]

    def embed(v):
        out = np.zeros(n)
        out[tuple(slice(c // 2 - s // 2, c // 2 - s // 2 + s) for c, s in zip(n, v.shape))] = v
        return out

    pa, pb = embed(a), embed(b)
    # with zero padding, ||k_hat(. - s)||^2 does not depend on s: only the cross-correlation varies
    spec = -2 * np.conj(np.fft.fftn(pa)) * np.fft.fftn(pb)
    _, e = _best_shift(spec, np.array(n, np.float64) / 2, upsample)
    nb = float((b**2).sum())
    return max(float((a**2).sum()) + nb + e, 0.0) / nb


__all__ = ["align", "aligned_psnr", "aligned_ssim", "error_ratio", "isnr", "kernel_error", "mse", "psnr",
           "shift_tolerant", "ssim"]
