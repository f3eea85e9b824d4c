"""Reading and writing images and PSFs.

* Read: PNG, JPEG, BMP (imageio), TIFF (tifffile; plain, ImageJ hyperstacks, OME-TIFF; 8/16-bit,
  float), Zarr and OME-Zarr folders (zarr).  FITS with the optional ``astropy`` extra.  Files
  that name their axes come back in unblur's axis order with their physical sizes
  (``read_image(path, with_metadata=True)``, :mod:`unblur.metadata`).  Integer images are scaled to [0, 1] by their
  type's maximum (8-bit: /255, 16-bit: /65535) unless ``scale=False``; float data are kept as they
  are (the library works in the image's own units).  Alpha channels are dropped.
* Write: float32 TIFF by default (values preserved exactly); PNG / 8- or 16-bit TIFF clip to
  [0, 1] and scale by 255 or 65535 (``bits=``).  Writes are atomic (temporary file in the target
  folder, then rename) and refuse to overwrite unless ``overwrite=True``.  With ``metadata=``
  ``.tif`` is an ImageJ hyperstack, ``.ome.tif`` an OME-TIFF, ``.ome.zarr`` an OME-NGFF image.
* Blocks: :func:`open_image` reads a stack block by block, :func:`create_output` writes one
  block by block (:mod:`unblur.io.lazy`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..metadata import ImageMetadata
from ..psf.core import prepare_psf
from .lazy import LazyImage, OutputWriter, create_output, is_ome_name, is_zarr_path, open_image, read_metadata
from .tiff import default_axes, read_tiff_metadata

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FITS_SUFFIXES = (".fits", ".fit", ".fts")


def read_image(path, scale: bool = True, drop_alpha: bool = True, with_metadata: bool = False):
    """Read an image or stack as float32 (see module docstring for scaling).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP, TIFF (plain, ImageJ hyperstack, OME-TIFF), Zarr / OME-Zarr folder, FITS,
        ``.npy``.
    scale : bool
        Scale integer data to [0, 1] by the type's maximum.
    drop_alpha : bool
        Drop a trailing alpha channel of RGBA / gray+alpha pictures (never a named channel axis).
    with_metadata : bool
        Also return the :class:`~unblur.metadata.ImageMetadata`.

    Returns
    -------
    image : ndarray
        float32.  Files that name their axes (ImageJ, OME, OME-Zarr) come back in unblur's
        order (``metadata.axes``: ``YX``, ``YXC``, ``ZYX``, ``ZYXC``, with a leading ``T`` when
        there are several time points); others as stored.
    metadata : ImageMetadata
        Only with ``with_metadata=True``.
    """
    path = Path(str(path).rstrip("/")) if str(path) not in ("", "/") else Path(path)
    require(path.exists(), f"file not found: {path}", "check the path")
    suffix = path.suffix.lower()
    if is_zarr_path(path):
        lazy = open_image(path)
        arr = lazy.read() if scale else _reorder(np.asarray(lazy._array()[...]), lazy)
        return (arr, lazy.metadata) if with_metadata else arr
    require(path.is_file(), f"not a file: {path}", "give an image file, not a folder")
    meta = ImageMetadata(format=suffix.lstrip(".").replace("jpeg", "jpg").replace("tiff", "tif"))
    named = False
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile
            with tifffile.TiffFile(str(path)) as tif:
                series, meta, drop, perm = read_tiff_metadata(tif)
                arr = series.asarray()
            if perm is not None:
                arr = np.transpose(arr[tuple(0 if i in drop else slice(None) for i in range(arr.ndim))], perm)
                named = True
        elif suffix in RASTER_SUFFIXES:
            import imageio.v3 as iio
            arr = iio.imread(str(path))
        elif suffix in FITS_SUFFIXES:
            try:
                from astropy.io import fits
            except ImportError as e:  # pragma: no cover - optional
                raise InputError("reading FITS needs astropy", "pip install 'unblur[fits]'") from e
            arr = np.asarray(fits.getdata(str(path)))
        elif suffix == ".npy":
            arr = np.load(str(path), allow_pickle=False)
        else:
            raise InputError(f"unsupported file type {suffix!r} ({path.name})",
                             "use PNG, JPEG, TIFF, Zarr, FITS or .npy")
    except InputError:
        raise
    except Exception as e:  # corrupt files, truncated data, ...
        raise InputError(f"cannot read {path.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         "the file is corrupt or not an image") from e
    if not meta.dtype:
        meta.dtype, meta.shape_read = str(np.asarray(arr).dtype), tuple(np.shape(arr))
        if suffix in RASTER_SUFFIXES:
            meta.axes_read = meta.axes = "YX" if np.ndim(arr) == 2 else "YXC"
    arr = np.asarray(arr)
    require(arr.size > 1, f"{path.name} is empty or has a single pixel (or is corrupt)", "give an image of at least 2x2 pixels")
    samples = not named or "S" in (meta.axes_read or "")
    if drop_alpha and samples and suffix in RASTER_SUFFIXES + TIFF_SUFFIXES and arr.ndim == 3 and arr.shape[-1] in (2, 4):
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
            if meta.axes and meta.axes.endswith("C"):
                meta.axes = meta.axes[:-1]
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if arr.dtype.kind in "ui" and scale:
        arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    elif arr.dtype.kind == "c":
        raise InputError(f"{path.name} holds complex values", "give a real-valued image")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return (arr, meta) if with_metadata else arr


def _reorder(arr: np.ndarray, lazy: LazyImage) -> np.ndarray:
    """A whole stored array in the lazy image's axis order (unscaled)."""
    arr = arr[tuple(0 if i in lazy._drop else slice(None) for i in range(arr.ndim))]
    return np.ascontiguousarray(np.transpose(arr, lazy._perm), dtype=np.float32)


