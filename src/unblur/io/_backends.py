"""Format back-ends of :mod:`unblur.io.lazy` (TIFF through tifffile, Zarr through zarr)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..metadata import ImageMetadata
from .tiff import IMAGEJ_ORDER, check_tiff_claim, default_axes, imagej_labels, read_tiff_metadata, stored_layout, tiff_write_kwargs


def integer_scale(dtype) -> int | None:
    """The divisor that maps an integer numpy ``dtype`` to [0, 1]: its maximum (uint8: 255, uint16: 65535,
    int16: 32767); ``None`` for floating-point and bool dtypes (used as they are). The rule for integer files
    and arrays (``docs/conventions.md``; torch dtypes: :func:`unblur.arrays.integer_scale`).

    >>> integer_scale(np.uint8), integer_scale(np.float32)
    (255, None)
    """
    dtype = np.dtype(dtype)
    return int(np.iinfo(dtype).max) if dtype.kind in "ui" else None


class _InMemory:
    """Stand-in 'stored array' for formats read whole (PNG, JPEG, .npy, FITS)."""

    def __init__(self, arr):
        self.arr = arr

    def __getitem__(self, key):
        return self.arr[key]


def open_lazy(path: Path):
    from . import TIFF_SUFFIXES, read_image
    from .lazy import LazyImage, is_zarr_path
    require(path.exists(), f"file not found: {path}", "check the path")
    if is_zarr_path(path):
        from .ngff import open_zarr, zarr_layout
        arr, ds, meta = open_zarr(path)
        drop, perm = zarr_layout(meta)
        source = ("zarr", ds)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile
        try:
            with tifffile.TiffFile(str(path)) as tif:
                series, meta, drop, perm = read_tiff_metadata(tif)
                check_tiff_claim(tif, series, path.name)
                shape = tuple(series.shape)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"cannot read {path.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                             "the file is corrupt or not an image") from e
        arr = None
        source = ("tiff", shape)
    else:
        data, meta = read_image(path, with_metadata=True)
        lazy = LazyImage(path, ("memory", None), (), tuple(range(data.ndim)), data.shape, meta, None)
        lazy._arr = _InMemory(data)
        return lazy
    stored_shape = tuple(meta.shape_read)
    if perm is None:  # axes not named: as stored
        drop, perm = (), tuple(range(len(stored_shape)))
        shape = stored_shape
    else:
        kept = [n for i, n in enumerate(stored_shape) if i not in drop]
        shape = tuple(kept[p] for p in perm)
    lazy = LazyImage(path, source, drop, perm, shape, meta, integer_scale(meta.dtype))
    if arr is not None:
        lazy._arr = arr
    return lazy


def open_stored(path: Path, source):
    kind, extra = source
    if kind == "zarr":
        from .ngff import open_zarr
        return open_zarr(path)[0]
    if kind == "memory":
        raise InputError(f"{path.name} was read whole and cannot be reopened in another process",
                         "convert it to TIFF or Zarr for block-wise reading")
    import tifffile
    try:  # uncompressed contiguous data (ImageJ, OME, plain tifffile output): memory map
        return tifffile.memmap(str(path), mode="r")
    except ValueError:
        pass
    import zarr
    store = tifffile.imread(str(path), aszarr=True)
    arr = zarr.open(store, mode="r")
    if not isinstance(arr, zarr.Array):
        arr = arr["0"]
    arr._unblur_store = store
    return arr


class _Transposed:
    """Writes blocks given in unblur order into an array stored with axes permuted by ``perm``."""

    def __init__(self, arr, perm):
        self.arr, self.perm = arr, perm

    def __setitem__(self, sl, block):
        full, expand = [], []
        for i, s in enumerate(sl):
            if isinstance(s, (int, np.integer)):
                full.append(slice(int(s), int(s) + 1))
                expand.append(i)
            else:
                full.append(s)
        if expand:
            block = np.expand_dims(block, tuple(expand))
        block = np.broadcast_to(block, tuple(len(range(*s.indices(n))) for s, n in zip(full, self.shape)))
        key = tuple(full[p] for p in self.perm)
        self.arr[key] = np.transpose(block, self.perm)

    @property
    def shape(self):
        inv = np.argsort(self.perm)
        return tuple(self.arr.shape[i] for i in inv)

    def flush(self):
        if hasattr(self.arr, "flush"):
            self.arr.flush()


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def create_partial(path: Path, shape, dtype, metadata, chunks, resume):
    from .lazy import OutputWriter, _remove, is_ome_name, is_zarr_path
    meta = metadata or ImageMetadata()
    axes = meta.axes if meta.axes and len(meta.axes) == len(shape) else default_axes(shape)
    if meta.axes and len(meta.axes) != len(shape):
        raise InputError(f"metadata axes {meta.axes} do not match the output shape {tuple(shape)}",
                         "give metadata with one axis letter per output axis")
    partial = _partial_path(path)
    zarr_out = is_zarr_path(path)
    stored, perm = stored_layout(axes, "TCZYX" if zarr_out and is_ome_name(path) else
                                 (axes if zarr_out else IMAGEJ_ORDER))
    stored_shape = tuple(shape[p] for p in perm)
    writer = OutputWriter(path, partial, "zarr" if zarr_out else "tiff", shape, dtype,
                          _out_meta(meta, axes, shape, dtype), perm)
    if resume and partial.exists():
        arr = writer._array()
        require(arr.shape == tuple(shape) and np.dtype(arr.arr.dtype) == dtype,
                f"the partial output {partial.name} has shape {arr.shape}, not {tuple(shape)}",
                "delete it or run without resume")
        return writer
    _remove(partial)
    try:
        if zarr_out:
            import zarr
            from .ngff import ngff_attrs, unblur_attrs
            ch = _default_chunks(axes, shape) if chunks is None else tuple(int(c) for c in chunks)
            require(len(ch) == len(shape), f"chunks {ch} do not match the shape {tuple(shape)}")
            ch = tuple(min(ch[p], n) for p, n in zip(perm, stored_shape))
            if is_ome_name(path):
                group = zarr.open_group(str(partial), mode="w", zarr_format=2)
                group.attrs.update(ngff_attrs(meta, stored, path.name))
                group.create_array("0", shape=stored_shape, chunks=ch, dtype=dtype, fill_value=0,
                                   chunk_key_encoding={"name": "v2", "separator": "/"})
            else:
                arr = zarr.create_array(str(partial), shape=stored_shape, chunks=ch, dtype=dtype,
                                        fill_value=0, zarr_format=2)
                arr.attrs.update(unblur_attrs(meta, axes))
        else:
            import tifffile
            nbytes = int(np.prod(shape)) * dtype.itemsize
            ome = is_ome_name(path) or nbytes > 2**32 - 2**25  # ImageJ files stop at 4 GB
            stored, kw = tiff_write_kwargs(meta, axes, ome, nbytes)
            kw = imagej_labels(kw, stored, stored_shape) if not ome else kw
            mm = tifffile.memmap(str(partial), shape=stored_shape, dtype=dtype, **kw)
            mm.flush()
            del mm
            _reserve(partial)
    except OSError as e:
        _remove(partial)
        raise disk_error(e, path, int(np.prod(shape)) * dtype.itemsize) from e
    except BaseException:
        _remove(partial)
        raise
    return writer


def _reserve(path: Path) -> None:
    """Allocate the whole file now: a full disk fails here, not later inside the memory map."""
    fd = os.open(str(path), os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def disk_error(err: OSError, path: Path, nbytes: int) -> Exception:
    """A full disk or quota as a one-line :class:`InputError`; other errors unchanged."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return InputError(f"no space left to write {path.name} ({nbytes / 2**30:.2f} GiB)",
                          "free disk space or write the output elsewhere")
    return err


def _default_chunks(axes: str, shape) -> tuple:
    return tuple(min(n, 1024) if a in "YX" else (n if a == "C" else 1) for a, n in zip(axes, shape))


def _out_meta(meta: ImageMetadata, axes: str, shape, dtype) -> ImageMetadata:
    from dataclasses import replace
    return replace(meta, axes=axes, dtype=str(np.dtype(dtype)), notes=[])


def open_partial(partial: Path, kind: str, perm):
    if kind == "zarr":
        import zarr
        node = zarr.open(str(partial), mode="r+")
        arr = node if isinstance(node, zarr.Array) else node["0"]
    else:
        import tifffile
        arr = tifffile.memmap(str(partial), mode="r+")
        want = len(perm)
        if arr.ndim != want:  # tifffile squeezes length-1 axes; restore them
            raise InputError(f"the partial output {partial.name} has {arr.ndim} axes, expected {want}",
                             "delete it and run again")
    return _Transposed(arr, perm)
