"""Streamed, atomic outputs of tiled deconvolution.

The result is written block by block into a temporary file next to the target and renamed onto it
only when every block is written: an interrupted or failed run leaves no output file.

* ``.tif``/``.tiff``: float32 (Big)TIFF written plane by plane along the first axis (one ``(Y, X)``
  or ``(Y, X, C)`` page at a time; a 2-D image is one page);
* ``.zarr``: a Zarr array, chunked like the tiles, written block by block;
* ``.npy``: a memory-mapped ``.npy`` file, written block by block.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import require

SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


def output_kind(path) -> str:
    suffix = Path(path).suffix.lower()
    require(suffix in SUFFIXES, f"tiled output cannot be written as {suffix or '(no suffix)'!r}",
            "use .tif, .zarr or .npy")
    return {".tiff": ".tif"}.get(suffix, suffix)


def check_target(path, overwrite: bool) -> Path:
    """Refuse early if ``path`` exists (unless ``overwrite``) or its folder is missing or read-only."""
    path = Path(path)
    output_kind(path)
    require(overwrite or not path.exists(), f"{path} exists", "pass --force (overwrite=True) to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    require(folder.is_dir(), f"output folder {folder} does not exist", "create it first")
    require(os.access(folder, os.W_OK), f"output folder {folder} is not writable", "choose another output path")
    return path


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


class Output:
    """A streamed output: :meth:`write_planes` or :meth:`write` blocks, then :meth:`finalize` (atomic
    rename) or :meth:`abort` (temporary file removed)."""

    def __init__(self, path, shape, spatial_ndim: int, chunks=None, overwrite: bool = False):
        self.path = Path(path)
        self.spatial_ndim = spatial_ndim
        self.channels = len(shape) > spatial_ndim
        self.kind = output_kind(self.path)
        self.shape = tuple(int(n) for n in shape)
        self.overwrite = overwrite
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        _remove(self.tmp)
        self.order = ("whole" if spatial_ndim == 2 else "planes") if self.kind == ".tif" else "blocks"
        self._arr = None
        if self.kind == ".npy":
            self._arr = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=self.shape)
        elif self.kind == ".zarr":
            import zarr
            ch = tuple(min(int(c), n) for c, n in zip(chunks, self.shape)) if chunks is not None else None
            self._arr = zarr.open_array(str(self.tmp), mode="w", shape=self.shape, dtype=np.float32,
                                        chunks=ch or "auto", fill_value=0.0)

    def write(self, slices, block: np.ndarray) -> None:
        """Write one block (``.npy``, ``.zarr``)."""
        self._arr[tuple(slices)] = block

    def write_planes(self, planes) -> None:
        """Write the planes along the first spatial axis, in order (``.tif``); a 2-D image is one plane."""
        import tifffile
        big = int(np.prod(self.shape)) * 4 > 2**32 - 2**25
        extra = {"planarconfig": "contig"} if self.channels else {}
        with tifffile.TiffWriter(self.tmp, bigtiff=big) as tif:
            if self.spatial_ndim == 2:
                (page,) = planes
                tif.write(page, photometric="minisblack", **extra)
            else:
                tif.write(planes, shape=self.shape, dtype=np.float32, photometric="minisblack", **extra)

    def finalize(self) -> Path:
        if self.kind == ".npy":
            self._arr.flush()
            self._arr = None
        if self.path.exists() and self.overwrite:
            _remove(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._arr = None
        _remove(self.tmp)


__all__ = ["Output", "SUFFIXES", "check_target", "output_kind"]
