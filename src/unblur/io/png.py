"""16-bit PNG: reading and writing of 16-bit gray, gray+alpha, RGB and RGBA images.

Pillow (behind imageio) reads 16-bit colour PNGs as 8-bit and cannot write them; this module
follows the PNG specification for those cases: chunks ``IHDR``, ``IDAT`` (zlib stream of
filtered scanlines, samples big-endian), ``IEND``.  Writing uses the "Up" filter on every
scanline.  Reading undoes all five filter types (None, Sub, Up, Average, Paeth) by sweeping the
image along anti-diagonals (pixel ``(r, j)`` needs only ``(r, j-1)``, ``(r-1, j)`` and
``(r-1, j-1)``), so each step is one vectorised operation.  Interlaced (Adam7) 16-bit files are
refused with a message.

Reference: PNG Specification, Third Edition (W3C), sections 7 (encoding), 9 (filtering), 11 (chunks).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import InputError, require

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(arr: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None,
                 dpi: tuple | None = None) -> bytes:
    """The bytes of a 16-bit PNG holding ``arr`` (uint16, ``(H, W)`` or ``(H, W, C)``, C in 1..4), with an
    ``iCCP`` colour profile, an ``eXIf`` block (``exif`` with or without its ``Exif\\0\\0`` header) and a
    ``pHYs`` resolution (``dpi``, dots per inch) where given."""
    a = np.asarray(arr)
    require(a.dtype == np.uint16, f"16-bit PNG needs uint16 samples, got {a.dtype}")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    c = 1 if a.ndim == 2 else a.shape[-1]
    require(a.ndim in (2, 3) and c in (1, 2, 3, 4), f"cannot write an array of shape {a.shape} as PNG",
            "write stacks as .tif")
    h, w = a.shape[:2]
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.ascontiguousarray(a.astype(">u2")).reshape(h, w * c).view(np.uint8)
    up = raw.copy()
    up[1:] -= raw[:-1]  # filter type 2 (Up), modulo 256
    rows = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0)
    extra = b""
    if icc_profile:  # profile name, null, compression method 0 (zlib)
        extra += _chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(bytes(icc_profile)))
    if exif:
        exif = bytes(exif)
        extra += _chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    if dpi:  # pixels per metre, unit 1 (metre)
        extra += _chunk(b"pHYs", struct.pack(">IIB", *(int(round(float(d) / 0.0254)) for d in dpi[:2]), 1))
    return (SIGNATURE + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + _chunk(b"IEND", b""))


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """``(width, height, bit_depth, color_type, interlace)`` of a PNG, None when not a PNG."""
    if len(data) < 33 or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, color, interlace


def decode_png16(data: bytes, name: str = "PNG", check_size=None) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG to uint16 ``(H, W)`` or ``(H, W, C)``.

    ``check_size(shape, dtype)`` is called with the claimed shape before anything is allocated.
    """
    w, h, depth, color, interlace = png_header(data)
    require(depth == 16 and color in _COLOR_TYPES, f"{name} is not a 16-bit gray or colour PNG")
    require(interlace == 0, f"{name} is an interlaced 16-bit PNG, which unblur does not read",
            "save it without interlacing, or as TIFF")
    c = _COLOR_TYPES[color]
    shape = (h, w) if c == 1 else (h, w, c)
    require(w > 0 and h > 0, f"{name} claims {w} x {h} pixels", "the file is corrupt")
    if check_size is not None:
        check_size(shape, np.uint16)
    pos, idat = 8, []
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        elif kind == b"IEND":
            break
        pos += 12 + n
    bpp = 2 * c
    stride = w * bpp
    expected = h * (stride + 1)
    d = zlib.decompressobj()
    raw = d.decompress(b"".join(idat), expected)  # never more than the image needs
    if len(raw) != expected:
        raise InputError(f"{name}: the image data are truncated ({len(raw)} of {expected} bytes)",
                         "the file is corrupt")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    ftype = rows[:, 0].astype(np.int32)
    require(int(ftype.max()) <= 4, f"{name}: unknown scanline filter {int(ftype.max())}", "the file is corrupt")
    filt = rows[:, 1:].reshape(h, w, bpp).astype(np.int32)
    out = _unfilter(filt, ftype)
    return out.reshape(h, stride).view(">u2").astype(np.uint16).reshape(shape)


def _unfilter(filt: np.ndarray, ftype: np.ndarray) -> np.ndarray:
    """Undo the PNG filters of ``filt`` (H, W, bytes per pixel), row filter types ``ftype``."""
    h, w, _ = filt.shape
    if np.all(ftype <= 2):  # None, Sub, Up: one vectorised step per row
        out = np.empty_like(filt)
        prev = np.zeros_like(filt[0])
        for r in range(h):
            t = ftype[r]
            row = np.cumsum(filt[r], axis=0) if t == 1 else filt[r] + prev if t == 2 else filt[r]
            out[r] = prev = row & 255
        return out.astype(np.uint8)
    rec = np.zeros((h + 1, w + 1, filt.shape[2]), np.int32)  # a zero row above and column to the left
    for k in range(h + w - 1):  # anti-diagonal r + j = k
        r = np.arange(max(0, k - w + 1), min(h, k + 1))
        j = k - r
        a, b, c = rec[r + 1, j], rec[r, j + 1], rec[r, j]
        t = ftype[r][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([t == 1, t == 2, t == 3, t == 4], [a, b, (a + b) >> 1, paeth], 0)
        rec[r + 1, j + 1] = (filt[r, j] + pred) & 255
    return rec[1:, 1:].astype(np.uint8)
