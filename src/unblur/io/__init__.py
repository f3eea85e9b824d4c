"""Reading and writing images and PSFs.

* Read: PNG (8- and 16-bit, gray and colour), JPEG, BMP (imageio; 16-bit colour PNG through
  :mod:`unblur.io.png`), TIFF (tifffile; plain, ImageJ hyperstacks, OME-TIFF; 8/16-bit, float),
  Zarr and OME-Zarr folders (zarr), ``.npy``.  FITS with the optional ``astropy`` extra.  Files
  that name their axes come back in unblur's axis order with their physical sizes
  (``read_image(path, with_metadata=True)``, :mod:`unblur.metadata`).
* Scaling (``docs/conventions.md``): integer data are divided by their type's maximum (8-bit:
  /255, 16-bit: /65535) unless ``scale=False``; bool is 0/1; float data are kept as they are (the
  library works in the image's own units).  :func:`write_image` scales integer *arrays* the same
  way before writing, so an array read from a file and one given as integers agree.
* Alpha: the trailing alpha channel of an RGBA or gray+alpha PNG/TIFF is removed for processing.
  A fully opaque alpha is dropped with a note; any other is kept in ``metadata.alpha`` with a
  note, and :func:`write_image` given that metadata appends it, unchanged, to PNG and plain TIFF
  outputs (a note says when an output cannot hold it: JPEG, ``.npy``, FITS, OME, Zarr).  Notes
  are in ``metadata.notes``; without ``with_metadata=True`` a kept alpha raises a ``UserWarning``.
* Bit depth on writing: ``bits=None`` keeps a 16-bit source 16-bit (``metadata.dtype`` uint16,
  PNG and TIFF outputs); otherwise float32 TIFF (values preserved exactly), 8-bit PNG/JPEG,
  float32 FITS and ``.npy``.  Integer outputs (8 or 16 bits) store ``round(clip(x, 0, 1) * M)``
  with ``M`` = 255 or 65535, so reading gives ``x`` back within ``0.5 / M`` inside [0, 1]; the
  share of values clipped above 1 or below 0 is always reported as a note (never refused: the
  note names float32 TIFF as the lossless choice).  Writes are atomic (temporary file in the
  target folder, then rename) and refuse to overwrite unless ``overwrite=True``.  With
  ``metadata=`` ``.tif`` is an ImageJ hyperstack, ``.ome.tif`` an OME-TIFF, ``.ome.zarr`` an
  OME-NGFF image.  ``.fits`` is a float32 primary HDU (a stack is a cube; the array is stored
  as given, so :func:`read_image` returns it unchanged).
* Pictures: the ICC colour profile, EXIF block and print resolution of a PNG, JPEG or TIFF
  (``metadata.icc_profile``, ``.exif``, ``.dpi``) are written back into PNG and JPEG outputs, the
  profile and resolution also into TIFF (an ICC profile only where it describes the output's
  channels); a note says what an output cannot hold.  A gray or RGB picture written as ``.tif`` is a
  plain one-page gray/RGB TIFF, as photo software expects (not an ImageJ hyperstack).  Pixels are read
  as stored (EXIF orientation not applied), so the output shows turned as the input does.  JPEG outputs are written at quality 95 without chroma subsampling.
* FITS: the source's header (WCS, exposure, instrument) is written back into a FITS output of the same
  number of axes, without the keywords that describe the stored array (``BITPIX``, ``NAXISn``, ``BSCALE``,
  ``BZERO``, checksums).
* Untrusted sizes: a whole-file read is refused, before anything is allocated, when the shape in
  the header needs more than :data:`MAX_READ_BYTES` (default: the memory available now) for the
  stored array plus its float32 copy; an uncompressed TIFF whose header claims more pixels than
  the file holds is refused by :func:`read_image` and :func:`open_image` alike.  Block-wise
  reading of a legitimately large file (:func:`open_image`) has no size limit.
* Blocks: :func:`open_image` reads a stack block by block, :func:`create_output` writes one
  block by block (:mod:`unblur.io.lazy`).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..metadata import ImageMetadata
from ._backends import integer_scale
from .headers import FITS_SUFFIXES, cmyk_to_rgb, fits_header, is_picture, picture_extras, read_fits, read_picture_metadata
from .lazy import LazyImage, OutputWriter, create_output, is_ome_name, is_zarr_path, open_image, read_metadata
from .tiff import check_tiff_claim, default_axes, read_tiff_metadata

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: Largest whole-file read in bytes (stored array plus its float32 copy); None: the memory available now.
MAX_READ_BYTES: int | None = None


def read_image(path, scale: bool = True, drop_alpha: bool = True, with_metadata: bool = False):
    """Read an image or stack as float32 (see module docstring for scaling and alpha).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, BMP, TIFF (plain, ImageJ hyperstack, OME-TIFF), Zarr / OME-Zarr folder, FITS,
        ``.npy``.
    scale : bool
        Scale integer data to [0, 1] by the type's maximum.
    drop_alpha : bool
        Set aside a trailing alpha channel of RGBA / gray+alpha pictures (never a named channel
        axis): it goes to ``metadata.alpha`` with a note, or is dropped with a note when fully
        opaque.
    with_metadata : bool
        Also return the :class:`~unblur.metadata.ImageMetadata` (its ``notes`` say what was
        changed on reading).  Without it, a non-opaque alpha channel that is set aside raises a
        ``UserWarning``.

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
        check_claimed_size(lazy.shape, lazy.metadata.dtype or np.float32, path.name)
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
                require(tif.pages[0].photometric != 5, f"{path.name} is a CMYK (separated) TIFF",
                        "convert it to RGB first (its fourth channel is black ink, not alpha)")
                check_tiff_claim(tif, series, path.name)
                check_claimed_size(series.shape, series.dtype, path.name)
                arr = series.asarray()
                icc = tif.pages[0].tags.get(34675)  # InterColorProfile
                meta.icc_profile = bytes(icc.value) if icc is not None else None
            if perm is not None:
                arr = np.transpose(arr[tuple(0 if i in drop else slice(None) for i in range(arr.ndim))], perm)
                named = True
        elif suffix in RASTER_SUFFIXES:
            arr = _read_raster(path)
            if read_picture_metadata(path, meta) == "CMYK":
                arr = cmyk_to_rgb(path, meta)
        elif suffix in FITS_SUFFIXES:
            arr = read_fits(path, meta)
        elif suffix == ".npy":
            stored = np.load(str(path), mmap_mode="r", allow_pickle=False)  # the header only, no pixels
            check_claimed_size(stored.shape, stored.dtype, path.name)
            arr = np.array(stored)
            del stored
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
        arr, alpha = arr[..., :-1], arr[..., -1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
            if meta.axes and meta.axes.endswith("C"):
                meta.axes = meta.axes[:-1]
        _set_alpha_aside(alpha, meta, path.name, warn=not with_metadata)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if arr.dtype.kind in "ui" and scale:
        arr = arr.astype(np.float32) / np.float32(integer_scale(arr.dtype))
    elif arr.dtype.kind == "c":
        raise InputError(f"{path.name} holds complex values", "give a real-valued image")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return (arr, meta) if with_metadata else arr


def _read_raster(path: Path) -> np.ndarray:
    """PNG / JPEG / BMP through imageio; 16-bit colour PNGs through :mod:`unblur.io.png`."""
    from .png import decode_png16, png_header
    with open(path, "rb") as f:
        head = f.read(33)
    h = png_header(head)
    if h is not None and h[2] == 16 and h[3] in (2, 4, 6):  # Pillow would read these as 8-bit
        return decode_png16(path.read_bytes(), path.name,
                            check_size=lambda shape, dtype: check_claimed_size(shape, dtype, path.name))
    import imageio.v3 as iio
    return iio.imread(str(path))


def _set_alpha_aside(alpha: np.ndarray, meta: ImageMetadata, name: str, warn: bool) -> None:
    """The alpha rule: a fully opaque alpha is dropped, any other is kept in ``meta.alpha``; both noted."""
    top = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
    a = alpha.astype(np.float32) / np.float32(top) if alpha.dtype.kind in "ui" else alpha.astype(np.float32)
    transparent = int(np.count_nonzero(a < 1.0))
    if transparent == 0:
        meta.notes.append(f"{name}: alpha channel fully opaque, dropped")
        return
    meta.alpha = np.ascontiguousarray(a)
    note = (f"{name}: alpha channel set aside for processing ({100 * transparent / a.size:.3g}% of pixels not opaque); "
            "written back unchanged to PNG and TIFF outputs")
    meta.notes.append(note)
    if warn:
        warnings.warn(note + " given this metadata (read_image(..., with_metadata=True))", UserWarning, stacklevel=3)


def _astropy_fits(action: str):
    try:
        from astropy.io import fits
    except ImportError as e:
        raise InputError(f"{action} FITS needs astropy, which is not installed", "pip install 'unblur[fits]'") from e
    return fits


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``; else free pages); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n < 2**40 else f"{n / 2**40:.3g} TiB"