def read_psf(path, spatial_ndim: int | None = None, image_shape=None, negative: str = "clip",
             center: str = "none", report: list | None = None) -> np.ndarray:
    """Read a PSF file and validate/normalise it (see :func:`unblur.psf.prepare_psf`).

    Integer PSF files are not rescaled before normalisation (only the sum matters).
    """
    raw = read_image(path, scale=False, drop_alpha=False)
    return prepare_psf(raw, spatial_ndim=spatial_ndim, image_shape=image_shape, negative=negative,
                       center=center, name=f"PSF {Path(path).name}", report=report)


def check_writable(path, overwrite: bool = False) -> Path:
    """Refuse early (before computing) if ``path`` cannot be written."""
    path = Path(path)
    suffix = path.suffix.lower()
    require(suffix in TIFF_SUFFIXES + RASTER_SUFFIXES + (".npy", ".zarr"),
            f"unsupported output type {suffix or '(none)'!r}", "use .tif, .ome.tif, .zarr, .ome.zarr, .png, .jpg or .npy")
    require(overwrite or not path.exists(), f"{path} exists", "pass --force (overwrite=True) to replace it")
    require(suffix == ".zarr" or not path.is_dir(), f"{path} is a folder", "choose a file name")
    folder = path.parent if str(path.parent) else Path(".")
    require(folder.is_dir(), f"output folder {folder} does not exist", "create it first")
    require(os.access(folder, os.W_OK), f"output folder {folder} is not writable", "choose another output path")
    try:  # access() says yes to root and on read-only mounts: try for real
        fd, probe = tempfile.mkstemp(prefix=".unblur-probe-", dir=str(folder))
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"output folder {folder} is not writable ({e.strerror or type(e).__name__})",
                         "choose another output path") from e
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _to_integer(arr: np.ndarray, bits: int) -> np.ndarray:
    maxv = 255 if bits == 8 else 65535
    dt = np.uint8 if bits == 8 else np.uint16
    return np.round(np.clip(arr, 0.0, 1.0) * maxv).astype(dt)


