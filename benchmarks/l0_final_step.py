"""``l0``'s final step: unknown boundaries (``valid``) against the periodic extension, on the tuning images.

BSD68 ``test021``-``test028`` (not in the ``blind-camera-shake`` suite), each degraded as that suite's
``--full`` protocol does (255x255 valid blur, noise 1%, the suite's seeds) by one of its 8 kernels in turn.
For each image: the shift-tolerant PSNR of the blurred input, of ``l0`` with ``final_boundary="periodic"``
and ``"valid"``, of both final steps with the true kernel (``init_kernel``), of TV-ADMM (``valid``) with
the true kernel, and ``l0``'s process CPU time (1 thread).

    python benchmarks/l0_final_step.py
"""

from __future__ import annotations

import time

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.bench import load_suite
from unblur.bench.cases import degrade, make_units
from unblur.metrics import shift_tolerant

IMAGES = [f"test0{i}" for i in range(21, 29)]


def psnr(x, truth):
    return shift_tolerant(np.asarray(x, np.float64), truth, crop=15, max_shift=10, data_range=1.0)["psnr"]


def main() -> None:
    torch.set_num_threads(1)
    suite = load_suite("blind-camera-shake", full=True, overrides=["dataset.path=['test/bsd68_gray']", "dataset.limit=0",
                                                                    f"dataset.select={IMAGES!r}".replace("'", '"')])
    units = make_units(suite)
    kernels = list(dict.fromkeys(u.kernel_name for u in units))
    rows = []
    print("| image | kernel | input | l0 periodic | l0 valid | true k, periodic | true k, valid | TV-ADMM true k | l0 CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(IMAGES):
        u = next(u for u in units if u.item["name"] == name and u.kernel_name == kernels[i % len(kernels)])
        d = degrade(u)
        y, x, k, s = d["blurred"], d["truth"], d["kernel"], d["sigma"]
        t0 = time.process_time()
        est = unblur.blind_deconvolve(y, method="l0", kernel_size=k.shape[0], noise_sigma=s)
        cpu = time.process_time() - t0
        kw = dict(method="l0", kernel_size=k.shape[0], noise_sigma=s)
        r = [psnr(y, x),
             psnr(unblur.blind_deconvolve(y, init_kernel=est.kernel, final_boundary="periodic", **kw).image, x),
             psnr(est.image, x),
             psnr(unblur.blind_deconvolve(y, init_kernel=k, final_boundary="periodic", **kw).image, x),
             psnr(unblur.blind_deconvolve(y, init_kernel=k, **kw).image, x),
             psnr(unblur.deconvolve(y, k, method="tv-admm", boundary="valid").image, x), cpu]
        rows.append(r)
        print(f"| {name} | {u.kernel_name.split(':')[-1]} | " + " | ".join(f"{v:.2f}" for v in r[:-1]) + f" | {cpu:.1f} |", flush=True)
    m = np.mean(rows, 0)
    print("| mean | | " + " | ".join(f"{v:.2f}" for v in m[:-1]) + f" | {m[-1]:.1f} |")


if __name__ == "__main__":
    main()
