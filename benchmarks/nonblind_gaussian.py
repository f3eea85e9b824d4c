"""Non-blind Gaussian deblurring benchmark: the RL-diffusion paper's protocol (Modrzyk et al., EUSIPCO 2024).

Protocol: centre 256x256 crops of colour test images (CBSD68, McMaster, FFHQ samples; FFHQ's alpha
channel dropped), Gaussian kernel 61x61 with sigma 3.0, blur with replicate padding of 30 px
(``boundary="replicate"``), additive Gaussian noise.  The paper (following DPS) adds sigma 0.05 in
[-1, 1] units, i.e. 0.025 in [0, 1] units; ``--noise 0.025 0.05`` reports both settings ([0, 1] units).

Methods: RL (best early stop: the oracle iteration with the highest PSNR, up to ``--rl-max``), RL-TV (25
iterations, lambda 0.005), PnP-ADMM (rho 0.2, 12 iterations), DPS (``--dps-steps``, default 1000),
PiGDM (100 steps), RL-diffusion (N = 20, L = 20, M = 80) and the Table II ablation (DPS refinement from
y, RL-TV, PnP-ADMM).  Prints a markdown table of mean PSNR / SSIM / time / network evaluations.
Every method runs through ``unblur.deconvolve(y, psf, method=...)`` except RL's oracle early stop,
which needs the estimate at every iteration: it calls :func:`unblur.solvers.richardson_lucy` with
a ``callback``.

Example (small CPU run)::

    python benchmarks/nonblind_gaussian.py --images 1 --sets ffhq_samples --prior PATH --methods rl rl-tv pnp-admm rl-diffusion
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

import unblur
from unblur.errors import InputError
from unblur.metrics import psnr, ssim
from unblur.physics.convolution import convolve
from unblur.solvers.richardson_lucy import richardson_lucy

SETS = ("cbsd68_color", "mcmaster18", "ffhq_samples")
ALL = ("rl", "rl-tv", "pnp-admm", "dps", "pigdm", "rl-diffusion", "refine-y", "refine-rl-tv", "refine-pnp-admm")


def gaussian_psf(size=61, sigma=3.0):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    p = np.outer(g, g)
    return (p / p.sum()).astype(np.float32)


def load_crops(root: Path, sets, n: int, size: int):
    """First ``n`` images (sorted) of each set, centre-cropped to ``size`` x ``size``, RGB in [0, 1]."""
    out = []
    for s in sets:
        files = sorted(p for p in (root / s).iterdir() if p.suffix.lower() in (".png", ".jpg", ".tif", ".bmp"))
        for f in files[:n]:
            a = iio.imread(f)
            a = a[..., :3] if a.ndim == 3 else np.stack([a] * 3, -1)  # FFHQ samples are RGBA
            a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 65535.0)
            h, w = a.shape[:2]
            if min(h, w) < size:
                continue
            top, left = (h - size) // 2, (w - size) // 2
            out.append((f"{s}/{f.name}", np.ascontiguousarray(a[top:top + size, left:left + size])))
    return out


def blur(x: np.ndarray, psf: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    b = convolve(t, torch.from_numpy(psf), "replicate")[0].permute(1, 2, 0).numpy()
    return b + sigma * np.random.default_rng(seed).standard_normal(b.shape).astype(np.float32)


def run_method(name, y, psf, sigma, args, ref):
    """Returns (restored, nfe, time_s, note)."""
    common = dict(prior=args.prior, noise_sigma=sigma, boundary="replicate", seed=args.seed, progress=args.progress)
    if name == "rl":
        best = {"psnr": -1.0, "it": 0}

        def cb(it, x, info):
            p = psnr(x[0].permute(1, 2, 0).numpy(), ref)
            if p > best["psnr"]:
                best.update(psnr=p, it=it + 1, x=x[0].permute(1, 2, 0).numpy().copy())

        t0 = time.perf_counter()
        richardson_lucy(y, psf, num_iter=args.rl_max, boundary="replicate", callback=cb)
        return best["x"], 0, time.perf_counter() - t0, f"best iteration {best['it']}"
    if name == "rl-tv":
        r = unblur.deconvolve(y, psf, method="rl-tv", num_iter=25, lambda_tv=0.005, boundary="replicate",
                              progress=args.progress)
        return r.image, 0, r.info["time_s"], ""
    if name == "pnp-admm":
        r = unblur.deconvolve(y, psf, method="pnp-admm", **common)
    elif name == "dps":
        r = unblur.deconvolve(y, psf, method="dps", steps=args.dps_steps, consistency_tau=args.consistency_tau, **common)
    elif name == "pigdm":
        r = unblur.deconvolve(y, psf, method="pigdm", steps=100, **common)
    else:
        refine = "rl-diffusion" if name == "rl-diffusion" else name.removeprefix("refine-")
        r = unblur.deconvolve(y, psf, method="rl-diffusion", refine_from=refine, zeta=args.zeta, M=args.M,
                              consistency_tau=args.consistency_tau, **common)
    return r.image, r.info["nfe"], r.info["time_s"], ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("UNBLUR_DATA", "../shared/data")) / "test")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--images", type=int, default=2, help="images per set")
    ap.add_argument("--size", type=int, default=256, help="crop size (the protocol: 256)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.025, 0.05], help="noise sigma in [0, 1] units")
    ap.add_argument("--methods", nargs="+", default=list(ALL), choices=ALL)
    ap.add_argument("--prior", default=None, help="prior spec/checkpoint (default: the embedded unblur network)")
    ap.add_argument("--dps-steps", type=int, default=1000)
    ap.add_argument("--rl-max", type=int, default=200, help="iterations searched for RL's best early stop")
    ap.add_argument("--zeta", type=float, default=0.3, help="DPS step of RL-diffusion's refinement (paper: 0.3)")
    ap.add_argument("--M", type=int, default=80, help="RL-diffusion's DPS refinement steps (paper: 80)")
    ap.add_argument("--consistency-tau", type=float, default=0.0,
                    help="final data-consistency step of DPS and RL-diffusion (paper: none, 0; unblur's defaults: 0.1 / 0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    psf = gaussian_psf()
    images = load_crops(args.data, args.sets, args.images, args.size)
    if not images:
        sys.exit(f"no images found under {args.data}")
    print(f"{len(images)} image(s): {', '.join(n for n, _ in images)}; torch threads {torch.get_num_threads()}",
          file=sys.stderr)
    rows, per_image = [], {}
    for sigma in args.noise:
        for name in args.methods:
            res, skipped = [], None
            for i, (img_name, ref) in enumerate(images):
                y = blur(ref, psf, sigma, seed=args.seed + i)
                try:
                    out, nfe, t, note = run_method(name, y, psf, sigma, args, ref)
                except InputError as err:
                    skipped = str(err)
                    break
                r = (psnr(out, ref), ssim(out, ref, channel_axis=-1), t, nfe)
                res.append(r)
                print(f"sigma {sigma} {name:16s} {img_name}: PSNR {r[0]:.2f} SSIM {r[1]:.3f} {t:.1f} s nfe {nfe} {note}",
                      file=sys.stderr, flush=True)
            if skipped:
                rows.append(f"| {sigma} | {name} | not run: {skipped} | | | |")
                continue
            m, sd = np.mean(res, axis=0), np.std(res, axis=0)
            per_image[(sigma, name)] = [r[0] for r in res]
            rows.append(f"| {sigma} | {name} | {m[0]:.2f} ± {sd[0]:.2f} | {m[1]:.3f} | {m[2]:.1f} | {int(m[3])} |")
        blurred = [psnr(blur(ref, psf, sigma, args.seed + i), ref) for i, (_, ref) in enumerate(images)]
        rows.append(f"| {sigma} | (blurred input) | {np.mean(blurred):.2f} | | | |")
    print(f"\n{len(images)} image(s) ({', '.join(args.sets)}), {args.size}x{args.size}, kernel 61x61 sigma 3.0, "
          f"replicate padding, prior {args.prior or 'embedded'}, RL-diffusion zeta {args.zeta} M {args.M}\n")
    print("| noise sigma ([0,1]) | method | PSNR (mean ± std over images) | SSIM | time (s) | nfe |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for sigma in args.noise:  # paired per-image differences behind the paper's claims
        for a, b in (("rl-diffusion", "rl-tv"), ("rl-diffusion", "dps"), ("rl-diffusion", "pnp-admm")):
            if (sigma, a) in per_image and (sigma, b) in per_image:
                d = np.subtract(per_image[(sigma, a)], per_image[(sigma, b)])
                print(f"\nnoise {sigma}: PSNR({a}) - PSNR({b}) per image: mean {d.mean():+.2f} dB, "
                      f"min {d.min():+.2f}, max {d.max():+.2f} ({len(d)} images)")


if __name__ == "__main__":
    main()
