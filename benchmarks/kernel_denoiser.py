"""Kernel denoising with unblur's shipped kernel prior (Fast Diffusion EM, Sec. 3.2).

64 random camera-shake kernels per size (``unblur.psf.motion.random_motion_kernels``, seed 2024,
mixed GP/physiological trajectories, intensity 0.25..1), white noise of std sigma (fixed generator),
kernel PSNR ``10 log10(max(k)^2 / mse)`` averaged over kernels, for the noisy input, the network
output, and the output projected on the simplex-like set (clipped at 0, renormalised to sum 1).  The kernel
denoiser is a prior of the blind methods, not a registered method: it is loaded with
:func:`unblur.models.load_kernel_prior` and called as ``D(k, sigma)``.

    python benchmarks/kernel_denoiser.py [--sizes 33,64] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import unblur  # noqa: F401
import torch

from unblur.models import load_kernel_prior
from unblur.psf.motion import random_motion_kernels
from unblur.training.kernel_denoiser import kernel_psnr

SIGMAS = (1e-3, 3e-3, 1e-2, 3e-2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="33,64")
    ap.add_argument("--spec", help="checkpoint path (default: the shipped weights for each size)")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"64 kernels per size, torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| size | sigma | noisy PSNR | denoised PSNR | denoised + clip/renormalise | ms / kernel |")
    print("|---|---|---|---|---|---|")
    for size in [int(s) for s in a.sizes.split(",")]:
        m = load_kernel_prior(a.spec, size=size)
        gen = torch.Generator().manual_seed(2024)
        k = random_motion_kernels(size, 64, generator=gen)
        for s in SIGMAS:
            y = k + s * torch.randn(k.shape, generator=gen)
            t = time.perf_counter()
            with torch.no_grad():
                e = m(y, s)
            dt = (time.perf_counter() - t) / 64
            p = e.clamp_min(0)
            p = p / p.sum((-2, -1), keepdim=True).clamp_min(1e-12)
            print(f"| {size} | {s:g} | {float(kernel_psnr(y, k).mean()):.2f} | {float(kernel_psnr(e, k).mean()):.2f} | "
                  f"{float(kernel_psnr(p, k).mean()):.2f} | {1000 * dt:.2f} |")


if __name__ == "__main__":
    main()
