"""Metadata beside the pixels of pictures and FITS images (:mod:`unblur.io`'s rules).

* Pictures (PNG, JPEG; TIFF's ICC profile is read by :func:`unblur.io.read_image`): the ICC colour profile,
  the EXIF block and the dpi are read into :class:`~unblur.metadata.ImageMetadata` and given back to the
  PNG and JPEG writers, the profile and dpi to the plain-TIFF writer (:func:`picture_extras`), with a note
  for an output that cannot hold them.  A gray or RGB picture is written as a plain one-page TIFF
  (:func:`is_picture`).  A CMYK JPEG is converted to RGB (:func:`cmyk_to_rgb`).
* FITS: the first image HDU's header is kept (:func:`read_fits`) and written back into FITS outputs of the
  same number of axes without its structural keywords (:func:`fits_header`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import require
from ..metadata import ImageMetadata

FITS_SUFFIXES = (".fits", ".fit", ".fts")

_EXIF_HEADER = b"Exif\x00\x00"


def read_picture_metadata(path: Path, meta: ImageMetadata) -> str | None:
    """ICC profile, EXIF block and dpi of a PNG or JPEG (its header only, through Pillow) into ``meta``;
    returns Pillow's mode of the picture (None when Pillow cannot open it)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            info, mode = dict(im.info), im.mode
    except Exception:  # the pixels were read: the header's extras are optional
        return None
    icc, exif, dpi = info.get("icc_profile"), info.get("exif"), info.get("dpi")
    meta.icc_profile = bytes(icc) if icc else None
    if exif:
        exif = bytes(exif)
        meta.exif = exif if exif.startswith(_EXIF_HEADER) else _EXIF_HEADER + exif
    if dpi and all(float(v) > 0 for v in dpi):
        meta.dpi = tuple(round(float(v), 2) for v in dpi[:2])  # PNG stores pixels per metre
    return mode


def cmyk_to_rgb(path: Path, meta: ImageMetadata) -> np.ndarray:
    """A CMYK JPEG as RGB by Pillow's conversion (approximate colours; a CMYK colour profile is not applied
    and is dropped, as it does not describe RGB values); noted in ``meta.notes``.  Read as 4 channels, the
    black ink would pass for an alpha channel."""
    from PIL import Image
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    dropped = " (its CMYK colour profile not applied and dropped)" if meta.icc_profile else ""
    meta.icc_profile = None
    meta.notes.append(f"{path.name}: CMYK converted to RGB, approximate colours{dropped}; "
                      "convert it to RGB with its colour profile first for exact colours")
    return arr


def _icc_fits(profile: bytes, channels: int) -> bool:
    """Whether an ICC profile's data colour space (header bytes 16-19) describes ``channels`` channels."""
    space = bytes(profile[16:20]) if len(profile) >= 20 else b""
    return (space == b"RGB " and channels == 3) or (space == b"GRAY" and channels == 1)


def _exif_orientation(exif: bytes) -> int:
    from PIL import Image
    try:
        tags = Image.Exif()
        tags.load(exif)
        return int(tags.get(0x0112, 1))
    except Exception:
        return 1


def is_picture(metadata, arr: np.ndarray) -> bool:
    """Whether ``metadata`` is a picture's (not from an ImageJ, OME or Zarr file; axes at most ``YXC``; no voxel
    sizes or channel names) and ``arr`` a gray or RGB(A) picture: a TIFF output is then a plain RGB/gray TIFF,
    as photo software expects, not an ImageJ hyperstack of one page per channel."""
    return (metadata is not None and metadata.format not in ("imagej", "ome-tiff", "ome-zarr", "zarr")
            and metadata.axes in (None, "", "YX", "YXC") and not metadata.sizes and not metadata.channel_names
            and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))))


