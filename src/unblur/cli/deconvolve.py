"""``unblur deconvolve``: restore an image blurred by a known PSF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..api import Restoration, deconvolve
from ..errors import require
from ..registry import DEFAULT_METHOD, list_methods
from .common import (Outputs, add_method_options, add_transfer_option, diagnostic_paths, expected_diagnostic_maps,
                     join_restorations, match_psf_to_image,
                     method_epilog, method_params_from_args, output_metadata, pop_diagnostic_maps, preview_view,
                     requested_method, write_diagnostic_maps)

HELP = "restore an image blurred by a known PSF"

EXAMPLES = """examples:
  unblur deconvolve blurred.tif --psf psf.tif -o restored.tif
  unblur deconvolve stack.tif --psf psf3d.tif --method rl --num-iter 100 --acceleration biggs-andrews -o out.tif
  unblur deconvolve photo.png --psf kernel.png --method wiener --noise-sigma 0.01 -o out.png --bits 8
  unblur deconvolve hyperstack.tif --psf psf3d.tif -o restored.ome.tif
  unblur deconvolve photo.png --psf kernel.png --method rl-diffusion --diagnostics --seeds 4 -o out.png
  unblur deconvolve big.tif --psf psf3d.tif --memory-limit 4GB -o big_rl.ome.zarr          # tiles, out of core
  unblur deconvolve t*.tif --psf psf3d.tif --scheduler tcp://HOST:8786 --resume -o restored/  # many files, a cluster