def write_image(path, image, overwrite: bool = False, bits: int | None = None,
                metadata: ImageMetadata | None = None) -> Path:
    """Write ``image`` atomically.

    ``bits=None``: float32 TIFF for ``.tif`` (values kept), 8-bit for PNG/JPEG.  ``bits=8/16``:
    clip to [0, 1] and scale by 255 / 65535 (PNG supports 8 and 16, JPEG only 8).

    ``metadata`` (an :class:`~unblur.metadata.ImageMetadata`, e.g. from
    ``read_image(..., with_metadata=True)``) is kept: ``.tif`` becomes an ImageJ hyperstack
    with resolution, ``spacing`` and channel names; ``.ome.tif`` / ``.ome.tiff`` is always an
    OME-TIFF (physical sizes, channels, axes); ``.zarr`` / ``.ome.zarr`` are written as by
    :func:`create_output`.  Its ``axes`` must name the array's axes (a leading ``T`` missing
    from the array is ignored); without axes they follow from the shape (``YX``, ``YXC`` when a
    3-axis array has at most 4 values last, ``ZYX``, ``ZYXC``).
    """
    path = check_writable(path, overwrite)
    arr = np.asarray(image)
    if hasattr(image, "detach"):
        arr = image.detach().cpu().numpy()
    suffix = path.suffix.lower()
    require(bits in (None, 8, 16, 32), f"bits must be 8, 16 or 32, got {bits}")
    if suffix == ".zarr" or (suffix in TIFF_SUFFIXES and (metadata is not None or is_ome_name(path))):
        return _write_named(path, arr, overwrite, bits, metadata)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile
            data = arr.astype(np.float32) if bits in (None, 32) else _to_integer(arr, bits)
            photometric = "rgb" if data.ndim == 3 and data.shape[-1] == 3 else "minisblack"
            tifffile.imwrite(tmp, data, photometric=photometric)
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr.astype(np.float32))
        else:
            import imageio.v3 as iio
            b = bits or 8
            require(not (suffix in (".jpg", ".jpeg") and b != 8), "JPEG holds only 8-bit data", "use .png or .tif for 16-bit")
            require(b in (8, 16), "PNG output is 8- or 16-bit", "use .tif for float32")
            require(arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)),
                    f"cannot write an array of shape {arr.shape} as {suffix}", "write stacks as .tif")
            iio.imwrite(tmp, _to_integer(arr, b), extension=suffix)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _axes_for(arr: np.ndarray, metadata: ImageMetadata | None) -> str:
    axes = metadata.axes if metadata is not None else None
    if axes and len(axes) == arr.ndim + 1 and axes.startswith("T"):
        axes = axes[1:]
    if axes:
        require(len(axes) == arr.ndim, f"metadata axes {axes} do not match an array of shape {arr.shape}",
                "give metadata with one axis letter per array axis")
        return axes
    require(2 <= arr.ndim <= 5, f"cannot write an array of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[-1] <= 4:
        return "YXC"
    return default_axes(arr.shape)


def _write_named(path: Path, arr: np.ndarray, overwrite: bool, bits, metadata) -> Path:
    """Write through :func:`create_output` (Zarr, OME-TIFF, ImageJ with metadata)."""
    from dataclasses import replace
    axes = _axes_for(arr, metadata)
    meta = replace(metadata or ImageMetadata(), axes=axes)
    dtype = {None: np.float32, 32: np.float32, 16: np.uint16, 8: np.uint8}[bits]
    out = create_output(path, arr.shape, dtype=dtype, metadata=meta, overwrite=overwrite)
    with out:
        out.write((), arr)
    return path


def _display(a: np.ndarray) -> np.ndarray:
    """2-D (or H, W, 3) view of an image for previews: middle z slice of stacks, percentile-scaled."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] not in (3,):
        a = a[a.shape[0] // 2]
    if a.ndim == 4:
        a = a[a.shape[0] // 2]
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1
    return np.clip((a - lo) / (hi - lo), 0, 1)


def preview_png(path, panels: list[tuple[str, np.ndarray]], overwrite: bool = True) -> Path:
    """Write a PNG with ``panels`` (title, image) tiled left to right, each scaled for display.

    Panels are separated by a white 4-px gap, each top-aligned on a white canvas as tall as the
    tallest; titles are not drawn (no plotting dependency): the commands name the panel order in
    their ``--help`` (``deconvolve``: input | restored; ``blind``: input | restored | kernel).
    """
    views = [_display(img) for _, img in panels]
    h = max(v.shape[0] for v in views)
    rgb = [np.repeat(v[..., None], 3, axis=-1) if v.ndim == 2 else v[..., :3] for v in views]
    padded = [np.pad(v, ((0, h - v.shape[0]), (0, 4), (0, 0)), constant_values=1.0) for v in rgb]
    canvas = np.concatenate(padded, axis=1)[:, :-4]
    return write_image(path, canvas, overwrite=overwrite, bits=8)


__all__ = ["FITS_SUFFIXES", "RASTER_SUFFIXES", "TIFF_SUFFIXES", "ImageMetadata", "LazyImage", "OutputWriter",
           "check_writable", "create_output", "open_image", "preview_png", "read_image", "read_metadata", "read_psf",
           "write_image"]
