"""TIFF metadata: ImageJ hyperstacks and OME-TIFF, read into and written from :class:`ImageMetadata`.

Read: tifffile's first series gives the stored axes.  ImageJ files give the pixel size from the
X/Y resolution tags with ImageJ's ``unit`` (``yunit``/``zunit`` where set), the z step from
``spacing``, the frame interval from ``finterval`` and channel names from the slice labels
(when they repeat per channel).  OME-TIFF gives ``PhysicalSizeX/Y/Z`` with their units (default
micrometre), ``TimeIncrement`` and per-channel ``Name``, ``EmissionWavelength`` and
``ExcitationWavelength`` (nanometres).  Plain TIFF (no ImageJ or OME metadata) names no axes:
the array is returned as stored, as before.

Write: ImageJ hyperstack (axes ``TZCYX``, resolution, ``spacing``, ``unit``, channel names as
slice labels) or OME-TIFF (``ome=True``), both uncompressed and contiguous.
"""

from __future__ import annotations

import numpy as np

from ..errors import require
from ..metadata import UNIT_SYMBOLS, ImageMetadata, axis_order, normalize_unit

_UNNAMED = ("shaped", "generic", "uniform")
IMAGEJ_ORDER = "TZCYX"


def read_tiff_metadata(tif, series_index: int = 0):
    """``(series, metadata, drop, perm)`` for a ``tifffile.TiffFile``; ``drop``/``perm`` are None
    when the file does not name its axes (see :func:`unblur.metadata.axis_order`)."""
    series = tif.series[series_index]
    kind = (series.kind or "").lower()
    meta = ImageMetadata(axes_read=series.axes, shape_read=tuple(series.shape), dtype=str(series.dtype),
                         format="ome-tiff" if tif.is_ome else ("imagej" if tif.is_imagej else "tiff"))
    if kind in _UNNAMED:
        return series, meta, None, None
    drop, perm, axes, notes = axis_order(series.axes, series.shape)
    meta.axes, meta.notes = axes, notes
    if tif.is_ome and tif.ome_metadata:
        _ome_fields(tif.ome_metadata, series_index, meta)
    elif tif.is_imagej:
        _imagej_fields(tif, series, meta)
    return series, meta, drop, perm


def check_tiff_claim(tif, series, name: str) -> None:
    """Refuse a TIFF whose uncompressed pixels cannot fit in the file (a corrupt or crafted header).

    Runs on the header alone, before any pixel is read or allocated: an uncompressed series of
    shape ``S`` needs ``prod(S) * itemsize`` bytes of the file.  Compressed data are not checked
    here (their size is bounded by :func:`unblur.io.check_claimed_size` on whole reads).
    """
    from ..errors import InputError
    page = series.keyframe
    if getattr(page, "compression", 1) != 1:
        return
    n = 1
    for k in series.shape:
        n *= int(k)
    need = n * np.dtype(series.dtype).itemsize
    have = int(tif.filehandle.size)
    if need > have:
        shape = " x ".join(str(int(k)) for k in series.shape)
        raise InputError(f"{name} claims {shape} = {n:.3g} uncompressed values ({need:.3g} bytes) "
                         f"but the file holds {have} bytes",
                         "the file is truncated, corrupt or crafted; re-export it")


def _imagej_fields(tif, series, meta: ImageMetadata) -> None:
    ij = tif.imagej_metadata or {}
    unit = ij.get("unit")
    page = series.keyframe
    for key, tag in (("x", "XResolution"), ("y", "YResolution")):
        t = page.tags.get(tag)
        u = normalize_unit(ij.get(f"{key}unit", unit) if key == "y" else unit)
        if t is not None and u is not None:
            num, den = t.value
            if num > 0 and den > 0 and (num, den) != (1, 1):
                meta.sizes[key], meta.units[key] = den / num, u
    uz = normalize_unit(ij.get("zunit", unit))
    if ij.get("spacing") and uz is not None:
        meta.sizes["z"], meta.units["z"] = float(ij["spacing"]), uz
    if ij.get("finterval"):
        meta.sizes["t"], meta.units["t"] = float(ij["finterval"]), "second"
    labels = ij.get("Labels")
    nc = dict(zip(series.axes, series.shape)).get("C", 1)
    if labels and nc > 1 and len(labels) % nc == 0 and all(labels[i] == labels[i % nc] for i in range(len(labels))):
        meta.channel_names = [str(s) for s in labels[:nc]]


def _ome_fields(xml: str, index: int, meta: ImageMetadata) -> None:
    from tifffile import xml2dict
    images = xml2dict(xml).get("OME", {}).get("Image", [])
    images = images if isinstance(images, list) else [images]
    if index >= len(images):
        return
    px = images[index].get("Pixels", {})
    for key in "XYZ":
        v = px.get(f"PhysicalSize{key}")
        u = normalize_unit(px.get(f"PhysicalSize{key}Unit", "µm"))
        if v is not None and u is not None:
            meta.sizes[key.lower()], meta.units[key.lower()] = float(v), u
    if px.get("TimeIncrement"):
        meta.sizes["t"], meta.units["t"] = float(px["TimeIncrement"]), "second"
    ch = px.get("Channel", [])
    ch = ch if isinstance(ch, list) else [ch]
    if ch and any("Name" in c for c in ch):
        meta.channel_names = [str(c.get("Name", f"C{i}")) for i, c in enumerate(ch)]
    for attr, field in (("EmissionWavelength", "emission_wavelengths"), ("ExcitationWavelength", "excitation_wavelengths")):
        vals = [_nanometres(c.get(attr), c.get(attr + "Unit", "nm")) for c in ch]
        if any(v is not None for v in vals):
            setattr(meta, field, vals)


