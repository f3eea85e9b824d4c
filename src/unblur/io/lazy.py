"""Block-wise reading and streamed writing of images too large to hold in memory.

:func:`open_image` returns a :class:`LazyImage`: shape, dtype and metadata without reading the
pixels, and ``read(slices)`` for one block, in unblur's axis order and scaled as
:func:`unblur.io.read_image` scales (integers to [0, 1], float32 out).  TIFF is read through
tifffile's Zarr view of the file (only the strips or tiles a block touches are read), Zarr and
OME-Zarr directly.

:func:`create_output` returns an :class:`OutputWriter`: blocks are written in any order with
``write(slices, block)``, into a temporary file (``.<name>.partial``) in the target folder;
``finalize()`` renames it to the target, ``abort()`` removes it.  TIFF output is preallocated
uncompressed (ImageJ hyperstack, or OME-TIFF for ``.ome.tif``) and written through a memory map,
Zarr output chunk by chunk (``.ome.zarr``: OME-NGFF 0.4 ``multiscales``, one level).

Both objects pickle to their paths: a worker process reopens the file on first use, so one
reader can be shared by many workers, and workers may write disjoint blocks of the same output
concurrently (Zarr: blocks aligned to ``chunks``; TIFF: any disjoint blocks).  ``finalize`` and
``abort`` belong to the process that called :func:`create_output`.

Example
-------
>>> src = open_image("stack.tif")                      # doctest: +SKIP
>>> out = create_output("out.ome.zarr", src.shape, metadata=src.metadata, chunks=(16, 256, 256))
>>> with out:                                          # finalize on success, abort on error
...     for z in range(0, src.shape[0], 16):
...         out.write(np.s_[z:z + 16], src.read(np.s_[z:z + 16]) * 2)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import require
from ..metadata import ImageMetadata

ZARR_SUFFIXES = (".zarr",)


def is_zarr_path(path) -> bool:
    """True for ``*.zarr`` / ``*.ome.zarr`` paths."""
    return str(path).lower().rstrip("/").endswith(".zarr")


def is_ome_name(path) -> bool:
    """True for ``*.ome.tif``, ``*.ome.tiff`` and ``*.ome.zarr``."""
    name = Path(str(path).rstrip("/")).name.lower()
    return name.endswith((".ome.tif", ".ome.tiff", ".ome.zarr"))


def _norm_slices(slices, ndim: int) -> tuple:
    if slices is None:
        slices = ()
    if not isinstance(slices, tuple):
        slices = (slices,)
    if any(s is Ellipsis for s in slices):
        i = next(k for k, s in enumerate(slices) if s is Ellipsis)
        slices = slices[:i] + (slice(None),) * (ndim - len(slices) + 1) + slices[i + 1:]
    require(len(slices) <= ndim, f"{len(slices)} indices for an image of {ndim} axes")
    require(all(isinstance(s, (slice, int, np.integer)) for s in slices),
            "blocks are indexed with integers and slices", "use np.s_[z0:z1, y0:y1, x0:x1]")
    return tuple(slices) + (slice(None),) * (ndim - len(slices))


class LazyImage:
    """An image file read block by block (see the module docstring).

    Attributes
    ----------
    path : Path
    shape : tuple
        Shape in unblur's order (``metadata.axes``; as stored when the file names no axes).
    dtype : numpy.dtype
        float32, the type :meth:`read` returns (``metadata.dtype`` is the stored type).
    metadata : ImageMetadata
    ndim : int
    """

    def __init__(self, path, source, drop, perm, shape, metadata: ImageMetadata, scale: float | None):
        self.path = Path(path)
        self._source = source            # "tiff" or "zarr" (+ array path inside a zarr group)
        self._drop = drop                # stored axes of length 1 (index 0 taken)
        self._perm = perm                # transpose from stored (minus drop) to unblur order
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float32)
        self.metadata = metadata
        self._scale = scale              # divide integers by this (None: keep values)
        self._arr = None

    ndim = property(lambda self: len(self.shape))

    def __repr__(self) -> str:
        return f"LazyImage({str(self.path)!r}, shape={self.shape}, {self.metadata.describe()})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arr"] = None             # file handles stay in their process
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Close the file (it reopens on the next :meth:`read`)."""
        arr, self._arr = self._arr, None
        store = getattr(arr, "_unblur_store", None)
        if store is not None:
            store.close()

    def _array(self):
        if self._arr is None:
            from ._backends import open_stored
            self._arr = open_stored(self.path, self._source)
        return self._arr

    def read(self, slices=None) -> np.ndarray:
        """Read one block: ``slices`` index the returned axes (a tuple of slices, ``np.s_[...]``).

        Returns a float32 array scaled as :func:`unblur.io.read_image` does.  Integer indices drop
        their axis, as in numpy; steps other than 1 are allowed.
        """
        sl = _norm_slices(slices, self.ndim)
        stored_ndim = len(self._drop) + len(self._perm)
        inv = [0] * len(self._perm)
        for out_axis, in_axis in enumerate(self._perm):
            inv[in_axis] = sl[out_axis]
        key, it = [], iter(inv)
        for i in range(stored_ndim):
            key.append(0 if i in self._drop else next(it))
        block = np.asarray(self._array()[tuple(key)])
        kept = [self._perm[i] for i in range(len(self._perm)) if not isinstance(sl[i], (int, np.integer))]
        order = np.argsort(np.argsort(kept)) if kept else []
        block = np.transpose(block, tuple(order)) if block.ndim > 1 else block
        if self._scale is not None:
            return (block.astype(np.float32) / np.float32(self._scale))
        return np.ascontiguousarray(block, dtype=np.float32)

    __getitem__ = read


