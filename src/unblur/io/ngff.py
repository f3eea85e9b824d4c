"""Zarr and OME-Zarr (OME-NGFF) metadata.

Read: a group with ``multiscales`` (NGFF 0.4, or 0.5 under the ``ome`` attribute) gives the
first (full-resolution) dataset, the axes with their units, the physical sizes from its
``scale`` transformation and channel names from ``omero``.  A bare Zarr array written by unblur
carries its metadata under the ``unblur`` attribute; any other bare array names no axes.

Write: ``.ome.zarr`` is an NGFF 0.4 image (Zarr format 2, one level ``"0"``, axes ordered
``t, c, z, y, x`` with types and units, ``scale`` = physical sizes); ``.zarr`` is one array with
the ``unblur`` attribute.

Reference: OME-NGFF specification 0.4, https://ngff.openmicroscopy.org/0.4/
"""

from __future__ import annotations

from ..errors import InputError, require
from ..metadata import ImageMetadata, axis_order, normalize_unit

NGFF_ORDER = "TCZYX"


def _multiscales(attrs) -> tuple[list | None, dict]:
    if "multiscales" in attrs:
        return attrs["multiscales"], attrs
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        return ome["multiscales"], ome
    return None, attrs


def open_zarr(path):
    """``(array, dataset_path, metadata)``: the full-resolution array of a Zarr / OME-Zarr."""
    import zarr
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:
        raise InputError(f"cannot open {path.name} as Zarr: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         "give a Zarr or OME-Zarr folder") from e
    if isinstance(node, zarr.Array):
        meta = ImageMetadata(shape_read=tuple(node.shape), dtype=str(node.dtype), format="zarr")
        info = dict(node.attrs).get("unblur")
        if isinstance(info, dict) and info.get("axes"):
            meta.axes_read = info["axes"]
            for key in ("sizes", "units"):
                getattr(meta, key).update(info.get(key, {}))
            meta.channel_names = info.get("channel_names")
        return node, "", _finish(meta)
    ms, holder = _multiscales(dict(node.attrs))
    require(ms, f"{path.name} is a Zarr group without 'multiscales' metadata",
            "give an OME-Zarr image or a Zarr array")
    ms0 = ms[0]
    ds = ms0["datasets"][0]
    arr = node[ds["path"]]
    axes = ms0.get("axes") or [{"name": a} for a in "tczyx"[-arr.ndim:]]
    axes = [{"name": a} if isinstance(a, str) else a for a in axes]
    letters = "".join(str(a["name"]).upper()[:1] for a in axes)
    meta = ImageMetadata(axes_read=letters, shape_read=tuple(arr.shape), dtype=str(arr.dtype), format="ome-zarr")
    scale = None
    for t in list(ms0.get("coordinateTransformations", [])) + list(ds.get("coordinateTransformations", [])):
        if t.get("type") == "scale":
            s = t["scale"]
            scale = s if scale is None else [a * b for a, b in zip(scale, s)]
    for a, s in zip(axes, scale or [None] * len(axes)):
        name = str(a["name"]).lower()
        if name in ("x", "y", "z") and s is not None and normalize_unit(a.get("unit")):
            meta.sizes[name], meta.units[name] = float(s), normalize_unit(a["unit"])
        elif name == "t" and s is not None:
            meta.sizes["t"], meta.units["t"] = float(s), a.get("unit", "second")
    omero = holder.get("omero") or {}
    chans = omero.get("channels") if isinstance(omero, dict) else None
    if chans:
        meta.channel_names = [str(c.get("label", f"C{i}")) for i, c in enumerate(chans)]
    return arr, ds["path"], _finish(meta)


def _finish(meta: ImageMetadata) -> ImageMetadata:
    if meta.axes_read:
        meta.axes_read = meta.axes_read.upper()
    return meta


def zarr_layout(meta: ImageMetadata):
    """``(drop, perm)`` for a Zarr image, or ``(None, None)`` when its axes are not named."""
    if not meta.axes_read:
        return None, None
    drop, perm, axes, notes = axis_order(meta.axes_read, meta.shape_read)
    meta.axes, meta.notes = axes, notes
    return drop, perm


def ngff_attrs(meta: ImageMetadata, stored: str, name: str) -> dict:
    """NGFF 0.4 group attributes for one level ``"0"`` with stored axes ``stored``."""
    types = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
    axes, scale = [], []
    for a in stored:
        entry = {"name": a.lower(), "type": types[a]}
        key = a.lower()
        if a in "ZYX" and key in meta.sizes and normalize_unit(meta.units.get(key)):
            entry["unit"] = normalize_unit(meta.units[key])
            scale.append(float(meta.sizes[key]))
        elif a == "T" and "t" in meta.sizes:
            entry["unit"] = "second"
            scale.append(float(meta.sizes["t"]))
        else:
            scale.append(1.0)
        axes.append(entry)
    attrs = {"multiscales": [{
        "version": "0.4", "name": name, "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }]}
    if meta.channel_names:
        attrs["omero"] = {"version": "0.4", "channels": [{"label": n, "active": True} for n in meta.channel_names]}
    return attrs


def unblur_attrs(meta: ImageMetadata, axes: str) -> dict:
    """Attributes of a bare ``.zarr`` array written by unblur."""
    return {"unblur": {"axes": axes, "sizes": dict(meta.sizes), "units": dict(meta.units),
                       "channel_names": meta.channel_names}}
