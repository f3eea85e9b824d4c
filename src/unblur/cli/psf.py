"""``unblur psf``: make a PSF (analytic, random camera shake, diffraction, widefield) or measure one from beads.

Writes the PSF (float32 TIFF keeps the values; sum 1, centre at ``n // 2``; ``zernike``, ``widefield`` and
``beads`` record the voxel size in micrometres in the file's metadata, so that ``unblur deconvolve`` can match
it to the image's), a log-scaled PNG preview
``<output>.preview.png`` (2-D: the PSF; 3-D: central XY and XZ slices side by side; grey levels are
``log10(psf / max)`` mapped from -4 to 0) and a JSON log of the settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, require
from .common import Outputs

if TYPE_CHECKING:
    import numpy as np

#: largest PSF the command makes: 2**26 values (256 MiB as float32; the generators work in float64,
#: 512 MiB), far beyond any blur kernel and checked before anything is allocated
MAX_PSF_VALUES = 2**26

HELP = "make a PSF: gaussian, disk, motion, zernike, widefield, measure one from beads, or identify one (deep-blur)"
KINDS = ("gaussian", "disk", "motion", "zernike", "widefield", "beads", "identify")


def _common(p):
    p.add_argument("-o", "--output", type=Path, required=True, help="output PSF file (.tif keeps float values)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-preview", action="store_true", help="do not write the log-scaled PNG preview")


def _optics(p):
    g = p.add_argument_group("optics (lengths in micrometres; the PSF file records its pixel size and z step)")
    g.add_argument("--na", type=float, default=None, help="numerical aperture")
    g.add_argument("--wavelength", type=float, default=None, help="emission wavelength")
    g.add_argument("--pixel-size", type=float, default=None, help="pixel size in the object plane (default: from --like)")
    g.add_argument("--like", type=Path, default=None, metavar="IMAGE",
                   help="take the pixel size (and z step) from IMAGE's metadata (ImageJ, OME-TIFF, OME-Zarr) "
                        "where not given")
    g.add_argument("--refractive-index", type=float, default=1.0, help="immersion refractive index (default 1.0; oil 1.518)")
    g.add_argument("--cutoff", type=float, default=None, help="pupil cut-off NA/wavelength*pixel_size in cycles/pixel (instead of the three above)")
    g.add_argument("--oversampling", type=int, default=2, help="pupil oversampling (default 2)")
    g.add_argument("--coef", action="append", default=[], metavar="J=WAVES",
                   help="Zernike coefficient for Noll index J in waves, e.g. --coef 4=0.1 (repeatable)")
    g.add_argument("--random", action="store_true", help="random aberrations: deep-blur preset (Noll 4..11 uniform in +-amplitude)")
    g.add_argument("--amplitude", type=float, default=0.15, help="--random: coefficient range in waves (default 0.15)")
    g.add_argument("--seed", type=int, default=0, help="--random: seed")


def add_parser(sub) -> None:
    p = sub.add_parser("psf", help=HELP, description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  unblur psf gaussian --size 61 --sigma 3 -o g.tif\n"
                              "  unblur psf motion --size 33 --seed 4 -o shake.tif\n"
                              "  unblur psf zernike --size 31 --na 1.4 --wavelength 0.52 --pixel-size 0.05 "
                              "--refractive-index 1.518 --coef 4=0.1 -o z.tif\n"
                              "  unblur psf widefield --na 1.4 --wavelength 0.52 --refractive-index 1.518 --like stack.tif "
                              "-o wf.tif   # pixel size and z step from stack.tif\n"
                              "  unblur psf beads beads.tif --size 33 -o measured.tif\n"
                              "  unblur psf identify blurred.tif -o identified.tif   # deep-blur: Zernike gamma + PSF")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser("gaussian", help="(anisotropic, rotated) Gaussian")
    g.add_argument("--size", type=int, default=31)
    g.add_argument("--sigma", type=float, required=True, help="standard deviation in pixels (along --angle)")
    g.add_argument("--sigma-y", type=float, default=None, help="standard deviation across --angle (default: isotropic)")
    g.add_argument("--angle", type=float, default=0.0, help="degrees, counter-clockwise from +x")
    g.add_argument("--ndim", type=int, default=2, choices=(2, 3))
    _common(g)
    d = kinds.add_parser("disk", help="uniform disk (defocus)")
    d.add_argument("--size", type=int, default=31)
    d.add_argument("--radius", type=float, required=True, help="radius in pixels")
    _common(d)
    m = kinds.add_parser("motion", help="random camera shake (seeded) or, with --length, linear motion")
    m.add_argument("--size", type=int, default=33, help="kernel size (13..75 for random shake)")
    m.add_argument("--model", default="gp", choices=("gp", "physiological"), help="trajectory model")
    m.add_argument("--intensity", type=float, default=0.7, help="blur extent relative to the kernel, in (0, 1]")
    m.add_argument("--length", type=float, default=None, help="linear motion length in pixels (instead of random)")
    m.add_argument("--angle", type=float, default=0.0, help="linear motion angle in degrees")
    m.add_argument("--seed", type=int, default=0)
    _common(m)
    z = kinds.add_parser("zernike", help="2-D diffraction PSF with Zernike aberrations")
    z.add_argument("--size", type=int, default=31)
    _optics(z)
    _common(z)
    w = kinds.add_parser("widefield", help="3-D widefield PSF stack (defocus along z)")
    w.add_argument("--size", type=int, default=33, help="lateral size in pixels")
    w.add_argument("--nz", type=int, default=33, help="number of planes")
    w.add_argument("--z-step", type=float, default=None, help="plane spacing (default: from --like)")
    _optics(w)
    _common(w)
    b = kinds.add_parser("beads", help="measure a PSF from an image or stack of isolated sub-resolution beads")
    b.add_argument("image", type=Path, help="bead image (2-D) or stack (3-D)")
    b.add_argument("--size", default="31", help="PSF window: N or ZxYxX (default 31)")
    b.add_argument("--threshold", type=float, default=0.2, help="detection threshold relative to the brightest bead")
    b.add_argument("--smooth", type=float, default=1.0, help="Gaussian smoothing before detection (pixels)")
    b.add_argument("--min-separation", type=float, default=None, help="minimum distance between beads (default: window size)")
    b.add_argument("--average", default="mean", choices=("mean", "median"))
    _common(b)
    ident = kinds.add_parser("identify", help="read the PSF parameters of the blur off an image (deep-blur network)")
    ident.add_argument("image", type=Path, help="blurred gray image (colour is averaged to gray)")
    ident.add_argument("--optics", default=None,
                       help="NA,wavelength_um,pixel_um of the PSF model (default: the training optics, with the pixel size "
                            "of IMAGE's metadata when it has one)")
    ident.add_argument("--tile", type=int, default=None, help="identification tile size (default: the training crop size)")
    ident.add_argument("--weights", type=Path, default=None,
                       help="IN weights (`python -m unblur.blind.deepblur.train --stage identify --export FILE`); default: "
                            "the shipped Zernike model. Eigen-PSF and product-convolution models are read from the file")
    _common(ident)


def _parse_coefs(items):
    coefs = {}
    for it in items:
        try:
            j, v = it.split("=")
            coefs[int(j)] = float(v)
        except ValueError:
            raise InputError(f"cannot read --coef {it!r}", "write it as NOLL_INDEX=WAVES, e.g. --coef 4=0.1") from None
    return coefs


def _optics_kw(args):
    kw = dict(refractive_index=args.refractive_index, oversampling=args.oversampling)
    if args.cutoff is not None:
        return dict(kw, cutoff=args.cutoff)
    missing = [n for n in ("na", "wavelength", "pixel_size") if getattr(args, n) is None]
    require(not missing, f"missing {', '.join('--' + n.replace('_', '-') for n in missing)}",
            "give --na, --wavelength and --pixel-size (or --like IMAGE for the pixel size; --cutoff for a 2-D PSF)")
    return dict(kw, na=args.na, wavelength=args.wavelength, pixel_size=args.pixel_size)


def _coefficients(args):
    coefs = _parse_coefs(args.coef)
    if args.random:
        from ..psf.zernike import DEEPBLUR_NOLL, sample_zernike_coefficients
        g = sample_zernike_coefficients(1, len(DEEPBLUR_NOLL), args.amplitude, seed=args.seed)[0].tolist()
        coefs = {**dict(zip(DEEPBLUR_NOLL, g)), **coefs}
    return coefs


def voxel_from_like(args) -> None:
    """``--like IMAGE``: set ``args.pixel_size`` (and ``args.z_step``) from IMAGE's metadata where not given.

    Prints what was taken; refuses an IMAGE whose metadata has no physical pixel size, or
    non-square pixels when the pixel size is taken from it.
    """
    like = getattr(args, "like", None)
    if like is None:
        return
    from ..io import read_metadata

    require(Path(like).exists(), f"--like {like}: file not found", "give an image file (ImageJ TIFF, OME-TIFF, OME-Zarr)")
    dz, dy, dx = read_metadata(like).voxel_size(3)
    require(dy is not None or dx is not None, f"--like {like}: its metadata gives no physical pixel size",
            "give --pixel-size (and --z-step), or an image saved with its pixel size (ImageJ, OME-TIFF, OME-Zarr)")
    taken = []
    if args.pixel_size is None:
        require(dy is None or dx is None or abs(dy - dx) <= 0.01 * max(dy, dx),
                f"--like {like}: the pixels are not square ({dy:.4g} x {dx:.4g} µm)", "give --pixel-size")
        args.pixel_size = dx if dx is not None else dy
        taken.append(f"pixel size {args.pixel_size:.4g} µm")
    if getattr(args, "z_step", "absent") is None and dz is not None:
        args.z_step = dz
        taken.append(f"z step {dz:.4g} µm")
    if taken:
        print(f"{' and '.join(taken)} taken from {Path(like).name}'s metadata")


def psf_voxel_size(args, psf) -> tuple | None:
    """The PSF's voxel size in micrometres (``(z, y, x)`` or ``(y, x)``), or None when not physical.

    ``zernike``/``widefield``: the pixel size (and z step) used; ``beads`` and ``identify``: the
    image's (from its metadata).  Other kinds are in pixels.
    """
    if args.kind == "zernike" and args.pixel_size is not None:
        return (args.pixel_size,) * 2
    if args.kind == "widefield":
        return (args.z_step, args.pixel_size, args.pixel_size)
    if args.kind == "identify" and psf.ndim == 2:  # the identified PSF is sampled on the image's pixels
        from ..io import read_metadata

        voxel = read_metadata(args.image).voxel_size(2)
        return voxel if all(v is not None for v in voxel) else None
    if args.kind == "beads":
        from ..io import read_metadata

        voxel = read_metadata(args.image).voxel_size(psf.ndim)
        return voxel if any(v is not None for v in voxel) else None
    return None


def check_psf_size(args) -> None:
    """Refuse sizes below 1 and PSFs of more than :data:`MAX_PSF_VALUES` values (before allocating)."""
    if args.kind in ("beads", "identify"):
        return
    shape = [args.size, args.size]
    if args.kind == "gaussian" and args.ndim == 3:
        shape.append(args.size)
    if args.kind == "widefield":
        shape.append(args.nz)
    require(all(n >= 1 for n in shape), f"--size {args.size}" + (f" --nz {args.nz}" if args.kind == "widefield" else "")
            + " must be >= 1", "give a PSF size in pixels, e.g. --size 31")
    over = max(1, getattr(args, "oversampling", 1) or 1) ** 2 if args.kind in ("zernike", "widefield") else 1
    values = 1
    for n in shape:
        values *= n
    require(values * over <= MAX_PSF_VALUES,
            f"a {'x'.join(map(str, shape))} PSF has {values:,} values, more than the limit of {MAX_PSF_VALUES:,}"
            + (f" (x{over} for the pupil oversampling)" if over > 1 else ""),
            "give a smaller --size (a PSF larger than its blur only adds zeros)")


def make_psf(args) -> tuple[np.ndarray, dict]:
    """Build the PSF the arguments ask for; returns ``(psf, record)``."""
    from .. import psf as P
    from ..io import read_image

    check_psf_size(args)
    voxel_from_like(args)

    if args.kind == "gaussian":
        return P.gaussian_kernel(args.size, args.sigma, args.sigma_y, args.angle, ndim=args.ndim), {}
    if args.kind == "disk":
        return P.disk_kernel(args.size, args.radius), {}
    if args.kind == "motion":
        if args.length is not None:
            return P.line_motion_kernel(args.size, args.length, args.angle), {}
        return P.motion_kernel(args.size, args.seed, args.model, args.intensity), {}
    if args.kind in ("zernike", "widefield"):
        coefs = _coefficients(args)
        kw = _optics_kw(args)
        if args.kind == "zernike":
            return P.diffraction_psf(args.size, coefficients=coefs or None, **kw), {"coefficients": coefs}
        require("cutoff" not in kw, "a widefield stack needs --na, --wavelength and --pixel-size (not --cutoff)")
        require(args.z_step is not None, "missing --z-step", "give --z-step (or --like IMAGE whose metadata has the z spacing)")
        return P.widefield_psf(args.size, args.nz, args.z_step, coefficients=coefs or None, **kw), {"coefficients": coefs}
    if args.kind == "identify":
        from ..blind.deepblur.api import identify_psf
        from .blind import deepblur_optics_from_metadata
        image, meta = read_image(args.image, with_metadata=True)
        if args.optics is None:
            args.optics = deepblur_optics_from_metadata(meta, args.image, args.weights)
        gamma, psf, noll = identify_psf(image, optics=args.optics, tile=args.tile, weights=args.weights)
        if psf.ndim == 4:  # product-convolution model: control-point PSFs (gy, gx, k, k) -> (gy*gx, k, k) stack
            print(f"control-point PSFs on a {psf.shape[0]}x{psf.shape[1]} grid, written as a stack in row-major order")
            grid = list(psf.shape[:2])
            psf = psf.reshape(-1, *psf.shape[-2:])
        else:
            grid = None
        if noll:
            coefs = {int(j): float(g) for j, g in zip(noll, gamma)}
            print("identified Zernike coefficients (waves, Noll index: value): "
                  + ", ".join(f"{j}: {g:+.4f}" for j, g in coefs.items()))
            return psf, {"coefficients": coefs}
        print("identified coefficients: " + ", ".join(f"{g:+.4f}" for g in gamma))
        return psf, {"gamma": [float(g) for g in gamma], **({"psf_grid": grid} if grid else {})}
    image = read_image(args.image, scale=False)
    try:
        shape = tuple(int(s) for s in str(args.size).lower().split("x"))
    except ValueError:
        raise InputError(f"cannot read --size {args.size!r}", "give N or ZxYxX, e.g. 33 or 41x33x33") from None
    shape = shape[0] if len(shape) == 1 else shape
    psf, info = P.psf_from_beads(image, shape, threshold=args.threshold, smooth=args.smooth,
                                 min_separation=args.min_separation, average=args.average, return_info=True)
    print(f"beads: {info['detected']} detected, {info['used']} isolated and used")
    return psf, {"beads_detected": info["detected"], "beads_used": info["used"], "bead_positions": info["positions"].tolist()}


def log_preview(psf: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """Log-scaled display image in [0, 1]: ``log10(psf / max)`` mapped from ``log10(floor)`` to 0.

    3-D stacks: central XY slice and central XZ slice (z vertical) side by side, 2-px gap.
    """
    import numpy as np

    p = np.clip(np.asarray(psf, dtype=np.float64), 0, None)
    p = p / max(p.max(), 1e-300)
    lo = np.log10(floor)
    disp = np.clip((np.log10(np.maximum(p, floor)) - lo) / -lo, 0, 1)
    if disp.ndim == 3:
        xy, xz = disp[disp.shape[0] // 2], disp[:, disp.shape[1] // 2, :]
        h = max(xy.shape[0], xz.shape[0])
        pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (0, 0)))
        disp = np.concatenate([pad(xy), np.ones((h, 2)), pad(xz)], 1)
    return disp


def run(args) -> int:
    import numpy as np

    from ..io import write_image

    inputs = (getattr(args, "image", None), getattr(args, "weights", None))
    with Outputs(args.output, args.force, inputs=inputs, preview=None if args.no_preview else "preview") as unit:
        out, preview = unit.output, unit.preview
        psf, extra = make_psf(args)
        voxel = psf_voxel_size(args, psf) if psf.ndim in (2, 3) else None
        meta = None
        if voxel is not None:
            from ..metadata import ImageMetadata
            meta = ImageMetadata(axes="ZYX" if psf.ndim == 3 else "YX").with_voxel_size(voxel)
            extra = dict(extra, voxel_size_um=list(voxel))
        unit.write(out, lambda p: write_image(p, psf.astype(np.float32), metadata=meta))
        if preview is not None:
            shown = psf
            if "psf_grid" in extra:  # control-point PSFs: a montage in grid order, not a z-stack view
                gy, gx = extra["psf_grid"]
                shown = psf.reshape(gy, gx, *psf.shape[-2:]).transpose(0, 2, 1, 3).reshape(gy * psf.shape[-2], gx * psf.shape[-1])
            unit.write(preview, lambda p: write_image(p, log_preview(shown), bits=8))
        record = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "func"}
        unit.commit(dict(record, command="psf", shape=list(psf.shape), **extra))
    print(f"wrote {out} (shape {psf.shape}, sum {psf.sum():.6f})" + (f" and {preview}" if preview else ""))
    return 0
