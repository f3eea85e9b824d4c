"""Denoising on BSD68 (gray) or CBSD68 (colour): unblur's shipped denoisers side by side with KAIR DnCNN-25.

Protocol (KAIR ``main_test_dncnn``): each 8-bit image is scaled to [0, 1], ``np.random.seed(0)`` is
set before drawing its noise ``N(0, (s/255)^2)`` (added without clipping), the output is clipped and
rounded to 8 bits, PSNR over the whole image, averaged over the 68 images.  DnCNN-25 is a
fixed-level model: at 15 and 50 it runs at its trained level (listed for completeness).  Time per
image is the mean wall time of one forward pass (batch 1) over the images at sigma 25.

    python benchmarks/denoisers.py [--priors default,../shared/data/weights/kair_dncnn/dncnn_25.pth]
                                   [--limit N] [--threads N] [--sigmas 15,25,50] [--color]

``--color`` evaluates on CBSD68 with the colour priors (same protocol, noise drawn for all channels).
Denoisers are priors of the learned methods, not registered methods: they are loaded with
:func:`unblur.models.load_prior` and called as ``D(x, sigma)``.
"""

from __future__ import annotations

import argparse
import time

import unblur  # noqa: F401  (imported before torch, see unblur/__init__.py)
import numpy as np
import torch

from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.models import load_prior

SIGMAS = (15, 25, 50)


def evaluate(model, files, sigma8):
    vals, times = [], []
    for f in files:
        x = read_image(f)
        np.random.seed(0)
        y = (x + np.random.normal(0, sigma8 / 255, x.shape)).astype(np.float32)
        t = time.perf_counter()
        with torch.no_grad():
            batch = torch.from_numpy(np.ascontiguousarray(np.moveaxis(y, -1, 0)))[None] if y.ndim == 3 else torch.from_numpy(y)[None, None]
            e = model(batch, sigma8 / 255)[0].numpy()
            e = np.moveaxis(e, 0, -1) if y.ndim == 3 else e[0]
        times.append(time.perf_counter() - t)
        vals.append(psnr(np.round(np.clip(e, 0, 1) * 255) / 255, x))
    return float(np.mean(vals)), float(np.mean(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default="default,../shared/data/weights/kair_dncnn/dncnn_25.pth")
    ap.add_argument("--limit", type=int, help="first N images only")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--sigmas", default="15,25,50", help="noise levels (8-bit units); others print as -")
    ap.add_argument("--color", action="store_true", help="CBSD68 with colour priors instead of BSD68 gray")
    a = ap.parse_args(argv)
    sigmas = [int(v) for v in a.sigmas.split(",")]
    if a.threads:
        torch.set_num_threads(a.threads)
    channels, folder = (3, "test/cbsd68_color") if a.color else (1, "test/bsd68_gray")
    files = sorted(data_path(folder).glob("*.png"))[: a.limit]
    print(f"{folder}, {len(files)} images, torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| prior | params | PSNR s=15 | PSNR s=25 | PSNR s=50 | s/image (s=25) |")
    print("|---|---|---|---|---|---|")
    for spec in a.priors.split(","):
        m = load_prior(None if spec == "default" else spec, channels=channels)
        n = sum(p.numel() for p in m.parameters())
        res = {s: evaluate(m, files, s) for s in sigmas}
        name = "unblur (shipped)" if spec == "default" else spec.rsplit("/", 1)[-1]
        print(f"| {name} | {n / 1e6:.2f} M | " + " | ".join(f"{res[s][0]:.2f}" if s in res else "-" for s in SIGMAS)
              + " | " + (f"{res[25][1]:.3f}" if 25 in res else "-") + " |")


if __name__ == "__main__":
    main()
