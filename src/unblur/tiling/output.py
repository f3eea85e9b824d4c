"""Streamed, atomic outputs of tiled deconvolution.

The result is written block by block into a temporary file next to the target and renamed onto it
only when every block is written: an interrupted or failed run leaves no output file.  TIFF
(ImageJ or OME-TIFF), Zarr and OME-Zarr go through :func:`unblur.io.create_output` (the input's
metadata is kept); ``.npy`` is a memory-mapped file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import require

SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


def check_target(path, overwrite: bool) -> Path:
    """Refuse early if ``path`` is not a tiled output type, exists (unless ``overwrite``) or cannot be written."""
    from ..io import check_writable
    path = Path(str(path).rstrip("/"))
    require(path.suffix.lower() in SUFFIXES, f"tiled output cannot be written as {path.suffix or '(no suffix)'!r}",
            "use .tif, .ome.tif, .zarr, .ome.zarr or .npy")
    return check_writable(path, overwrite)


class NpyOutput:
    """A ``.npy`` file written through a memory map (``write``, then ``finalize`` or ``abort``)."""

    def __init__(self, path, shape, overwrite: bool = False):
        self.path, self.overwrite = Path(path), overwrite
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self._arr = np.lib.format.open_memmap(self.partial, mode="w+", dtype=np.float32, shape=tuple(shape))

    def write(self, slices, block) -> None:
        self._arr[tuple(slices)] = block

    def finalize(self) -> Path:
        self._arr.flush()
        self._arr = None
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self._arr = None
        if self.partial.exists():
            self.partial.unlink()


def open_output(path, shape, chunks=None, metadata=None, overwrite: bool = False):
    """A writer with ``write(slices, block)``, ``finalize()`` and ``abort()`` for ``path``."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return NpyOutput(path, shape, overwrite)
    from ..io import create_output
    if metadata is not None and len(getattr(metadata, "axes", "") or "") != len(shape):
        metadata = None
    return create_output(path, shape, np.float32, metadata=metadata, chunks=chunks, overwrite=overwrite)


__all__ = ["NpyOutput", "SUFFIXES", "check_target", "open_output"]
