"""Tile geometry and the memory model of tiled deconvolution.

A volume of spatial shape ``(n_1, ..., n_d)`` is split on each axis into ``m_i`` nearly equal
*cores* (a partition: every voxel belongs to one core).  Each tile

* **keeps** its core widened by the blend overlap ``o_i`` (``o_i // 2`` before an inner boundary,
  ``o_i - o_i // 2`` after it), where its result is blended with its neighbour's
  (:mod:`unblur.tiling.blend`);
* **reads** the kept box widened by the halo ``h_i`` on each side (clipped to the volume) and is
  restored with the ``valid`` boundary model: the read block is the valid part of the blur of a larger
  object, so the method estimates the object beyond the block instead of wrapping or mirroring it.

Memory model.  The peak memory of one tile is ``bytes_per_voxel * prod(r_i + k_i - 1)``: the
``valid`` object (read box ``r`` plus PSF ``k`` minus one) is the FFT grid that every step of the
method works on.  :data:`BYTES_PER_VOXEL` holds the measured factor per method
(``benchmarks/tiling.py --memory-model``); other methods use :data:`DEFAULT_BYTES_PER_VOXEL`.
The automatic split is the one with the least modelled time (:func:`_best_counts`: the padded FFT
grids of all tiles, i.e. the halo's extra work, and the workers' last round) among those whose
tiles fit ``memory_limit / concurrent tiles``: few, large tiles, split on the axes where the halo
costs least.

Example
-------
>>> p = make_plan((64, 512, 512), (9, 15, 15), tile=(64, 256, 256))
>>> p.counts, p.halo, p.overlap, len(p.tiles())
((1, 2, 2), (9, 15, 15), (4, 7, 7), 4)
>>> parse_size("512MB"), parse_size("4GB"), parse_size("1.5GiB")
(512000000, 4000000000, 1610612736)
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from itertools import product

from ..errors import InputError, require

#: measured peak bytes per voxel of a tile's FFT grid (read box + PSF - 1), float32 data
BYTES_PER_VOXEL = {"rl": 28.0, "rl-tv": 120.0, "wiener": 128.0, "tikhonov": 120.0, "tv-admm": 256.0}
#: used for methods without a measurement (learned methods hold a network's activations too)
DEFAULT_BYTES_PER_VOXEL = 160.0
#: per-row cost of RL along the last axis, in grid points: fitted to RL (20 iterations, one thread) on
#: the halves (with halo) of a 48x512x512 stack, split on Y (64x320x540 grid: 6.8 s) and on X
#: (64x540x308 grid: 8.0 s), 1.21x apart per grid point (``benchmarks/tiling.py rl-blocks``)
ROW_OVERHEAD = 230.0
#: share of the available memory used when no limit is given
DEFAULT_MEMORY_SHARE = 0.5

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(size) -> int:
    """Bytes from ``"512MB"``, ``"4GB"``, ``"1.5GiB"``, ``"800k"`` or a number of bytes (SI units: 1 GB = 10^9)."""
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        require(size > 0, f"memory limit must be positive, got {size}", "give e.g. 512MB or 4GB")
        return int(size)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(size))
    unit = m.group(2).lower() if m else None
    require(m is not None and unit in _UNITS and float(m.group(1)) > 0, f"cannot read the size {size!r}",
            "give a positive size such as 512MB, 4GB or 2GiB")
    return int(float(m.group(1)) * _UNITS[unit])


def available_memory() -> int:
    """Bytes of memory available now: ``MemAvailable`` of ``/proc/meminfo``, else psutil, else 4 GB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with distributed
        return 4 * 10**9


def bytes_per_voxel(method: str) -> float:
    """The memory model's factor for ``method`` (:data:`BYTES_PER_VOXEL`, else the default)."""
    return BYTES_PER_VOXEL.get(method, DEFAULT_BYTES_PER_VOXEL)


def _splits(n: int, m: int) -> list[int]:
    """Start of each of ``m`` nearly equal parts of ``range(n)``, plus ``n``."""
    return [round(j * n / m) for j in range(m + 1)]


