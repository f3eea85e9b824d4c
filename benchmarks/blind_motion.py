"""Blind motion deblurring, the Fast Diffusion EM protocol (Laroche, Almansa, Coupete, WACV 2024) on our data.

Centre crops (``--size``, paper: 256) of colour test images (``test/cbsd68_color`` under the data root),
random camera-shake kernels (``unblur.psf.motion.motion_kernel``, GP model, ``--kernel-size``, paper:
33; one kernel per image, seeded), circular blur, Gaussian noise sigma in ``--noise`` (/255; paper:
5, 10, 20).  Methods (all with ``--steps`` diffusion steps and the same image prior):

* Fast EM PiGDM n=1 and n=``--particles``, Fast EM DPS n=1 (method ``fast-em``),
* Fast EM PiGDM n=1 with the PiGDM M-step of the paper's Appendix D (eq. D.9, ``mstep_variance=True``),
* Diffusion EM (method ``diffusion-em``: PiGDM E-steps, ``--em-iters`` EM iterations),
* non-blind PiGDM (method ``pigdm``) with the true kernel (upper reference) and with a Dirac kernel
  (lower reference).

Every method runs through ``unblur.blind_deconvolve`` / ``unblur.deconvolve``.

Columns: PSNR / SSIM of the restored image (no shift search; crops of ``--crop`` px removed), the same
after the shift-tolerant alignment of blind-deblurring benchmarks (``unblur.metrics.shift_tolerant``:
15-px crop, best sub-pixel translation within +-10 px; a blind method recovers the kernel, hence the
image, only up to a translation), the normalised kernel error up to shift
(``unblur.metrics.kernel_error``), re-blur loss per pixel ``mean((k*x - y)^2) - sigma^2`` (eq. 34 / M) with
the method's kernel, wall time, network evaluations.  Averages over the images, one table per noise level.
The noise sigma is given to every method (the true value).

``--prior``: ``default`` (``unblur.models.load_prior``; when no weights are shipped the benchmark says
so and uses the training-free GaussianSmoother), ``smoother``, a checkpoint path, or ``near-truth:S`` (diagnostic: a prior that knows the image up to std S).  ``--regularizer``:
kernel prior of the M-step (``auto``: the shipped kernel denoiser if present, else l1).

    python benchmarks/blind_motion.py --images 1 --size 64 --kernel-size 13 --steps 30 --noise 10 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.blind.diffusion_em.kernel_metrics import reblur_loss
from unblur.data import data_path
from unblur.errors import InputError
from unblur.io import read_image
from unblur.metrics import kernel_error, psnr, shift_tolerant, ssim
from unblur.models.base import GaussianSmoother
from unblur.physics.convolution import convolve
from unblur.psf.motion import motion_kernel


def load_images(folder: str, n: int, size: int, first: int = 0) -> list[tuple[str, np.ndarray]]:
    files = sorted(p for p in Path(data_path(folder)).iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))
    out = []
    for p in files[first:first + n]:
        a = read_image(p)[..., :3].astype(np.float32)
        h, w = a.shape[:2]
        s = min(size, h, w)
        out.append((p.stem, a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]))
    return out


def blur(img: np.ndarray, k: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    t = torch.from_numpy(np.moveaxis(img, -1, 0))[None]
    y = convolve(t, torch.from_numpy(k), "circular")[0]
    y = y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return np.moveaxis(y.numpy(), 0, -1)


class NearTruthPrior(GaussianSmoother.__mro__[1]):
    """Diagnostic only: the MMSE denoiser of N(x_true, s^2 I) -- a prior that knows the image up to
    per-pixel std ``s``.  It checks the EM loop (M-step + guidance) when the prior is informative; it is not a method."""

    sigma_max = 1e3

    def __init__(self, s: float):
        super().__init__()
        self.s, self.ref = s, None

    def forward(self, x, sigma):
        ref, b = self.ref, (x.shape[-1] - self.ref.shape[-1]) // 2
        if b > 0:  # the solver reflect-pads the image before denoising (CountedPrior border)
            ref = torch.nn.functional.pad(ref, (b, b, b, b), mode="reflect")
        return ref + (x - ref) * self.s**2 / (self.s**2 + sigma**2)


def resolve_prior(spec: str):
    if spec.startswith("near-truth:"):
        s = float(spec.split(":", 1)[1])
        return NearTruthPrior(s), f"DIAGNOSTIC near-truth prior N(x_true, {s:g}^2 I) (knows the image; not a method)"
    if spec == "smoother":
        return GaussianSmoother(), "GaussianSmoother (training-free 1/f^2 Wiener shrinkage)"
    try:
        from unblur.models import load_prior
        return load_prior(None if spec == "default" else spec, channels=3), f"load_prior({spec!r})"
    except (ImportError, InputError) as err:
        if spec != "default":
            raise
        return GaussianSmoother(), f"GaussianSmoother (load_prior() failed: {err})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--first", type=int, default=0,
                    help="skip this many images of the folder (image j of the run is folder image first + j; its kernel "
                         "and noise seeds follow the folder index, so a run with --first is disjoint from one without)")
    ap.add_argument("--folder", default="test/cbsd68_color")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--kernel-size", type=int, default=33)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--noise", default="5,10,20", help="noise sigmas in /255, comma separated")
    ap.add_argument("--particles", type=int, default=4, help="n of the second Fast EM PiGDM row")
    ap.add_argument("--em-iters", type=int, default=10)
    ap.add_argument("--prior", default="default")
    ap.add_argument("--lam", type=float, default=None, help="M-step lambda (default: the library's)")
    ap.add_argument("--regularizer", default="auto", choices=("auto", "denoiser", "l1", "l2", "none"))
    ap.add_argument("--methods", default="fast-pigdm,fast-pigdm-d9,fast-pigdm-n,fast-dps,diffusion-em,pigdm-true,pigdm-dirac")
    ap.add_argument("--crop", type=int, default=0, help="border removed before PSNR/SSIM")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--r-choice", default="fastem", choices=("paper", "fastem"),
                    help="PiGDM r_t^2 and update scale of every PiGDM row, Fast EM and non-blind alike (default: Fast EM's default; see unblur.algorithms.guidance)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    prior, prior_note = resolve_prior(args.prior)
    reg = args.regularizer
    if reg == "auto":
        try:
            from unblur.blind.diffusion_em.em_run import resolve_kernel_prior
            resolve_kernel_prior(None, args.kernel_size)
            reg = "denoiser"
        except InputError:
            reg = "l1"
    mkw = dict(regularizer=reg, beta=1e3 if reg == "l1" else 1e5)
    if args.lam is not None:
        mkw["lam"] = args.lam
    ks = args.kernel_size
    dirac = np.zeros((ks, ks), np.float32)
    dirac[ks // 2, ks // 2] = 1
    n_many = args.particles

    def run(name, y, k_true, sigma, seed):
        common = dict(steps=args.steps, noise_sigma=sigma, prior=prior, seed=seed, r_choice=args.r_choice,
                      progress=False)
        if name in ("pigdm-true", "pigdm-dirac"):
            k = k_true if name == "pigdm-true" else dirac
            r = unblur.deconvolve(y, k, method="pigdm", boundary="circular", **common)
            return r.image, k, r.info
        mkw_em = dict(mkw, boundary="circular", init_kernel="dirac", safeguard=False)  # the paper's setting (circular data)
        if name == "diffusion-em":
            r = unblur.blind_deconvolve(y, method="diffusion-em", kernel_size=ks, em_iters=args.em_iters, **common, **mkw_em)
        else:
            r = unblur.blind_deconvolve(y, method="fast-em", guidance="dps" if name == "fast-dps" else "pigdm",
                                        particles=n_many if name == "fast-pigdm-n" else 1, kernel_size=ks,
                                        mstep_variance=name == "fast-pigdm-d9", **common, **mkw_em)
        return r.image, r.kernel, r.info

    labels = {"fast-pigdm": "Fast EM PiGDM n=1", "fast-pigdm-d9": "Fast EM PiGDM n=1, M-step eq. D.9 (r_t^2)",
              "fast-pigdm-n": f"Fast EM PiGDM n={n_many}",
              "fast-dps": "Fast EM DPS n=1", "diffusion-em": f"Diffusion EM (PiGDM, L={args.em_iters})",
              "pigdm-true": "PiGDM, true kernel (non-blind)", "pigdm-dirac": "PiGDM, Dirac kernel (non-blind)"}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in labels:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(labels)}")
    images = load_images(args.folder, args.images, args.size, args.first)
    print(f"images: {len(images)} x {args.size}px crops of {args.folder} ({', '.join(n for n, _ in images)}); "
          f"kernels: GP camera shake {ks}x{ks}; steps {args.steps}; prior: {prior_note}; "
          f"M-step regulariser: {reg}, lambda {mkw.get('lam', 'default')}; PiGDM r_choice {args.r_choice}; torch threads {torch.get_num_threads()}\n")
    c = args.crop
    inner = (slice(c, args.size - c), slice(c, args.size - c)) if c else (slice(None), slice(None))
    for s255 in [float(v) for v in args.noise.split(",")]:
        sigma = s255 / 255
        rows = {m: [] for m in methods}
        flat_err = []
        for j, (name, img) in enumerate(images):
            i = args.first + j
            k = motion_kernel(ks, seed=args.seed + i)
            flat_err.append(kernel_error(np.full((ks, ks), 1.0 / ks**2), k))
            y = blur(img, k, sigma, seed=args.seed + 1000 + i)
            if isinstance(prior, NearTruthPrior):
                prior.ref = torch.from_numpy(np.moveaxis(img, -1, 0).copy())[None]
            for m in methods:
                t0 = time.perf_counter()
                x, k_est, info = run(m, y, k, sigma, args.seed + i)
                dt = time.perf_counter() - t0
                al = shift_tolerant(x, img, channel_axis=-1)
                rows[m].append((psnr(x[inner], img[inner]), ssim(x[inner], img[inner], channel_axis=-1),
                                al["psnr"], al["ssim"],
                                kernel_error(k_est, k), reblur_loss(x, y, k_est, sigma), dt, info.get("nfe", 0)))
        print(f"### noise sigma {s255:g}/255\n")
        print("| method | PSNR (dB) | SSIM | PSNR aligned | SSIM aligned | kernel error | L_reblur / M | time (s) | nfe |")
        print("|---|---|---|---|---|---|---|---|---|")
        for m in methods:
            a = np.array(rows[m], dtype=np.float64).mean(0)
            print(f"| {labels[m]} | {a[0]:.2f} | {a[1]:.3f} | {a[2]:.2f} | {a[3]:.3f} | {a[4]:.3f} | {a[5]:.2e} | {a[6]:.1f} | {a[7]:.0f} |")
        if "fast-pigdm" in rows and "pigdm-true" in rows:
            d = np.array(rows["fast-pigdm"], dtype=np.float64)[:, [0, 2]] - np.array(rows["pigdm-true"], dtype=np.float64)[:, [0, 2]]
            print(f"\nFast EM PiGDM n=1 minus non-blind PiGDM (true kernel), paired per image: plain {d[:, 0].mean():+.2f} dB "
                  f"({' '.join(f'{v:+.2f}' for v in d[:, 0])}), aligned {d[:, 1].mean():+.2f} dB ({' '.join(f'{v:+.2f}' for v in d[:, 1])})")
        print(f"\nReference: kernel error of a flat {ks}x{ks} kernel = {np.mean(flat_err):.3f} (a method must beat this "
              f"to have found any structure).\n")


if __name__ == "__main__":
    main()
