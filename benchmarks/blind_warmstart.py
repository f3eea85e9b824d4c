"""Warm starts of the blind methods: does starting from the ``l0`` kernel help Fast EM and SelfDeblur?

Cases: gray centre crops (``--size``, default 255) of Set12 or BSD68 (``--set``; images smaller than the
crop are skipped, e.g. Set12's 256x256 ones), each blurred by
camera-shake kernels under the non-periodic model (a crop ``size + k - 1`` pixels wide blurred with
``mode="valid"``), plus Gaussian noise of ``--noise`` (default 0.01, clipped to [0, 1]). Kernels:
``m<seed>`` = :func:`unblur.psf.motion.motion_kernel` (25x25, Gaussian-process trajectory) with that
seed, ``u<n>`` = kernel ``n`` of ``kernels/usrnet_kernels_12_float32.npz`` (09-12 are camera shake, 25x25).
Each image gets the kernels of ``--kernels`` in turn (image i, kernel i mod the list), so every image is
one case.

Methods (``--methods``), all through :func:`unblur.blind_deconvolve`:

* ``input`` -- the blurred image itself (a Dirac kernel);
* ``l0`` -- the classical method (its kernel is the warm start of the others);
* ``fast-em`` / ``fast-em+l0`` -- Fast EM from a Dirac / from the l0 kernel (``init_kernel="l0"``), with
  the periodic extension and the circular model (``boundary="periodize"``, no safeguard), the true noise
  sigma given; ``fast-em+l0-hold`` also holds the l0 kernel for the first quarter of the steps
  (``mstep_start=0.25``), ``fast-em+l0-hold75`` for three quarters; ``fast-em-circular`` is Fast EM
  without the periodic extension of the image (``boundary="circular"``); ``fast-em-default`` is Fast EM's
  defaults (valid model, l0 start, safeguard; the ``blind-fastem`` suite measures it);
* ``selfdeblur`` / ``selfdeblur+l0`` -- SelfDeblur ``fast-c2f`` from its own start / from the l0 kernel.

Metrics (:mod:`unblur.metrics`): shift-tolerant PSNR (``aligned_psnr``: 15-px border, +-10 px) against
the sharp crop, the normalised kernel error up to shift (``kernel_error``), whether the result is worse
than the blurred input, the discrepancy of :func:`unblur.blind.checks.blind_checks`, and the wall time.
Prints one row per case and method, then the means per method (markdown).

    python benchmarks/blind_warmstart.py --set bsd68_gray --images 8 --first 0 --methods input,l0,fast-em,fast-em+l0

``--suite blind-fastem [--full] [--only-kernels ...]`` takes the cases of that bench suite instead (same
degradation and noise seeds as ``unblur bench``), with ``fast-em-former`` (Dirac, circular), ``fast-em-valid``
(Dirac, valid model) and ``fast-em-default`` (valid model, l0 start, safeguard).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import signal

import unblur
from unblur.data import data_path, list_images
from unblur.io import read_image
from unblur.metrics import aligned_psnr, kernel_error
from unblur.psf.motion import motion_kernel

_PERIODIZE = {"boundary": "periodize", "safeguard": False}  # the periodic extension alone, no safeguard
METHODS = {
    "input": None,
    "l0": ("l0", {}),
    "fast-em": ("fast-em", {"init_kernel": "dirac", **_PERIODIZE}),
    "fast-em-circular": ("fast-em", {"boundary": "circular", "init_kernel": "dirac", "safeguard": False}),
    "fast-em+l0": ("fast-em", {"init_kernel": "l0", **_PERIODIZE}),
    "fast-em+l0-hold": ("fast-em", {"init_kernel": "l0", "mstep_start": 0.25, **_PERIODIZE}),
    "fast-em+l0-hold75": ("fast-em", {"init_kernel": "l0", "mstep_start": 0.75, **_PERIODIZE}),
    "fast-em-default": ("fast-em", {}),
    "fast-em-valid": ("fast-em", {"init_kernel": "dirac", "safeguard": False}),
    "fast-em-former": ("fast-em", {"boundary": "circular", "init_kernel": "dirac", "safeguard": False}),
    "selfdeblur": ("selfdeblur", {"preset": "fast-c2f", "kernel_size": 25}),
    "selfdeblur+l0": ("selfdeblur", {"preset": "fast-c2f", "kernel_size": 25, "init_kernel": "l0"}),
}


def kernel(spec: str) -> np.ndarray:
    if spec.startswith("m"):
        k = motion_kernel(25, seed=int(spec[1:]))
    else:
        k = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))[f"kernel{int(spec[1:]):02d}"]
    k = np.asarray(k, np.float64)
    return k / k.sum()


def cases(set_name: str, n: int, first: int, size: int, kernels: list[str], noise: float, seed: int = 0):
    big = size + 24  # the 25x25 kernels' valid blur
    files = [f for f in sorted(list_images(f"test/{set_name}")) if min(read_image(f).shape[:2]) >= big][first:first + n]
    out = []
    for i, f in enumerate(files):
        rng = np.random.default_rng(seed + first + i)  # one noise draw per case, whatever the split of the run
        img = read_image(f).astype(np.float64)
        img = img[..., :3].mean(-1) if img.ndim == 3 else img
        spec = kernels[(first + i) % len(kernels)]
        k = kernel(spec)
        big = size + k.shape[0] - 1
        h0, w0 = (img.shape[0] - big) // 2, (img.shape[1] - big) // 2
        crop = img[h0:h0 + big, w0:w0 + big]
        y = signal.fftconvolve(crop, k, mode="valid")
        y = np.clip(y + noise * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
        b = k.shape[0] // 2
        out.append((f.stem, spec, crop[b:b + size, b:b + size], y, k))
    return out


def suite_cases(suite: str, full: bool, kernels: list[str] | None):
    """The cases of a bench suite (``unblur bench``'s degradation and noise seeds), as :func:`cases` returns them."""
    from unblur.bench.cases import degrade, make_units
    from unblur.bench.suite import load_suite

    out = []
    for u in make_units(load_suite(suite, full=full)):
        if kernels and u.kernel_name.split(":")[-1] not in kernels:
            continue
        d = degrade(u)
        out.append((u.item["name"], u.kernel_name.split(":")[-1], d["truth"], d["blurred"], d["kernel"]))
    return out


def run(name: str, y: np.ndarray, noise: float, threads: int, kernel_size: int | None = None):
    if METHODS[name] is None:
        return y, None, {"time_s": 0.0}
    method, params = METHODS[name]
    params = dict(params)
    if kernel_size is not None and method in ("fast-em", "l0"):
        params["kernel_size"] = kernel_size
    if method != "l0":
        params["noise_sigma" if method == "fast-em" else "threads"] = noise if method == "fast-em" else threads
    else:
        params["noise_sigma"] = noise
    r = unblur.blind_deconvolve(y, method=method, **params)
    return r.image, r.kernel, r.info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="bsd68_gray")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--size", type=int, default=255)
    ap.add_argument("--kernels", default="m0,u9,m1,u10,m2,u11,m3,u12")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--methods", default="input,l0,fast-em,fast-em+l0")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the per-case rows to this file")
    ap.add_argument("--suite", default=None, help="take the cases of this bench suite instead (e.g. blind-fastem)")
    ap.add_argument("--full", action="store_true", help="with --suite: its --full cases")
    ap.add_argument("--only-kernels", default=None, help="with --suite: keep these kernel names (e.g. motion25-gp-2,kernel11)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    names = a.methods.split(",")
    rows = []
    print("| image | kernel | method | aligned PSNR (dB) | kernel error | worse than input | discrepancy | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    todo = (suite_cases(a.suite, a.full, a.only_kernels.split(",") if a.only_kernels else None) if a.suite else
            cases(a.set, a.images, a.first, a.size, a.kernels.split(","), a.noise))
    for stem, spec, sharp, y, kt in todo:
        p_in = aligned_psnr(y, sharp)
        for name in names:
            t0 = time.perf_counter()
            x, k, info = run(name, y, a.noise, a.threads, kt.shape[0] if a.suite else None)
            dt = time.perf_counter() - t0
            p = aligned_psnr(np.asarray(x, np.float64), sharp)
            ke = kernel_error(k, kt) if k is not None else kernel_error(np.ones((1, 1)), kt)
            disc = (info.get("checks") or {}).get("discrepancy", info.get("discrepancy", float("nan")))
            row = {"image": stem, "kernel": spec, "method": name, "psnr": p, "psnr_input": p_in, "kernel_error": ke,
                   "worse": bool(p < p_in), "discrepancy": disc, "time_s": dt}
            rows.append(row)
            print(f"| {stem} | {spec} | {name} | {p:.2f} | {ke:.3f} | {'yes' if row['worse'] else 'no'} | {disc:.2f} | {dt:.1f} |",
                  flush=True)
            if a.json:
                with open(a.json, "w") as fh:
                    json.dump(rows, fh, indent=1)
    print()
    print("| method | cases | mean aligned PSNR (dB) | gain over input (dB) | mean kernel error | worse than input | mean time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = [q for q in rows if q["method"] == name]
        print(f"| {name} | {len(r)} | {np.mean([q['psnr'] for q in r]):.2f} | "
              f"{np.mean([q['psnr'] - q['psnr_input'] for q in r]):+.2f} | {np.mean([q['kernel_error'] for q in r]):.3f} | "
              f"{sum(q['worse'] for q in r)} | {np.mean([q['time_s'] for q in r]):.1f} |")


if __name__ == "__main__":
    main()