@dataclass(frozen=True)
class Tile:
    """One tile: ``core`` (its share of the output), ``keep`` (core plus blend overlap), ``read``
    (keep plus halo, clipped to the volume) as tuples of ``(start, stop)`` per spatial axis, and the
    blend ramp length at the low and high end of ``keep`` on each axis (0 at the volume's edges)."""

    index: int
    grid: tuple[int, ...]
    core: tuple[tuple[int, int], ...]
    keep: tuple[tuple[int, int], ...]
    read: tuple[tuple[int, int], ...]
    ramps: tuple[tuple[int, int], ...]

    def slices(self, which: str) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in getattr(self, which))

    def keep_in_read(self) -> tuple[slice, ...]:
        """The kept box as slices of the read block."""
        return tuple(slice(k0 - r0, k1 - r0) for (k0, k1), (r0, _) in zip(self.keep, self.read))


@dataclass(frozen=True)
class TilePlan:
    """How a volume of spatial ``shape`` is cut: tile ``counts`` per axis, ``halo`` and blend ``overlap``;
    ``tile_memory``: the bytes each of the tiles running at once may use (the memory limit's share)."""

    shape: tuple[int, ...]
    psf_shape: tuple[int, ...]
    counts: tuple[int, ...]
    halo: tuple[int, ...]
    overlap: tuple[int, ...]
    tile_memory: float | None = None

    def bounds(self, axis: int) -> list[int]:
        return _splits(self.shape[axis], self.counts[axis])

    @property
    def n_tiles(self) -> int:
        return math.prod(self.counts)

    def axis_parts(self, ax: int) -> list[tuple]:
        """``(core, keep, read, ramps)`` of each tile position ``j`` on axis ``ax``."""
        n, m, h, o = self.shape[ax], self.counts[ax], self.halo[ax], self.overlap[ax]
        b = self.bounds(ax)
        parts = []
        for j in range(m):
            lo = o // 2 if j > 0 else 0
            hi = o - o // 2 if j < m - 1 else 0
            keep = (b[j] - lo, b[j + 1] + hi)
            read = (max(0, keep[0] - h), min(n, keep[1] + h))
            parts.append(((b[j], b[j + 1]), keep, read, (o if j > 0 else 0, o if j < m - 1 else 0)))
        return parts

    def tiles(self) -> list[Tile]:
        """Every tile, in C order of the tile grid (index ``numpy.ravel_multi_index(grid, counts)``)."""
        axes = [self.axis_parts(ax) for ax in range(len(self.shape))]
        out = []
        for i, (grid, parts) in enumerate(zip(product(*(range(m) for m in self.counts)), product(*axes))):
            core, keep, read, ramps = zip(*parts)
            out.append(Tile(i, grid, core, keep, read, ramps))
        return out

    def grid_voxels(self, tile: Tile | None = None) -> int:
        """Voxels of the FFT grid of ``tile`` (the largest tile when omitted): read box + PSF - 1."""
        tiles = [tile] if tile is not None else self.tiles()
        return max(math.prod(b - a + k - 1 for (a, b), k in zip(t.read, self.psf_shape)) for t in tiles)

    def max_core(self) -> tuple[int, ...]:
        return tuple(max(b - a for a, b in zip(self.bounds(ax)[:-1], self.bounds(ax)[1:]))
                     for ax in range(len(self.shape)))


