"""``unblur simulate``: blur an image with a PSF and add noise, reproducibly (seeded)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Outputs, match_psf_to_image, output_metadata

BOUNDARIES = ("circular", "zero", "replicate", "reflect", "valid")  # unblur.physics.convolution.BOUNDARIES

HELP = "blur an image with a PSF and add noise (seeded)"


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help=HELP, description=HELP,
                       epilog="example: unblur simulate sharp.png --psf psf.tif --noise gaussian --sigma 0.01 --seed 0 -o blurred.tif",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="sharp image")
    p.add_argument("--psf", type=Path, required=True, help="PSF file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (.tif float32 keeps values)")
    p.add_argument("--boundary", default="reflect", choices=BOUNDARIES,
                   help="how the image is extended beyond its edges (default reflect); 'valid' crops the output")
    p.add_argument("--noise", default="gaussian", choices=("none", "gaussian", "poisson", "poisson-gaussian"))
    p.add_argument("--sigma", type=float, default=0.01, help="Gaussian sigma in image units ([0,1]: 8-bit sigma/255)")
    p.add_argument("--gain", type=float, default=100.0, help="Poisson: photons per unit intensity")
    p.add_argument("--alpha", type=float, default=0.01, help="Poisson-Gaussian: signal-dependent variance factor")
    p.add_argument("--beta", type=float, default=1e-4, help="Poisson-Gaussian: constant variance")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output; time point t of a series: seed + t)")
    p.add_argument("--bits", type=int, choices=(8, 16, 32), default=None, help="output bit depth")
    p.add_argument("--force", action="store_true", help="overwrite existing output")


def run(args) -> int:
    with Outputs(args.output, args.force, inputs=(args.image, args.psf)) as unit:
        return _run(args, unit)


def _run(args, unit: Outputs) -> int:
    import numpy as np

    from ..io import read_image, write_image
    from ..physics.noise import make_noise

    out = unit.output
    image, meta = read_image(args.image, with_metadata=True)
    notes: list[str] = []
    psfs, axes = match_psf_to_image(args.psf, image, args.image, notes=notes, meta=meta)
    for n in notes:
        print(f"note: {n}")
    noise = make_noise(args.noise, sigma=args.sigma, gain=args.gain, alpha=args.alpha, beta=args.beta)
    frames = image if axes.startswith("T") else [image]  # several time points: each on its own
    blurred = [_blur(frame, psfs, args.boundary, noise, args.seed + t) for t, frame in enumerate(frames)]
    arr = np.stack(blurred) if axes.startswith("T") else blurred[0]
    out_meta = output_metadata(meta, axes, out)
    unit.write(out, lambda p: write_image(p, arr.astype(np.float32), bits=args.bits, metadata=out_meta))
    unit.commit({"command": "simulate", "image": args.image, "psf": args.psf, "boundary": args.boundary,
                 "noise": args.noise, "sigma": args.sigma, "gain": args.gain, "alpha": args.alpha,
                 "beta": args.beta, "seed": args.seed, "psf_notes": notes, "image_axes": axes, "output": out})
    print(f"wrote {out}")
    return 0


def _blur(image, psfs, boundary: str, noise, seed: int):
    """``noise(A image)`` for one image or time point; ``A`` blurs with ``boundary`` (``valid`` crops)."""
    import numpy as np
    import torch

    from ..physics.convolution import Convolution
    from ..solvers.problem import setup_problem

    if len(psfs) == 1:
        prob = setup_problem(image, psfs[0], "circular")
    else:  # one PSF per colour channel
        prob = setup_problem(image, torch.from_numpy(np.stack(psfs)), "circular", channel_axis=-1)
    if boundary == "valid":
        out_shape = tuple(n - m + 1 for n, m in zip(prob.y.shape[2:], prob.op.kernel_shape))
        op = Convolution(prob.psf, out_shape, "valid")
    else:
        op = Convolution(prob.psf, tuple(prob.y.shape[2:]), boundary)
    return prob.layout.to_output(noise(op.A(prob.y), seed=seed))
