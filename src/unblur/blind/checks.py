"""Checks shared by the blind methods: what the input allows, where to start, and whether the result holds.

* :func:`check_blind_input` -- refuses what no blind method can use (non-finite pixels, a flat image,
  a kernel larger than a third of the image) and warns about what makes the estimate unreliable
  (saturated pixels, no edge above the noise). It returns the warnings, which the methods put in
  ``info["notes"]``.
* :func:`initial_kernel` -- the starting kernel of a warm start: an array (cropped or zero-padded to the
  method's support when its size differs, with a note) or ``"l0"`` (the kernel estimated by
  :func:`unblur.blind.l0.l0_blind`).
* :func:`blind_checks` -- the "never silently worse" report of a result ``(image, restored, kernel)``:

  - ``discrepancy = RMS(k * x - y) / sigma`` over the interior (pixels farther than the kernel radius
    from the border, so that neither the blur model at the edge nor a boundary rule counts), ``sigma``
    the noise standard deviation (given, or estimated by the wavelet MAD of
    :func:`unblur.physics.noise.estimate_noise_sigma`). A kernel and image that explain the data give
    about 1 (the residual is the noise); much more than 1 means the kernel does not explain the data.
    For colour images the residual is taken over all channels.
  - ``kernel_support``: the bounding box ``(rows, cols)`` of the entries above 5 % of the peak.
  - ``kernel_peak``: the largest entry (the kernel sums to 1), ``kernel_collapsed``: the kernel is close
    to a Dirac (peak above 0.5, or support at most 2x2 pixels), i.e. probably no deblurring happened.
  - ``ok`` and ``warnings``: the checks that failed, as one-line messages (discrepancy above
    :data:`DISCREPANCY_LIMIT`, collapsed kernel).

Example
-------
>>> import numpy as np
>>> from scipy import ndimage
>>> x = np.kron(np.random.default_rng(0).random((8, 8)), np.ones((8, 8)))
>>> k = np.ones((5, 5)) / 25
>>> y = ndimage.convolve(x, k, mode="wrap")
>>> c = blind_checks(y, x, k, noise_sigma=0.01)
>>> round(c["discrepancy"], 3), c["kernel_collapsed"], c["kernel_support"], c["ok"]
(0.0, False, [5, 5], True)
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ..errors import require

#: Discrepancy above which a result is flagged.  At 1.5 the part of the data the model leaves unexplained,
#: ``sqrt(1.5^2 - 1) = 1.1`` sigma RMS, is as large as the noise itself: the kernel (or the image) does not
#: explain the data.
DISCREPANCY_LIMIT = 1.5
#: A kernel whose largest entry holds more than this share of the mass is called collapsed (Dirac-like).
COLLAPSE_PEAK = 0.5
#: Entries above this fraction of the peak make the kernel's support.
SUPPORT_FRACTION = 0.05
_LUMA = np.array([0.299, 0.587, 0.114])


def _gray(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    if a.shape[-1] >= 3:
        return a[..., :3] @ _LUMA
    return a.mean(-1)


def _np(a) -> np.ndarray:
    return np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, np.float64)


def _sigma(a: np.ndarray) -> float:
    from ..physics.noise_level import estimate_noise_sigma

    return float(estimate_noise_sigma(a) if a.ndim == 2 else estimate_noise_sigma(a, channel_axis=-1))


def check_blind_input(image, kernel_size: int | None = None, *, method: str = "blind deblurring",
                      noise_sigma: float | None = None, saturation=None, stacklevel: int = 3) -> list[str]:
    """Refuse an image no blind method can use; warn (and return the notes) when the estimate will be unreliable.

    Parameters
    ----------
    image : array
        Blurred image, gray ``(H, W)`` or colour ``(H, W, C)``.
    kernel_size : int, optional
        The kernel support in pixels; refused when larger than a third of the shorter side.
    method : str
        Name used in the messages.
    noise_sigma : float, optional
        Noise standard deviation in image units (estimated when omitted).
    saturation : None, "auto" or float
        How the method treats clipped pixels (:mod:`unblur.physics.saturation`); when it leaves them out of
        the fit, only clipped shadows or an image mostly clipped are warned about.
    stacklevel : int
        Passed to :func:`warnings.warn`.

    Returns
    -------
    list of str
        Warnings issued (also emitted as ``UserWarning``): saturated pixels, no edge above the noise.

    Raises
    ------
    InputError
        Non-finite pixels, a flat (constant or fully saturated) image, a kernel larger than a third of the image.
    """
    a = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    require(np.issubdtype(a.dtype, np.number), f"image dtype {a.dtype} is not numeric", "give a numeric image")
    a = a.astype(np.float64)
    require(a.ndim in (2, 3), f"{method} needs a gray (H, W) or colour (H, W, C) image, got shape {a.shape}",
            "give a single 2-D image")
    require(bool(np.isfinite(a).all()), f"the image has {int((~np.isfinite(a)).sum())} NaN or infinite pixel(s)",
            "replace them before blind deblurring")
    g = _gray(a)
    lo, hi = float(g.min()), float(g.max())
    require(hi - lo > 1e-6, "the image is flat (constant or fully saturated): there is no edge to estimate a blur from",
            "give a blurred image with structure")
    if kernel_size is not None:
        k = int(kernel_size)
        require(3 * k <= min(g.shape), f"kernel size {k} is larger than a third of the image ({g.shape[0]}x{g.shape[1]})",
                "give a smaller kernel size or a larger image")
    notes = []
    top, bottom = float(np.mean(g >= hi - 1e-6)), float(np.mean(g <= lo + 1e-6))
    if saturation is None:
        clipped = (top if hi >= 0.98 else 0.0) + (bottom if lo <= 0.02 else 0.0)
        if clipped > 0.05:
            notes.append(f"{100 * clipped:.0f}% of the pixels sit at the image's minimum or maximum (saturated): the "
                         "blur model does not hold there and the kernel estimate may be wrong (saturation='auto' "
                         "leaves them out)")
    else:
        if bottom > 0.05 and lo <= 0.02:
            notes.append(f"{100 * bottom:.0f}% of the pixels sit at the image's minimum (clipped shadows): the blur "
                         "model does not hold there and the kernel estimate may be wrong")
        if top > 0.3:
            notes.append(f"{100 * top:.0f}% of the pixels sit at the image's maximum (saturated): they are left out, "
                         "and too few remain for a reliable kernel estimate")
    sigma = float(noise_sigma) if noise_sigma is not None else _sigma(a)
    gx, gy = np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1]
    gx, gy = gx - np.median(gx), gy - np.median(gy)  # a constant slope (a ramp) is no edge: blur leaves it as it is
    mag = np.sqrt(gx * gx + gy * gy)
    # white noise alone exceeds 5 * sqrt(2) sigma in fewer than 1e-5 of the pixels
    edges = int(np.count_nonzero(mag > 5 * np.sqrt(2) * sigma + 1e-3))
    least = max(16, (int(kernel_size) if kernel_size else 15))
    if edges < least:
        notes.append(f"the image has no edge above the noise ({edges} pixels with a gradient above 5 noise sigmas): "
                     "the kernel cannot be estimated from it and the result is the prior's guess")
    for n in notes:
        warnings.warn(f"{method}: {n}", UserWarning, stacklevel=stacklevel)
    return notes


def _fit_kernel(k: np.ndarray, size: int) -> np.ndarray:
    """``k`` cropped or zero-padded to ``(size, size)`` about its centre pixel ``n // 2`` (no resampling: the
    kernel is in the image's pixels)."""
    out = np.zeros((size, size))
    src, dst = [], []
    for n in k.shape:
        m = min(n, size)
        src.append(slice(n // 2 - m // 2, n // 2 - m // 2 + m))
        dst.append(slice(size // 2 - m // 2, size // 2 - m // 2 + m))
    out[tuple(dst)] = k[tuple(src)]
    return out


def initial_kernel(init, kernel_size: int, image=None, *, noise_sigma: float | None = None,
                   notes: list | None = None) -> np.ndarray | None:
    """The starting kernel of a warm start, ``(kernel_size, kernel_size)``, non-negative, sum 1 (float32).

    Parameters
    ----------
    init : array, "l0" or None
        A kernel (any size: cropped or zero-padded to ``kernel_size`` about its centre pixel ``n // 2``,
        with a note that says how much mass a crop lost), ``"l0"`` (the kernel of
        :func:`unblur.blind.l0.l0_blind` run on ``image`` with this ``kernel_size``), or None (no warm
        start: returns None).
    kernel_size : int
        The method's kernel support.
    image : array, optional
        The blurred image (needed for ``"l0"`` and for the size check).
    noise_sigma : float, optional
        Passed to l0.
    notes : list, optional
        Notes (resizing) are appended here.

    Raises
    ------
    InputError
        An unknown string, a kernel with negative mass or no mass, a kernel larger than a third of the image.
    """
    if init is None:
        return None
    if isinstance(init, str):
        require(init == "l0", f"unknown init_kernel {init!r}", "give a kernel array, a kernel file (CLI) or 'l0'")
        require(image is not None, "init_kernel='l0' needs the image")
        from .l0 import l0_blind

        a = np.asarray(image, np.float64)
        _, info = l0_blind(a, kernel_size=int(kernel_size), noise_sigma=noise_sigma)
        k = np.asarray(info["kernel"], np.float64)
        if notes is not None:
            notes.append(f"warm start: kernel estimated by l0 ({kernel_size}x{kernel_size}, support "
                         f"{info['checks']['kernel_support'][0]}x{info['checks']['kernel_support'][1]})")
            if info["checks"].get("kernel_stable") is False:
                notes.append("warm start: l0's kernel is unstable (its two edge selections disagree by "
                             f"{info['checks']['kernel_disagreement']:.2f}): the start may be wrong")
    else:
        k = np.asarray(init.detach().cpu().numpy() if hasattr(init, "detach") else init, np.float64)
        k = np.squeeze(k)
        require(k.ndim == 2, f"init_kernel must be a 2-D kernel, got shape {k.shape}", "give a (k, k) kernel")
        require(bool(np.isfinite(k).all()), "init_kernel has NaN or infinite entries", "give a finite kernel")
        if image is not None:
            side = min(np.shape(image)[:2])
            require(3 * max(k.shape) <= side, f"init_kernel {k.shape[0]}x{k.shape[1]} is larger than a third of the "
                    f"image ({np.shape(image)[0]}x{np.shape(image)[1]})", "give a smaller kernel")
        neg = float(-k[k < 0].sum())
        require(k.sum() > 0 and neg <= 0.05 * float(k[k > 0].sum()),
                "init_kernel has no positive mass or more than 5% negative mass", "give a non-negative kernel")
        k = np.maximum(k, 0)
        if k.shape != (kernel_size, kernel_size):
            fitted = _fit_kernel(k, int(kernel_size))
            lost = 1 - float(fitted.sum()) / float(k.sum())
            if notes is not None:
                notes.append(f"init_kernel {k.shape[0]}x{k.shape[1]} resized to the method's {kernel_size}x{kernel_size} "
                             "support (cropped or zero-padded about its centre)"
                             + (f"; {100 * lost:.0f}% of its mass fell outside: give a larger kernel size" if lost > 0.01 else ""))
            k = fitted
    k = np.maximum(k, 0)
    s = float(k.sum())
    require(s > 0, "init_kernel has no mass inside the method's kernel support", "give a kernel centred on n // 2")
    return (k / s).astype(np.float32)


def kernel_report(kernel) -> dict:
    """Support (bounding box of entries above 5 % of the peak), peak share and whether the kernel collapsed."""
    k = _np(kernel)
    k = k.reshape(-1, *k.shape[-2:]).mean(0) if k.ndim > 2 else k
    k = np.maximum(k, 0)
    s = float(k.sum())
    if s <= 0:
        return {"kernel_support": [0, 0], "kernel_peak": 0.0, "kernel_collapsed": True}
    k = k / s
    on = k > SUPPORT_FRACTION * k.max()
    rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
    support = [int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)]
    peak = float(k.max())
    return {"kernel_support": support, "kernel_peak": peak,
            "kernel_collapsed": bool(peak > COLLAPSE_PEAK or max(support) <= 2)}


def blind_checks(image, restored, kernel, noise_sigma: float | None = None, ignore=None) -> dict:
    """The "never silently worse" report of a blind result (module docstring).

    Parameters
    ----------
    image : array
        The blurred input, gray ``(H, W)`` or colour ``(H, W, C)``.
    restored : array
        The restored image, same layout.
    kernel : array
        The estimated kernel ``(k, k)`` (normalised here); a stack of kernels (space-varying models) is
        reported through its mean.
    noise_sigma : float, optional
        Noise standard deviation in image units; estimated from ``image`` when omitted.
    ignore : array of bool, optional
        Pixels of ``image`` left out of the discrepancy (clipped data), same layout as ``image``.

    Returns
    -------
    dict
        ``discrepancy``, ``noise_sigma``, ``noise_sigma_source``, ``kernel_support``, ``kernel_peak``,
        ``kernel_collapsed``, ``ok``, ``warnings``.
    """
    y, x = _np(image), _np(restored)
    if y.ndim == 3 and y.shape[-1] == 1:
        y = y[..., 0]
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    rep = kernel_report(kernel)
    k = _np(kernel)
    k = k.reshape(-1, *k.shape[-2:]).mean(0) if k.ndim > 2 else k
    k = np.maximum(k, 0)
    k = k / max(float(k.sum()), 1e-300)
    src = "given" if noise_sigma is not None else "estimated (wavelet MAD)"
    sigma = float(noise_sigma) if noise_sigma is not None else _sigma(y)
    disc = float("nan")
    if x.shape == y.shape:
        xs = x if x.ndim == 3 else x[..., None]
        ys = y if y.ndim == 3 else y[..., None]
        # convolution (kernel flipped for correlate); the kernel's centre n // 2 sits on the output pixel
        kf = k[::-1, ::-1]
        origin = tuple(-(n % 2 == 0) for n in k.shape)  # even sizes: centre n // 2 (conventions.md)
        m = max(k.shape) // 2 + 1
        skip = None if ignore is None else np.asarray(ignore, bool).reshape(ys.shape)
        res = []
        for c in range(ys.shape[-1]):
            r = ndimage.correlate(xs[..., c], kf, mode="reflect", origin=origin) - ys[..., c]
            if skip is not None:
                r = np.where(skip[..., c], np.nan, r)
            r = r[m:-m, m:-m] if min(r.shape) > 2 * m + 2 else r
            res.append(r[np.isfinite(r)])
        res = np.concatenate(res)
        rms = float(np.sqrt(np.mean(res ** 2))) if res.size else float("nan")
        disc = rms / max(sigma, 1e-4)
    warns = []
    if np.isfinite(disc) and disc > DISCREPANCY_LIMIT:
        warns.append(f"the re-blurred result is {disc:.1f} noise sigmas from the data (discrepancy): the kernel "
                     "does not explain the image")
    if rep["kernel_collapsed"]:
        warns.append(f"the kernel collapsed towards a Dirac (peak {rep['kernel_peak']:.2f}, support "
                     f"{rep['kernel_support'][0]}x{rep['kernel_support'][1]}): probably no deblurring happened")
    return {"discrepancy": disc, "noise_sigma": sigma, "noise_sigma_source": src, **rep,
            "ok": not warns, "warnings": warns}


def attach_checks(info: dict, image, restored, kernel, noise_sigma: float | None = None, ignore=None) -> dict:
    """``info`` with ``info["checks"] = blind_checks(...)`` (the one place each blind method calls)."""
    info["checks"] = blind_checks(image, restored, kernel, noise_sigma, ignore=ignore)
    return info


__all__ = ["COLLAPSE_PEAK", "DISCREPANCY_LIMIT", "attach_checks", "blind_checks", "check_blind_input",
           "initial_kernel", "kernel_report"]
