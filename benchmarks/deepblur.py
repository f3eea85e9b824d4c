"""Deep-blur evaluation (Debarnot & Weiss 2024 protocol, small): prints markdown tables.

* PSF error as SNR in dB, ``20 log10(||h|| / ||h - h_hat||)``, over gray test images (set12) and random
  ``gamma ~ U[-eta, eta]^8`` (Noll 4..11), versus the noise level ``alpha`` (eta 0.15) and versus
  ``eta`` (alpha 0); ``beta = 0`` in both.  Estimators: deep-blur IN (tiled), two references that
  read nothing off the image -- the aberration-free PSF ``h(0)`` and the mean PSF of the family at
  that eta (:func:`mean_psf`, the better constant) -- and a classical blind fit (:func:`fit_gamma`).
* Image PSNR/SSIM on the field of view at eta 0.15, alpha 0.01: DN with the true gamma (ceiling),
  Wiener with the true PSF, deep-blur (IN + DN), Wiener with the IN PSF, RL (30 its) with the fitted PSF.
* Time per 400x400 image on this machine (identification + deblurring).

The blur is the valid convolution of a crop larger by ``k - 1`` (no boundary artefact in the data).
Restorations run through ``unblur.blind_deconvolve(method="deepblur")`` and ``unblur.deconvolve``
(Wiener, RL).  What the registry cannot express is called directly and is a study of deep-blur's
parts: the identification network alone (:func:`unblur.blind.deepblur.identify_psf`, for the PSF
tables and the identification time), DN fed the true gamma (the ceiling), and the classical
gamma fit (:func:`fit_gamma`, written here on the PSF model).
``--identify-weights FILE --psf-only`` evaluates the PSF tables of any IN export, whatever its PSF
model (Zernike, eigen-PSF or product-convolution; the gamma are then drawn in that model's
parameters, ``h(0)`` is its gamma = 0 PSF, and a product-convolution is scored on all its
control-point PSFs together).

    python benchmarks/deepblur.py --images 4 --draws 2
    python benchmarks/deepblur.py --identify-weights runs/eigen_in.pt --psf-only --size 64 --no-fit
    python benchmarks/deepblur.py --timing-only --timing-threads 1,2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import unblur
from unblur.blind.deepblur.api import IDENTIFY_WEIGHTS, deepblur, identify_psf
from unblur.blind.deepblur.psf_model import psf_model_from_description
from unblur.blind.deepblur.simulate import add_noise
from unblur.blind.deepblur.train import load_weights
from unblur.data import list_images
from unblur.io import read_image
from unblur.metrics import psnr, ssim


def psf_snr(h, h_hat) -> float:
    h, h_hat = np.asarray(h, np.float64), np.asarray(h_hat, np.float64)
    return float(20 * np.log10(np.linalg.norm(h) / max(np.linalg.norm(h - h_hat), 1e-30)))


def fit_gamma(y: np.ndarray, model, rounds: int = 8, rl_iters: int = 5, adam_steps: int = 10, lr: float = 0.01):
    """Classical blind baseline: alternate RL on x and Adam on gamma (differentiable PSF model), valid boundary.

    RL update (Richardson 1972): ``x <- x * A^T(y / A x) / A^T 1`` with ``A = A(gamma)`` fixed; then
    ``adam_steps`` steps on ``||A(gamma) x - y||^2`` with ``x`` fixed.  Starts at gamma = 0, x = y.
    """
    yt = torch.from_numpy(y)[None, None].clamp_min(0)
    gamma = torch.zeros(1, model.n_params, requires_grad=True)
    opt = torch.optim.Adam([gamma], lr=lr)
    op = model.operator(model(gamma.detach()), y.shape, "valid")
    x = op.initial_object(yt).clamp_min(1e-6)
    for _ in range(rounds):
        with torch.no_grad():
            op = model.operator(model(gamma), y.shape, "valid")
            norm = op.A_adjoint(torch.ones_like(yt)).clamp_min(1e-12)
            for _ in range(rl_iters):
                x = x * op.A_adjoint(yt / op.A(x).clamp_min(1e-12)) / norm
        for _ in range(adam_steps):
            loss = ((model.operator(model(gamma), y.shape, "valid").A(x) - yt) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        g = model.canonical(gamma.detach())
        return g[0].numpy(), model.psf_array(model(g)[0]).numpy()


def load_crops(n: int, size: int, k: int) -> list[np.ndarray]:
    out = []
    for f in list_images("test/set12")[:n]:
        im = np.asarray(read_image(f), np.float32)
        im = im.mean(-1) if im.ndim == 3 else im
        s = size + k - 1
        i, j = (im.shape[0] - s) // 2, (im.shape[1] - s) // 2
        out.append(im[i:i + s, j:j + s])
    return out


def simulate(x: np.ndarray, model, gamma: torch.Tensor, alpha: float, size: int, seed: int):
    h = model(gamma)
    z = model.operator(h, (size, size), "valid").A(torch.from_numpy(x)[None, None])
    g = torch.Generator().manual_seed(seed)
    y = add_noise(z, torch.tensor([alpha]), torch.tensor([0.0]), g)
    return y[0, 0].numpy(), model.psf_array(h[0]).numpy()


def mean_psf(model, eta: float, n: int = 256, seed: int = 12345) -> np.ndarray:
    """The average PSF of ``n`` random ``gamma ~ U[-eta, eta]^K``: the best constant guess in the L2 sense.

    It uses no information from the image (only the blur level eta), so an identification network must
    beat it to show that it reads the PSF off the image; h(0), the aberration-free PSF, is a far weaker
    reference once eta >= 0.1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gamma = (2 * torch.rand(n, model.n_params, generator=g) - 1) * eta
        hs = torch.stack([model.psf_array(h) for h in model(gamma)])
    return hs.mean(0).numpy()


