"""Image metadata: axes, physical voxel sizes, channels; PSF resampling to an image's voxel size.

Axis letters follow tifffile and OME: ``T`` time, ``Z`` depth, ``C`` channel, ``Y``, ``X``,
``S`` colour samples (RGB).  Arrays are returned in unblur's order (``docs/conventions.md``):
``YX``, ``YXC``, ``ZYX``, ``ZYXC``, with a leading ``T`` kept when a file holds more than one
time point (the caller loops over it).  Axes of length 1 are dropped; ``S`` becomes ``C``.

Physical sizes are kept in the file's own unit, spelt as OME-NGFF names it (``"micrometer"``,
``"nanometer"``, ...); :meth:`ImageMetadata.voxel_size` converts to micrometres.

Example
-------
>>> meta = ImageMetadata(axes="ZYX", sizes={"z": 0.3, "y": 0.1, "x": 0.1},
...                      units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
>>> meta.voxel_size(3)
(0.3, 0.1, 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import InputError, require

#: unit spellings found in ImageJ / OME / NGFF files -> (NGFF name, size in micrometres)
_UNITS = {
    "m": ("meter", 1e6), "meter": ("meter", 1e6),
    "cm": ("centimeter", 1e4), "centimeter": ("centimeter", 1e4),
    "mm": ("millimeter", 1e3), "millimeter": ("millimeter", 1e3),
    "um": ("micrometer", 1.0), "µm": ("micrometer", 1.0), "μm": ("micrometer", 1.0),
    "\\u00b5m": ("micrometer", 1.0), "micron": ("micrometer", 1.0), "microns": ("micrometer", 1.0),
    "micrometer": ("micrometer", 1.0), "micrometre": ("micrometer", 1.0),
    "nm": ("nanometer", 1e-3), "nanometer": ("nanometer", 1e-3), "nanometre": ("nanometer", 1e-3),
    "pm": ("picometer", 1e-6), "picometer": ("picometer", 1e-6),
    "a": ("angstrom", 1e-4), "å": ("angstrom", 1e-4), "angstrom": ("angstrom", 1e-4),
    "in": ("inch", 25400.0), "inch": ("inch", 25400.0),
}
#: NGFF unit name -> symbol used in OME-TIFF and ImageJ files
UNIT_SYMBOLS = {"meter": "m", "centimeter": "cm", "millimeter": "mm", "micrometer": "µm",
                "nanometer": "nm", "picometer": "pm", "angstrom": "Å", "inch": "in"}
SPATIAL = ("z", "y", "x")


def normalize_unit(unit) -> str | None:
    """NGFF name of a length unit (``"um"``, ``"micron"``, ``"µm"`` -> ``"micrometer"``); None if unknown.

    ``"pixel"``, empty and unknown spellings give None: the size is then not physical.
    """
    if unit is None:
        return None
    key = str(unit).strip().lower()
    return _UNITS[key][0] if key in _UNITS else None


def to_micrometers(value: float, unit: str | None) -> float | None:
    """``value`` expressed in micrometres; None when the unit is not a known length unit."""
    name = normalize_unit(unit)
    return None if name is None or value is None else float(value) * _UNITS[name][1]


@dataclass
class ImageMetadata:
    """What a file says about its array, beside the pixels.

    Attributes
    ----------
    axes : str or None
        Axes of the array as unblur returns it (``"ZYXC"``, ``"YX"``, ``"TZYX"``, ...); None when
        the file does not name its axes (plain TIFF, ``.npy``): the array is then returned as
        stored and the caller decides (``docs/conventions.md``, Files).
    axes_read : str or None
        Axes as stored in the file (tifffile / OME letters, e.g. ``"ZCYX"``).
    shape_read : tuple
        Shape as stored in the file.
    sizes : dict
        Physical size of one pixel along ``"x"``, ``"y"``, ``"z"`` (and ``"t"``, seconds), in
        ``units``; missing keys are unknown.
    units : dict
        NGFF unit name per key of ``sizes`` (``"micrometer"``, ``"nanometer"``, ``"second"``).
    channel_names : list of str or None
        One name per channel, when the file names them.
    emission_wavelengths, excitation_wavelengths : list of float or None
        Per channel, in nanometres (None entries where unknown).
    dtype : str or None
        The stored sample type (``"uint16"``, ``"float32"``, ...); the array itself is float32.
    format : str
        Where the metadata came from: ``"imagej"``, ``"ome-tiff"``, ``"tiff"``, ``"ome-zarr"``,
        ``"zarr"``, ``"png"``, ``"npy"``, ...
    notes : list of str
        What was interpreted or changed on reading (a generic axis read as Z, an alpha channel
        set aside), for the caller to show and log.
    alpha : ndarray or None
        The alpha channel of an RGBA or gray+alpha picture, ``(H, W)`` float32 in [0, 1], set
        aside on reading (:func:`unblur.io.read_image`) and put back by
        :func:`unblur.io.write_image` into PNG and TIFF outputs; None when there was none or it
        was fully opaque.
    icc_profile : bytes or None
        The picture's ICC colour profile (PNG ``iCCP``, JPEG ``APP2``, TIFF tag 34675): the colour space
        its values are in.  Written back into PNG, JPEG and plain TIFF outputs whose channels it
        describes (the restoration works on the stored values, so they stay in that colour space).
    exif : bytes or None
        The picture's EXIF block (PNG ``eXIf``, JPEG ``APP1``): camera, exposure, date and orientation.
        Written back into PNG and JPEG outputs; pixels are read as stored, without applying the
        orientation, so a viewer shows the output turned as it shows the input.
    dpi : tuple of float or None
        Print resolution ``(x, y)`` in dots per inch, when the picture states one.
    fits_header : str or None
        The header of a FITS image (its 80-character cards; WCS, exposure, instrument, units), written
        back into FITS outputs of the same pixel grid without its structural keywords (``BITPIX``,
        ``NAXISn``, ``BSCALE``, ``BZERO``, checksums), which describe the stored array.
    """

    axes: str | None = None
    axes_read: str | None = None
    shape_read: tuple = ()
    sizes: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    channel_names: list | None = None
    emission_wavelengths: list | None = None
    excitation_wavelengths: list | None = None
    dtype: str | None = None
    format: str = ""
    notes: list = field(default_factory=list)
    alpha: np.ndarray | None = field(default=None, repr=False, compare=False)
    icc_profile: bytes | None = field(default=None, repr=False, compare=False)
    exif: bytes | None = field(default=None, repr=False, compare=False)
    dpi: tuple | None = None
    fits_header: str | None = field(default=None, repr=False, compare=False)

    def voxel_size(self, ndim: int | None = None) -> tuple:
        """Pixel size in micrometres per spatial axis, ``(z, y, x)`` or ``(y, x)`` for ``ndim=2``.

        Entries are None where the file gives no physical size.  ``ndim`` defaults to 3 when the
        array has a Z axis, else 2.
        """
        if ndim is None:
            ndim = 3 if self.axes and "Z" in self.axes else 2
        require(ndim in (2, 3), f"voxel_size takes ndim 2 or 3, got {ndim}")
        keys = SPATIAL[3 - ndim:]
        return tuple(to_micrometers(self.sizes.get(k), self.units.get(k)) if k in self.sizes else None
                     for k in keys)

    def with_voxel_size(self, voxel, unit: str = "micrometer") -> "ImageMetadata":
        """A copy with physical sizes ``(z, y, x)`` or ``(y, x)`` set (None entries left unknown)."""
        keys = SPATIAL[3 - len(voxel):]
        sizes, units = dict(self.sizes), dict(self.units)
        for k, v in zip(keys, voxel):
            if v is not None:
                sizes[k], units[k] = float(v), normalize_unit(unit) or unit
        return replace(self, sizes=sizes, units=units)

    def describe(self) -> str:
        """One line for notes and ``--verbose`` output, e.g. ``axes ZYXC, voxel 0.3 x 0.1 x 0.1 µm``."""
        parts = [f"axes {self.axes or '(not named)'}" + (f" (stored {self.axes_read})" if self.axes_read and self.axes_read != self.axes else "")]
        vox = [(k, self.sizes[k], self.units.get(k)) for k in SPATIAL if k in self.sizes]
        if vox:
            parts.append("voxel " + " x ".join(f"{k}={v:.4g} {UNIT_SYMBOLS.get(u, u or 'px')}" for k, v, u in vox))
        if self.channel_names:
            parts.append("channels " + ", ".join(self.channel_names))
        return ", ".join(parts)


# --- axes -------------------------------------------------------------------------------------------

_KNOWN = set("TZCSYX")


def unblur_axes(axes_read: str, shape) -> tuple[str, list[str]]:
    """Map stored axes to unblur's order; return ``(axes, notes)``.

    Rules: length-1 axes are dropped; ``S`` (colour samples) is a channel axis; one other axis
    with more than one value (tifffile's ``I``/``Q`` for a plain sequence of planes) is read as Z
    when the file has no Z; anything else cannot be interpreted and raises :class:`InputError`.
    The result is ``[T]`` + ``[Z]`` + ``YX`` + ``[C]``.
    """
    axes_read = axes_read.upper()
    require(len(axes_read) == len(shape), f"axes {axes_read!r} do not match the shape {tuple(shape)}",
            "fix the file's axis metadata")
    kept = {a: n for a, n in zip(axes_read, shape) if n > 1 or a in "YX"}
    notes = []
    fix = "save the image as an ImageJ hyperstack or OME-TIFF with axes among T, Z, C, Y, X, or split it"
    require("Y" in kept and "X" in kept, f"axes {axes_read} have no Y and X", fix)
    if "S" in kept:
        require("C" not in kept, f"axes {axes_read}: both channels (C) and colour samples (S)", fix)
        kept["C"] = kept.pop("S")
    unknown = [a for a in kept if a not in _KNOWN]
    if unknown:
        require(len(unknown) == 1 and "Z" not in kept,
                f"cannot interpret axes {axes_read} of shape {tuple(shape)} (unknown axis {', '.join(unknown)})", fix)
        notes.append(f"axis {unknown[0]} ({kept[unknown[0]]} planes) read as Z")
    axes = "".join(a for a in "TZ" if a in kept) + ("Z" if unknown else "") + "YX" + ("C" if "C" in kept else "")
    return axes, notes


def axis_order(axes_read: str, shape) -> tuple[tuple[int, ...], tuple[int, ...], str, list[str]]:
    """How to turn a stored array into unblur's order.

    Returns ``(drop, perm, axes, notes)``: index 0 is taken on the stored axes ``drop`` (length 1),
    then ``np.transpose(arr, perm)`` gives axes ``axes``.
    """
    axes, notes = unblur_axes(axes_read, shape)
    stored = axes_read.upper().replace("S", "C")
    drop = tuple(i for i, (a, n) in enumerate(zip(axes_read.upper(), shape)) if n == 1 and a not in "YX")
    rest = [a for i, a in enumerate(stored) if i not in drop]
    rest = ["Z" if a not in _KNOWN else a for a in rest]
    perm = tuple(rest.index(a) for a in axes)
    return drop, perm, axes, notes


# --- PSF voxel size -----------------------------------------------------------------------------------

def resample_psf(psf: np.ndarray, psf_voxel, image_voxel, max_shape=None) -> np.ndarray:
    """Resample a PSF from its voxel size to the image's; keep the centre, the parity and sum 1.

    The output pixel ``o`` (centre ``c' = n' // 2``) samples the input at ``c + (o - c') s`` where
    ``s = image_voxel / psf_voxel`` per axis, with cubic spline interpolation.  When the image's voxels
    are coarser (``s > 1``) each output pixel averages ``ceil(s)`` samples per axis spread over
    its extent (pixel integration), so a narrow PSF keeps its width instead of being point-sampled.
    Output size ``n' = round(n / s)``, made odd for odd ``n``; negatives are clipped and the
    result normalised to sum 1.

    Parameters
    ----------
    psf : ndarray
        2-D or 3-D PSF, centre at ``n // 2`` per axis.
    psf_voxel, image_voxel : sequence of float
        Voxel sizes (same unit, one per axis of ``psf``).
    max_shape : sequence of int, optional
        Crop the result symmetrically about its centre to at most this shape.
    """
    from scipy.ndimage import map_coordinates

    p = np.asarray(psf, dtype=np.float64)
    s = np.asarray(image_voxel, float) / np.asarray(psf_voxel, float)
    require(p.ndim == len(s), f"PSF has {p.ndim} axes but {len(s)} voxel sizes were given")
    n_out = []
    for n, si in zip(p.shape, s):
        m = max(1, int(round(n / si)))
        if m % 2 != n % 2:
            m += 1 if m < n / si or m == 1 else -1
        n_out.append(m)
    if max_shape is not None:
        n_out = [min(m, lim - (lim % 2 != m % 2)) for m, lim in zip(n_out, max_shape)]
    c_in = np.array([n // 2 for n in p.shape], float)
    c_out = np.array([m // 2 for m in n_out], float)
    k = [max(1, int(np.ceil(si - 1e-9))) for si in s]
    grid = np.meshgrid(*[np.arange(m, dtype=float) for m in n_out], indexing="ij")
    out = np.zeros(n_out)
    subs = np.meshgrid(*[(np.arange(ki) + 0.5) / ki - 0.5 for ki in k], indexing="ij")
    for off in zip(*[g.ravel() for g in subs]):
        coords = [c_in[a] + (grid[a] + off[a] - c_out[a]) * s[a] for a in range(p.ndim)]
        out += map_coordinates(p, coords, order=3, mode="constant", cval=0.0)
    out = np.clip(out, 0, None)
    total = out.sum()
    require(total > 0, "the resampled PSF is empty", "check the PSF and the voxel sizes")
    return (out / total).astype(np.float32)


def match_psf_voxel(psf: np.ndarray, psf_voxel=None, image_voxel=None, *, rtol: float = 0.01,
                    max_shape=None, unknown: str = "assume") -> tuple[np.ndarray, list[str]]:
    """Bring a PSF to the image's voxel size; return ``(psf, notes)``.

    Parameters
    ----------
    psf : ndarray
        2-D ``(Y, X)`` or 3-D ``(Z, Y, X)`` PSF.
    psf_voxel, image_voxel : sequence of float or None, or ImageMetadata
        Voxel sizes in micrometres, ``(z, y, x)`` or ``(y, x)`` (None entries: unknown), or the
        metadata read with the files (:meth:`ImageMetadata.voxel_size`).
    rtol : float
        Relative difference below which sizes count as equal (no resampling).
    max_shape : sequence of int, optional
        The image's spatial shape: a resampled PSF is cropped to it.
    unknown : {"assume", "refuse"}
        When one side's size is unknown on an axis: assume both equal (with a note), or raise
        :class:`InputError`.

    Returns
    -------
    psf : ndarray
        The PSF, resampled when the sizes differ (float32, sum 1), else unchanged.
    notes : list of str
        One line per thing done or assumed, for the caller to print.
    """
    nd = np.ndim(psf)
    require(nd in (2, 3), f"PSF has {nd} axes", "give a 2-D or 3-D PSF")
    pv = psf_voxel.voxel_size(nd) if isinstance(psf_voxel, ImageMetadata) else psf_voxel
    iv = image_voxel.voxel_size(nd) if isinstance(image_voxel, ImageMetadata) else image_voxel
    pv = tuple(pv) if pv is not None else (None,) * nd
    iv = tuple(iv) if iv is not None else (None,) * nd
    require(len(pv) == nd and len(iv) == nd, f"voxel sizes {pv} / {iv} do not match a {nd}-D PSF",
            f"give {nd} sizes (z, y, x)" if nd == 3 else "give 2 sizes (y, x)")
    names = SPATIAL[3 - nd:]
    notes, src, dst = [], [], []
    for name, a, b in zip(names, pv, iv):
        if a is None or b is None:
            if a is None and b is None:
                src.append(1.0), dst.append(1.0)
                continue
            if unknown == "refuse":
                raise InputError(f"the {'PSF' if a is None else 'image'} voxel size along {name} is unknown "
                                 f"(the {'image' if a is None else 'PSF'}'s is {a or b:.4g} µm)",
                                 "give the PSF and image voxel sizes, or resample the PSF yourself")
            notes.append(f"{'PSF' if a is None else 'image'} voxel size along {name} unknown: assumed equal "
                         f"to the {'image' if a is None else 'PSF'}'s ({a or b:.4g} µm)")
            src.append(1.0), dst.append(1.0)
            continue
        require(a > 0 and b > 0, f"voxel sizes must be positive (PSF {a}, image {b} along {name})")
        src.append(a), dst.append(b)
    same = all(abs(a - b) <= rtol * max(a, b) for a, b in zip(src, dst))
    if same:
        return np.asarray(psf), notes
    out = resample_psf(psf, src, dst, max_shape=max_shape)
    require(all(m >= 1 for m in out.shape), "the resampled PSF has no pixels", "check the voxel sizes")
    fmt = lambda v: " x ".join(f"{x:.4g}" for x in v)  # noqa: E731
    notes.append(f"PSF resampled from voxel {fmt(src)} µm to the image's {fmt(dst)} µm "
                 f"(shape {tuple(np.shape(psf))} -> {out.shape})")
    return out, notes
