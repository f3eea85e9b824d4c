"""Edge ringing of Richardson-Lucy: the non-circulant ("valid") model vs circular vs scikit-image.

Setup: a 256x256 field of view from a 512x512 Set12 image (``test/set12/08.png`` .. ``12.png``, under
the data root).  The observed image is the *valid* part of the blur of a larger sharp crop
(``256 + k - 1`` pixels a side) by a Gaussian PSF, plus Gaussian noise (sigma 0.005, seeded), so
the image edge cuts through real content, as in a photograph.  Each method runs the same number
of RL iterations; PSNR is reported on the 16-px border band, on the interior and on the whole
256x256 field against the sharp centre crop.  unblur's RL runs through
``unblur.deconvolve(y, psf, method="rl", boundary=...)``.

    python benchmarks/edge_ringing.py [--iters 50] [--psf-size 21] [--psf-sigma 3] [--images 08 09 10 11 12]
"""

from __future__ import annotations

import argparse

import unblur  # before torch: OMP_WAIT_POLICY
import numpy as np
import torch
from skimage.restoration import richardson_lucy as sk_rl

from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.physics.convolution import Convolution
from unblur.physics.noise import GaussianNoise

BAND = 16
N = 256


def gaussian(size, sigma):
    r = np.arange(size) - size // 2
    g = np.exp(-r**2 / (2 * sigma**2))
    p = np.outer(g, g)
    return (p / p.sum()).astype(np.float32)


def band_masks(n=N, band=BAND):
    m = np.zeros((n, n), bool)
    m[:band], m[-band:], m[:, :band], m[:, -band:] = True, True, True, True
    return m, ~m


def scores(est, truth):
    border, inner = band_masks()
    return psnr(est[border], truth[border]), psnr(est[inner], truth[inner]), psnr(est, truth)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--psf-size", type=int, default=21)
    ap.add_argument("--psf-sigma", type=float, default=3.0)
    ap.add_argument("--sigma", type=float, default=0.005, help="noise sigma in [0, 1] units")
    ap.add_argument("--images", nargs="+", default=["08", "09", "10", "11", "12"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    psf = gaussian(a.psf_size, a.psf_sigma)
    k = a.psf_size
    def rl(boundary):
        return lambda y: unblur.deconvolve(y, psf, method="rl", num_iter=a.iters, boundary=boundary, progress=False).image

    methods = {f"unblur RL, boundary={b}": rl(b) for b in ("valid", "reflect", "circular")}
    methods["skimage richardson_lucy"] = lambda y: sk_rl(y, psf, num_iter=a.iters, clip=False)
    results = {name: [] for name in ["blurred input"] + list(methods)}
    for i, name in enumerate(a.images):
        img = read_image(data_path(f"test/set12/{name}.png"))
        c0 = (img.shape[0] - (N + k - 1)) // 2
        sharp = img[c0:c0 + N + k - 1, c0:c0 + N + k - 1]
        truth = sharp[k // 2: k // 2 + N, k // 2: k // 2 + N]  # field of view (PSF centre k // 2, odd k)
        op = Convolution(torch.from_numpy(psf), (N, N), "valid")
        y = GaussianNoise(a.sigma)(op.A(torch.from_numpy(sharp)[None, None]), seed=a.seed + i)[0, 0].numpy()
        y = np.clip(y, 0, None).astype(np.float32)
        results["blurred input"].append(scores(y, truth))
        for mname, fn in methods.items():
            results[mname].append(scores(np.asarray(fn(y)), truth))
    print(f"Set12 {', '.join(a.images)}: {N}x{N} field, Gaussian PSF {k}x{k} sigma {a.psf_sigma}, noise sigma {a.sigma}, "
          f"{a.iters} RL iterations; mean over images\n")
    print(f"| method | border band ({BAND} px) PSNR (dB) | interior PSNR (dB) | whole image PSNR (dB) |")
    print("|---|---|---|---|")
    for mname, rows in results.items():
        b, i_, w = np.mean(rows, axis=0)
        print(f"| {mname} | {b:.2f} | {i_:.2f} | {w:.2f} |")


if __name__ == "__main__":
    main()
