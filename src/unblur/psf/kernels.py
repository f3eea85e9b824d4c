"""Simple analytic blur kernels: Gaussian (anisotropic, rotated), disk (defocus), box, line motion.

All kernels are numpy float32 arrays, non-negative, summing to 1, with their centre at pixel
``n // 2`` on each axis (see ``docs/conventions.md``).  Sizes are in pixels; angles in degrees,
counter-clockwise from the +x (column) axis with y (rows) pointing *up* in the displayed image,
i.e. a 45-degree line goes from bottom-left to top-right.

Sub-pixel geometry is handled by *rasterising* continuous shapes:

* the disk is box-filtered (each pixel gets its area fraction inside the circle, computed on a
  ``supersample x supersample`` sub-grid);
* the line motion kernel, and every random trajectory of :mod:`unblur.psf.motion`, is drawn by
  :func:`rasterize_paths`: points sampled densely along the path are *bilinearly splatted* onto
  the grid.  Bilinear splatting preserves the first moment exactly, so translating the path so that
  its mean point is at ``n // 2`` gives a kernel whose centre of mass is exactly ``n // 2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, require


def _check_size(size, name="size", minimum=1) -> int:
    require(isinstance(size, (int, np.integer)) and not isinstance(size, bool),
            f"{name} must be an integer number of pixels, got {size!r}", "give e.g. 31")
    require(size >= minimum, f"{name} must be >= {minimum}, got {size}", "give a larger kernel size")
    return int(size)


def _normalise(k: np.ndarray) -> np.ndarray:
    s = k.sum()
    if not s > 0:
        raise InputError("the kernel is empty (sums to 0)", "increase its size or extent")
    return (k / s).astype(np.float32)


def _grid(size: int):
    """Centred coordinates ``(y, x)`` with y pointing up (row index decreasing), origin at ``n // 2``."""
    r = np.arange(size, dtype=np.float64) - size // 2
    yy, xx = np.meshgrid(-r, r, indexing="ij")
    return yy, xx


def gaussian_kernel(size: int, sigma: float, sigma_y: float | None = None, angle: float = 0.0,
                    ndim: int = 2, truncate_check: bool = True) -> np.ndarray:
    """Sampled Gaussian ``exp(-u^2 / 2 sigma^2 - v^2 / 2 sigma_y^2)``, normalised to sum 1.

    ``u`` is the axis at ``angle`` degrees (counter-clockwise from +x), ``v`` the axis orthogonal
    to it; ``sigma_y=None`` gives an isotropic kernel.  ``ndim=3`` gives an isotropic 3-D Gaussian
    (``size`` per axis; anisotropy/rotation are 2-D only).  Sigmas are in pixels and must be > 0.
    ``truncate_check``: refuse a kernel whose size cuts the Gaussian before 2 sigma (it would not
    look like a Gaussian); e.g. the RL-diffusion paper's kernel is ``gaussian_kernel(61, 3.0)``.
    """
    size = _check_size(size)
    sy = sigma if sigma_y is None else sigma_y
    for name, s in (("sigma", sigma), ("sigma_y", sy)):
        require(np.isfinite(s) and s > 0, f"{name} must be > 0 pixels, got {s}", "give a positive standard deviation")
    if truncate_check:
        require(size // 2 >= 2 * min(sigma, sy) or size >= 3 and max(sigma, sy) < 0.5,
                f"a {size}-pixel kernel cuts a Gaussian of sigma {min(sigma, sy):g} before 2 sigma",
                f"use size >= {2 * int(math.ceil(2 * min(sigma, sy))) + 1} or pass truncate_check=False")
    if ndim == 3:
        require(sigma_y is None and angle == 0, "3-D Gaussians are isotropic here", "drop sigma_y/angle for ndim=3")
        r = np.arange(size) - size // 2
        g = np.exp(-(r**2) / (2 * sigma**2))
        return _normalise(g[:, None, None] * g[None, :, None] * g[None, None, :])
    require(ndim == 2, f"ndim must be 2 or 3, got {ndim}")
    yy, xx = _grid(size)
    a = math.radians(angle)
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    return _normalise(np.exp(-(u**2) / (2 * sigma**2) - v**2 / (2 * sy**2)))


def disk_kernel(size: int, radius: float, supersample: int = 8) -> np.ndarray:
    """Uniform disk of ``radius`` pixels (geometric defocus), anti-aliased by area fractions.

    The circle must fit: ``radius <= size / 2`` (otherwise the kernel would be cut; raise).
    """
    size = _check_size(size)
    require(np.isfinite(radius) and radius > 0, f"radius must be > 0 pixels, got {radius}", "give a positive radius")
    require(radius <= size / 2, f"a disk of radius {radius:g} does not fit in {size} pixels",
            f"use size >= {int(math.ceil(2 * radius)) | 1}")
    s = int(supersample)
    offs = (np.arange(s) + 0.5) / s - 0.5
    yy, xx = _grid(size)
    cover = np.zeros((size, size))
    for dy in offs:  # s*s sub-pixel samples (small fixed loop, vectorised over the image)
        for dx in offs:
            cover += ((yy + dy) ** 2 + (xx + dx) ** 2) <= radius**2
    return _normalise(cover)