def open_image(path) -> LazyImage:
    """Open a TIFF, OME-TIFF, Zarr or OME-Zarr image for block-wise reading (nothing is read yet).

    Other formats (PNG, JPEG, ``.npy``, FITS) are read whole and wrapped, so callers can use one
    interface.
    """
    from ._backends import open_lazy
    return open_lazy(Path(path))


def read_metadata(path) -> ImageMetadata:
    """The metadata of an image file; TIFF and Zarr pixels are not read."""
    return open_image(path).metadata


class OutputWriter:
    """A file being written block by block (see the module docstring).

    Attributes
    ----------
    path : Path
        The final file (appears on :meth:`finalize`).
    partial : Path
        The temporary file or folder written meanwhile.
    shape, dtype, metadata
        As given to :func:`create_output`.
    """

    def __init__(self, path, partial, kind, shape, dtype, metadata, perm):
        self.path, self.partial = Path(path), Path(partial)
        self._kind = kind                # "tiff" or "zarr"
        self.shape, self.dtype, self.metadata = tuple(shape), np.dtype(dtype), metadata
        self._perm = perm                # stored axes = unblur axes transposed by perm
        self._arr = None
        self.done = False
        self.clipped = [0, 0, 0]         # values above 1, below 0, all values written (integer output)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arr"] = None
        return state

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    def _array(self):
        if self._arr is None:
            from ._backends import open_partial
            self._arr = open_partial(self.partial, self._kind, self._perm)
        return self._arr

    def write(self, slices, block) -> None:
        """Write ``block`` (unblur axis order, float) at ``slices`` of the output.

        Float output keeps the values; 8/16-bit output clips to [0, 1] and scales by 255 / 65535,
        counting the clipped values (:meth:`clip_note`).
        """
        require(not self.done, f"{self.path.name} is already finalized or aborted")
        sl = _norm_slices(slices, len(self.shape))
        block = np.asarray(block)
        if self.dtype.kind == "u":
            maxv = np.iinfo(self.dtype).max
            self.clipped[0] += int(np.count_nonzero(block > 1))
            self.clipped[1] += int(np.count_nonzero(block < 0))
            self.clipped[2] += int(block.size)
            block = np.round(np.clip(np.nan_to_num(block, nan=0.0), 0.0, 1.0) * maxv)
        try:
            self._array()[sl] = block.astype(self.dtype, copy=False)
        except OSError as e:
            from ._backends import disk_error
            raise disk_error(e, self.path, int(np.prod(self.shape)) * self.dtype.itemsize) from e

    def clip_note(self) -> str | None:
        """One line with the share of values clipped to [0, 1] by integer output, None if none.

        Counts the blocks written through this object (a worker's copy counts its own blocks).
        """
        above, below, total = self.clipped
        if not (above or below):
            return None
        bits = 8 * self.dtype.itemsize
        return (f"{bits}-bit output clipped {100 * above / total:.3g}% of values above 1, {100 * below / total:.3g}% below 0 "
                "to [0, 1]; write a float32 TIFF (bits 32, --bits 32) to keep them")

    def flush(self) -> None:
        """Push written blocks to disk."""
        if self._arr is not None and hasattr(self._arr, "flush"):
            self._arr.flush()

    def finalize(self) -> Path:
        """Flush and rename the partial file to :attr:`path`; return the path."""
        require(not self.done, f"{self.path.name} is already finalized or aborted")
        self.flush()
        self._arr = None
        os.chmod(self.partial, (0o777 if self.partial.is_dir() else 0o666) & ~_umask())
        if self.path.exists() and self.path.is_dir():
            trash = self.path.with_name(f".{self.path.name}.old")
            os.replace(self.path, trash)
            os.replace(self.partial, self.path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.partial, self.path)
        self.done = True
        return self.path

    def abort(self) -> None:
        """Remove the partial file; the target is left as it was."""
        self._arr = None
        self.done = True
        _remove(self.partial)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def create_output(path, shape, dtype=np.float32, metadata: ImageMetadata | None = None, chunks=None,
                  overwrite: bool = False, resume: bool = False) -> OutputWriter:
    """Start writing an image of ``shape`` (unblur axis order) block by block.

    Parameters
    ----------
    path : str or Path
        ``.tif``/``.tiff`` (ImageJ hyperstack), ``.ome.tif``/``.ome.tiff`` (OME-TIFF), ``.zarr``
        (a Zarr array) or ``.ome.zarr`` (OME-NGFF 0.4 image, one resolution level).
    shape : tuple
        Output shape, e.g. ``(Z, Y, X)`` or ``(Z, Y, X, C)``.
    dtype : numpy dtype
        float32 (default; values kept), uint16 or uint8 (blocks clipped to [0, 1] and scaled).
    metadata : ImageMetadata, optional
        Axes, physical sizes and channel names to store.  Its ``axes`` must have one letter per
        axis of ``shape``; without it, axes are taken from the shape (``ZYX``, ``ZYXC``, ...).
    chunks : tuple, optional
        Zarr chunk shape (unblur order); default ``(1, Y, X)`` planes capped at 1024 x 1024.
        Ignored for TIFF.
    overwrite : bool
        Replace an existing target (on :meth:`OutputWriter.finalize`).
    resume : bool
        Reopen the partial file of an interrupted run (same shape and dtype) instead of starting
        a new one; its blocks are kept.  Without it a stale partial file is replaced.
    """
    from ._backends import create_partial
    from . import check_writable
    path = Path(str(path).rstrip("/"))
    check_writable(path, overwrite)
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    require(dtype in (np.float32, np.uint16, np.uint8), f"output dtype {dtype} is not supported",
            "use float32, uint16 or uint8")
    require(all(n >= 1 for n in shape) and 2 <= len(shape) <= 5, f"cannot write an image of shape {shape}")
    return create_partial(path, shape, dtype, metadata, chunks, resume)


__all__ = ["LazyImage", "OutputWriter", "create_output", "open_image", "read_metadata", "is_zarr_path", "is_ome_name"]
