"""Measure a PSF from an image (2-D) or stack (3-D) of sub-resolution beads.

Steps (:func:`psf_from_beads`):

1. **Background**: the median of the image is subtracted (a constant offset, e.g. camera bias).
2. **Detection**: the Gaussian-smoothed image (``smooth`` pixels) is thresholded at ``threshold``
   times its maximum; each connected region is one bead, located at its brightest pixel (so
   side lobes of a 3-D widefield PSF do not count as extra beads).
3. **Isolation**: a bead is kept only if no other detected bead lies within ``min_separation``
   pixels (default: the PSF window size, so windows never overlap) and its window fits inside the
   image.  Beads brighter than ``max_brightness`` times the median bead (clumps of beads) are
   dropped.
4. **Sub-pixel registration**: in a window ``psf_shape + 2 * margin`` around each bead the centre is
   the intensity centroid of the pixels above 10% of the window's peak (background removed); the
   window is shifted in Fourier so that this centre lands on the window's centre pixel, then
   cropped to ``psf_shape``.
5. **Average and normalise**: each registered bead is scaled to sum 1, the beads are averaged
   (mean, or median for robustness), the residual background (median of the window's border) is
   removed, negatives are clipped, the result is re-centred (sub-pixel, centre of mass at ``n // 2``)
   and normalised to sum 1.

The beads must be much smaller than the PSF (sub-resolution); otherwise the result is the PSF
convolved with the bead shape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import require
from .core import shift_to_center


def _as_shape(psf_shape, ndim):
    if np.isscalar(psf_shape):
        psf_shape = (int(psf_shape),) * ndim
    psf_shape = tuple(int(s) for s in psf_shape)
    require(len(psf_shape) == ndim, f"psf_shape {psf_shape} does not match the {ndim}-D image")
    require(all(s >= 3 for s in psf_shape), f"psf_shape must be >= 3 on every axis, got {psf_shape}")
    return psf_shape


def detect_beads(image, psf_shape, threshold: float = 0.2, smooth: float = 1.0, min_separation: float | None = None,
                 margin: int = 2, max_brightness: float = 3.0):
    """Integer positions ``(M, ndim)`` of isolated beads and a dict of counts (see module docstring)."""
    img = np.asarray(image, dtype=np.float64)
    img = img - np.median(img)
    sm = ndi.gaussian_filter(img, smooth) if smooth > 0 else img
    labels, n = ndi.label(sm > threshold * sm.max())
    pos = np.array(ndi.maximum_position(sm, labels, range(1, n + 1)), dtype=int).reshape(-1, img.ndim)
    info = {"detected": int(len(pos))}
    if len(pos) == 0:
        return pos, dict(info, isolated=0, used=0)
    sep = float(max(psf_shape)) if min_separation is None else float(min_separation)
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    isolated = d.min(1) > sep
    half = np.array([s // 2 + margin for s in psf_shape])
    inside = np.all((pos - half >= 0) & (pos + half < np.array(img.shape)), axis=1)
    keep = isolated & inside
    info["isolated"] = int(isolated.sum())
    bright = sm[tuple(pos.T)]
    if keep.sum() >= 3:
        keep &= bright <= max_brightness * np.median(bright[keep])
    info["used"] = int(keep.sum())
    return pos[keep], info


def _register(window: np.ndarray, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``window`` so that its thresholded centroid is at its centre; crop to ``out_shape``."""
    w = window - np.median(window)
    mask = w > 0.1 * w.max()
    wc = np.where(mask, w, 0.0)
    com = np.array(ndi.center_of_mass(wc))
    centre = np.array([n // 2 for n in w.shape])
    shift = centre - com
    shifted = np.real(np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(w), shift)))
    sl = tuple(slice(c - s // 2, c - s // 2 + s) for c, s in zip(centre, out_shape))
    return shifted[sl], com


def psf_from_beads(image, psf_shape=31, *, threshold: float = 0.2, smooth: float = 1.0,
                   min_separation: float | None = None, margin: int = 2, max_brightness: float = 3.0,
                   average: str = "mean", return_info: bool = False):
    """PSF (numpy float32, ``psf_shape``, sum 1, centre ``n // 2``) averaged from isolated beads.

    Parameters
    ----------
    image : array ``(H, W)`` or ``(Z, Y, X)``
        Bead image/stack (any units; a constant background is removed).
    psf_shape : int or tuple
        Size of the PSF window (pixels, per axis).
    threshold : float in (0, 1)
        Detection threshold relative to the brightest smoothed peak.
    average : {"mean", "median"}
    return_info : bool
        Also return a dict with ``positions`` (sub-pixel bead centres) and detection counts.
    """
    img = np.asarray(image, dtype=np.float64)
    require(img.ndim in (2, 3), f"bead image must be 2-D or 3-D, got shape {img.shape}",
            "give a single-channel image (H, W) or stack (Z, Y, X)")
    require(np.isfinite(img).all(), "bead image contains NaN or Inf")
    require(0 < threshold < 1, f"threshold must be in (0, 1), got {threshold}")
    require(average in ("mean", "median"), f"unknown average {average!r}", "use 'mean' or 'median'")
    shape = _as_shape(psf_shape, img.ndim)
    require(all(s <= n for s, n in zip(shape, img.shape)), f"psf_shape {shape} is larger than the image {img.shape}",
            "give a smaller PSF window")
    pos, info = detect_beads(img, shape, threshold, smooth, min_separation, margin, max_brightness)
    require(len(pos) > 0, f"no isolated bead found ({info['detected']} detected, {info.get('isolated', 0)} isolated"
            " and inside the image)", "lower --threshold, reduce the PSF window, or give an image with separated beads")
    half = np.array([s // 2 + margin for s in shape])
    stack, centres = [], []
    for p in pos:
        sl = tuple(slice(c - h, c - h + s + 2 * margin) for c, h, s in zip(p, half, shape))
        reg, com = _register(img[sl], shape)
        total = reg.sum()
        if total > 0:
            stack.append(reg / total)
            centres.append(p - half + com)
    require(len(stack) > 0, "every detected bead had zero or negative intensity after background removal")
    stack = np.stack(stack)
    psf = stack.mean(0) if average == "mean" else np.median(stack, 0)
    border = np.concatenate([np.moveaxis(psf, ax, 0)[[0, -1]].ravel() for ax in range(psf.ndim)])
    psf = np.clip(psf - np.median(border), 0, None)
    require(psf.sum() > 0, "the averaged bead is empty after background removal", "check the image and threshold")
    psf = shift_to_center(psf / psf.sum(), subpixel=True).astype(np.float32)
    if return_info:
        return psf, dict(info, positions=np.array(centres))
    return psf


__all__ = ["psf_from_beads", "detect_beads"]