Writes OUT, OUT.compare.png (input | restored) and, last, the JSON log OUT.json (settings, timings,
notes, SHA-256 of each file); all appear together or none does (an error, Ctrl-C or SIGTERM leaves
nothing; exit 130 / 143).  OUT.lock marks a run in progress on OUT.
With --diagnostics / --seeds N (diffusion methods) also OUT.residual.tif (re-blur residual over the
noise level) and OUT.spread.tif (per-pixel spread of the seeds), float32.
Values: 8/16-bit inputs are scaled to [0, 1]; float TIFFs are used as they are.
Metadata: ImageJ hyperstacks, OME-TIFF and OME-Zarr are read by their axes (several time points are
restored one by one); the PSF is resampled to the image's voxel size when both files give it (a PSF
without one is taken at the image's); OUT keeps the input's axes, voxel size and channel names
(.ome.tif: OME-TIFF, .ome.zarr: OME-Zarr).
Large data: with --tile, --memory-limit, --scheduler, --workers or --resume, or several input files, the
stack is restored tile by tile (halo of the PSF size, `valid` model per tile, smooth blend), read lazily and
streamed to OUT, with tiles scheduled by Dask (see docs/scaling.md); finished tiles are kept in OUT.partial/
until OUT and OUT.json are committed together, so --resume continues an interrupted run.
"""


def add_parser(sub, argv=()) -> None:
    methods = list_methods("nonblind")
    names = [m.name for m in methods]
    chosen = requested_method(argv, DEFAULT_METHOD)
    shown = next((m for m in methods if m.name == chosen), next(m for m in methods if m.name == DEFAULT_METHOD))
    p = sub.add_parser("deconvolve", help=HELP, description=HELP,
                       epilog=EXAMPLES + "\n" + method_epilog("deconvolve", methods, shown, DEFAULT_METHOD),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, nargs="+",
                   help="blurred image: PNG, JPEG, TIFF (2-D, 3-D stack, multichannel; ImageJ/OME axes), Zarr/OME-Zarr, FITS; "
                        "several files: restored tile by tile, -o is then a folder")
    p.add_argument("--psf", type=Path, required=True, help="PSF file (normalised to sum 1; negative values clipped with a warning)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=names,
                   help="; ".join(f"{m.name}: {m.summary}" for m in methods) + f" (default {DEFAULT_METHOD})")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output file (.tif float32 by default; .ome.tif, .zarr, .ome.zarr; .png 8-bit)")
    p.add_argument("--bits", type=int, choices=(8, 16, 32), default=None,
                   help="output bit depth: 8/16 clip to [0, 1] and scale by 255/65535; 32 = float32 TIFF")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--no-preview", action="store_true", help="do not write the side-by-side PNG")
    add_transfer_option(p)
    p.add_argument("--psf-center", choices=("none", "integer", "subpixel"), default="none",
                   help="re-centre the PSF's centre of mass on n//2 before use (default: use as given)")
    g = p.add_argument_group("large data: tiles scheduled with Dask (docs/scaling.md)")
    g.add_argument("--tile", help="tile core size Z,Y,X (or Y,X); default: from --memory-limit")
    g.add_argument("--memory-limit", help="memory for the tiles running at once, e.g. 512MB, 4GB (default: half the available RAM)")
    g.add_argument("--scheduler", help="threads, processes, sync, or the address of a dask.distributed scheduler tcp://HOST:PORT")
    g.add_argument("--workers", type=int, help="tiles processed at once (local schedulers)")
    g.add_argument("--resume", action="store_true", help="continue an interrupted tiled run from OUT.partial/")
    add_method_options(p, methods, shown)


def _tiled(args) -> bool:
    return len(args.image) > 1 or any(getattr(args, k) not in (None, False)
                                      for k in ("tile", "memory_limit", "scheduler", "workers", "resume"))


def _run_tiled(args, method, params) -> int:
    """Several files or a stack that should not be loaded whole: :func:`unblur.tiling.deconvolve_files`.

    Each output and its JSON log are one :class:`Outputs` unit (staged, committed together, the
    lock held meanwhile); the finished tiles in ``OUT.partial/`` are removed only after the commit."""
    import time

    from ..tiling import deconvolve_files, output_names, parse_tile

    require(method.capabilities.tileable, f"--method {method.name} cannot run tile by tile",
            "use a tileable method (unblur methods shows which) or drop the tiling options")
    outs = [args.output] if len(args.image) == 1 else output_names(args.image, args.output)
    params = dict(params)
    progress = bool(params.pop("progress", True))  # the bar counts tiles, not each tile's iterations
    units = [Outputs(o, args.force, inputs=(src, args.psf)) for src, o in zip(args.image, outs)]

    def record(src, r):
        return {"command": "deconvolve", "image": src, "psf": args.psf, "method": method.name,
                "params": r.info.get("params", params), "tiled": True,
                "info": {k: v for k, v in r.info.items() if k not in ("params", "partial")}}

    t0 = time.perf_counter()
    try:
        results = deconvolve_files(args.image, args.psf, outs, method.name, tile=parse_tile(args.tile),
                                   memory_limit=args.memory_limit, scheduler=args.scheduler, workers=args.workers,
                                   resume=args.resume, overwrite=args.force, progress=progress, units=units,
                                   record=record, **params)
    except KeyboardInterrupt as e:
        from ..signals import Interrupted
        kept = [f"{o}.partial" for o in outs if Path(f"{o}.partial").exists()]
        if not kept:
            raise
        raise Interrupted(getattr(e, "signum", 2), f"no output written; the finished tiles are kept in "
                          f"{', '.join(kept)}: rerun with --resume") from None
    for unit, r in zip(units, results):
        print(f"wrote {r.image}, {unit.log} ({r.info.get('tiles', '?')} tiles, {r.info.get('time_s', 0):.1f} s)")
    print(f"{len(results)} file(s) in {time.perf_counter() - t0:.1f} s")
    return 0


def run(args) -> int:
    methods = list_methods("nonblind")
    method = next(m for m in methods if m.name == args.method)
    params = method_params_from_args(args, method, methods)
    if _tiled(args):
        require(args.transfer == "linear", "--transfer srgb is for photographs restored whole, not for tiles",
                "drop --tile/--memory-limit/--scheduler/--workers, or decode the images to linear light first")
        return _run_tiled(args, method, params)
    args.image = args.image[0]
    maps = diagnostic_paths(args.output, expected_diagnostic_maps(method, params))
    unit = Outputs(args.output, args.force, inputs=(args.image, args.psf), preview=None if args.no_preview else "compare",
                   extra=maps.values())
    with unit:
        return _run(args, method, params, unit)


def _run(args, method, params, unit: Outputs) -> int:
    import numpy as np

    from ..io import RASTER_SUFFIXES, preview_png, read_image, write_image

    out = unit.output
    image, meta = read_image(args.image, with_metadata=True)
    notes: list[str] = []
    psfs, axes = match_psf_to_image(args.psf, image, args.image, center=args.psf_center, notes=notes, meta=meta)
    require(not (out.suffix.lower() in RASTER_SUFFIXES and ("Z" in axes or "T" in axes)),
            f"a {'3-D stack' if 'Z' in axes else 'time series'} ({axes}) cannot be written as {out.suffix}",
            "write it as .tif, .ome.tif or .ome.zarr")
    for n in notes:
        print(f"note: {n}")
    frames = image if axes.startswith("T") else [image]  # several time points: each on its own
    parts = [_restore(frame, psfs, args.method, dict(params, transfer=args.transfer)) for frame in frames]
    result = parts[0] if len(parts) == 1 else join_restorations(parts, 0, "per_time_point")
    maps = pop_diagnostic_maps(result.info)
    out_meta = output_metadata(meta, axes, out)
    file_notes = list(meta.notes)  # rules applied on reading (alpha, axes) and writing (clipping, bit depth)
    unit.write(out, lambda p: write_image(p, result.image, bits=args.bits, metadata=out_meta, notes=file_notes))
    for n in file_notes:
        print(f"note: {n}")
    written = write_diagnostic_maps(unit, maps, result.image.shape, out_meta)
    if unit.preview is not None:
        unit.write(unit.preview, lambda p: preview_png(p, [("input", preview_view(image, axes)),
                                                           ("restored", preview_view(result.image, axes))]))
    psf = psfs[0] if len(psfs) == 1 else np.stack(psfs, -1)
    outputs = unit.commit({"command": "deconvolve", "image": args.image, "psf": args.psf, "image_shape": image.shape,
                           "transfer": args.transfer,
                           "image_axes": axes, "image_metadata": meta.describe(), "psf_shape": psf.shape,
                           "psf_notes": notes, "file_notes": file_notes, "method": args.method, "params": result.info.get("params"),
                           "diagnostic_maps": written,
                           "info": {k: v for k, v in result.info.items() if k != "params"}})
    print(f"wrote {', '.join(map(str, outputs))} ({result.info.get('time_s', 0):.2f} s)")
    return 0


def _restore(image, psfs, method: str, params: dict) -> Restoration:
    """One image (or time point) with a shared PSF, or channel by channel with one PSF per channel."""
    if len(psfs) == 1:
        return deconvolve(image, psfs[0], method=method, **params)
    parts = [deconvolve(image[..., c], p, method=method, **params) for c, p in enumerate(psfs)]
    return join_restorations(parts, -1, "per_channel")