def picture_extras(metadata, arr: np.ndarray, suffix: str, notes: list) -> dict:
    """The ICC profile, EXIF and dpi of ``metadata`` that an output of ``arr`` can carry, as keyword arguments
    of its writer (Pillow's for PNG and JPEG, ``tifffile.imwrite``'s for a plain TIFF,
    :func:`unblur.io.png.encode_png16`'s), with notes on what is not written."""
    if metadata is None:
        return {}
    if getattr(metadata, "fits_header", None) and suffix not in FITS_SUFFIXES:
        notes.append(f"FITS header of the source (WCS, exposure) not written ({suffix} output); write .fits to keep it")
    icc, exif, dpi = (getattr(metadata, n, None) for n in ("icc_profile", "exif", "dpi"))
    tiff = suffix in (".tif", ".tiff") and is_picture(metadata, arr)
    lost = [n for n, v in (("ICC colour profile", icc and not tiff), ("EXIF", exif)) if v]
    if suffix not in (".png", ".jpg", ".jpeg") and lost:
        turned = exif and _exif_orientation(exif) != 1
        notes.append(f"the source's {' and '.join(lost)} not written ({suffix} output holds none here)"
                     + ("; its EXIF orientation is lost, so viewers show the output unturned" if turned else "")
                     + "; write .png or .jpg to keep them")
    if suffix not in (".png", ".jpg", ".jpeg") and not tiff:
        return {}
    out = {}
    channels = 1 if arr.ndim == 2 else arr.shape[-1]
    if icc:
        if _icc_fits(icc, channels):
            out["iccprofile" if tiff else "icc_profile"] = icc
        else:
            space = bytes(icc[16:20]).decode("latin-1").strip() or "other"
            notes.append(f"ICC colour profile of the source not written: it describes {space} data, "
                         f"the output has {channels} channel(s)")
    if exif and not tiff:
        out["exif"] = exif
    if dpi:
        out.update({"resolution": tuple(dpi), "resolutionunit": "INCH"} if tiff else {"dpi": tuple(dpi)})
    return out


def read_fits(path: Path, meta: ImageMetadata) -> np.ndarray:
    """The first image HDU of a FITS file (``BSCALE``/``BZERO`` applied: unsigned 16-bit cameras store
    ``BZERO = 32768``), its header into ``meta.fits_header``.  Memory-mapped where the data are stored
    unscaled; astropy cannot map scaled data, which are then read whole."""
    from . import _astropy_fits
    fits = _astropy_fits("reading")
    with fits.open(str(path), memmap=True) as hdul:
        hdu = _first_image_hdu(hdul, path.name)
        if not any(k in hdu.header for k in ("BZERO", "BSCALE", "BLANK")):
            meta.fits_header = hdu.header.tostring()
            return np.array(hdu.data)
    with fits.open(str(path), memmap=False) as hdul:
        hdu = _first_image_hdu(hdul, path.name)
        meta.fits_header = hdu.header.tostring()
        return np.array(hdu.data)


def _first_image_hdu(hdul, name: str):
    from . import check_claimed_size
    hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) > 0), None)
    require(hdu is not None, f"{name} holds no image", "give a FITS file with an image HDU")
    check_claimed_size(hdu.shape, np.float32, name)
    return hdu


#: FITS keywords that describe the stored array rather than the observation: not carried to an output.
_FITS_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "BSCALE", "BZERO",
                    "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER")


def fits_header(fits, metadata, shape: tuple, notes: list):
    """The source's FITS header (``metadata.fits_header``) for an output of ``shape``, structural keywords
    removed; None when there is none.  A different number of axes drops it with a note (its WCS would not
    describe the output)."""
    text = getattr(metadata, "fits_header", None) if metadata is not None else None
    if not text:
        return None
    header = fits.Header.fromstring(text)
    if int(header.get("NAXIS", len(shape))) != len(shape):
        notes.append(f"FITS header of the source not written: it describes {header.get('NAXIS')} axes, "
                     f"the output has {len(shape)}")
        return None
    for key in list(header.keys()):
        if key.rstrip("0123456789") in _FITS_STRUCTURAL:
            header.remove(key, ignore_missing=True, remove_all=True)
    return header