def _largest_read(n, m, h, o):
    core = -(-n // m)
    return min(n, core + (o if m > 1 else 0) + 2 * h)


def _grid(shape, counts, halo, overlap, psf_shape) -> int:
    """FFT grid voxels (read box + PSF - 1) of the largest tile of a split."""
    return math.prod(_largest_read(n, m, h, o) + k - 1 for n, m, h, o, k in zip(shape, counts, halo, overlap, psf_shape))


@functools.lru_cache(maxsize=4096)
def _axis_cost(n: int) -> tuple[int, float]:
    """``(N, c)``: the FFT length unblur pads ``n`` to and its relative cost per point (``log2 N``)."""
    try:
        from ..physics.convolution import fft_grid_shape
        size = int(fft_grid_shape((n,))[0])
    except ImportError:  # pragma: no cover - torch missing: no padding model
        size = n
    return size, math.log2(max(size, 2))


def _reads(n: int, m: int, h: int, o: int) -> list[int]:
    """Read lengths of the ``m`` tiles on an axis of ``n`` voxels (as :meth:`TilePlan.axis_parts`)."""
    b = _splits(n, m)
    out = []
    for j in range(m):
        k0 = b[j] - (o // 2 if j > 0 else 0)
        k1 = b[j + 1] + (o - o // 2 if j < m - 1 else 0)
        out.append(min(n, k1 + h) - max(0, k0 - h))
    return out


def _best_counts(shape, psf_shape, halo, overlap, max_grid: float, concurrent: int, min_tiles: int,
                 tasks_per_tile: int = 1):
    """Tile counts per axis with the least modelled time, or None if no split fits ``max_grid``.

    A tile's cost is modelled as one RL step on its padded FFT grid ``N`` (read box + PSF - 1,
    padded as the ``valid`` operator pads it): ``prod(N_a) * (sum_a log2 N_a + 2) * (1 + R / N_d)``
    (FFT passes and elementwise passes; every row along the last, contiguous axis also costs as much
    as :data:`ROW_OVERHEAD` ``R`` points, so splitting the leading axes is preferred).  A plan's time is the tiles' summed cost scaled by
    ``ceil(T / concurrent) * concurrent / T`` for ``T = tiles * tasks_per_tile`` tasks (channels,
    time points): the halo's extra work and the idle workers of an unbalanced last round both
    count.  Candidates: every split whose largest tile fits ``max_grid`` grid voxels (unpadded, as
    in the memory model), with at least ``min_tiles`` tiles and cores no smaller than the PSF and
    the overlap (or the whole axis)."""
    min_core = [max(k, o, 1) for k, o in zip(psf_shape, overlap)]
    top = [max(1, n // c) if n > c else 1 for n, c in zip(shape, min_core)]
    cache: dict = {}

    def axis(ax, m):
        """(largest grid length, sum of padded lengths, mean cost per point) of ``m`` tiles on ``ax``."""
        if (ax, m) not in cache:
            grids = [r + psf_shape[ax] - 1 for r in _reads(shape[ax], m, halo[ax], overlap[ax])]
            padded = [_axis_cost(g) for g in grids]
            cache[ax, m] = (max(grids), sum(p[0] for p in padded), sum(p[1] for p in padded) / m)
        return cache[ax, m]

    def largest(ax, m):  # exact up to 256 tiles on the axis, else the bound of _largest_read
        if m <= 256:
            return axis(ax, m)[0]
        return _largest_read(shape[ax], m, halo[ax], overlap[ax]) + psf_shape[ax] - 1

    def fits(c):
        return math.prod(largest(ax, m) for ax, m in enumerate(c)) <= max_grid

    def m_last(m, part):
        return m / part[1]  # 1 / (mean padded length of the last axis)

    def candidates(t):  # every count up to 64, then steps of 10 % (the cost varies slowly there)
        out, m = set(range(1, min(t, 64) + 1)), 64.0
        while m < t:
            m *= 1.1
            out.add(min(t, int(m)))
        return sorted(out)

    best, best_key = None, None
    for lead in product(*(candidates(t) for t in top[:-1])):
        if not fits(lead + (top[-1],)):
            continue
        lo, hi = 1, top[-1]  # the fewest splits of the last axis that fit (memory falls with more splits)
        while lo < hi:
            mid = (lo + hi) // 2
            if fits(lead + (mid,)):
                hi = mid
            else:
                lo = mid + 1
        for last in range(lo, min(top[-1], lo + concurrent) + 1):
            c = lead + (last,)
            tiles = math.prod(c)
            if tiles < min_tiles or not fits(c):
                continue
            parts = [axis(ax, m) for ax, m in enumerate(c)]
            tasks = tiles * tasks_per_tile
            rows = 1 + ROW_OVERHEAD * m_last(c[-1], parts[-1])
            cost = math.prod(p[1] for p in parts) * (sum(p[2] for p in parts) + 2) * rows * tasks_per_tile
            key = (cost * (-(-tasks // concurrent) * concurrent) / tasks, tiles)
            if best_key is None or key < best_key:
                best, best_key = c, key
    return best


def make_plan(shape, psf_shape, tile=None, halo=None, overlap=None, memory_limit=None,
              bytes_per_voxel: float = DEFAULT_BYTES_PER_VOXEL, concurrent: int = 1,
              min_tiles: int = 1, tasks_per_tile: int = 1) -> TilePlan:
    """Cut a volume of spatial ``shape`` into tiles for a PSF of ``psf_shape``.

    Parameters
    ----------
    shape, psf_shape : tuple of int
        Spatial sizes of the volume and of the PSF (same number of axes).
    tile : tuple of int or None
        Core size per axis (the last tile on an axis may be shorter; the cores are balanced).  Each
        must be at least the PSF's size and the blend overlap (or cover the whole axis).  None:
        chosen from ``memory_limit``.
    halo : int, tuple of int or None
        Voxels read beyond the kept box on each side; default the PSF's size on each axis.
    overlap : int, tuple of int or None
        Width of the blend between neighbouring tiles; default half the PSF's size (at least 2).
    memory_limit : int, str or None
        Memory for all tiles running at once (``"4GB"``); default :data:`DEFAULT_MEMORY_SHARE` of the
        available memory.
    bytes_per_voxel : float
        The method's memory factor (:func:`bytes_per_voxel`).
    concurrent : int
        Tiles that run at the same time (workers x threads); each gets ``memory_limit / concurrent``.
    min_tiles : int
        Automatic plans cut at least this many tiles (one per worker).
    tasks_per_tile : int
        Tasks run per tile (channels x time points), for balancing the workers' last round.

    Returns
    -------
    TilePlan
        With ``tile_memory = memory_limit / concurrent``.
    """
    shape, psf_shape = tuple(int(n) for n in shape), tuple(int(k) for k in psf_shape)
    d = len(shape)
    require(len(psf_shape) == d, f"the PSF has {len(psf_shape)} axes and the image {d}", "give a PSF with as many axes")

    def per_axis(v, default, name):
        v = default if v is None else v
        v = (v,) * d if isinstance(v, int) else tuple(int(x) for x in v)
        require(len(v) == d and all(x >= 0 for x in v), f"{name} must be {d} non-negative integers, got {v}",
                f"give {name} as one integer per axis (z, y, x)")
        return v

    halo = per_axis(halo, psf_shape, "halo")
    overlap = per_axis(overlap, tuple(max(2, k // 2) for k in psf_shape), "overlap")
    limit = parse_size(memory_limit) if memory_limit is not None else int(DEFAULT_MEMORY_SHARE * available_memory())
    budget = limit / max(1, concurrent)

    if tile is not None:
        tile = per_axis(tile, None, "tile")
        for ax, (t, n, k, o) in enumerate(zip(tile, shape, psf_shape, overlap)):
            if t >= n:
                continue
            require(t >= k, f"tile {tile} is smaller than the PSF {psf_shape} on axis {ax}",
                    f"use tiles of at least {psf_shape} voxels (or the whole axis)")
            require(t >= o, f"tile {tile} is smaller than the blend overlap {overlap} on axis {ax}",
                    "use larger tiles or a smaller overlap")
        counts = tuple(max(1, -(-n // max(1, t))) for n, t in zip(shape, tile))
    else:
        counts = _best_counts(shape, psf_shape, halo, overlap, budget / bytes_per_voxel, max(1, concurrent),
                              max(1, min_tiles), tasks_per_tile)
        if counts is None:
            minimal = tuple(-(-n // max(k, o, 1)) for n, k, o in zip(shape, psf_shape, overlap))
            need = _grid(shape, minimal, halo, overlap, psf_shape) * bytes_per_voxel * max(1, concurrent)
            raise InputError(f"memory limit {limit / 1e6:.0f} MB is below what one tile needs "
                             f"({need / 1e6:.0f} MB for {max(1, concurrent)} tile(s) at once)",
                             "raise --memory-limit, use fewer workers or a smaller PSF")
    plan = TilePlan(shape, psf_shape, counts, halo, overlap, budget)
    need = plan.grid_voxels() * bytes_per_voxel
    if memory_limit is not None:
        require(need <= budget, f"memory limit {limit / 1e6:.0f} MB is below what one tile needs "
                f"({need * max(1, concurrent) / 1e6:.0f} MB for {max(1, concurrent)} tile(s) at once)",
                "raise --memory-limit, use smaller tiles or fewer workers")
    return plan


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


__all__ = ["BYTES_PER_VOXEL", "DEFAULT_BYTES_PER_VOXEL", "ROW_OVERHEAD", "Tile", "TilePlan", "available_memory", "bytes_per_voxel",
           "cpu_count", "make_plan", "parse_size"]
