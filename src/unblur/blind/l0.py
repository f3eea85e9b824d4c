"""Classical blind deblurring with an L0 gradient prior (coarse-to-fine MAP kernel estimation).

Kernel estimation follows Pan, Hu, Su & Yang (TPAMI 2017, "L0-regularized intensity and gradient prior
for deblurring text images and beyond") and Xu, Zheng & Jia (CVPR 2013, "Unnatural L0 sparse
representation for natural image deblurring"). At each level of an image pyramid it alternates

* the latent image (half-quadratic splitting, Xu et al. 2011)::

      x = argmin ||k * x - y||^2 + lambda ||grad x||_0 + sigma ||x||_0

  with auxiliary ``g ~ grad x`` and ``u ~ x`` set by hard thresholding
  (``g = grad x`` where ``|grad x|^2 >= lambda / beta``, else 0) and the quadratic x-step solved in
  Fourier, ``beta`` doubling from ``2 lambda`` to ``1e5``;
* the kernel, on gradients (Cho & Lee 2009)::

      k = argmin ||grad x * k - grad y||^2 + gamma ||k||^2

  in Fourier, then restricted to the ``kernel_size`` support, non-negative, with entries below
  ``max(k) / 20`` and small connected components removed, re-centred on its centre of mass and
  normalised to sum 1.

By default (``edge_usefulness = 0.3``; 0 turns it off) the kernel step skips texture: it takes edges only where
Xu & Jia's (ECCV 2010) usefulness map of the blurred level is high, i.e. where gradients do not cancel in a window
(:func:`usefulness_map`).

``lambda`` decays by 1.1 per outer iteration (floor 1e-4). The kernel found at one level, resized,
starts the next. At full resolution the kernel is then refined (``refine`` rounds, :func:`refine_kernel`): the
kernel step is fitted again to the final step's latent image, which keeps the fine edges that the piecewise
constant L0 image has lost. The final image is a non-blind hyper-Laplacian deconvolution (Krishnan & Fergus 2009,
``|grad x|^alpha``, alpha = 0.8 by default), which tolerates kernel errors better than a quadratic prior;
by default its data term has unknown boundaries (the image is the valid part of the blur of a larger
object; Almeida & Figueiredo 2013), so the border neither rings nor needs an invented extension.

Borders: during kernel estimation the blurred image is extended to a smooth periodic image (each axis
padded by a cosine blend between its two ends, in the spirit of Liu & Jia 2008) before every Fourier
solve, and the kernel step fits only pixels whose blur footprint lies inside the data, so the circular
model does not create "+"-shaped kernels; the final step uses the valid model above.

Stability check (``verify``, on by default): a second kernel is estimated with the other edge selection
(without the usefulness mask) beside the first; where the two disagree, a third estimate (a stronger kernel
regularisation) decides between them: the one it agrees with is kept; where it agrees with neither, the image
does not determine the blur, and the result is flagged (or the input returned): a no-reference test of the
estimate.

Clipped highlights (``saturation``, :mod:`unblur.physics.saturation`): a light source clipped by the sensor
leaves a flat streak whose edges the blur did not make; fitted as data it pulls the kernel towards the streak's
outline. Where clipping is sparse (the clipped pixels' footprints cover at most :data:`SATURATION_BUDGET` of the
image: lights, specular highlights) the kernel step leaves out every pixel whose footprint holds a clipped pixel
and the final step leaves the clipped pixels out of its data term; where it is extensive (clipped sky, bright
walls) the kernel step leaves out only the clipped pixels and their neighbours and the final step takes them as
lower bounds, ``k * x >= y`` (Whyte, Sivic & Zisserman 2014), as it does with a given kernel.

Colour images: the kernel is estimated on the luminance (ITU-R BT.601) and each channel is deconvolved
with it. Large images: the kernel is estimated on the square crop of side about ``max_estimation_size`` with the most
gradient energy (the blur is assumed uniform); only the final deconvolution runs on the whole image.

Units: image values in [0, 1]; ``noise_sigma`` in the same units. The latent and kernel steps run their
Fourier transforms in single precision (about twice the speed of double precision; the kernel errors on the
tuning images are unchanged on average: BENCHMARKS.md, "Speed of `l0`").
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ..errors import require
from ..metrics import kernel_error
from ..physics.saturation import saturation_level, saturation_mask

_LUMA = np.array([0.299, 0.587, 0.114])
#: Below this many kernel sizes on the shorter side (of the estimation crop) ``l0`` warns that its kernel
#: estimate is unreliable (BENCHMARKS.md, "Blind deblurring of photographs": 128 px with 25-px kernels fails).
MIN_SIZE_FACTOR = 8
#: With ``edge_usefulness``, the usefulness mask keeps at least this many times the edge count of pixels with a
#: gradient, so that the edges are still the strongest gradients among the candidates.
USEFUL_CANDIDATES = 3.0
#: The usefulness threshold of the second estimate of ``verify`` when the first runs without the mask.
VERIFY_USEFULNESS = 0.3
#: ``verify``'s deciding estimate, run where the first two disagree: the first's settings with the kernel step's
#: Tikhonov weight ``gamma`` times this factor (BENCHMARKS.md, "Blind deblurring of photographs").
VERIFY_GAMMA_FACTOR = 3.0
#: The kernel refinement (``refine``) fits its kernel steps with the Tikhonov weight ``gamma`` times this factor
#: (on the tuning images: lower kernel errors at the same or higher PSNR than ``gamma`` itself; BENCHMARKS.md,
#: "Blind deblurring of photographs", kernel refinement).
REFINE_GAMMA_FACTOR = 3.0
#: The kernel step leaves out every pixel whose footprint reaches a clipped pixel when that leaves out at most this
#: share of the image (light sources, highlights); where clipping is more extensive, only the clipped pixels and
#: their neighbours (BENCHMARKS.md, "Clipped highlights").
SATURATION_BUDGET = 0.3
#: With clipped pixels, :func:`refine_kernel` selects its edges from the latent image clipped to the observed range.
REFINE_CLIP_EDGES = True


def _footprint_exclusion(saturated: np.ndarray, kernel_size: int) -> bool:
    """Whether clipping is sparse: the footprints of the clipped pixels cover at most :data:`SATURATION_BUDGET` of
    the image (lights, highlights) rather than much of it (clipped sky, bright walls)."""
    reach = ndimage.maximum_filter(saturated.view(np.uint8), size=2 * (kernel_size // 2 + 1) + 1)
    return float(reach.mean()) <= SATURATION_BUDGET


# -- Fourier helpers -----------------------------------------------------------------------------------
def _otf(k: np.ndarray, shape, dtype=np.float64) -> np.ndarray:
    """Real FFT of ``k`` zero-padded to ``shape`` with its centre (``n // 2``) at the origin."""
    big = np.zeros(shape, dtype)
    big[: k.shape[0], : k.shape[1]] = k
    big = np.roll(big, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))
    return sfft.rfft2(big)