def check_claimed_size(shape, dtype, name: str) -> None:
    """Refuse, before allocating, a whole-file read larger than :data:`MAX_READ_BYTES` / the memory available.

    The need counted is the stored array plus its float32 copy: ``n * (itemsize + 4)`` bytes.
    """
    n = 1
    for k in shape:
        n *= int(k)
    need = n * (np.dtype(dtype).itemsize + 4)
    limit = MAX_READ_BYTES if MAX_READ_BYTES is not None else _available_memory()
    if limit is not None and need > limit:
        what = "the read limit unblur.io.MAX_READ_BYTES" if MAX_READ_BYTES is not None else "the memory available"
        raise InputError(f"{name} claims {' x '.join(str(int(k)) for k in shape)} = {n:.3g} values "
                         f"({_gib(need)} to read whole as float32), more than {what} ({_gib(limit)})",
                         "read it block by block with unblur.io.open_image, or check the file: its header may be corrupt")


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
    from ..psf.core import prepare_psf  # torch: imported only where a PSF is read

    return prepare_psf(raw, spatial_ndim=spatial_ndim, image_shape=image_shape, negative=negative,
                       center=center, name=f"PSF {Path(path).name}", report=report)


def check_writable(path, overwrite: bool = False) -> Path:
    """Refuse early (before computing) if ``path`` cannot be written."""
    path = Path(path)
    suffix = path.suffix.lower()
    require(suffix in TIFF_SUFFIXES + RASTER_SUFFIXES + FITS_SUFFIXES + (".npy", ".zarr"),
            f"unsupported output type {suffix or '(none)'!r}",
            "use .tif, .ome.tif, .zarr, .ome.zarr, .png, .jpg, .fits or .npy")
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
    return np.round(np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0) * maxv).astype(dt)


