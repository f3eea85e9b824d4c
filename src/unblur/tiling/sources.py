"""Lazy inputs of tiled deconvolution: anything with ``shape``, ``dtype`` and ``read(slices)``.

* a numpy array (:class:`ArraySource`);
* a file path (:class:`FileSource`): ``unblur.io.open_image`` when available, otherwise uncompressed
  TIFF through a memory map, compressed TIFF through tifffile's Zarr view, ``.npy`` through a memory
  map and ``.zarr`` through zarr.  Only the requested block is read.  Integer data are scaled to
  [0, 1] as in :func:`unblur.io.read_image` (8-bit: /255, 16-bit: /65535).
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

    def _open(self):
        if self._arr is not None:
            return self._arr
        suffix = "".join(self.path.suffixes[-2:]).lower() if self.path.suffix.lower() == ".zarr" else self.path.suffix.lower()
        try:
            from .. import io
            opener = getattr(io, "open_image", None)
            if opener is not None and suffix not in (".npy",):
                self._arr = opener(self.path)
            elif suffix == ".npy":
                self._arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
            elif suffix.endswith(".zarr"):
                import zarr
                self._arr = zarr.open_array(str(self.path), mode="r")
            elif suffix in (".tif", ".tiff"):
                import tifffile
                try:
                    self._arr = tifffile.memmap(str(self.path), mode="r")
                except ValueError:  # compressed or not contiguous: tifffile's chunked view
                    import zarr
                    self._arr = zarr.open(tifffile.imread(str(self.path), aszarr=True), mode="r")
            else:
                raise InputError(f"tiled deconvolution cannot read {suffix or 'this file type'} lazily ({self.path.name})",
                                 "use TIFF, OME-Zarr/Zarr or .npy, or pass the array")
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"cannot read {self.path.name}: {type(e).__name__}: {e}", "the file is corrupt or not an image") from e
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
