"""Saturated (clipped) pixels: where the sensor's ceiling cut the data, the linear blur model does not hold.

A pixel at the ceiling says only that its blurred value was at least that high. Fitted as a value it pulls
the estimate down around every highlight, which rings, and, in blind estimation, turns each clipped light
into a sharp-edged plateau that the kernel is fitted to. The methods that take ``saturation`` use a clipped
pixel as a lower bound, ``(A x)_i >= y_i`` (censored data; Whyte, Sivic & Zisserman, IJCV 2014, "Deblurring
shaken and partially saturated images", model the clipping; Cho, Wang & Lee, ICCV 2011, treat such pixels as
outliers): Richardson-Lucy and TV-ADMM replace ``y_i`` by ``max(y_i, (A x)_i)`` at each step, ``l0``'s final
step projects onto the constraint and its kernel step leaves the clipped regions out.

``saturation``:

* ``None`` (``"none"`` on the command line): no pixel is treated as saturated;
* a number ``L``: pixels at or above ``L`` (in the image's units) are saturated;
* ``"auto"``: per channel, the pixels at the channel's maximum when that maximum is a plateau of at least
  ``max(PLATEAU_MIN, PLATEAU_SHARE * N)`` of the channel's ``N`` pixels (the maximum of an unclipped blurred
  image with noise is reached by one pixel or a few; a clipped one by a flat region).

Example
-------
>>> import numpy as np
>>> y = np.linspace(0, 1.5, 100).reshape(10, 10).clip(0, 1)
>>> mask, note = saturation_mask(y, "auto")
>>> int(mask.sum())
34
"""

from __future__ import annotations

import numpy as np

from ..errors import require

#: ``"auto"``: the least share of a channel's pixels on its maximum that counts as clipping ...
PLATEAU_SHARE = 1e-4
#: ... and the least number of them.
PLATEAU_MIN = 4


def saturation_level(saturation) -> float | str | None:
    """``saturation`` checked: None, ``"auto"`` or a finite number (the strings ``"none"``/``"off"`` and numeric
    strings from the command line included)."""
    if isinstance(saturation, str) and saturation.lower() in ("none", "off"):
        return None
    if saturation is None or saturation == "auto":
        return saturation
    if isinstance(saturation, str):
        try:
            saturation = float(saturation)
        except ValueError:
            saturation = None
        require(saturation is not None, "saturation must be 'auto' or a number (the sensor's ceiling in the "
                "image's units)", "give e.g. --saturation auto or --saturation 0.98")
    level = float(saturation)
    require(np.isfinite(level), f"saturation must be finite, got {saturation}", "give the sensor's ceiling, or 'auto'")
    return level


def plateau_size(n: int) -> float:
    """The least number of pixels on a channel's maximum (of ``n`` pixels) that ``"auto"`` takes as clipping."""
    return max(PLATEAU_MIN, PLATEAU_SHARE * n)


def auto_levels(read, shape: tuple[int, ...], pixel_axes: tuple[int, ...], slab_bytes: float = 64e6):
    """``"auto"``'s ceiling of an array too large to hold: per index of the axes not in ``pixel_axes`` (time
    points, channels), the maximum when it is a plateau (:func:`saturation_mask`), else NaN.

    ``read(slices)`` returns the float values of ``array[slices]``; the array is read once, in slabs of about
    ``slab_bytes`` along its first pixel axis. Tiles of a large image use these whole-image levels: a tile
    decides nothing by itself (the maximum of a dim tile of quantised data is a plateau too)."""
    first = pixel_axes[0]
    plane = 4.0 * float(np.prod(shape)) / max(shape[first], 1)
    step = max(1, int(slab_bytes // max(plane, 1.0)))
    top, count = None, None
    for i in range(0, shape[first], step):
        sl = [slice(None)] * len(shape)
        sl[first] = slice(i, min(i + step, shape[first]))
        b = np.asarray(read(tuple(sl)), np.float64)
        b = np.where(np.isnan(b), -np.inf, b)
        m = b.max(axis=pixel_axes, keepdims=True)
        c = (b >= m).sum(axis=pixel_axes, keepdims=True)
        if top is None:
            top, count = m, c
            continue
        count = np.where(m > top, c, np.where(m == top, count + c, count))
        top = np.maximum(top, m)
    n = int(np.prod([shape[a] for a in pixel_axes]))
    levels = np.where((count >= plateau_size(n)) & np.isfinite(top), top, np.nan)
    return np.squeeze(levels, axis=pixel_axes)


def saturation_mask(y: np.ndarray, saturation, channel_axes: tuple[int, ...] = ()) -> tuple[np.ndarray | None, str | None]:
    """The saturated pixels of ``y`` (boolean, ``y``'s shape) and a one-line note, or ``(None, None)`` when
    there are none.

    Parameters
    ----------
    y : ndarray
        The data; NaN pixels are never saturated.
    saturation : None, "auto" or float
        The rule (module docstring).
    channel_axes : tuple of int
        Axes that index separate channels (and images of a batch): ``"auto"`` finds one ceiling per index of
        these axes; the others are the pixels.
    """
    level = saturation_level(saturation)
    if level is None:
        return None, None
    y = np.asarray(y)
    if level == "auto":
        axes = tuple(a for a in range(y.ndim) if a not in {c % y.ndim for c in channel_axes})
        top = np.nanmax(y, axis=axes, keepdims=True)
        mask = y >= top
        n = int(np.prod([y.shape[a] for a in axes]))
        plateau = mask.sum(axis=axes, keepdims=True) >= plateau_size(n)
        mask &= plateau
        levels = np.unique(top[plateau])
        where = ("at " + ", ".join(f"{v:.4g}" for v in levels[:4]) + (" ..." if levels.size > 4 else "")
                 + " (the maximum, a plateau)")
    else:
        mask = y >= level
        where = f"at or above {level:.4g}"
    count = int(mask.sum())
    if count == 0:
        return None, None
    note = (f"saturation: {count} pixel(s) ({100 * count / mask.size:.3g}%) {where} taken as clipped data (lower "
            "bounds of the blur)")
    return mask, note


__all__ = ["PLATEAU_MIN", "PLATEAU_SHARE", "auto_levels", "plateau_size", "saturation_level", "saturation_mask"]
