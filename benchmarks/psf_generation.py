"""Benchmark of the PSF library; prints a markdown table.

* time to generate 1000 random 33x33 camera-shake kernels (each trajectory model);
* time to generate 1000 random 31x31 Zernike PSFs (deep-blur preset, pupil oversampling 2), forward
  only and forward + backward (gradient w.r.t. the coefficients);
* product-convolution (convolve-after-weighting, 16 components from a 4x4 grid of 33x33 PSFs) on a
  512x512 image, one batched operator against a Python loop of 16 plain ``Convolution`` operators
  (built once, like the batched one), for two boundary models; the maximum relative difference
  between both is reported.

It times PSF generators and forward operators, not restoration methods, so it uses
:mod:`unblur.psf` and :mod:`unblur.physics` directly.

Usage: ``python benchmarks/psf_generation.py [--repeats 3] [--threads N]``
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from unblur.physics.convolution import Convolution
from unblur.physics.product_convolution import ProductConvolution
from unblur.psf import random_motion_kernels, random_zernike_psfs
from unblur.psf.zernike import DEEPBLUR_NOLL, PupilPSF, sample_zernike_coefficients


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for model in ("gp", "physiological", "mixed"):
        t = best_time(lambda: random_motion_kernels(33, 1000, seed=0, model=model), args.repeats)
        rows.append((f"1000 random motion kernels 33x33, model={model}", t))
    t = best_time(lambda: random_zernike_psfs(31, 1000, seed=0), args.repeats)
    rows.append(("1000 Zernike PSFs 31x31 (Noll 4..11, +-0.15 waves, oversampling 2), forward", t))
    model = PupilPSF(31, DEEPBLUR_NOLL, cutoff=0.2)

    def fwd_bwd():
        g = sample_zernike_coefficients(1000, len(DEEPBLUR_NOLL), seed=0).requires_grad_(True)
        model(g).square().sum().backward()
    rows.append(("1000 Zernike PSFs 31x31, forward + backward", best_time(fwd_bwd, args.repeats)))

    grid = random_zernike_psfs(33, 16, seed=1)[:, 0].reshape(4, 4, 33, 33)
    x = torch.rand(1, 1, 512, 512, generator=torch.Generator().manual_seed(0))
    for boundary in ("circular", "reflect"):
        pc = ProductConvolution.from_psf_grid(grid, (512, 512), "convolve-after-weighting", boundary)
        convs = [Convolution(pc.psfs[i], (512, 512), boundary) for i in range(16)]
        loop = lambda: sum(c.A(x * pc.weights[i]) for i, c in enumerate(convs))  # noqa: E731
        a, b = pc.A(x), loop()
        diff = float((a - b).abs().max() / b.abs().max())
        rows.append((f"product-convolution 512x512, 16 components, {boundary}: batched A", best_time(lambda: pc.A(x), args.repeats)))
        rows.append((f"same, loop of 16 plain convolutions (max rel. diff {diff:.1e})", best_time(loop, args.repeats)))
        rows.append((f"product-convolution 512x512, 16 components, {boundary}: batched A^T",
                     best_time(lambda: pc.A_adjoint(x), args.repeats)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"best of {args.repeats}\n")
    print("| task | time (s) |")
    print("|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} |")


if __name__ == "__main__":
    main()
