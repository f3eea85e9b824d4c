"""Lazy inputs of tiled deconvolution: anything with ``shape``, ``dtype`` and ``read(slices)``.

* a numpy array (:class:`ArraySource`);
* a file path (:class:`FileSource`): TIFF, OME-TIFF, Zarr and OME-Zarr through
  :func:`unblur.io.open_image` (axes in unblur's order), ``.npy`` through a memory map.  Only the
  requested block is read.  Integer data are scaled to [0, 1] as in :func:`unblur.io.read_image`
  (8-bit: /255, 16-bit: /65535).
* an object with ``shape``, ``dtype`` and ``read(slices)`` (a lazy image), used as it is.

A :class:`FileSource` pickles as its path, so Dask workers open the file themselves (it must be
reachable at the same path on every worker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, require


def _scaled(block: np.ndarray) -> np.ndarray:
    if block.dtype.kind in "ui":
        return block.astype(np.float32) / np.float32(np.iinfo(block.dtype).max)
    if block.dtype == bool:
        return block.astype(np.float32)
    require(block.dtype.kind == "f", f"image dtype {block.dtype} is not real-valued", "give a real-valued image")
    return block


class ArraySource:
    """An in-memory array read block by block."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self.shape, self.dtype = self.array.shape, self.array.dtype

    def read(self, slices) -> np.ndarray:
        return np.array(_scaled(self.array[tuple(slices)]), copy=True)

    def describe(self) -> str:
        return f"array{self.shape}"


class FileSource:
    """A TIFF, ``.npy`` or Zarr file read block by block (opened on first use, in each process)."""

    def __init__(self, path):
        self.path = Path(path)
        require(self.path.exists(), f"file not found: {self.path}", "check the path")
        self._arr = None
        arr = self._open()
        self.shape, self.dtype = tuple(arr.shape), np.dtype(arr.dtype)

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "_arr": None}

    @property
    def metadata(self):
        return getattr(self._open(), "metadata", None)

    def _open(self):
        if self.path.suffix.lower() == ".npy":  # mapped afresh for each block: nothing stays resident
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self._arr is None:
            from ..io import open_image
            self._arr = open_image(self.path)
        return self._arr

    def read(self, slices) -> np.ndarray:
        arr = self._open()
        block = arr.read(tuple(slices)) if hasattr(arr, "read") else arr[tuple(slices)]
        return np.array(_scaled(np.asarray(block)), copy=True)

    def describe(self) -> str:
        return str(self.path.resolve())


def describe(source) -> str:
    """A string that identifies the input (used to check that a resumed run reads the same data)."""
    return source.describe() if hasattr(source, "describe") else f"{type(source).__name__}{tuple(source.shape)}"


def as_source(image):
    """Wrap ``image`` (array, path or lazy image) as a source with ``shape``, ``dtype``, ``read``."""
    if isinstance(image, (str, Path)):
        return FileSource(image)
    if hasattr(image, "read") and hasattr(image, "shape") and hasattr(image, "dtype"):
        return image
    if hasattr(image, "detach"):
        raise InputError("tiled deconvolution takes numpy arrays or files, not torch tensors",
                         "pass tensor.cpu().numpy() or call unblur.deconvolve for in-memory tensors")
    return ArraySource(image)


__all__ = ["ArraySource", "FileSource", "as_source", "describe"]
