"""Fast Diffusion EM diagnostics: where does the gap to non-blind PiGDM come from?

The protocol of the ``fastem-motion`` suite (CBSD68 colour centre crops, ``--size`` 256, 33x33 GP
camera-shake kernels seeded by the image index, circular blur, Gaussian noise, true noise sigma given;
the noise is drawn here with seed ``1000 + index``).  Three studies:

``--study path``
    Fast EM (PiGDM, n=1), then non-blind PiGDM (same seed, 100 steps) with Fast EM's final kernel, with
    its kernel after step ``--mid-step``, and with the true kernel.  If Fast EM ~ PiGDM with its own final
    kernel, the gap comes from the kernel's accuracy, not from the early sampling steps that used a
    worse kernel.
``--study oracle``
    One M-step (:func:`unblur.blind.diffusion_em.mstep.m_step`) from a Dirac kernel fed the *true* sharp
    image, for several settings (lambda, beta, HQS iterations, no kernel denoiser): the accuracy the
    M-step reaches when the image estimate is perfect.
``--study init``
    Fast EM from other starting kernels (``--inits``: ``dirac``, ``flat``, ``gS`` a Gaussian of std S px),
    and with other M-step weights ``--lams`` (lambda of eq. 21; the paper's 1).

Kernels are scored by the normalised kernel error up to shift (:func:`unblur.metrics.kernel_error`).
Why a script and not a suite: the studies reach inside the method. ``path`` feeds PiGDM the per-step
kernel history of one Fast EM run (``info["kernel_history"]``), ``oracle`` calls the M-step alone with the
true image, and ``init`` starts from kernels given as arrays (flat, Gaussian), which a suite's TOML
parameters cannot hold. Fast EM's M-step weight alone (``lam``, from the usual start) is a registered
parameter: the ``fastem-motion`` suite's ``--full`` methods compare the default with the paper's 1.
The non-blind PiGDM runs go through ``unblur.deconvolve(method="pigdm")``.

    python benchmarks/fastem_diagnostics.py --study path --noise 10,5 --images 4
    python benchmarks/fastem_diagnostics.py --study oracle --noise 5,10 --images 4
    python benchmarks/fastem_diagnostics.py --study init --noise 10 --inits dirac,g3,flat
    python benchmarks/fastem_diagnostics.py --study init --noise 10,20 --inits dirac --lams 0.1,1,10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.blind.diffusion_em.em_run import resolve_kernel_prior
from unblur.blind.diffusion_em.fast_em import fast_diffusion_em
from unblur.blind.diffusion_em.mstep import dirac_kernel, m_step
from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import kernel_error, psnr, shift_tolerant
from unblur.physics.convolution import convolve
from unblur.psf.motion import motion_kernel

ORACLE_SETTINGS = (("denoiser", 1.0, 1e5, 10), ("denoiser", 1.0, 1e5, 100), ("denoiser", 0.1, 1e5, 10),
                   ("denoiser", 1.0, 1e4, 10), ("denoiser", 1.0, 1e6, 10), ("none", 1.0, 1e5, 10))


def load_images(folder: str, n: int, size: int) -> list[tuple[str, np.ndarray]]:
    """The first ``n`` colour images of ``folder`` (under the data root), centre crops of side ``size``."""
    files = sorted(p for p in Path(data_path(folder)).iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))
    out = []
    for p in files[:n]:
        a = read_image(p)[..., :3].astype(np.float32)
        h, w = a.shape[:2]
        s = min(size, h, w)
        out.append((p.stem, a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]))
    return out


def blur(img: np.ndarray, k: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Circular blur of an ``(H, W, C)`` image by ``k`` plus Gaussian noise of std ``sigma`` (torch generator ``seed``)."""
    t = torch.from_numpy(np.moveaxis(img, -1, 0))[None]
    y = convolve(t, torch.from_numpy(k), "circular")[0]
    y = y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return np.moveaxis(y.numpy(), 0, -1)