def box_kernel(size: int, width: int | None = None, ndim: int = 2) -> np.ndarray:
    """Uniform ``width``-pixel square (cube for ``ndim=3``) centred in a ``size`` kernel (width defaults to size)."""
    size = _check_size(size)
    width = size if width is None else _check_size(width, "width")
    require(width <= size, f"box width {width} is larger than the kernel size {size}", f"use size >= {width}")
    require(ndim in (2, 3), f"ndim must be 2 or 3, got {ndim}")
    require(width % 2 == size % 2, f"a {width}-pixel box cannot be centred at pixel {size // 2} of a {size} kernel",
            "use a width with the same parity as the size")
    k = np.zeros((size,) * ndim)
    start = size // 2 - width // 2
    k[(slice(start, start + width),) * ndim] = 1.0
    return _normalise(k)


def rasterize_paths(points: torch.Tensor, size: int, weights: torch.Tensor | None = None,
                    center: bool = True) -> torch.Tensor:
    """Bilinear splatting of sampled paths into kernels (torch, batched).

    Parameters
    ----------
    points : tensor ``(B, T, 2)``
        Path samples as ``(x, y)`` in pixels, y pointing up (as in :func:`line_motion_kernel`).
    size : int
        Kernel side ``k``; output ``(B, 1, k, k)`` float32, each kernel summing to 1.
    weights : tensor ``(B, T)``, optional
        Dwell weight of each sample (default uniform: equal time per sample).
    center : bool
        Translate each path so that its weighted mean is at pixel ``k // 2``; bilinear splatting
        then puts the kernel's centre of mass exactly there.

    Paths must fit: after centring every sample must lie in ``[0, k-1]`` on both axes
    (:class:`InputError` otherwise).
    """
    size = _check_size(size, minimum=3)
    B, T, _ = points.shape
    pts = points.to(torch.float64)
    w = torch.ones(B, T, dtype=torch.float64, device=pts.device) if weights is None else weights.to(torch.float64)
    w = w / w.sum(1, keepdim=True)
    col = pts[..., 0]
    row = -pts[..., 1]
    if center:
        col = col - (w * col).sum(1, keepdim=True) + size // 2
        row = row - (w * row).sum(1, keepdim=True) + size // 2
    lo_ok = bool((col.min() >= 0) and (row.min() >= 0))
    hi_ok = bool((col.max() <= size - 1) and (row.max() <= size - 1))
    if not (lo_ok and hi_ok):
        extent = float(torch.maximum(col.amax(1) - col.amin(1), row.amax(1) - row.amin(1)).max())
        raise InputError(f"the blur path (extent {extent:.1f} px) does not fit in a {size}x{size} kernel",
                         f"use a kernel size of at least {int(math.ceil(extent)) + 3} or a shorter path")
    c0 = col.floor().clamp(0, size - 2)
    r0 = row.floor().clamp(0, size - 2)
    fc, fr = col - c0, row - r0
    c0, r0 = c0.long(), r0.long()
    out = torch.zeros(B, size * size, dtype=torch.float64, device=pts.device)
    for dr, dc, ww in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        out.scatter_add_(1, (r0 + dr) * size + (c0 + dc), w * ww)
    out = out / out.sum(1, keepdim=True)
    return out.view(B, 1, size, size).to(torch.float32)


def line_motion_kernel(size: int, length: float, angle: float = 0.0, samples_per_pixel: int = 16) -> np.ndarray:
    """Uniform linear motion of ``length`` pixels at ``angle`` degrees, rasterised with sub-pixel accuracy.

    The segment is centred on its midpoint (centre of mass at ``size // 2``).  ``length=0`` gives a
    delta.  The segment must fit in the kernel (raise otherwise).
    """
    size = _check_size(size, minimum=3)
    require(np.isfinite(length) and length >= 0, f"length must be >= 0 pixels, got {length}", "give a motion length")
    a = math.radians(angle)
    need = abs(length * math.cos(a)), abs(length * math.sin(a))
    require(max(need) <= size - 1 - 1e-9,
            f"a {length:g}-pixel motion at {angle:g} degrees does not fit in a {size}x{size} kernel",
            f"use size >= {int(math.ceil(max(need))) + 2}")
    n = max(2, int(math.ceil(length * samples_per_pixel)) + 1)
    t = torch.linspace(-0.5, 0.5, n, dtype=torch.float64) * length
    pts = torch.stack([t * math.cos(a), t * math.sin(a)], -1)[None]
    return rasterize_paths(pts, size)[0, 0].numpy()


__all__ = ["gaussian_kernel", "disk_kernel", "box_kernel", "line_motion_kernel", "rasterize_paths"]
