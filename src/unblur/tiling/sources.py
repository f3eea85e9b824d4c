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
    """A TIFF, ``.npy`` or Zarr file read block by block (opened on first use, in each process).

    ``.npy`` and uncompressed TIFF stored in unblur's axis order are read with plain file reads,
    one span of rows per plane of the block (nothing is mapped or cached); other files go through
    :func:`unblur.io.open_image`."""

    def __init__(self, path):
        self.path = Path(path)
        require(self.path.exists(), f"file not found: {self.path}", "check the path")
        self._arr = None
        arr = self._open()
        self.shape, self.dtype = tuple(arr.shape), np.dtype(arr.dtype)
        self._raw = self._map()
        self._mapped = self._raw is not None

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "_arr": None, "_mapped": self._mapped,
                "_raw": self._raw}

    @property
    def metadata(self):
        return getattr(self._open(), "metadata", None)

    def _open(self):
        if self.path.suffix.lower() == ".npy":
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self._arr is None:
            from ..io import open_image
            self._arr = open_image(self.path)
        return self._arr

    def _map(self):
        """``(offset, shape, dtype)`` of the raw array when the file stores it contiguously in the
        image's order (``.npy``, uncompressed TIFF), else None."""
        mm = None
        if self.path.suffix.lower() == ".npy":
            mm = self._open()
        elif self.path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            try:
                mm = tifffile.memmap(str(self.path), mode="r")
            except (ValueError, OSError):  # compressed, tiled or not contiguous
                return None
        if mm is None or tuple(mm.shape) != tuple(self.shape) or mm.ndim < 2:
            return None
        return int(mm.offset), tuple(mm.shape), mm.dtype

    def read(self, slices) -> np.ndarray:
        if self._mapped:
            return _read_raw(self.path, *self._raw, slices)
        block = self._open().read(tuple(slices))
        return np.array(_scaled(np.asarray(block)), copy=True)

    def describe(self) -> str:
        return str(self.path.resolve())


def _read_raw(path, offset, shape, dtype, slices) -> np.ndarray:
    """Read ``array[slices]`` of a C-ordered raw array stored at ``offset`` of ``path``, plane by plane."""
    sl, squeeze = [], []
    for ax, (s, n) in enumerate(zip(tuple(slices) + (slice(None),) * (len(shape) - len(slices)), shape)):
        if isinstance(s, (int, np.integer)):
            s = slice(int(s), int(s) + 1)
            squeeze.append(ax)
        start, stop, step = s.indices(n)
        require(step == 1, "tiles are read with unit steps")
        sl.append(slice(start, stop))
    row = int(np.prod(shape[2:], dtype=np.int64))  # elements per index of axis 1
    plane = shape[1] * row
    out = np.empty(tuple(s.stop - s.start for s in sl), np.float32)
    with open(path, "rb") as f:
        for i, z in enumerate(range(sl[0].start, sl[0].stop)):
            f.seek(offset + (z * plane + sl[1].start * row) * dtype.itemsize)
            span = np.fromfile(f, dtype=dtype, count=(sl[1].stop - sl[1].start) * row)
            out[i] = _scaled(span.reshape((-1,) + tuple(shape[2:]))[(slice(None),) + tuple(sl[2:])])
    return out.squeeze(axis=tuple(squeeze)) if squeeze else out


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