def psf_table(crops, model, settings, draws, size, fit, weights=IDENTIFY_WEIGHTS, seed=0):
    rows = []
    for eta, alpha in settings:
        snr = {"deep-blur IN": [], "h(0) (no identification)": [], "mean PSF (no identification, knows eta)": []}
        if fit:
            snr["RL + gamma fit"] = []
        h_mean = mean_psf(model, eta)
        g = torch.Generator().manual_seed(seed)
        for i, x in enumerate(crops):
            for d in range(draws):
                gamma = (2 * torch.rand(1, model.n_params, generator=g) - 1) * eta
                y, h = simulate(x, model, gamma, alpha, size, seed=1000 * i + d)
                _, h_in, _ = identify_psf(y, weights=weights)
                snr["deep-blur IN"].append(psf_snr(h, h_in))
                h0 = model.psf_array(model(torch.zeros(1, model.n_params))[0]).numpy()
                snr["h(0) (no identification)"].append(psf_snr(h, h0))
                snr["mean PSF (no identification, knows eta)"].append(psf_snr(h, h_mean))
                if fit:
                    snr["RL + gamma fit"].append(psf_snr(h, fit_gamma(y, model)[1]))
        rows.append((eta, alpha, {k: (np.mean(v), np.std(v)) for k, v in snr.items()}))
    return rows


