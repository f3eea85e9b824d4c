"""Biggs-Andrews acceleration vs plain Richardson-Lucy on flowdec's ``bars-25pct`` 3-D stack.

Data (under the data root, ``UNBLUR_DATA`` or ``../shared/data``):
``microscopy/flowdec/bars-25pct/{data,kernel,actual}.tif`` -- blurred stack, PSF, ground truth
(32x64x64, float32).  RL preserves the data's flux, which differs from the ground truth's by a
constant factor, so every estimate is scaled by ``sum(actual) / sum(data)`` (one fixed number)
before PSNR is computed with ``data_range = max(actual)``.

Prints PSNR every few iterations for both, plain RL's best PSNR and its iteration, and the first
iteration at which the accelerated run reaches that PSNR.  The PSNR curve needs the estimate at
every iteration, which a registry call does not return: the script calls
:func:`unblur.solvers.richardson_lucy` with its ``callback``.

    python benchmarks/rl_acceleration.py [--iters 1000] [--every 100] [--boundary circular]
"""

from __future__ import annotations

import argparse
import time
import warnings

import unblur  # noqa: F401  (before torch: OMP_WAIT_POLICY)
import numpy as np
import torch

from unblur.physics.convolution import Convolution
from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.solvers import richardson_lucy


def run(y, psf, truth, scale, iters, accel, boundary):
    """PSNR after every iteration (estimate cropped to the field of view, scaled by ``scale``)."""
    crop = Convolution(torch.from_numpy(psf / psf.sum()), y.shape, boundary).crop_object
    curve = []

    def record(it, x, info):
        curve.append(psnr(crop(x)[0, 0].numpy() * scale, truth, data_range=float(truth.max())))

    t0 = time.perf_counter()
    richardson_lucy(y, psf, iters, boundary=boundary, acceleration=accel, callback=record)
    return np.array(curve), time.perf_counter() - t0


def main():
    warnings.filterwarnings("ignore", message="PSF: normalised")  # kernel.tif sums to 5e5: expected
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--boundary", default="circular")
    ap.add_argument("--every", type=int, default=100, help="table row every N iterations")
    a = ap.parse_args()
    root = data_path("microscopy/flowdec/bars-25pct")
    y, psf, truth = (read_image(root / f"{n}.tif") for n in ("data", "kernel", "actual"))
    scale = float(truth.sum() / y.sum())
    plain, t_plain = run(y, psf, truth, scale, a.iters, None, a.boundary)
    fast, t_fast = run(y, psf, truth, scale, a.iters, "biggs-andrews", a.boundary)
    print(f"data {y.shape}, PSF {psf.shape}, boundary {a.boundary}, {a.iters} iterations; "
          f"wall time plain {t_plain:.1f} s, accelerated {t_fast:.1f} s\n")
    print("| iteration | plain RL PSNR (dB) | Biggs-Andrews PSNR (dB) |")
    print("|---|---|---|")
    rows = sorted(set([1, 5, 10, 20, 30, 40, 50] + list(range(a.every, a.iters + 1, a.every))))
    rows = [i for i in rows if i <= a.iters]
    for i in rows:
        print(f"| {i} | {plain[i - 1]:.2f} | {fast[i - 1]:.2f} |")
    best = int(np.argmax(plain))
    reach = np.nonzero(fast >= plain[best])[0]
    first = int(reach[0]) + 1 if reach.size else None
    print(f"\nplain RL: best PSNR {plain[best]:.2f} dB at iteration {best + 1} (of {a.iters})")
    if first:
        print(f"Biggs-Andrews reaches it at iteration {first} ({first / (best + 1):.2f} of plain RL's); "
              f"its own best is {fast.max():.2f} dB at iteration {int(np.argmax(fast)) + 1}")
    else:
        print(f"Biggs-Andrews does not reach it within {a.iters} iterations (best {fast.max():.2f} dB)")


if __name__ == "__main__":
    main()