def start_kernel(spec: str, size: int):
    if spec == "dirac":
        return None
    if spec == "flat":
        return np.full((size, size), 1.0 / size**2, np.float32)
    s = float(spec[1:])
    g = np.arange(size) - size // 2
    k = np.exp(-(g[:, None] ** 2 + g[None] ** 2) / (2 * s * s))
    return (k / k.sum()).astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", choices=("path", "oracle", "init"), required=True)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--kernel-size", type=int, default=33)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--noise", default="10", help="noise sigmas in /255, comma separated")
    ap.add_argument("--mid-step", type=int, default=50, help="path study: the intermediate kernel")
    ap.add_argument("--inits", default="dirac,g3,flat", help="init study: starting kernels")
    ap.add_argument("--lams", default="1", help="init study: M-step lambdas")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ks = a.kernel_size
    images = load_images("test/cbsd68_color", a.images, a.size)
    kden = resolve_kernel_prior(None, ks) if a.study == "oracle" else None
    for s255 in [float(v) for v in a.noise.split(",")]:
        sig = s255 / 255
        if a.study == "path":
            print(f"\n### noise {s255:g}/255\n\n| image | Fast EM | PiGDM, Fast EM's final kernel | PiGDM, its step-{a.mid_step} "
                  "kernel | PiGDM, true kernel | kernel error |\n|---|---|---|---|---|---|")
        elif a.study == "oracle":
            print(f"\n### noise {s255:g}/255: kernel error of one M-step with the true image\n\n| image | "
                  + " | ".join(f"{r} lambda {lam:g} beta {b:.0e} HQS {it}" for r, lam, b, it in ORACLE_SETTINGS)
                  + " |\n|" + "---|" * (len(ORACLE_SETTINGS) + 1))
        else:
            print(f"\n### noise {s255:g}/255\n\n| start kernel | lambda | PSNR (per image) | PSNR aligned | kernel error (per image) | time (s) |"
                  "\n|---|---|---|---|---|---|")
        inits = [(i, float(lam)) for i in a.inits.split(",") for lam in a.lams.split(",")] if a.study == "init" else [(None, 1.0)]
        for init, lam in inits:
            rows = []
            for i, (name, img) in enumerate(images):
                k = motion_kernel(ks, seed=i)
                y = blur(img, k, sig, seed=1000 + i)
                if a.study == "oracle":
                    yt = torch.from_numpy(np.moveaxis(y, -1, 0).copy())
                    xt = torch.from_numpy(np.moveaxis(img, -1, 0).copy())[None]
                    cells = []
                    for reg, lam, beta, its in ORACLE_SETTINGS:
                        kk = m_step(yt, xt, dirac_kernel(ks), sig, iters=its, lam=lam, beta=beta, regularizer=reg,
                                    kernel_denoiser=kden)
                        cells.append(f"{kernel_error(kk.numpy(), k):.3f}")
                    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
                    continue
                t0 = time.perf_counter()
                x, info = fast_diffusion_em(y, noise_sigma=sig, seed=i, kernel_size=ks, steps=a.steps, lam=lam,
                                            init_kernel=start_kernel(init, ks) if init else "dirac",
                                            boundary="circular", safeguard=False, final_step=False)  # the paper's setting (circular data)
                dt = time.perf_counter() - t0
                if a.study == "init":
                    rows.append((psnr(x, img), kernel_error(info["kernel"], k), dt,
                                 shift_tolerant(x, img, channel_axis=-1)["psnr"]))
                    continue
                out = [psnr(x, img)]
                for kk in (info["kernel"], info["kernel_history"][a.mid_step - 1], k):
                    xn = unblur.deconvolve(y, kk, method="pigdm", boundary="circular", r_choice="fastem", steps=a.steps,
                                           noise_sigma=sig, seed=i, progress=False).image
                    out.append(psnr(xn, img))
                print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in out) + f" | {kernel_error(info['kernel'], k):.3f} |", flush=True)
            if a.study == "init":
                r = np.array(rows)
                print(f"| {init} | {lam:g} | {r[:, 0].mean():.2f} ({' '.join(f'{v:.2f}' for v in r[:, 0])}) | "
                      f"{r[:, 3].mean():.2f} ({' '.join(f'{v:.2f}' for v in r[:, 3])}) | {r[:, 1].mean():.3f} "
                      f"({' '.join(f'{v:.3f}' for v in r[:, 1])}) | {r[:, 2].mean():.1f} |", flush=True)


if __name__ == "__main__":
    main()
