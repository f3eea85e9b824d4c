"""Deep-image-prior blind deconvolution benchmark: SelfDeblur, VDIP-Sparse, VDIP-Extreme.

Gray test images (Set12 and BSD68 centre crops, alternating) are blurred with the camera-shake
kernels 09-12 of ``kernels/usrnet_kernels_12_float32.npz`` (25x25) under the *valid* model (the sharp
crop is ``size + 24`` pixels, the blurred image ``size``), plus 1 % Gaussian noise (sigma 0.01).
Each method runs with the preset's settings ("plain") and with stabilisers (see ``VARIANTS``), for
several seeds; the ceiling is the same deep-image-prior fit with the *true* kernel fixed (the
non-blind pass only, same iteration count).  Metrics (:mod:`unblur.blind.dip.metrics` over
:mod:`unblur.metrics`): shift-tolerant PSNR/SSIM against the sharp image (15-px border, +-10 px),
PSNR-NB against the blurred image (high = collapsed to the no-blur solution), ISNR, the normalised
kernel error up to shift (:func:`unblur.metrics.kernel_error`), wall time and process CPU time (with
one thread, the cost without the time slices of other jobs on a shared machine).
Mean +- standard deviation over images x kernels x seeds.  Prints a markdown table.

The methods run through ``unblur.blind_deconvolve(image, method=...)``.  The ceiling is a DIP fit
with the kernel held fixed, which no registered method expresses: it calls
:func:`unblur.blind.dip.fit.fit` directly.

    python benchmarks/blind_dip.py [--images 2] [--first-image 0] [--kernels 9 10 11 12] [--size 256] [--preset fast|fast-c2f|full]
        [--sets set12 bsd68_gray] [--iters N] [--seeds 3] [--first-seed 0] [--methods selfdeblur vdip-sparse vdip-extreme]
        [--variants plain stabilised] [--threads 1] [--no-ceiling]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import torch

import unblur  # imported before torch: sets OMP_WAIT_POLICY
from unblur.blind.dip.fit import PRESETS, STABILISED, SelfDeblurObjective, fit
from unblur.blind.dip.losses import blur_valid
from unblur.blind.dip.metrics import isnr, psnr_gt, psnr_nb
from unblur.data import data_path, list_images
from unblur.io import read_image
from unblur.metrics import kernel_error

#: registered blind methods compared
METHODS = ("selfdeblur", "vdip-sparse", "vdip-extreme")
#: Stabiliser settings (Brozova & Smidl 2024) measured against the preset ("plain").
VARIANTS = {
    "plain": {},
    "stabilised": STABILISED,
    "init-uniform": {"kernel_init": "uniform"},
    "init-noblur": {"kernel_init": "no-blur"},
    "no-ssim": {"ssim_switch": False},
    "beta1-0.5": {"beta1": 0.5},
}


def load_cases(n_images, size, kernels, noise, sets=("set12", "bsd68_gray"), seed=0, first=0):
    """Centre crops of ``size + 24`` pixels (images too small for that are skipped), alternating sets,
    from the ``first``-th image of that sequence on."""
    files = [[f for f in list_images(f"test/{s}") if min(read_image(f).shape[:2]) >= size + 24] for s in sets]
    picks = [files[i % len(files)][i // len(files)] for i in range(first, first + n_images)]
    bank = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))
    rng = np.random.default_rng(seed)
    cases = []
    for f in picks:
        img = read_image(f).astype(np.float32)
        if img.ndim == 3:
            img = img[..., :3].mean(-1)
        big = size + 24
        h0, w0 = (img.shape[0] - big) // 2, (img.shape[1] - big) // 2
        crop = img[h0:h0 + big, w0:w0 + big]
        for kn in kernels:
            kt = bank[f"kernel{kn:02d}"].astype(np.float32)
            kt = kt / kt.sum()
            y = blur_valid(torch.from_numpy(crop)[None, None], torch.from_numpy(kt))[0, 0].numpy()
            y = np.clip(y + noise * rng.standard_normal(y.shape).astype(np.float32), 0, 1)
            b = kt.shape[0] - 1 - kt.shape[0] // 2
            cases.append((f"{f.parent.name}/{f.stem}", kn, crop[b:b + size, b:b + size], y, kt))
    return cases


def evaluate(x, k, sharp, y, kt, t):
    g = psnr_gt(x, sharp)
    return {"psnr": g["psnr"], "ssim": g["ssim"], "psnr_nb": psnr_nb(x, y), "isnr": isnr(x, y, sharp),
            "kerr": kernel_error(k, kt), "time": t}


def ceiling(y, kt, preset, iters, seed, threads):
    cfg = PRESETS[preset]
    if iters is not None:   # the blind methods' rule: the schedule scales with the iteration count
        f = iters / cfg.iterations
        cfg = replace(cfg, iterations=iters, switch_iter=round(f * cfg.switch_iter), min_iters=min(cfg.min_iters, iters),
                      pyramid_iters=tuple(max(1, round(f * n)) for n in cfg.pyramid_iters),
                      warmup_iters=round(f * cfg.warmup_iters))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    r = fit(torch.from_numpy(y)[None, None], kt.shape[0], SelfDeblurObjective(cfg.switch_iter), cfg, seed=seed,
            kernel=torch.from_numpy(kt))
    return r.image, time.perf_counter() - t0


def fmt(vals, nd=2):
    v = np.asarray(vals, float)
    return f"{v.mean():.{nd}f} ± {v.std():.{nd}f}" if len(v) > 1 else f"{v.mean():.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--first-image", type=int, default=0, help="skip this many images of the sequence")
    ap.add_argument("--kernels", type=int, nargs="+", default=[9, 10, 11, 12])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--sets", nargs="+", default=["set12", "bsd68_gray"],
                    help="test sets; Set12 (256x256) only fits --size <= 232")
    ap.add_argument("--preset", default="fast", choices=list(PRESETS))
    ap.add_argument("--iters", type=int, default=None, help="blind iterations (default: the preset's)")
    ap.add_argument("--refine", type=int, default=None, help="non-blind refinement iterations (default: preset's)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--variants", nargs="+", default=["plain", "stabilised"], choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-ceiling", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cases = load_cases(a.images, a.size, a.kernels, a.noise, a.sets, first=a.first_image)
    rows = {}
    dirac = np.zeros((25, 25), np.float32)
    dirac[12, 12] = 1
    rows["blurred input (no-blur solution, Dirac kernel)"] = [evaluate(y, dirac, sharp, y, kt, 0.0)
                                                              for _, _, sharp, y, kt in cases]
    for m in a.methods:
        for v in a.variants:
            res = []
            for name, kn, sharp, y, kt in cases:
                for s in range(a.first_seed, a.first_seed + a.seeds):
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = unblur.blind_deconvolve(y, method=m, kernel_size=kt.shape[0], preset=a.preset,
                                                  iterations=a.iters, refine_iters=a.refine, seed=s,
                                                  threads=a.threads, progress=False, **VARIANTS[v])
                    x, info = out.image, out.info
                    t, cpu = time.perf_counter() - t0, time.process_time() - c0
                    r = evaluate(x, out.kernel, sharp, y, kt, t)
                    r["cpu"] = cpu
                    r["iters"] = info["iterations"]
                    res.append(r)
                    load = ", ".join(f"{a:.1f}" for a in os.getloadavg())
                    print(f"# {m} {v} {name} k{kn:02d} seed {s}: " + ", ".join(f"{k}={val:.3f}" for k, val in r.items())
                          + f", levels={info['level_iterations']}, load average {load}", flush=True)
            rows[f"{m} ({v})"] = res
    if not a.no_ceiling:
        res = []
        for name, kn, sharp, y, kt in cases:
            x, t = ceiling(y, kt, a.preset, a.iters, 0, a.threads)
            res.append(evaluate(x, kt, sharp, y, kt, t))
            print(f"# ceiling {name} k{kn:02d}: psnr={res[-1]['psnr']:.2f}", flush=True)
        rows["true kernel, DIP non-blind pass (ceiling)"] = res
    print(f"\nimages: {', '.join(sorted({c[0] for c in cases}))}; kernels {a.kernels}; {a.size}x{a.size}; "
          f"noise {a.noise}; preset {a.preset}; iterations {a.iters or 'preset'}; seeds {a.seeds}; threads {a.threads}\n")
    print("| method | PSNR-GT (dB) | SSIM | PSNR-NB (dB) | ISNR (dB) | kernel error | blind iters | time (s) | CPU (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, res in rows.items():
        c = {key: fmt([r[key] for r in res], nd) for key, nd in
             (("psnr", 2), ("ssim", 3), ("psnr_nb", 2), ("isnr", 2), ("kerr", 3), ("time", 0))}
        it, cpu = (fmt([r[key] for r in res], 0) if key in res[0] else "-" for key in ("iters", "cpu"))
        print(f"| {label} | {c['psnr']} | {c['ssim']} | {c['psnr_nb']} | {c['isnr']} | {c['kerr']} | {it} | {c['time']} "
              f"| {cpu} |")


if __name__ == "__main__":
    main()