def _as_float(arr: np.ndarray) -> np.ndarray:
    """Integer arrays scaled by their type's maximum, bool as 0/1 (``docs/conventions.md``); floats kept."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype.kind in "ui":
        return arr.astype(np.float32) / np.float32(integer_scale(arr.dtype))
    require(arr.dtype.kind == "f", f"cannot write an array of dtype {arr.dtype}", "give a real-valued image")
    return arr


def _clip_note(arr: np.ndarray, bits: int) -> str | None:
    """The share of values outside [0, 1] (and non-finite) that an integer output clips; None if none."""
    n = max(arr.size, 1)
    hi, lo = int(np.count_nonzero(arr > 1)), int(np.count_nonzero(arr < 0))
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if not (hi or lo or bad):
        return None
    parts = [f"{100 * hi / n:.3g}% of values above 1", f"{100 * lo / n:.3g}% below 0"]
    if bad:
        parts.append(f"{100 * bad / n:.3g}% not finite (written as 0)")
    return (f"{bits}-bit output clipped {', '.join(parts)} to [0, 1]; "
            "write a float32 TIFF (bits 32, --bits 32) to keep them")


def _output_bits(bits, suffix: str, metadata) -> int | None:
    """The bit depth rule: ``bits`` when given; else 16 for PNG and TIFF outputs of a 16-bit source."""
    if bits is None and metadata is not None and str(metadata.dtype) == "uint16" and suffix in (".png",) + TIFF_SUFFIXES:
        return 16
    return bits


def _attach_alpha(arr: np.ndarray, alpha, path: Path, notes: list) -> tuple[np.ndarray, bool]:
    """Put a set-aside alpha channel back when the output can hold it (PNG, plain TIFF)."""
    suffix = path.suffix.lower()
    if suffix != ".png" and (suffix not in TIFF_SUFFIXES or is_ome_name(path)):
        notes.append(f"alpha channel not written ({suffix} output holds none); write .png or .tif to keep it")
        return arr, False
    alpha = np.asarray(alpha, np.float32)
    fits = arr.shape[:2] == alpha.shape and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3))
    if not fits:
        notes.append(f"alpha channel not written (output shape {arr.shape} does not match the "
                     f"source's {alpha.shape} gray or RGB pixels)")
        return arr, False
    notes.append("alpha channel of the source written back unchanged")
    return np.concatenate([arr.reshape(*arr.shape[:2], -1), alpha[..., None]], axis=-1), True


def write_image(path, image, overwrite: bool = False, bits: int | None = None,
                metadata: ImageMetadata | None = None, notes: list | None = None) -> Path:
    """Write ``image`` atomically (see the module docstring for the rules).

    ``bits=None``: the source's depth for a 16-bit source (``metadata.dtype == "uint16"``) written
    as PNG or TIFF, else float32 TIFF for ``.tif`` (values kept) and 8-bit for PNG/JPEG;
    FITS and ``.npy`` are always float32.  ``bits=8/16``: clip to [0, 1] and scale by 255 / 65535
    (PNG supports 8 and 16, JPEG only 8); the share of clipped values is noted.  Integer
    arrays are first scaled by their type's maximum, as integer files are on reading.

    ``metadata`` (an :class:`~unblur.metadata.ImageMetadata`, e.g. from
    ``read_image(..., with_metadata=True)``) is kept: ``.tif`` becomes an ImageJ hyperstack
    with resolution, ``spacing`` and channel names; ``.ome.tif`` / ``.ome.tiff`` is always an
    OME-TIFF (physical sizes, channels, axes); ``.zarr`` / ``.ome.zarr`` are written as by
    :func:`create_output`.  Its ``axes`` must name the array's axes (a leading ``T`` missing
    from the array is ignored); without axes they follow from the shape (``YX``, ``YXC`` when a
    3-axis array has at most 4 values last, ``ZYX``, ``ZYXC``).  Its ``alpha`` is appended as
    the last channel of PNG and plain TIFF outputs.

    ``notes``: a list that receives one line per thing the writer did to the data (clipping,
    alpha written back or not; the lines do not name the file, which may be a temporary one); when None, the lines about lost data (clipping, alpha not
    written) are issued as ``UserWarning``.
    """
    path = check_writable(path, overwrite)
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    arr = _as_float(arr)
    suffix = path.suffix.lower()
    require(bits in (None, 8, 16, 32), f"bits must be 8, 16 or 32, got {bits}")
    bits = _output_bits(bits, suffix, metadata)
    said: list = []
    try:
        return _write(path, arr, overwrite, bits, metadata, suffix, said)
    finally:
        if notes is not None:
            notes.extend(said)
        else:
            for line in said:  # what was lost; "written back" lines are only for a log
                if "clipped" in line or "not written" in line:
                    warnings.warn(line, UserWarning, stacklevel=2)


def _write(path: Path, arr: np.ndarray, overwrite: bool, bits, metadata, suffix: str, notes: list) -> Path:
    integer = bits in (8, 16) or (bits is None and suffix in RASTER_SUFFIXES)
    if suffix in FITS_SUFFIXES:
        require(bits in (None, 32), f"FITS output is float32, not {bits}-bit", "drop --bits or write .png / .tif")
        fits = _astropy_fits("writing")
    elif suffix in (".jpg", ".jpeg"):
        require(bits in (None, 8), "JPEG holds only 8-bit data", "use .png or .tif for 16-bit")
    elif suffix in RASTER_SUFFIXES:
        require(bits in (None, 8, 16), "PNG output is 8- or 16-bit", "use .tif for float32")
    if suffix in RASTER_SUFFIXES:
        require(arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)),
                f"cannot write an array of shape {arr.shape} as {suffix}", "write stacks as .tif")
    if integer:
        clip = _clip_note(arr, bits or 8)
        if clip:
            notes.append(clip)
    alpha = getattr(metadata, "alpha", None) if metadata is not None else None
    with_alpha = False
    if alpha is not None:
        arr, with_alpha = _attach_alpha(arr, alpha, path, notes)
    shown = arr[..., :-1] if with_alpha and arr.ndim == 3 else arr
    plain_tiff = suffix in TIFF_SUFFIXES and is_picture(metadata, shown) and not is_ome_name(path)
    extras = picture_extras(metadata, shown, ".ome.tif" if is_ome_name(path) else suffix, notes)
    if not with_alpha and (suffix == ".zarr" or (suffix in TIFF_SUFFIXES and not plain_tiff
                                                 and (metadata is not None or is_ome_name(path)))):
        return _write_named(path, arr, overwrite, bits, metadata)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile
            data = arr.astype(np.float32) if bits in (None, 32) else _to_integer(arr, bits)
            color = data.ndim == 3 and data.shape[-1] in ((3, 4) if with_alpha else (3,))
            extra = {"extrasamples": ["unassalpha"]} if with_alpha else {}
            tifffile.imwrite(tmp, data, photometric="rgb" if color else "minisblack", **extra, **extras)
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr.astype(np.float32))
        elif suffix in FITS_SUFFIXES:
            data = np.ascontiguousarray(arr, dtype=np.float32)
            fits.PrimaryHDU(data, header=fits_header(fits, metadata, data.shape, notes)).writeto(tmp, overwrite=True)
        elif (bits or 8) == 16:
            from .png import encode_png16
            with open(tmp, "wb") as f:
                f.write(encode_png16(_to_integer(arr, 16), **extras))
        elif suffix == ".bmp":
            import imageio.v3 as iio
            iio.imwrite(tmp, _to_integer(arr, 8), extension=suffix)
        else:
            from PIL import Image
            a8 = _to_integer(arr, 8)
            jpeg = suffix in (".jpg", ".jpeg")
            opts = {"quality": 95, "subsampling": 0} if jpeg else {}
            Image.fromarray(a8[..., 0] if a8.ndim == 3 and a8.shape[-1] == 1 else a8).save(
                tmp, format="JPEG" if jpeg else "PNG", **opts, **extras)
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


def _plane(a: np.ndarray) -> np.ndarray:
    """2-D (or H, W, 3) plane of an image for previews: the middle z slice of stacks."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] not in (3,):
        a = a[a.shape[0] // 2]
    if a.ndim == 4:
        a = a[a.shape[0] // 2]
    return a


def _display(a: np.ndarray) -> np.ndarray:
    """A plane (:func:`_plane`) percentile-scaled to [0, 1] for display."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1
    return np.clip((a - lo) / (hi - lo), 0, 1)


#: Longest side (px) of a preview panel: larger images are shown reduced by an integer factor (area mean).
PREVIEW_MAX_SIDE = 1024


def _reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks (the last partial blocks dropped)."""
    if factor == 1:
        return a
    h, w = a.shape[0] // factor, a.shape[1] // factor
    blocks = a[: h * factor, : w * factor].reshape(h, factor, w, factor, *a.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def preview_png(path, panels: list[tuple[str, np.ndarray]], overwrite: bool = True,
                max_side: int = PREVIEW_MAX_SIDE) -> Path:
    """Write a PNG with ``panels`` (title, image) tiled left to right, each scaled for display.

    Panels are separated by a white 4-px gap, each top-aligned on a white canvas as tall as the
    tallest; titles are not drawn (no plotting dependency): the commands name the panel order in
    their ``--help`` (``deconvolve``: input | restored; ``blind``: input | restored | kernel).
    When a panel's longer side exceeds ``max_side``, every panel is reduced by the same integer
    factor (means over blocks) so that the panels still match pixel for pixel; the output files
    keep the full resolution.
    """
    displayed = [_plane(img) for _, img in panels]
    side = max(max(a.shape[:2]) for a in displayed)
    factor = max(1, -(-side // max_side))
    views = [_display(_reduce(np.asarray(a, np.float32), factor)) for a in displayed]
    h = max(v.shape[0] for v in views)
    rgb = [np.repeat(v[..., None], 3, axis=-1) if v.ndim == 2 else v[..., :3] for v in views]
    padded = [np.pad(v, ((0, h - v.shape[0]), (0, 4), (0, 0)), constant_values=1.0) for v in rgb]
    canvas = np.concatenate(padded, axis=1)[:, :-4]
    return write_image(path, canvas, overwrite=overwrite, bits=8)


__all__ = ["FITS_SUFFIXES", "integer_scale", "MAX_READ_BYTES", "check_claimed_size", "RASTER_SUFFIXES", "TIFF_SUFFIXES", "ImageMetadata", "LazyImage", "OutputWriter",
           "check_writable", "create_output", "open_image", "preview_png", "read_image", "read_metadata", "read_psf",
           "write_image"]