def _grad_power(shape, dtype=np.float64) -> np.ndarray:
    """``|D_x|^2 + |D_y|^2`` on the real-FFT grid of ``shape`` (forward differences, circular)."""
    wy = 2 - 2 * np.cos(2 * np.pi * np.fft.fftfreq(shape[0]))
    wx = 2 - 2 * np.cos(2 * np.pi * np.fft.rfftfreq(shape[1]))
    return (wy[:, None] + wx[None, :]).astype(dtype)


def _grad(x):
    """Circular forward differences ``(x[i, j+1] - x[i, j], x[i+1, j] - x[i, j])`` (by slices, no copies of ``x``)."""
    gx, gy = np.empty_like(x), np.empty_like(x)
    np.subtract(x[:, 1:], x[:, :-1], out=gx[:, :-1])
    np.subtract(x[:, :1], x[:, -1:], out=gx[:, -1:])
    np.subtract(x[1:], x[:-1], out=gy[:-1])
    np.subtract(x[:1], x[-1:], out=gy[-1:])
    return gx, gy


def _grad_adjoint(gx, gy):
    """``D_x^T gx + D_y^T gy`` (the adjoint of :func:`_grad`): one FFT instead of two in the x-steps."""
    out = np.empty_like(gx)
    np.subtract(gx[:, :-1], gx[:, 1:], out=out[:, 1:])
    np.subtract(gx[:, -1:], gx[:, :1], out=out[:, :1])
    out[1:] += gy[:-1] - gy[1:]
    out[:1] += gy[-1:] - gy[:1]
    return out


_WORKERS = max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _rfft2(a):
    return sfft.rfft2(a, workers=_WORKERS)


def _irfft2(a, shape):
    return sfft.irfft2(a, s=shape, workers=_WORKERS)


def periodic_extend(y: np.ndarray, pad: int) -> np.ndarray:
    """Extend a 2-D image by ``pad`` pixels at the end of each axis so that it is smooth across the
    periodic wrap: the extension blends, with a cosine weight, the mirror continuation of the last rows
    into the mirror continuation of the first rows. The image occupies ``[:H, :W]`` of the result, which has
    ``y``'s floating dtype."""
    out = y
    for axis in (0, 1):
        n = out.shape[axis]
        p = min(pad, n)
        tail = np.flip(np.take(out, range(n - p, n), axis=axis), axis)  # mirror of the last p lines
        head = np.flip(np.take(out, range(0, p), axis=axis), axis)      # mirror of the first p lines
        w = (0.5 * (1 + np.cos(np.pi * (np.arange(p) + 1) / (p + 1)))).astype(y.dtype)  # 1 -> 0
        shape = [1, 1]
        shape[axis] = p
        w = w.reshape(shape)
        out = np.concatenate([out, w * tail + (1 - w) * head], axis=axis)
    return out


# -- the latent-image step -----------------------------------------------------------------------------
def l0_latent(y: np.ndarray, k: np.ndarray, lambda_grad: float, lambda_intensity: float = 0.0,
              beta_max: float = 1e5) -> np.ndarray:
    """``argmin_x ||k * x - y||^2 + lambda_grad ||grad x||_0 + lambda_intensity ||x||_0`` (circular model)
    by half-quadratic splitting; ``y`` should already be periodic-extended."""
    y = y.astype(np.float32)  # single precision throughout (module docstring)
    K = _otf(k, y.shape, np.float32)
    KtY = np.conj(K) * _rfft2(y)
    K2 = (np.abs(K) ** 2).astype(np.float32)
    D2 = _grad_power(y.shape, np.float32)
    x = y.copy()
    mu = 2 * lambda_intensity
    while True:  # outer loop on the intensity weight (one pass when lambda_intensity == 0)
        if lambda_intensity > 0:
            u = np.where(x * x >= lambda_intensity / mu, x, 0.0)
        beta = 2 * lambda_grad
        while beta < beta_max:
            gx, gy = _grad(x)
            keep = gx * gx + gy * gy >= lambda_grad / beta
            rhs = beta * _grad_adjoint(gx * keep, gy * keep)
            den = K2 + beta * D2
            if lambda_intensity > 0:
                rhs += mu * u
                den = den + mu
            x = _irfft2((KtY + _rfft2(rhs)) / den, y.shape)
            beta *= 2
        if lambda_intensity <= 0:
            return x
        mu *= 4
        if mu > beta_max:
            return x


