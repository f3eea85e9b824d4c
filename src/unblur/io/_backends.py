"""Format back-ends of :mod:`unblur.io.lazy` (TIFF through tifffile, Zarr through zarr)."""

from __future__ import annotations


def open_lazy(path):
    raise NotImplementedError


def open_stored(path, source):
    raise NotImplementedError


def create_partial(path, shape, dtype, metadata, chunks, resume):
    raise NotImplementedError


def open_partial(partial, kind, perm):
    raise NotImplementedError
