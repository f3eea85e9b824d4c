"""Richardson-Lucy with missing pixels: left out of the fit (``missing="mask"``) against filling them.

Set12 (gray, 256x256 centre crops), the valid part of the blur of a larger crop by a Gaussian PSF (15x15,
sigma 2) and by USRNet camera-shake ``kernel09`` (25x25), Gaussian noise 1%.  Missing data as in
registered or mosaicked frames with bad pixels: a 24-pixel NaN band on the left and 2% isolated NaN pixels
(fixed seeds).  RL, 30 iterations, unblur's defaults otherwise; PSNR on the observed part right of the band
(columns 32 onwards), against the sharp crop:

* every pixel observed (the same noisy data, nothing missing): the reference;
* ``missing="mask"``: the missing pixels left out of the fit;
* the missing pixels replaced by 0, and by the image median, before plain RL (what a tool that refuses
  NaN asks its user to do);
* TV-ADMM (defaults, the true noise sigma given) with every pixel observed and with ``missing="mask"``.

    python benchmarks/missing_data.py
"""

from __future__ import annotations

import time
import warnings

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.data import data_path, list_images
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.physics.convolution import Convolution
from unblur.psf import gaussian_kernel

ITERS, BAND, SHARE, SIGMA = 30, 24, 0.02, 0.01


def kernels() -> dict[str, np.ndarray]:
    usrnet = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))
    return {"gaussian15 s2": np.asarray(gaussian_kernel(15, 2.0), np.float32),
            "usrnet kernel09": np.asarray(usrnet["kernel09"], np.float32)}


def observe(x: np.ndarray, k: np.ndarray, seed: int) -> np.ndarray:
    """The valid blur of ``x`` (larger than the result by the kernel size - 1), with noise."""
    shape = tuple(n - m + 1 for n, m in zip(x.shape, k.shape))
    z = Convolution(torch.from_numpy(k), shape, "valid").A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    return z + np.random.default_rng(seed).normal(0, SIGMA, z.shape).astype(np.float32)


def main() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = {name: [] for name in ("all observed", "missing='mask'", "filled with 0", "filled with the median",
                                  "TV-ADMM, all observed", "TV-ADMM, missing='mask'")}
    t0 = time.time()
    for name, k in kernels().items():
        for i, path in enumerate(list_images("test/set12")):
            img = read_image(path)
            r = k.shape[0] // 2
            c0, c1 = (img.shape[0] - 256) // 2, (img.shape[1] - 256) // 2
            big = img[max(c0 - r, 0): c0 + 256 + r, max(c1 - r, 0): c1 + 256 + r]
            y = np.clip(observe(big, k, seed=i), 0, None)
            truth = big[r: r + y.shape[0], r: r + y.shape[1]]
            holed = y.copy()
            holed[np.random.default_rng(100 + i).random(y.shape) < SHARE] = np.nan
            holed[:, :BAND] = np.nan
            inner = np.s_[:, BAND + 8:]
            score = lambda a: psnr(a[inner], truth[inner], 1.0)  # noqa: E731
            rows["all observed"].append((name, score(unblur.richardson_lucy(y, k, ITERS))))
            rows["missing='mask'"].append((name, score(unblur.richardson_lucy(holed, k, ITERS, missing="mask"))))
            rows["filled with 0"].append((name, score(unblur.richardson_lucy(np.nan_to_num(holed, nan=0.0), k, ITERS))))
            med = np.where(np.isnan(holed), np.nanmedian(holed), holed)
            rows["filled with the median"].append((name, score(unblur.richardson_lucy(med, k, ITERS))))
            tv = lambda a, **kw: unblur.deconvolve(a, k, method="tv-admm", noise_sigma=SIGMA, **kw).image  # noqa: E731
            rows["TV-ADMM, all observed"].append((name, score(tv(y))))
            rows["TV-ADMM, missing='mask'"].append((name, score(tv(holed, missing="mask"))))
    names = list(kernels())
    print(f"| data given to RL ({ITERS} iterations) | " + " | ".join(names) + " | worst image vs all observed |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, vals in rows.items():
        ref = rows["TV-ADMM, all observed" if label.startswith("TV") else "all observed"]
        means = [np.mean([v for n, v in vals if n == kn]) for kn in names]
        worst = min(v - rv for (_, v), (_, rv) in zip(vals, ref))
        print(f"| {label} | " + " | ".join(f"{m:.2f}" for m in means) + f" | {worst:+.2f} |")
    print(f"\n(mean PSNR in dB over the {len(rows['all observed']) // len(names)} Set12 images; "
          f"{time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
