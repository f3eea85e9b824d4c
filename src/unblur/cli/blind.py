"""``unblur blind``: estimate the blur kernel and the sharp image (methods registered as ``blind``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..api import blind_deconvolve
from ..errors import InputError
from ..registry import DEFAULT_BLIND_METHOD, list_methods
from .common import (Outputs, add_method_options, add_transfer_option, diagnostic_paths, expected_diagnostic_maps,
                     method_epilog, method_params_from_args, output_metadata, pop_diagnostic_maps, requested_method,
                     write_diagnostic_maps)

HELP = "blind deconvolution: estimate the PSF and the sharp image"


def add_parser(sub, argv=()) -> None:
    methods = list_methods("blind")
    names = [m.name for m in methods]
    default = DEFAULT_BLIND_METHOD if DEFAULT_BLIND_METHOD in names else (names[0] if names else None)
    chosen = requested_method(argv, default)
    shown = next((m for m in methods if m.name == chosen), next((m for m in methods if m.name == default), None))
    epilog = (f"example: unblur blind photo.png -o sharp.png --kernel-out kernel.tif   (method {default})\n"
              "Writes OUT, the kernel (OUT_kernel.tif unless --kernel-out), OUT.compare.png (input | restored | kernel;\n"
              "panels reduced to at most 1024 px; --no-preview: none)\n"
              "and, last, the JSON log OUT.json, as one unit. With --diagnostics / --seeds N (fast-em, diffusion-em)\n"
              "also OUT.residual.tif (re-blur residual over the noise level, NaN in the kernel's border band) and\n"
              "OUT.spread.tif (per-pixel spread of the seeds), float32.")
    if shown is not None:
        epilog += "\n" + method_epilog("blind", methods, shown, default)
    p = sub.add_parser("blind", help=HELP, description=HELP, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="blurred image (PNG, JPEG, TIFF)")
    p.add_argument("--method", required=not methods, default=default, choices=names or None,
                   help="; ".join(f"{m.name}: {m.summary}" for m in methods) + f" (default {default})"
                   if methods else "no blind method is installed")
    p.add_argument("-o", "--output", type=Path, required=True, help="restored image file")
    p.add_argument("--kernel-out", type=Path, default=None, help="estimated kernel (float32 TIFF); default OUT_kernel.tif")
    p.add_argument("--bits", type=int, choices=(8, 16, 32), default=None, help="output bit depth")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--no-preview", action="store_true", help="do not write the side-by-side PNG")
    add_transfer_option(p)
    p.add_argument("--init-kernel", default=None, metavar="FILE|l0",
                   help="warm start: a kernel file (resized to the method's kernel size with a note) or 'l0' (start from "
                        f"the l0 method's kernel; the default of fast-em and diffusion-em, whose 'dirac' is the paper's start); methods "
                        f"{', '.join(warm_start_methods(methods)) or '(none)'}")
    if shown is not None:
        add_method_options(p, methods, shown)


def warm_start_methods(methods) -> list[str]:
    """Blind methods that take a starting kernel (``init_kernel``); l0's ``init_kernel`` skips the estimation
    instead, so it is not a warm start."""
    return [m.name for m in methods if "init_kernel" in m.api_only and m.name != "l0"]


def _read_init_kernel(value: str, method, methods, image):
    """``--init-kernel``: ``"l0"`` or the kernel read from a file (2-D; an RGB file is averaged)."""
    import numpy as np

    from ..io import read_image

    accepted = warm_start_methods(methods)
    if method.name not in accepted:
        raise InputError(f"--method {method.name} takes no --init-kernel",
                         f"use it with {', '.join(accepted)}" + ("; for a known kernel use 'unblur deconvolve'" if method.name == "l0" else ""))
    if value == "l0" or (value == "dirac" and method.name in ("fast-em", "diffusion-em")):
        return value  # fast-em / diffusion-em start from l0 by default; "dirac" is the paper's start
    path = Path(value)
    if not path.is_file():
        raise InputError(f"--init-kernel {value}: no such file", "give a kernel file (TIFF, PNG) or 'l0'")
    k = np.asarray(read_image(path), np.float64)
    if k.ndim == 3 and k.shape[-1] in (3, 4):
        k = k[..., :3].mean(-1)
    k = np.squeeze(k)
    if k.ndim != 2:
        raise InputError(f"--init-kernel {value} has shape {k.shape}", "give a 2-D kernel file")
    side = min(image.shape[:2])
    if 3 * max(k.shape) > side:
        raise InputError(f"--init-kernel {value} is {k.shape[0]}x{k.shape[1]}, larger than a third of the image "
                         f"({image.shape[0]}x{image.shape[1]})", "give a smaller kernel")
    return k


def deepblur_optics_from_metadata(meta, image_path, weights=None) -> str | None:
    """Deep-blur's ``optics`` ("NA,wavelength,pixel") from the image's metadata, or None.

    When the metadata gives a square pixel size and the weights' PSF model takes optics (Zernike), the
    pixel size is used with the NA and wavelength the weights were trained for
    (:func:`unblur.blind.deepblur.api.optics_for_pixel_size`, which states when it refuses or
    warns); this is printed.  Non-square pixels are not used (a note says so).
    """
    import sys

    from ..blind.deepblur.api import optics_for_pixel_size

    dy, dx = meta.voxel_size(2)
    if dy is None or dx is None:
        return None
    name = Path(image_path).name
    if abs(dy - dx) > 0.01 * max(dy, dx):
        print(f"note: {name}'s pixels are not square ({dy:.4g} x {dx:.4g} µm); deep-blur uses its training optics "
              "(give the optics to override)", file=sys.stderr)
        return None
    optics = optics_for_pixel_size(dx, weights)
    if optics is None:
        return None
    na, wl, px = optics
    print(f"pixel size {px:.4g} µm taken from {name}'s metadata (with the training NA {na:g} and wavelength "
          f"{wl:g} µm; give the optics to set them)")
    return f"{na:g},{wl:g},{px:.6g}"


def run(args) -> int:
    methods = list_methods("blind")
    if not methods:
        raise InputError("no blind method is available in this installation", "update unblur")
    method = next(m for m in methods if m.name == args.method)
    params = method_params_from_args(args, method, methods)
    output = Path(args.output)
    kout = Path(args.kernel_out) if args.kernel_out else output.with_name(output.stem + "_kernel.tif")
    maps = diagnostic_paths(output, expected_diagnostic_maps(method, params))
    unit = Outputs(output, args.force, inputs=(args.image, args.init_kernel if getattr(args, "init_kernel", None) not in
                                              (None, "l0") else None), preview=None if args.no_preview else "compare",
                   extra=(kout, *maps.values()))
    with unit:
        return _run(args, method, methods, params, unit, kout)


def _run(args, method, methods, params, unit: Outputs, kout: Path) -> int:
    import sys

    import numpy as np

    from ..blind.checks import blind_checks
    from ..io import preview_png, read_image, write_image
    from ..metadata import ImageMetadata
    from ..physics.transfer import decode

    out = unit.output
    image, meta = read_image(args.image, with_metadata=True)
    axes = "YX" if image.ndim == 2 else "YXC"
    if getattr(args, "init_kernel", None) is not None:
        params["init_kernel"] = _read_init_kernel(args.init_kernel, method, methods, image)
    if method.name == "deepblur" and params.get("optics") is None:
        optics = deepblur_optics_from_metadata(meta, args.image, params.get("identify_weights"))
        if optics is not None:
            params["optics"] = optics
    result = blind_deconvolve(image, method=args.method, transfer=args.transfer, **params)
    maps = pop_diagnostic_maps(result.info)
    if "checks" not in result.info and result.kernel is not None:  # in linear light, as the method saw the data
        result.info["checks"] = blind_checks(decode(image, args.transfer), decode(result.image, args.transfer),
                                             result.kernel, result.info.get("noise_sigma"))
    for n in result.info.get("notes") or []:
        if str(n).startswith(("init_kernel", "warm start")):
            print(f"note: {n}", file=sys.stderr)
    for w in (result.info.get("checks") or {}).get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    file_notes = list(meta.notes)  # rules applied on reading (alpha) and writing (clipping, bit depth)
    unit.write(out, lambda p: write_image(p, result.image, bits=args.bits, metadata=output_metadata(meta, axes, out),
                                          notes=file_notes))
    for n in file_notes:
        print(f"note: {n}", file=sys.stderr)
    written = write_diagnostic_maps(unit, maps, result.image.shape, output_metadata(meta, axes, out))
    panels = [("input", image), ("restored", result.image)]
    if result.kernel is not None:
        k = np.asarray(result.kernel, dtype=np.float32)
        voxel = meta.voxel_size(2)
        kmeta = ImageMetadata(axes="YX").with_voxel_size(voxel) if any(v is not None for v in voxel) else None
        unit.write(kout, lambda p: write_image(p, k, metadata=kmeta))
        if k.ndim == 2:
            scale = max(1, image.shape[0] // max(k.shape[0], 1) // 2)
            panels.append(("kernel", np.kron(k / max(float(k.max()), 1e-12), np.ones((scale, scale), np.float32))))
    if unit.preview is not None:
        unit.write(unit.preview, lambda p: preview_png(p, panels))
    logged = dict(result.info.get("params") or {})
    if "init_kernel" in logged:
        logged["init_kernel"] = args.init_kernel  # the file name (or l0), not the array
    outputs = unit.commit({"command": "blind", "image": args.image, "image_shape": image.shape,
                           "transfer": args.transfer, "image_metadata": meta.describe(), "file_notes": file_notes,
                           "method": args.method, "params": logged, "diagnostic_maps": written,
                           "info": {k: v for k, v in result.info.items() if k != "params"}})
    print(f"wrote {', '.join(map(str, outputs))} ({result.info.get('time_s', 0):.1f} s)")
    return 0
