"""Diffusion samplers on non-face images: quality, data consistency and seed spread against RL and RL-TV.

Degradations (``--cases``): ``gauss-0.025`` / ``gauss-0.05`` / ``gauss-0.01`` = the RL-diffusion paper's
protocol (Gaussian kernel 61x61 sigma 3, replicate padding, Gaussian noise of that sigma in [0, 1]
units); ``shake09`` .. ``shake12`` = the USRNet camera-shake kernels 9-12 (25x25), replicate padding,
noise ``--shake-noise``.  Images: centre crops (``--size``) of the first ``--images`` images of each set
after skipping ``--skip`` (so that tuning and reporting images differ): CBSD68 and McMaster colour,
Set12 gray (the embedded prior of the matching channel count).

Methods (``--methods``): ``rl`` (best early stop over ``--rl-max`` iterations, an oracle), ``rl-tv``
(25 iterations, lambda 0.005, the setting of the RL-diffusion paper's comparison; ``rl-tv:num_iter=50,lambda_tv=0.002``
for others), and any registered sampler as ``NAME`` or ``NAME:key=value,key=value``
(e.g. ``rl-diffusion:M=20,zeta=1.0`` or ``dps:steps=250,zeta_schedule=sqrt_abar``), run through
``unblur.deconvolve`` with ``diagnostics=True``.  ``--taus`` also reports each sampler's output after
the final data-consistency step :func:`unblur.algorithms.guidance.consistency_step` with those ``tau``
(applied here to the ``consistency_tau=0`` output, which is what the methods do with ``consistency_tau``
set; computed directly to avoid re-running the sampler once per tau).

Columns: PSNR, SSIM (plain: the PSF is known and centred), the share of pixels whose window-summed
re-blur residual exceeds 3 (:func:`unblur.diagnostics.residual_map`, window 7, true noise sigma;
0.003 expected for the true image), time.  With ``--seeds 2`` or more, the mean per-pixel seed spread.

Example (a few minutes on one CPU core)::

    python benchmarks/hallucination.py --sets cbsd68_color --images 1 --size 128 --cases gauss-0.025 \\
        --methods rl rl-tv rl-diffusion rl-diffusion:M=20 --taus 0.05
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

import unblur
from unblur.algorithms.guidance import consistency_step
from unblur.diagnostics import residual_map, summarize
from unblur.metrics import psnr, ssim
from unblur.physics.convolution import convolve
from unblur.solvers.problem import setup_problem
from unblur.solvers.richardson_lucy import richardson_lucy

SETS = ("cbsd68_color", "mcmaster18", "set12")


def gaussian_psf(size=61, sigma=3.0):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    p = np.outer(g, g)
    return (p / p.sum()).astype(np.float32)


def case_psf(case: str, data: Path):
    """``(psf, noise sigma)`` of a degradation name (module docstring)."""
    if case.startswith("gauss-"):
        return gaussian_psf(), float(case.split("-", 1)[1])
    k = np.load(data / "kernels" / "usrnet_kernels_12_float32.npz")[f"kernel{int(case[5:]):02d}"]
    return (k / k.sum()).astype(np.float32), None


def load_crops(root: Path, sets, n: int, skip: int, size: int):
    out = []
    for s in sets:
        files = sorted(p for p in (root / "test" / s).iterdir() if p.suffix.lower() in (".png", ".tif", ".bmp", ".jpg"))
        for f in files[skip:skip + n]:
            a = iio.imread(f)
            a = a[..., :3] if a.ndim == 3 else a
            a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 65535.0)
            h, w = a.shape[:2]
            top, left = (h - size) // 2, (w - size) // 2
            out.append((f"{s}/{f.stem}", np.ascontiguousarray(a[top:top + size, left:left + size])))
    return out


def blur(x, psf, sigma, seed):
    t = torch.from_numpy(x)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    b = convolve(t, torch.from_numpy(psf), "replicate")[0]
    b = b[0].numpy() if x.ndim == 2 else b.permute(1, 2, 0).numpy()
    return b + sigma * np.random.default_rng(seed).standard_normal(b.shape).astype(np.float32)


def parse_method(spec: str):
    name, _, rest = spec.partition(":")
    kw = {}
    for item in filter(None, rest.split(",")):
        k, v = item.split("=")
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        kw[k] = v
    return name, kw


def run(spec, y, psf, sigma, ref, args):
    """``[(label, restored, time_s, extra)]``; samplers give one row per tau."""
    name, kw = parse_method(spec)
    if name == "rl":
        best = {"p": -1.0}

        def cb(it, x, info):
            xo = x[0, 0].numpy() if ref.ndim == 2 else x[0].permute(1, 2, 0).numpy()
            p = psnr(np.clip(xo, 0, 1), ref)
            if p > best["p"]:
                best.update(p=p, x=np.clip(xo, 0, 1).copy(), it=it + 1)

        t0 = time.perf_counter()
        richardson_lucy(y, psf, num_iter=args.rl_max, boundary="replicate", callback=cb)
        print(f"rl: best iteration {best['it']}", file=sys.stderr)
        return [("rl (oracle stop)", best["x"], time.perf_counter() - t0, {})]
    if name == "rl-tv":
        r = unblur.deconvolve(y, psf, method="rl-tv", **dict(dict(num_iter=25, lambda_tv=0.005, boundary="replicate"), **kw))
        return [(spec, np.clip(r.image, 0, 1), r.info["time_s"], {})]
    kw = dict(dict(boundary="replicate", seed=args.seed), **kw)
    r = unblur.deconvolve(y, psf, method=name, noise_sigma=sigma, diagnostics=True, seeds=args.seeds, **kw)
    extra = {"spread": r.info.get("seed_spread_mean")}
    rows = [(spec, r.image, r.info["time_s"], extra)]
    tau_used = kw.get("consistency_tau", unblur.get_method(name).defaults().get("consistency_tau", 0))
    if float(tau_used) == 0 and args.taus:  # --taus only around a sample without the step
        ch = -1 if y.ndim == 3 else None
        prob = setup_problem(y, psf, "replicate", channel_axis=ch)
        x0 = setup_problem(r.image, psf, "replicate", channel_axis=ch).y
        for tau in args.taus:
            t0 = time.perf_counter()
            x = consistency_step(prob.op, prob.y, x0, sigma, tau).clamp(0, 1)
            rows.append((f"{spec} + consistency tau {tau:g}", prob.output(x), r.info["time_s"] + time.perf_counter() - t0,
                         extra))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("UNBLUR_DATA", "../shared/data")))
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--images", type=int, default=1, help="images per set")
    ap.add_argument("--skip", type=int, default=0, help="skip the first images of each set (tuning images)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cases", nargs="+", default=["gauss-0.025", "shake09"])
    ap.add_argument("--shake-noise", type=float, default=0.01, help="noise sigma of the camera-shake cases ([0, 1])")
    ap.add_argument("--methods", nargs="+", default=["rl", "rl-tv", "rl-diffusion"])
    ap.add_argument("--taus", type=float, nargs="*", default=[], help="final data-consistency tau values to add")
    ap.add_argument("--rl-max", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=1, help="samples per run (2+: seed spread)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_crops(args.data, args.sets, args.images, args.skip, args.size)
    if not images:
        sys.exit(f"no images under {args.data}")
    print(f"images: {', '.join(n for n, _ in images)}; {args.size}x{args.size}; torch threads {args.threads}",
          file=sys.stderr)
    res = defaultdict(list)  # (case, label) -> [(psnr, ssim, outliers, time, spread)]
    order = []
    for case in args.cases:
        psf, sigma = case_psf(case, args.data)
        sigma = args.shake_noise if sigma is None else sigma
        for i, (img_name, ref) in enumerate(images):
            y = blur(ref, psf, sigma, args.seed + i)
            ch = -1 if ref.ndim == 3 else None
            yr = residual_map(y, ref, psf, sigma)  # the truth's own residual, for scale
            rows = [("(blurred input)", y, 0.0, {}), ("(true image)", ref, 0.0, {})]
            for spec in args.methods:
                rows += run(spec, y, psf, sigma, ref, args)
            for label, x, t, extra in rows:
                x = np.asarray(x, dtype=np.float32)
                out = summarize(residual=residual_map(y, np.clip(x, 0, 1), psf, sigma))["residual_outlier_share"]
                if label == "(true image)":
                    out = summarize(residual=yr)["residual_outlier_share"]
                p = psnr(np.clip(x, 0, 1), ref)
                s = ssim(np.clip(x, 0, 1), ref, channel_axis=ch)
                res[(case, label)].append((p, s, out, t, extra.get("spread") or np.nan))
                if (case, label) not in order:
                    order.append((case, label))
                print(f"{case} {img_name} {label}: PSNR {p:.2f} SSIM {s:.3f} |r|>3 {out:.3f} {t:.1f} s", file=sys.stderr,
                      flush=True)
    print(f"\n{len(images)} image(s) ({', '.join(n for n, _ in images)}), {args.size}x{args.size} crops, replicate "
          f"padding, camera-shake noise {args.shake_noise}, seed {args.seed}, {args.threads} thread(s)\n")
    spread = args.seeds > 1
    print("| case | method | PSNR | SSIM | share of pixels with abs(r) > 3 | time (s) | vs rl-tv (dB, min..max) |"
          + (" seed spread |" if spread else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if spread else ""))
    for case, label in order:
        a = np.array(res[(case, label)], dtype=np.float64)
        ref_tv = res.get((case, "rl-tv"))
        d = ""
        if ref_tv and label not in ("rl-tv", "(true image)"):
            diff = a[:, 0] - np.array(ref_tv)[:, 0]
            d = f"{diff.mean():+.2f} ({diff.min():+.2f}..{diff.max():+.2f})"
        row = f"| {case} | {label} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.3f} | {a[:, 2].mean():.3f} | " \
              f"{a[:, 3].mean():.1f} | {d} |"
        if spread:
            row += f" {np.nanmean(a[:, 4]):.4f} |" if np.isfinite(a[:, 4]).any() else " |"
        print(row)


if __name__ == "__main__":
    main()