def image_table(crops, model, size, weights=IDENTIFY_WEIGHTS, alpha=0.01, eta=0.15, seed=0):
    g = torch.Generator().manual_seed(seed + 7)
    k = model.psf_size
    res = {}
    for i, x in enumerate(crops):
        gamma = (2 * torch.rand(1, model.n_params, generator=g) - 1) * eta
        y, h = simulate(x, model, gamma, alpha, size, seed=99 + i)
        ref = x[k // 2:k // 2 + size, k // 2:k // 2 + size]
        out = {"blurred input": y,
               "DN, true gamma (ceiling)": deepblur(y, identify_weights=weights, gamma=gamma[0].numpy())["image"],
               "Wiener, true PSF": unblur.deconvolve(y, h, method="wiener", boundary="reflect").image}
        r = unblur.blind_deconvolve(y, method="deepblur", identify_weights=str(weights))
        out["deep-blur (IN + DN)"] = r.image
        out["Wiener, IN PSF"] = unblur.deconvolve(y, r.kernel, method="wiener", boundary="reflect").image
        out["RL 30 its, fitted PSF"] = unblur.deconvolve(y, fit_gamma(y, model)[1], method="rl", num_iter=30,
                                                         boundary="valid").image
        for name, im in out.items():
            res.setdefault(name, []).append((psnr(np.clip(im, 0, 1), ref), ssim(np.clip(im, 0, 1), ref)))
    return {n: np.mean(v, 0) for n, v in res.items()}


def timing(model, weights=IDENTIFY_WEIGHTS, reps: int = 3, size: int = 400):
    """Median seconds (identification, identification + deblurring) on a real blurred image.

    The image is a ``size`` x ``size`` centre crop of set12 ``08.png`` (512x512) blurred by the valid
    convolution with a random PSF of the model (eta 0.15) plus Poisson-Gaussian noise (alpha 0.01):
    a realistic input, so that CG's stopping test behaves as on real data.
    """
    x = load_crops(8, size, model.psf_size)[7]
    gamma = (2 * torch.rand(1, model.n_params, generator=torch.Generator().manual_seed(5)) - 1) * 0.15
    y, _ = simulate(x, model, gamma, 0.01, size, seed=5)
    unblur.blind_deconvolve(y, method="deepblur", identify_weights=str(weights))  # warm-up (weights, allocator)
    t_id, t_all = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        identify_psf(y, weights=weights)
        t1 = time.perf_counter()
        unblur.blind_deconvolve(y, method="deepblur", identify_weights=str(weights))
        t_all.append(time.perf_counter() - t1)
        t_id.append(t1 - t0)
    return float(np.median(t_id)), float(np.median(t_all))


def print_timing(model, weights, threads):
    print("### Time per 400x400 gray image (set12 08 crop, eta 0.15, alpha 0.01; median of 3)\n\n"
          "| torch threads | identification | identification + deblurring |\n|---|---|---|")
    for n in threads:
        torch.set_num_threads(n)
        t_id, t_all = timing(model, weights)
        print(f"| {n} | {t_id:.2f} s | {t_all:.2f} s |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--draws", type=int, default=2, help="random gamma per image and setting")
    p.add_argument("--size", type=int, default=128, help="observed image size")
    p.add_argument("--alphas", default="0,0.05,0.1")
    p.add_argument("--etas", default="0.05,0.1,0.15,0.2")
    p.add_argument("--no-fit", action="store_true", help="skip the classical gamma-fit baseline in the PSF tables")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--identify-weights", default=str(IDENTIFY_WEIGHTS), help="IN weights (default: shipped)")
    p.add_argument("--psf-only", action="store_true", help="only the PSF tables (no image quality, no timing)")
    p.add_argument("--timing-only", action="store_true", help="only the 400x400 timing table")
    p.add_argument("--timing-threads", default=None,
                   help="comma-separated torch thread counts for the timing table (default: --threads)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    w = load_weights(a.identify_weights)
    d = w["psf_model"]
    model = psf_model_from_description(d)
    threads = [int(v) for v in (a.timing_threads or str(a.threads)).split(",")]
    if a.timing_only:
        print_timing(model, a.identify_weights, threads)
        return
    crops = load_crops(a.images, a.size, model.psf_size)
    about = {k: v for k, v in d.items() if k in ("kind", "noll", "optics", "rank", "grid", "captured_energy")}
    print(f"weights: {a.identify_weights} ({w['train']['steps']} steps, crop {w['train']['size']}); "
          f"{len(crops)} set12 images, {a.size}x{a.size}, {a.draws} gamma draws each, PSF model {about}\n")
    for title, settings in (("PSF SNR (dB, mean ± std) vs noise alpha, eta = 0.15, beta = 0",
                             [(0.15, float(v)) for v in a.alphas.split(",")]),
                            ("PSF SNR (dB, mean ± std) vs eta, alpha = 0, beta = 0",
                             [(float(v), 0.0) for v in a.etas.split(",")])):
        rows = psf_table(crops, model, settings, a.draws, a.size, not a.no_fit, a.identify_weights)
        names = list(rows[0][2])
        print(f"### {title}\n\n| eta | alpha | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
        for eta, alpha, r in rows:
            print(f"| {eta} | {alpha} | " + " | ".join(f"{r[n][0]:.1f} ± {r[n][1]:.1f}" for n in names) + " |")
        print()
    if a.psf_only:
        return
    res = image_table(crops, model, a.size, a.identify_weights)
    print("### Image quality, eta = 0.15, alpha = 0.01, beta = 0 (field of view, clipped to [0, 1])\n\n"
          "| method | PSNR (dB) | SSIM |\n|---|---|---|")
    for n, (ps, ss) in res.items():
        print(f"| {n} | {ps:.2f} | {ss:.3f} |")
    print()
    print_timing(model, a.identify_weights, threads)

if __name__ == "__main__":
    main()