def _nanometres(value, unit) -> float | None:
    from ..metadata import to_micrometers
    um = to_micrometers(value, unit) if value is not None else None
    return None if um is None else round(um * 1e3, 6)


def stored_layout(axes: str, order: str) -> tuple[str, tuple[int, ...]]:
    """Stored axes (``axes`` letters sorted by ``order``) and the transpose from unblur order."""
    stored = "".join(a for a in order if a in axes)
    require(len(stored) == len(axes), f"axes {axes!r} cannot be written", "use axes among T, Z, C, Y, X")
    return stored, tuple(axes.index(a) for a in stored)


def default_axes(shape) -> str:
    """Axes of an unnamed array from its shape (``YX``, ``ZYX``, ``ZYXC``, ``TZYXC``)."""
    return {2: "YX", 3: "ZYX", 4: "ZYXC", 5: "TZYXC"}[len(shape)]


def _common_unit(meta: ImageMetadata, keys) -> str:
    units = [meta.units.get(k) for k in keys if k in meta.sizes]
    return units[0] if units and all(u == units[0] for u in units) else "micrometer"


def _size_in(meta: ImageMetadata, key: str, unit: str) -> float | None:
    from ..metadata import to_micrometers
    if key not in meta.sizes:
        return None
    um, per = to_micrometers(meta.sizes[key], meta.units.get(key)), to_micrometers(1.0, unit)
    return None if um is None or per is None else um / per


def tiff_write_kwargs(meta: ImageMetadata | None, axes: str, ome: bool, nbytes: int) -> tuple[str, dict]:
    """``(stored_axes, kwargs)`` for ``tifffile.imwrite``/``memmap`` writing an array whose unblur
    axes are ``axes``; the data must be transposed to ``stored_axes`` first."""
    meta = meta or ImageMetadata()
    stored, _ = stored_layout(axes, IMAGEJ_ORDER)
    names = meta.channel_names
    if ome:
        md = {"axes": stored}
        for k in "xyz":
            if k in meta.sizes and normalize_unit(meta.units.get(k)):
                md[f"PhysicalSize{k.upper()}"] = float(meta.sizes[k])
                md[f"PhysicalSize{k.upper()}Unit"] = UNIT_SYMBOLS[normalize_unit(meta.units[k])]
        if "t" in meta.sizes:
            md["TimeIncrement"] = float(meta.sizes["t"])
            md["TimeIncrementUnit"] = "s"
        channel = {}
        if names:
            channel["Name"] = list(names)
        for attr, vals in (("EmissionWavelength", meta.emission_wavelengths),
                           ("ExcitationWavelength", meta.excitation_wavelengths)):
            if vals and all(v is not None for v in vals):
                channel[attr] = [float(v) for v in vals]
                channel[attr + "Unit"] = ["nm"] * len(vals)
        if channel and "C" in axes:
            md["Channel"] = channel
        return stored, {"ome": True, "imagej": False, "metadata": md, "photometric": "minisblack",
                        "bigtiff": nbytes > 2**32 - 2**25}
    unit = _common_unit(meta, "xyz")
    sym = "micron" if unit == "micrometer" else UNIT_SYMBOLS.get(unit, unit)
    md = {"axes": stored}
    kw = {"imagej": True, "ome": False, "metadata": md, "photometric": "minisblack"}
    sx, sy = _size_in(meta, "x", unit), _size_in(meta, "y", unit)
    if sx or sy:
        sx, sy = sx or sy, sy or sx
        kw["resolution"] = (1.0 / sx, 1.0 / sy)
        md["unit"] = sym
    sz = _size_in(meta, "z", unit)
    if sz and "Z" in axes:
        md["spacing"] = sz
        md["unit"] = sym
    if "t" in meta.sizes and "T" in axes:
        md["finterval"] = float(meta.sizes["t"])
    if names and "C" in axes:
        md["_channel_names"] = list(names)
    return stored, kw


def imagej_labels(kwargs: dict, stored: str, stored_shape) -> dict:
    """Turn channel names into ImageJ slice labels (one per plane, channel fastest)."""
    md = kwargs.get("metadata", {})
    names = md.pop("_channel_names", None)
    if names:
        planes = int(np.prod([n for a, n in zip(stored, stored_shape) if a in "TZC"] or [1]))
        nc = dict(zip(stored, stored_shape)).get("C", 1)
        if len(names) == nc:
            md["Labels"] = [names[i % nc] for i in range(planes)]
    return kwargs
