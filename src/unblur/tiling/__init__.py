"""Tiled, out-of-core deconvolution of large images and stacks, scheduled with Dask.

* :mod:`~unblur.tiling.plan`: tile, halo and blend geometry; memory model; sizes like ``"4GB"``;
* :mod:`~unblur.tiling.blend`: raised-cosine blend weights (a partition of unity);
* :mod:`~unblur.tiling.sources`, :mod:`~unblur.tiling.output`: lazy inputs, streamed atomic outputs;
* :mod:`~unblur.tiling.engine`: :func:`deconvolve_tiled` (one Dask task per tile, resume, faults);
* :mod:`~unblur.tiling.batch`: :func:`deconvolve_files`, many files or time points in one call.

Sizing tiles, workers and memory, and running on a cluster: ``docs/scaling.md``.
"""

from .batch import deconvolve_files, output_names, parse_tile
from .engine import deconvolve_tiled
from .plan import make_plan, parse_size

__all__ = ["deconvolve_files", "deconvolve_tiled", "make_plan", "output_names", "parse_size", "parse_tile"]
