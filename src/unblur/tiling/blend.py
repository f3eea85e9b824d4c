"""Blend weights of overlapping tiles: a partition of unity.

On an inner boundary two neighbouring tiles overlap by ``o`` voxels.  Over that band the tile
before it fades out and the one after it fades in with raised-cosine ramps

    up(t) = sin^2(pi (t + 1/2) / (2 o)),    down(t) = 1 - up(t) = cos^2(pi (t + 1/2) / (2 o)),
    t = 0, ..., o - 1,

so the two weights sum to exactly 1 at every voxel and the blend is smooth (zero slope at both
ends of the band).  In N-D a tile's weight is the product of its 1-D weights; products of 1-D
partitions of unity are a partition of unity, so the weighted tiles add up to the output with no
normalisation pass.

>>> import numpy as np
>>> a, b = axis_weights(6, (0, 4)), axis_weights(6, (4, 0))
>>> bool(np.allclose(a[2:] + b[:4], 1.0)), float(a[0]), float(b[-1])
(True, 1.0, 1.0)
"""

from __future__ import annotations

import numpy as np


def ramp_up(o: int) -> np.ndarray:
    """The fade-in ramp of length ``o`` (float32, rising from near 0 to near 1)."""
    t = (np.arange(o, dtype=np.float64) + 0.5) / (2 * o)
    return (np.sin(np.pi * t) ** 2).astype(np.float32)


def axis_weights(length: int, ramps: tuple[int, int]) -> np.ndarray:
    """1-D weights of a kept range of ``length`` voxels with fade-in ``ramps[0]`` and fade-out ``ramps[1]``."""
    w = np.ones(length, np.float32)
    lo, hi = ramps
    if lo:
        w[:lo] *= ramp_up(lo)
    if hi:
        w[length - hi:] *= 1.0 - ramp_up(hi)
    return w


def tile_weights(shape: tuple[int, ...], ramps) -> np.ndarray:
    """N-D weights of a kept box of ``shape`` (product of :func:`axis_weights`), broadcastable to it."""
    w = np.ones((1,) * len(shape), np.float32)
    for ax, (n, r) in enumerate(zip(shape, ramps)):
        if r != (0, 0):
            w = w * axis_weights(n, r).reshape((1,) * ax + (n,) + (1,) * (len(shape) - ax - 1))
    return w


__all__ = ["axis_weights", "ramp_up", "tile_weights"]