# -- the kernel step -----------------------------------------------------------------------------------
def _clean_kernel(k: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Non-negative, small entries and small connected components removed, centred, sum 1."""
    k = np.maximum(k, 0)
    if k.max() <= 0:
        return _dirac(k.shape[0])
    k[k < threshold * k.max()] = 0
    labels, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
    if n > 1:
        mass = ndimage.sum(k, labels, index=np.arange(1, n + 1))
        small = np.isin(labels, 1 + np.flatnonzero(mass < 0.1 * mass.max()))
        k[small] = 0
    k /= k.sum()
    return center_kernel(k)


def center_kernel(k: np.ndarray) -> np.ndarray:
    """Shift ``k`` by the integer offset that puts its centre of mass on the central pixel."""
    c = np.array(ndimage.center_of_mass(k))
    shift = np.round(np.array(k.shape) // 2 - c).astype(int)
    if not shift.any():
        return k
    out = ndimage.shift(k, shift, order=0, mode="constant")
    s = out.sum()
    return out / s if s > 0 else k


def select_edges(x: np.ndarray, count: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``x`` with all but the ``count`` largest magnitudes set to 0 (salient edges only,
    in the spirit of Cho & Lee 2009: weak gradients carry noise and little information on the blur);
    with a boolean ``mask``, only among the pixels it keeps (Xu & Jia 2010: useful edges)."""
    gx, gy = _grad(x)
    mag = gx * gx + gy * gy
    if mask is not None:
        mag = mag * mask
    count = int(min(count, mag.size - 1))
    thr = np.partition(mag.ravel(), mag.size - count)[mag.size - count]
    keep = (mag >= thr) & (mag > 0)
    return gx * keep, gy * keep


def usefulness_map(y: np.ndarray, window: int, smooth: float = 1.0, eps: float = 0.5) -> np.ndarray:
    """Xu & Jia's (ECCV 2010) usefulness of the gradients of a (blurred) image ``y`` for kernel estimation::

        r(x) = |sum_{N_h(x)} grad y_s| / (sum_{N_h(x)} |grad y_s| + eps)

    with ``y_s`` the image smoothed by a Gaussian of standard deviation ``smooth`` and ``N_h(x)`` the
    ``window x window`` square around ``x``. Along a straight edge the gradients in the window point the same
    way and ``r`` is close to 1; in texture (structures smaller than the window) they cancel and ``r`` is
    small; ``eps`` keeps ``r`` low in flat regions. Box sums by ``scipy.ndimage.uniform_filter`` (circular,
    as ``y`` is periodic-extended), a few passes over the image."""
    ys = ndimage.gaussian_filter(y, smooth, mode="wrap") if smooth > 0 else y
    gx, gy = _grad(ys)
    n = float(window * window)
    sx = ndimage.uniform_filter(gx, window, mode="wrap")
    sy = ndimage.uniform_filter(gy, window, mode="wrap")
    sm = ndimage.uniform_filter(np.sqrt(gx * gx + gy * gy), window, mode="wrap")
    return n * np.sqrt(sx * sx + sy * sy) / (n * np.maximum(sm, 0) + eps)


def usefulness_mask(r: np.ndarray, grad_mag: np.ndarray, threshold: float, count: int) -> np.ndarray:
    """Pixels with ``r >= threshold``; where fewer than ``count`` of them have a non-zero gradient
    (``grad_mag``), the threshold is lowered to keep the ``count`` pixels of largest ``r`` among those
    with a gradient (the kernel step needs edges in proportion to the kernel area)."""
    keep = r >= threshold
    live = grad_mag > 0
    count = int(min(count, int(live.sum()) - 1))
    if count > 0 and int((keep & live).sum()) < count:
        vals = r[live]
        thr = np.partition(vals, vals.size - count)[vals.size - count]
        keep = r >= thr
    return keep


def estimate_kernel_step(gx: tuple[np.ndarray, np.ndarray], y: np.ndarray, k0: np.ndarray, gamma: float,
                         n_iter: int = 50, valid: tuple[int, int] | None = None,
                         exclude: np.ndarray | None = None) -> np.ndarray:
    """``argmin_{k >= 0} sum_d ||M (gx_d * k - d y)||^2 + gamma' ||k||^2`` over kernels supported on ``k0``'s
    square, by projected accelerated gradient (FISTA, Beck & Teboulle 2009) from ``k0``; then cleaned
    (:func:`_clean_kernel`).

    ``M`` keeps the pixels whose blur footprint lies inside the observed ``valid = (H, W)`` corner of the
    periodic-extended ``y`` (the extension is not data) and are not in ``exclude`` (a boolean ``(H, W)`` array:
    pixels whose footprint holds saturated data). ``gamma' = gamma * mean |FFT(gx)|^2`` makes the weight
    independent of the image size and contrast."""
    size = k0.shape[0]
    r = size // 2
    H, W = valid or y.shape
    # The fitted pixels (the mask) see the gradients only within ``r`` of themselves, inside the grid: the
    # circular wrap never reaches them, so zero-padding the grid to a fast Fourier length changes the result
    # only by float32 rounding.
    shape = (sfft.next_fast_len(y.shape[0], real=True), sfft.next_fast_len(y.shape[1], real=True))
    mask = np.zeros(shape, np.float32)  # single precision: the step's error is far below the kernel's
    mask[r + 1:H - r - 1, r + 1:W - r - 1] = 1.0
    if exclude is not None:
        mask[:H, :W][exclude] = 0.0
    gxs = np.stack(gx).astype(np.float32)
    X2 = (np.abs(sfft.rfft2(gxs)) ** 2).sum(0)  # weight and step size from the unpadded grid
    g_eff = gamma * float(X2.mean())
    step = 1.0 / (float(X2.max()) + g_eff)
    Xs = sfft.rfft2(_zero_pad(gxs, shape))  # both directions in one transform
    dys = _zero_pad(np.stack(_grad(y)).astype(np.float32), shape)
    conj_xs = np.conj(Xs)
    big = np.zeros(shape, np.float32)
    index = (np.arange(-r, r + 1) % shape[0])[:, None], (np.arange(-r, r + 1) % shape[1])[None, :]

    def gradient(k):
        big[index] = k  # the kernel with its centre at the origin
        res = mask * (sfft.irfft2(Xs * sfft.rfft2(big), s=shape) - dys)
        return sfft.irfft2((conj_xs * sfft.rfft2(res)).sum(0), s=shape)[index].astype(np.float64) + g_eff * k

    k = k0.astype(np.float64).copy()
    z, t = k.copy(), 1.0
    for _ in range(n_iter):
        k_new = np.maximum(z - step * gradient(z), 0)
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        z = k_new + ((t - 1) / t_new) * (k_new - k)
        k, t = k_new, t_new
    return _clean_kernel(k)


def _zero_pad(a: np.ndarray, shape) -> np.ndarray:
    """``a`` (``(..., h, w)``) in the top-left corner of zeros of shape ``(..., *shape)``."""
    if a.shape[-2:] == tuple(shape):
        return a
    out = np.zeros(a.shape[:-2] + tuple(shape), a.dtype)
    out[..., : a.shape[-2], : a.shape[-1]] = a
    return out


def _dirac(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def _resize_kernel(k: np.ndarray, size: int) -> np.ndarray:
    if k.shape[0] == size:
        return k
    z = ndimage.zoom(k, size / k.shape[0], order=1)
    out = np.zeros((size, size))
    n = min(size, z.shape[0])
    a, b = (size - n) // 2, (z.shape[0] - n) // 2
    out[a:a + n, a:a + n] = z[b:b + n, b:b + n]
    out = np.maximum(out, 0)
    return center_kernel(out / out.sum()) if out.sum() > 0 else _dirac(size)


def _downscale(y: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1:
        return y
    sigma = 0.5 * np.sqrt(1 / factor**2 - 1)  # anti-aliasing before the bilinear resize
    return ndimage.zoom(ndimage.gaussian_filter(y, sigma), factor, order=1)


def _odd(n: float) -> int:
    n = int(round(n))
    return max(3, n if n % 2 else n + 1)


def estimate_kernel(y: np.ndarray, kernel_size: int, *, lambda_grad: float = 4e-3, lambda_intensity: float = 0.0,
                    gamma: float = 0.3, outer_iter: int = 10, edge_factor: float = 10.0, edge_usefulness: float = 0.3,
                    usefulness_window: float = 0.5, saturated: np.ndarray | None = None, progress=None,
                    **step) -> np.ndarray:
    """Coarse-to-fine L0 kernel estimation on a gray image ``y`` in [0, 1] (module docstring); with
    ``edge_usefulness > 0`` the kernel step keeps only edges of large-scale structures (:func:`usefulness_map`
    on the blurred level, window ``usefulness_window`` times the level's kernel size, :func:`usefulness_mask`).
    ``saturated`` (boolean, ``y``'s shape): clipped pixels; the kernel step leaves out every pixel whose footprint
    (the level's kernel) reaches one, as the streak of a clipped light has edges the blur did not make, or, where
    that would leave out more than :data:`SATURATION_BUDGET` of the image, the clipped pixels and their
    neighbours."""
    n_levels = max(1, int(np.ceil(np.log(kernel_size / 5) / np.log(np.sqrt(2)))) + 1)
    k = _dirac(3)
    footprint = saturated is not None and _footprint_exclusion(saturated, kernel_size)
    for level in range(n_levels - 1, -1, -1):
        factor = np.sqrt(0.5) ** level
        size = kernel_size if level == 0 else min(kernel_size, _odd(kernel_size * factor))
        yl = _downscale(y, factor)
        require(min(yl.shape) > 2 * size, f"the image ({y.shape[0]}x{y.shape[1]}) is too small for a {kernel_size}-px kernel",
                "give a kernel size below a third of the shorter side")
        k = _resize_kernel(k, size)
        yp = periodic_extend(yl, size)
        exclude = None if saturated is None else _saturated_exclusion(saturated, factor, size, footprint)
        count = int(edge_factor * size * size)
        r = usefulness_map(yp, _odd(usefulness_window * size)) if edge_usefulness > 0 else None
        lam = lambda_grad
        for _ in range(outer_iter):
            x = l0_latent(yp, k, lam, lambda_intensity)
            mask = None
            if r is not None:
                gx, gy = _grad(x)
                mask = usefulness_mask(r, gx * gx + gy * gy, edge_usefulness, int(USEFUL_CANDIDATES * count))
            k = estimate_kernel_step(select_edges(x, count, mask), yp, k, gamma, valid=yl.shape, exclude=exclude,
                                     **step)
            lam = max(lam / 1.1, 1e-4)
        if progress is not None:
            progress(n_levels - level, n_levels)
    return k.astype(np.float32)


def _saturated_exclusion(saturated: np.ndarray, factor: float, size: int, footprint: bool) -> np.ndarray:
    """The pixels a kernel step at pyramid scale ``factor`` with a ``size``-px kernel leaves out: those whose
    footprint reaches a clipped pixel (``footprint``), otherwise the clipped pixels and their neighbours."""
    half = size // 2 + 1 if footprint else 1
    return ndimage.binary_dilation(_downscale(saturated.astype(np.float64), factor) > 0.05,
                                   np.ones((2 * half + 1, 2 * half + 1), bool))


def refine_kernel(y: np.ndarray, k: np.ndarray, weight: float, *, rounds: int = 4, edge_factor: float = 5.0,
                  gamma: float = 0.3, alpha: float = 0.8, saturated: np.ndarray | None = None) -> np.ndarray:
    """Kernel refinement at full resolution from the final step's latent image: ``rounds`` times,

    * ``x`` = the final deconvolution of ``y`` with the current kernel (:func:`hyper_laplacian_deconvolve_valid`,
      prior weight ``weight``, exponent ``alpha``, unknown boundaries);
    * ``k`` = the kernel step (:func:`estimate_kernel_step`, Tikhonov weight ``gamma``) on the
      ``edge_factor * size^2`` strongest gradients of ``x``, started from the current kernel.

    The L0 latent image of the pyramid is piecewise constant: its edges are sharp but its fine structure is
    gone, so the last kernel step fits ``y`` with an image that differs from the scene. The hyper-Laplacian
    estimate keeps the fine edges the data support; fitting the kernel to it corrects the kernel's small
    errors (chosen on tuning images, BENCHMARKS.md, "Blind deblurring of photographs"). ``saturated``
    (boolean, ``y``'s shape): clipped pixels, left out as :func:`estimate_kernel` leaves them out; the edges are
    then taken from ``x`` clipped to the observed range ``[min(0, min y), max y]``: a light above the sensor's
    ceiling, rebuilt from its unclipped tails with a slightly wrong kernel, rings beyond the pixels the kernel step
    leaves out and draws the kernel towards its halo (chosen on tuning images, BENCHMARKS.md, "Clipped
    highlights")."""
    require(rounds >= 0, f"refine must be >= 0 rounds, got {rounds}")
    size = k.shape[0]
    footprint = saturated is not None and _footprint_exclusion(saturated, size)
    exclude = None if saturated is None else _saturated_exclusion(saturated, 1.0, size, footprint)
    yp = periodic_extend(y.astype(np.float32), size)
    k = k.astype(np.float64)
    clipped = REFINE_CLIP_EDGES and saturated is not None and bool(saturated.any())
    for _ in range(rounds):
        x = hyper_laplacian_deconvolve_valid(y, k, weight, alpha, clipped=saturated, bound=not footprint)
        if clipped:  # beyond the ceiling the scene is unknown: a light rebuilt there rings with a wrong kernel
            x = np.clip(x, min(0.0, float(y.min())), float(y.max()))
        edges = select_edges(periodic_extend(x, size), int(edge_factor * size * size))
        k = estimate_kernel_step(edges, yp, k, gamma, valid=y.shape, exclude=exclude)
    return k.astype(np.float32)


# -- the final non-blind step --------------------------------------------------------------------------
def _shrink(v: np.ndarray, w: float, alpha: float, iters: int = 3) -> np.ndarray:
    """``argmin_z 1/2 (z - v)^2 + w |z|^alpha``: soft threshold for alpha = 1, otherwise ``iters`` fixed-point
    steps of the generalised shrinkage ``z <- max(|v| - w alpha z^(alpha - 1), 0)`` from ``z = |v|``
    (Krishnan & Fergus 2009 solve the same problem analytically or by a lookup table).

    The steps commute with the scaling ``v = c s``, ``z = c t``, ``c = w^(1 / (2 - alpha))``, which turns
    them into the same steps with ``w = 1``: ``t(s)`` is tabulated once per ``(alpha, iters)`` on
    ``0 <= s <= SHRINK_TABLE_MAX`` and interpolated; larger ``s`` (rare) are computed directly."""
    if alpha == 1:
        return np.sign(v) * np.maximum(np.abs(v) - w, 0)
    c = w ** (1.0 / (2.0 - alpha))
    table = _shrink_table(float(alpha), iters).astype(v.dtype)
    s = np.abs(v) * v.dtype.type(1.0 / (c * SHRINK_TABLE_STEP))  # in table steps
    big = s >= table.size - 1
    s[big] = 0
    i = s.astype(np.int32)
    s -= i  # linear interpolation on the uniform table
    t = table[i]
    t += s * (table[i + 1] - t)
    if big.any():
        t[big] = _shrink_steps(np.abs(v[big]).astype(np.float64) / c, alpha, iters)
    t *= v.dtype.type(c)
    return np.copysign(t, v, out=t)


#: Range and resolution of :func:`_shrink`'s table in the normalised variable ``s`` (linear interpolation
#: error below 1e-4 of ``c`` away from the threshold jump).
SHRINK_TABLE_MAX, SHRINK_TABLE_STEP = 128.0, 1.0 / 256


def _shrink_steps(s: np.ndarray, alpha: float, iters: int) -> np.ndarray:
    t = s.copy()
    for _ in range(iters):
        t = np.maximum(s - alpha * np.maximum(t, 1e-8) ** (alpha - 1), 0)
    return t


@functools.lru_cache(maxsize=8)
def _shrink_table(alpha: float, iters: int) -> np.ndarray:
    grid = np.arange(0.0, SHRINK_TABLE_MAX + SHRINK_TABLE_STEP / 2, SHRINK_TABLE_STEP)
    return _shrink_steps(grid, alpha, iters)


def hyper_laplacian_deconvolve(y: np.ndarray, k: np.ndarray, weight: float, alpha: float = 0.8,
                               beta_range: float = 256.0) -> np.ndarray:
    """``argmin_x 1/2 ||k * x - y||^2 + weight sum |grad x|^alpha`` by half-quadratic splitting
    (Krishnan & Fergus 2009) on a periodic extension of the gray image ``y``; returns the crop.

    The splitting weight ``beta`` grows from ``weight`` to ``beta_range * weight`` by ``2 sqrt(2)``
    (Krishnan & Fergus's 1 to 256 for their data weight ``1 / weight``)."""
    H, W = y.shape
    yp = periodic_extend(y.astype(np.float32), max(k.shape))
    K = _otf(k, yp.shape, np.float32)
    KtY = np.conj(K) * _rfft2(yp)
    K2, D2 = (np.abs(K) ** 2).astype(np.float32), _grad_power(yp.shape, np.float32)
    x = yp
    beta = weight
    while beta <= beta_range * weight:
        gx, gy = _grad(x)
        gx, gy = _shrink(gx, weight / beta, alpha), _shrink(gy, weight / beta, alpha)
        x = _irfft2((KtY + beta * _rfft2(_grad_adjoint(gx, gy))) / (K2 + beta * D2), yp.shape)
        beta *= 2 * np.sqrt(2)
    return x[:H, :W]


def hyper_laplacian_deconvolve_valid(y: np.ndarray, k: np.ndarray, weight: float, alpha: float = 0.8,
                                     beta_range: float = 256.0, inner: int = 4,
                                     clipped: np.ndarray | None = None, bound: bool = True) -> np.ndarray:
    """The same problem with unknown boundaries: ``y`` is the valid part of ``k * x`` for an object ``x``
    larger by the kernel radius on each side (Almeida & Figueiredo 2013, "Deconvolving images with unknown
    boundaries using the alternating direction method of multipliers")::

        argmin_x 1/2 ||M (k * x) - y||^2 + weight sum |grad x|^alpha

    on a periodic grid that holds ``x`` whole (``M`` keeps the observed pixels), by splitting ``v = k * x``
    (ADMM, penalty 1, ``inner`` steps per value of ``beta``) and ``g = grad x`` (half-quadratic, ``beta``
    from ``weight`` to ``beta_range * weight`` by ``2 sqrt(2)``). Nothing is assumed beyond the edge, so the
    border does not ring. Returns the ``(H, W)`` part of ``x`` seen by ``y``.

    ``clipped`` (boolean, ``y``'s shape): saturated pixels, whose value is only a lower bound of the blur
    (Whyte, Sivic & Zisserman 2014): their data term is the constraint ``k * x >= y``, which the ``v`` step
    enforces by projection (``v = max(k * x + d, y)``) instead of the quadratic fit; with ``bound=False`` they
    are left out of the data term instead."""
    require(inner >= 1, f"inner must be at least 1, got {inner}")
    H, W = y.shape
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    shape = (sfft.next_fast_len(H + 2 * ry + 2, real=True), sfft.next_fast_len(W + 2 * rx + 2, real=True))
    yp = np.roll(periodic_extend(y.astype(np.float32), max(shape[0] - H, shape[1] - W)), (ry, rx), axis=(0, 1))
    yp = yp[: shape[0], : shape[1]] if yp.shape[0] >= shape[0] and yp.shape[1] >= shape[1] else yp
    mask = np.zeros(shape, np.float32)
    mask[ry:ry + H, rx:rx + W] = 1.0
    lower = None
    if clipped is not None and clipped.any():
        mask[ry:ry + H, rx:rx + W][clipped] = 0.0
        if bound:
            lower = np.full(shape, -np.inf, np.float32)
            lower[ry:ry + H, rx:rx + W][clipped] = y[clipped]
    my = np.zeros(shape, np.float32)
    my[ry:ry + H, rx:rx + W] = y
    my *= mask
    K = _otf(k, shape, np.float32)
    K2, D2 = (np.abs(K) ** 2).astype(np.float32), _grad_power(shape, np.float32)
    x = np.ascontiguousarray(yp[: shape[0], : shape[1]])
    kx = _irfft2(K * _rfft2(x), shape)
    d = np.zeros(shape, np.float32)
    inv_mask1, conj_k = 1.0 / (mask + 1.0), np.conj(K)  # loop invariants, computed once
    beta = weight
    while beta <= beta_range * weight:
        gx, gy = _grad(x)
        gx, gy = _shrink(gx, weight / beta, alpha), _shrink(gy, weight / beta, alpha)
        G = np.float32(beta) * _rfft2(_grad_adjoint(gx, gy))
        inv_den = 1.0 / (K2 + np.float32(beta) * D2)
        for _ in range(inner):
            v = (my + kx + d) * inv_mask1
            if lower is not None:
                np.maximum(v, lower, out=v)
            X = conj_k * _rfft2(v - d)
            X += G
            _scale(X, inv_den)
            kx = _irfft2(K * X, shape)  # k * x straight from x's spectrum
            d += kx - v
        x = _irfft2(X, shape)  # x itself only for the next gradient step
        beta *= 2 * np.sqrt(2)
    return x[ry:ry + H, rx:rx + W]


def _scale(z: np.ndarray, r: np.ndarray) -> None:
    """``z *= r`` in place for a complex ``z`` and a real ``r`` of the same shape (two real products per
    entry instead of a complex one)."""
    z.view(r.dtype).reshape(*r.shape, 2)[...] *= r[..., None]  # complex64 with float32, complex128 with float64


# -- estimation crop -----------------------------------------------------------------------------------
def _best_crop(y: np.ndarray, size: int) -> tuple[slice, slice]:
    """The ``size x size`` window (on a coarse grid of positions) with the largest gradient energy."""
    H, W = y.shape
    if H <= size and W <= size:
        return slice(0, H), slice(0, W)
    gx, gy = np.diff(y, axis=1, prepend=y[:, :1]), np.diff(y, axis=0, prepend=y[:1])
    energy = np.sqrt(gx**2 + gy**2)
    s0, s1 = min(size, H), min(size, W)
    integ = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, pos = -1.0, (0, 0)
    for i in np.linspace(0, H - s0, 9).astype(int):
        for j in np.linspace(0, W - s1, 9).astype(int):
            e = integ[i + s0, j + s1] - integ[i, j + s1] - integ[i + s0, j] + integ[i, j]
            if e > best:
                best, pos = e, (i, j)
    return slice(pos[0], pos[0] + s0), slice(pos[1], pos[1] + s1)


def default_kernel_size(side: int) -> int:
    """The kernel size ``l0`` assumes for an estimation side of ``side`` px: the largest odd size with
    ``MIN_SIZE_FACTOR`` kernels across the side, within [15, 75] (31 for 255 px, 63 for 512 px)."""
    return int(np.clip(2 * ((side // MIN_SIZE_FACTOR - 1) // 2) + 1, 15, 75))


def _crop_side(size: int, kernel_size: int) -> int:
    """The largest crop side ``n <= size`` whose estimation grid ``n + kernel_size`` (the periodic extension of
    the finest level) has no prime factor above 11: a 512 crop with a 65-px kernel would give a prime 577 grid,
    six times slower per transform than 576. The crop keeps ``MIN_SIZE_FACTOR`` kernels across where ``size``
    does, else loses at most ``size / 32``."""
    enough = MIN_SIZE_FACTOR * kernel_size
    low = enough if size >= enough else size - size // 32
    for n in range(size, low - 1, -1):
        if sfft.next_fast_len(n + kernel_size) == n + kernel_size:
            return n
    return size


def l0_blind(image, *, kernel_size: int | None = None, lambda_grad: float = 4e-3, lambda_intensity: float = 0.0,
             gamma: float = 0.1, outer_iter: int = 10, edge_factor: float = 10.0, edge_usefulness: float = 0.3,
             final_alpha: float = 0.8, final_weight: float | None = None,
             final_boundary: Literal["valid", "periodic"] = "valid", noise_sigma: float | None = None,
             max_estimation_size: int = 512, init_kernel=None, verify: Literal["warn", "input", "off"] = "warn",
             verify_limit: float = 0.3, refine: int = 4, saturation: str | float | None = "auto",
             progress: bool = False):
    """Blind deblurring of a gray ``(H, W)`` or colour ``(H, W, C)`` image with the L0 gradient prior.

    Parameters
    ----------
    image : ndarray
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    kernel_size : int or None
        Side of the square kernel support in pixels (odd); omitted: :func:`default_kernel_size` of the
        estimation side (the largest odd size with ``MIN_SIZE_FACTOR`` kernels across, within [15, 75]), and the
        support actually found is reported.
    lambda_grad : float
        Weight of the L0 gradient prior in the kernel-estimation latent step.
    lambda_intensity : float
        Weight of the L0 intensity prior (Pan et al.; useful for text and saturated images, 0 for natural images).
    gamma : float
        Tikhonov weight of the kernel step.
    outer_iter : int
        Latent/kernel alternations per pyramid level (``lambda_grad`` decays by 1.1 after each; 10 chosen over 5
        on the tuning images: BENCHMARKS.md, "Blind deblurring of photographs").
    edge_factor : float
        The kernel step uses the ``edge_factor * kernel_size^2`` strongest gradients of the latent image.
    edge_usefulness : float
        Threshold on Xu & Jia's usefulness map that keeps texture out of the kernel step (0: off; the
        default 0.3 was chosen on BSD68 images outside the benchmarks, see BENCHMARKS.md).
        At each pyramid level, on the blurred image ``B`` smoothed by a Gaussian (sigma 1 px),
        ``r(x) = |sum_{N_h(x)} grad B| / (sum_{N_h(x)} |grad B| + 0.5)`` with ``N_h(x)`` the square window of
        half the level's kernel size around ``x``: close to 1 along large-scale edges, small in texture,
        where the gradients of structures smaller than the window cancel (Xu & Jia, ECCV 2010, "Two-phase
        kernel estimation for robust motion deblurring"). The edges of the kernel step are then the
        strongest latent gradients among the pixels with ``r >= edge_usefulness``; the threshold is lowered
        where fewer than ``3 edge_factor * kernel_size^2`` such pixels carry a gradient (:data:`USEFUL_CANDIDATES`).
    final_alpha : float
        Exponent of the hyper-Laplacian prior of the final deconvolution (1 = total variation).
    final_weight : float or None
        Weight of that prior; omitted: ``max(2e-4, 0.1 sigma)`` from the noise level.
    final_boundary : {"valid", "periodic"}
        Edge model of the final deconvolution: the image as the valid part of the blur of a larger object
        (unknown boundaries, no ringing at the border) or a smooth periodic extension (faster, weaker near edges).
    noise_sigma : float or None
        Noise standard deviation in image units; estimated (wavelet MAD) if omitted.
    max_estimation_size : int
        Larger images: the kernel is estimated on the square crop with the most edges, of this side or up to
        ``size / 2`` px less so that the crop plus the kernel size is a fast Fourier length.
    init_kernel : ndarray or None
        Skip estimation and only run the final deconvolution with this kernel (used to compare kernels).
    verify : {"warn", "input", "off"}
        Stability check of the kernel: a second estimate with the other edge selection (``edge_usefulness``
        0 when the first uses the usefulness mask, :data:`VERIFY_USEFULNESS` otherwise), run beside the first
        on a second thread, and their disagreement ``d = max(e(k1, k2), e(k2, k1))`` with ``e`` the
        shift-invariant kernel error (:func:`unblur.metrics.kernel_error`).  A blur that the image
        determines gives the same kernel with either edge set.  Where ``d > verify_limit``, a third
        estimate (the first's settings, ``gamma`` times :data:`VERIFY_GAMMA_FACTOR`) decides: of ``k1`` and
        ``k2``, the one closer to it is kept if within ``verify_limit`` (``info["checks"]["kernel_choice"]``
        says which); otherwise the estimate rests on which edges were chosen (texture, too few edges) and is
        not to be trusted.  ``"warn"``: keep the first estimate's result, set
        ``info["checks"]["kernel_stable"] = False`` and warn; ``"input"``: the cautious mode, without the third
        estimate: wherever the first two disagree, return the blurred input unchanged (``info["kept_input"] =
        True``; its measured trade in BENCHMARKS.md, "Blind deblurring of photographs"); ``"off"``: one
        estimate, no check (half the estimation time or less).
    verify_limit : float
        Largest disagreement ``d`` accepted as the same kernel (a 25-px camera-shake kernel against a
        flat square of its size scores about 1).
    refine : int
        Rounds of kernel refinement at full resolution from the final step's latent image
        (:func:`refine_kernel`, its kernel steps with Tikhonov weight ``gamma`` times
        :data:`REFINE_GAMMA_FACTOR`; 0: off), after the stability check.
    saturation : "auto", float or None
        Clipped pixels (:mod:`unblur.physics.saturation`): ``"auto"`` finds each channel's ceiling where its
        maximum is a plateau, a number is the ceiling in the image's units, None treats no pixel as clipped.
        The estimation and the final step treat them as the module docstring says (a gray pixel is clipped
        when any channel is; the ``valid`` final step only), and the discrepancy check ignores them.
    progress : bool
        Print one line per pyramid level.

    Returns
    -------
    restored : ndarray
        Same shape and dtype as ``image``.
    info : dict
        ``kernel`` (float32, sums to 1), ``noise_sigma``, ``final_weight``, ``notes``, ``time_s``, ``checks``
        (:func:`unblur.blind.checks.blind_checks`: discrepancy, kernel support, collapse towards a Dirac;
        with ``verify``: ``kernel_disagreement`` and ``kernel_stable``) and ``kept_input``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.blind.l0 import l0_blind
    >>> rng = np.random.default_rng(0)
    >>> sharp = np.kron(rng.random((8, 8)), np.ones((12, 12)))
    >>> restored, info = l0_blind(sharp + 0.01 * rng.standard_normal(sharp.shape), kernel_size=9)
    >>> restored.shape, info["kernel"].shape
    ((96, 96), (9, 9))
    """
    from ..physics.noise_level import estimate_noise_sigma
    from .checks import attach_checks, check_blind_input

    t0 = time.perf_counter()
    img = np.asarray(image)
    require(img.ndim in (2, 3), f"l0 needs a 2-D gray or colour image, got shape {img.shape}",
            "give (H, W) or (H, W, C); for 3-D stacks use deepblur")
    require(np.issubdtype(img.dtype, np.floating) or np.issubdtype(img.dtype, np.integer),
            f"image dtype {img.dtype} is not numeric")
    require(verify in ("warn", "input", "off"), f"verify must be 'warn', 'input' or 'off', got {verify!r}",
            "use 'warn' (default), 'input' or 'off'")
    require(verify_limit > 0, f"verify_limit must be > 0, got {verify_limit}")
    saturation = saturation_level(saturation)
    disagreement, choice = None, None
    work = img.astype(np.float64)
    gray = work if work.ndim == 2 else work[..., :3] @ _LUMA[: min(3, work.shape[-1])] / _LUMA[: min(3, work.shape[-1])].sum()
    H, W = gray.shape
    if kernel_size is None:
        kernel_size = default_kernel_size(min(H, W, max_estimation_size))
    require(kernel_size % 2 == 1 and kernel_size >= 3, f"kernel_size must be odd and >= 3, got {kernel_size}")
    notes = check_blind_input(img, kernel_size, method="l0", noise_sigma=noise_sigma,
                              saturation=saturation)  # NaN, flat, no edges, size, clipping
    light = work[..., :3] if work.ndim == 3 and work.shape[-1] == 4 else work  # an alpha channel is not light
    clipped, note = saturation_mask(light, saturation, channel_axes=() if work.ndim == 2 else (-1,))
    if note:
        warnings.warn(f"l0: {note}", UserWarning, stacklevel=2)
        notes = list(notes) + [note]
    if clipped is not None and light is not work:
        clipped = np.concatenate([clipped, np.zeros(work.shape[:2] + (1,), bool)], -1)
    clipped_gray = None if clipped is None else (clipped if clipped.ndim == 2 else clipped.any(-1))
    crop_side = _crop_side(max_estimation_size, kernel_size)
    side = min(H, W, crop_side if max(H, W) > max_estimation_size else max_estimation_size)
    if init_kernel is None and side < MIN_SIZE_FACTOR * kernel_size:
        note = (f"the image ({H}x{W}) is small for a {kernel_size}-px kernel: below {MIN_SIZE_FACTOR} times the kernel "
                "size the kernel estimate is unreliable (give a larger image or a smaller kernel size)")
        warnings.warn(f"l0: {note}", UserWarning, stacklevel=2)
        notes = list(notes) + [note]
    # the sigma sets the final per-channel deconvolution weight: the mean of per-channel sigmas
    sigma = float(noise_sigma) if noise_sigma is not None else (
        estimate_noise_sigma(gray) if work.ndim == 2 else estimate_noise_sigma(work[..., :3], channel_axis=-1))
    if init_kernel is None:
        rows, cols = _best_crop(gray, crop_side)
        crop = gray[rows, cols]
        report = (lambda i, n: print(f"l0: level {i}/{n}")) if progress else None
        estimate = functools.partial(estimate_kernel, crop, kernel_size, lambda_grad=lambda_grad,
                                     lambda_intensity=lambda_intensity, gamma=gamma, outer_iter=outer_iter,
                                     edge_factor=edge_factor,
                                     saturated=None if clipped_gray is None else clipped_gray[rows, cols])
        if verify == "off":
            k = estimate(edge_usefulness=edge_usefulness, progress=report)
        else:
            other = 0.0 if edge_usefulness > 0 else VERIFY_USEFULNESS
            with ThreadPoolExecutor(max_workers=2) as pool:  # FFTs release the GIL: the two run side by side
                second = pool.submit(estimate, edge_usefulness=other)
                k = estimate(edge_usefulness=edge_usefulness, progress=report)
                k2 = second.result()
            disagreement = _disagreement(k, k2)
            choice = "first"
            if disagreement > verify_limit and verify == "input":
                choice = "none"  # the cautious mode: the pair's disagreement alone returns the input
            elif disagreement > verify_limit:  # a third estimate decides between the two
                k3 = estimate(edge_usefulness=edge_usefulness, gamma=gamma * VERIFY_GAMMA_FACTOR)
                d1, d2 = _disagreement(k, k3), _disagreement(k2, k3)
                choice = "none" if min(d1, d2) > verify_limit else ("first" if d1 <= d2 else "second")
                k = k2 if choice == "second" else k
    else:
        k = np.asarray(init_kernel, np.float64)
        require(k.ndim == 2 and k.min() >= 0 and k.sum() > 0, "init_kernel must be a non-negative 2-D kernel")
        k = (k / k.sum()).astype(np.float32)
    weight = final_weight if final_weight is not None else _final_weight(sigma)
    stable = disagreement is None or choice != "none"
    kept_input = verify == "input" and not stable
    if init_kernel is None and refine and not kept_input:
        k = refine_kernel(crop, k, weight, rounds=refine, gamma=gamma * REFINE_GAMMA_FACTOR, alpha=final_alpha,
                          saturated=None if clipped_gray is None else clipped_gray[rows, cols])
    channels = [gray] if work.ndim == 2 else [work[..., c] for c in range(work.shape[-1])]
    require(final_boundary in ("valid", "periodic"), f"final_boundary must be 'valid' or 'periodic', got {final_boundary!r}")
    final = hyper_laplacian_deconvolve_valid if final_boundary == "valid" else hyper_laplacian_deconvolve
    if kept_input:
        restored = work.copy()
    else:
        if clipped is not None and final_boundary == "valid":
            seen = [clipped] if work.ndim == 2 else [clipped[..., c] for c in range(work.shape[-1])]
            # lower bounds with the true kernel or extensive clipping; with an estimated kernel, small clipped
            # regions are left out instead (a bound drawn with a slightly wrong kernel paints its outline)
            bound = init_kernel is not None or not _footprint_exclusion(clipped_gray, k.shape[0])
            out = [final(ch, k.astype(np.float64), weight, final_alpha, clipped=m, bound=bound)
                   for ch, m in zip(channels, seen)]
        else:
            if clipped is not None:
                notes.append("saturation: the periodic final step keeps the clipped pixels in its data term "
                             "(final_boundary='valid' does not)")
            out = [final(ch, k.astype(np.float64), weight, final_alpha) for ch in channels]
        restored = out[0] if work.ndim == 2 else np.stack(out, -1)
    info = attach_checks({"kernel": k, "noise_sigma": sigma, "final_weight": weight, "notes": notes},
                         work, restored, k, sigma, ignore=clipped)
    info["kept_input"] = kept_input
    if disagreement is not None:
        info["checks"].update(kernel_disagreement=float(disagreement), kernel_stable=bool(stable),
                              kernel_choice=choice)
        if not stable:
            info["checks"]["ok"] = False
            info["checks"]["warnings"].append(
                f"the kernel is not stable: estimates from two edge selections differ by {disagreement:.2f} "
                f"(limit {verify_limit})" + ("" if kept_input else " and a third agrees with neither")
                + "; the image does not determine the blur (texture, few edges)"
                + ("; the blurred input is returned unchanged" if kept_input else
                   "; try a crop with strong edges, another kernel size, or verify='input'"))
    info["time_s"] = time.perf_counter() - t0
    dtype = img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32
    return restored.astype(dtype), info


def _disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetrised shift-invariant kernel error ``max(e(a, b), e(b, a))`` (:func:`unblur.metrics.kernel_error`)."""
    return max(kernel_error(a, b), kernel_error(b, a))


def _final_weight(sigma: float) -> float:
    """Prior weight of the final deconvolution from the noise level: ``0.1 sigma``, floored at ``2e-4``
    (chosen on the first 8 BSD68 crops with true kernels; held-out results in BENCHMARKS.md)."""
    return float(max(2e-4, 0.1 * sigma))
