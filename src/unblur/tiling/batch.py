"""Many files in one call: the same PSF, method and Dask cluster for each input.

:func:`deconvolve_files` is what ``unblur deconvolve IN1 IN2 ... --tile/--memory-limit/--scheduler``
calls: every output is checked before any work, one scheduler connection serves every file, and
each file is restored by :func:`unblur.tiling.deconvolve_tiled` (time points of a ``T`` axis are
restored one by one inside it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..api import Restoration
from ..errors import require
from .engine import LOCAL, connect, deconvolve_tiled
from .output import check_target


def parse_tile(text: str | None) -> tuple[int, ...] | None:
    """``"32,512,512"`` (or ``"32x512x512"``) as ``(32, 512, 512)``; None stays None (``--tile``)."""
    if text is None:
        return None
    parts = str(text).replace("x", ",").split(",")
    require(all(p.strip().isdigit() and int(p) > 0 for p in parts), f"cannot read the tile size {text!r}",
            "give positive sizes per axis, e.g. --tile 32,512,512")
    return tuple(int(p) for p in parts)


def output_names(inputs, output_dir, suffix: str = "_deconv", ext: str | None = None) -> list[Path]:
    """``<output_dir>/<stem><suffix><ext>`` for each input (``ext``: the input's own by default)."""
    out = []
    for p in map(Path, inputs):
        double = next((e for e in (".ome.tif", ".ome.tiff", ".ome.zarr") if p.name.lower().endswith(e)), None)
        stem, own = (p.name[:-len(double)], p.name[-len(double):]) if double else (p.stem, p.suffix)
        out.append(Path(output_dir) / f"{stem}{suffix}{ext or own}")
    return out


def deconvolve_files(inputs, psf, outputs, method: str = "rl", *, scheduler=None, client=None,
                     connect_timeout: float = 5.0, overwrite: bool = False, units=None, record=None,
                     **kwargs) -> list[Restoration]:
    """Deconvolve each of ``inputs`` into the matching ``outputs`` tile by tile.

    Parameters
    ----------
    inputs : list of str or Path
        Image files (TIFF, OME-TIFF, Zarr, ``.npy``), read lazily.
    psf : array, list of arrays or path
        The PSF (one for all, or one per channel), read once.
    outputs : list of str or Path
        One output per input (see :func:`output_names`); all are checked before any work.
    method : str
        A tileable method.
    scheduler, client, connect_timeout, overwrite, **kwargs
        As in :func:`unblur.tiling.deconvolve_tiled` (``tile``, ``memory_limit``, ``workers``,
        ``resume``, ``progress``, ``device`` and the method's parameters).
    units : list or None
        One commit unit per output (:class:`unblur.cli.common.Outputs`: a context manager with
        ``write(target, writer)`` and ``commit(record)``).  Each output is then staged by its unit
        and committed with its JSON log ``record(input, restoration)``; the finished tiles
        (``<output>.partial``) are removed only after the commit, so an interruption at any point
        leaves neither the output nor its log, and ``resume`` continues.
    record : callable or None
        ``record(input, restoration) -> dict``: the log of each output (with ``units``).

    Returns
    -------
    list of Restoration
        One per input, ``.image`` the output path.
    """
    inputs, outputs = [Path(p) for p in inputs], [Path(p) for p in outputs]
    require(len(inputs) == len(outputs) and inputs, f"{len(inputs)} inputs and {len(outputs)} outputs",
            "give one output per input (or an output folder)")
    require(len(set(outputs)) == len(outputs), "two inputs would write the same output", "use distinct output names")
    for p in inputs:
        require(p.exists(), f"file not found: {p}", "check the path")
    resume = kwargs.get("resume", False)
    for o in outputs:
        if not (resume and Path(str(o) + ".partial").exists()):
            check_target(o, overwrite)
    if isinstance(psf, (str, Path)):
        from ..io import read_image
        psf = read_image(psf, scale=False, drop_alpha=False)
    own = None
    if client is None and scheduler not in LOCAL:
        client = own = connect(str(scheduler), connect_timeout)
    require(units is None or len(units) == len(outputs), f"{len(units or ())} units for {len(outputs)} outputs",
            "give one unit per output")
    kw = dict(kwargs, client=client, scheduler=None if client else scheduler, overwrite=overwrite)
    try:
        if units is None:
            return [deconvolve_tiled(str(i), psf, method, output=o, **kw) for i, o in zip(inputs, outputs)]
        results = []
        for i, o, unit in zip(inputs, outputs, units):
            with unit:
                r = deconvolve_tiled(str(i), psf, method, output=o, stage=unit.write, **kw)
                unit.commit(record(i, r) if record is not None else {"image": str(i), "method": r.info["method"]})
            if "partial" in r.info:
                shutil.rmtree(r.info.pop("partial"), ignore_errors=True)
            results.append(r)
        return results
    finally:
        if own is not None:
            own.close()


__all__ = ["deconvolve_files", "output_names", "parse_tile"]
