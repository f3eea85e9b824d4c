"""Deep-blur on real microscopy data: slices of the stacks in ``microscopy/``.

For each stack, one 2-D slice (the middle plane, or the 2-D image) is scaled to [0, 1] by its
0.1 / 99.9 percentiles (negatives set to 0) and restored by

* deep-blur (IN + DN, shipped or ``--identify-weights`` weights),
* Richardson-Lucy (30 iterations, ``valid`` boundary) with the PSF that IN identified, and
* where the dataset ships a PSF, Richardson-Lucy (30 iterations) with that PSF's in-focus plane
  (the plane of its maximum, cropped to 31x31 around the peak and normalised to sum 1).

The data are 3-D blurs: a slice of ``h * x`` is not a 2-D convolution of the object's slice, so
no 2-D method is exact here and the in-focus plane is only the thin-object approximation. The
optics of these datasets differ from the ones IN was trained for (see the weights' model card), so
these runs show how the method behaves out of its training conditions, not its accuracy.

Printed per case: the PSF SNR ``20 log10(||h|| / ||h - h_hat||)`` of IN's PSF and of the
aberration-free ``h(0)`` against the dataset's in-focus PSF (when there is one), gamma, the time,
and, where a ground truth exists (flowdec ``bars`` ``actual.tif``, sdeconv ``pollen.tif``), PSNR/SSIM
against the ground-truth slice after a least-squares gain/offset fit of each result (the data and
the ground truth are in different intensity units).  For each case a PNG is written to ``--out``:
panels left to right = blurred slice, deep-blur, RL with IN's PSF, RL with the dataset PSF (if
any), ground truth (if any), then the PSFs (IN's, the dataset's), magnified 4x.

Every restoration runs through ``unblur.blind_deconvolve(method="deepblur")`` and
``unblur.deconvolve(method="rl")``.

    python benchmarks/deepblur_microscopy.py [--out out/deepblur_microscopy] [--identify-weights FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import unblur
from unblur.blind.deepblur.api import IDENTIFY_WEIGHTS
from unblur.blind.deepblur.psf_model import psf_model_from_description
from unblur.blind.deepblur.train import load_weights
from unblur.data import data_path
from unblur.io import preview_png, read_image
from unblur.metrics import psnr, ssim

# name: (blurred stack, ground truth or None, PSF or None)
CASES = {
    "flowdec bars (synthetic, GT)": ("flowdec/bars-25pct/data.tif", "flowdec/bars-25pct/actual.tif",
                                     "flowdec/bars-25pct/kernel.tif"),
    "sdeconv pollen (synthetic blur + Poisson, GT)": ("sdeconv/pollen_poisson_noise_blurred.tif", "sdeconv/pollen.tif",
                                                      "sdeconv/pollen_psf.tif"),
    "flowdec bead (widefield)": ("flowdec/bead-25pct/data.tif", None, "flowdec/bead-25pct/kernel.tif"),
    "redlionfish cubes (measured PSF)": ("redlionfish/gendata_psfconv_poiss.tif", None, "redlionfish/PSF_RFI_8bit.tif"),
    "flowdec neuron (widefield)": ("flowdec/neuron-25pct/data.tif", None, None),
    "sdeconv C. elegans (Airyscan, 2-D)": ("sdeconv/celegans.tif", None, None),
}


def middle_slice(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def scale01(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.1, 99.9])
    return np.clip((a - lo) / max(hi - lo, 1e-12), 0, None).astype(np.float32)


def in_focus_psf(p: np.ndarray, k: int) -> np.ndarray:
    """The plane of the PSF's maximum, ``k x k`` around the peak (zero-padded if needed), sum 1."""
    p = np.clip(np.asarray(p, np.float64), 0, None)
    if p.ndim == 3:
        p = p[np.unravel_index(p.argmax(), p.shape)[0]]
    i, j = np.unravel_index(p.argmax(), p.shape)
    r = k // 2
    pad = np.pad(p, r)
    out = pad[i:i + k, j:j + k]
    return (out / out.sum()).astype(np.float32)


def affine_fit(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a * pred + b`` with ``a, b`` minimising ``||a pred + b - ref||^2``."""
    A = np.stack([pred.ravel(), np.ones(pred.size)], 1)
    (a, b), *_ = np.linalg.lstsq(A, ref.ravel(), rcond=None)
    return (a * pred + b).astype(np.float32)


def psf_snr(h, h_hat) -> float:
    return float(20 * np.log10(np.linalg.norm(h) / max(np.linalg.norm(h - h_hat), 1e-30)))


def magnify(p: np.ndarray, f: int = 4) -> np.ndarray:
    return np.kron(p / max(p.max(), 1e-12), np.ones((f, f), np.float32))


def run_case(name, paths, weights, model, out_dir: Path, rl_iters: int):
    blurred_path, gt_path, psf_path = paths
    y = scale01(middle_slice(read_image(data_path("microscopy/" + blurred_path))))
    t0 = time.perf_counter()
    r = unblur.blind_deconvolve(y, method="deepblur", identify_weights=str(weights))
    t_db = time.perf_counter() - t0
    k = model.psf_size
    results = {"deep-blur (IN + DN)": r.image,
               "RL, IN PSF": unblur.deconvolve(y, r.kernel, method="rl", num_iter=rl_iters, boundary="valid").image}
    h0 = model.psf_array(model(torch.zeros(1, model.n_params))[0]).numpy()
    row = {"case": name, "size": "x".join(map(str, y.shape)), "time": t_db,
           "gamma": " ".join(f"{g:+.2f}" for g in r.info["gamma"])}
    panels = [("blurred", y)]
    if psf_path:
        h = in_focus_psf(read_image(data_path("microscopy/" + psf_path)), k)
        results["RL, dataset PSF (in-focus plane)"] = unblur.deconvolve(y, h, method="rl", num_iter=rl_iters,
                                                                         boundary="valid").image
        row["snr_in"], row["snr_h0"] = psf_snr(h, r.kernel), psf_snr(h, h0)
    panels += [(n, np.clip(v, 0, None)) for n, v in results.items()]
    scores = {}
    if gt_path:
        gt = middle_slice(read_image(data_path("microscopy/" + gt_path)))
        gt = (gt - gt.min()) / max(float(gt.max() - gt.min()), 1e-12)
        for n, v in [("blurred input", y), *results.items()]:
            f = np.clip(affine_fit(v, gt), 0, 1)
            scores[n] = (psnr(f, gt, data_range=1.0), ssim(f, gt, data_range=1.0))
        panels.append(("ground truth", gt))
    psfs = [magnify(r.kernel)] + ([magnify(h)] if psf_path else [])
    panels.append(("PSFs: IN | dataset" if psf_path else "PSF: IN", np.concatenate(psfs, 1)))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / (name.split(" (")[0].replace(" ", "_").replace(".", "") + ".png")
    preview_png(png, panels)
    row["png"], row["panels"], row["scores"] = png, [p[0] for p in panels], scores
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/deepblur_microscopy", help="folder for the PNGs")
    p.add_argument("--identify-weights", default=str(IDENTIFY_WEIGHTS))
    p.add_argument("--rl-iters", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    w = load_weights(a.identify_weights)
    model = psf_model_from_description(w["psf_model"])
    rows = [run_case(n, c, a.identify_weights, model, Path(a.out), a.rl_iters) for n, c in CASES.items()]
    print(f"weights: {a.identify_weights} ({w['train']['steps']} steps); PSF model optics "
          f"{w['psf_model'].get('optics')}; {a.threads} thread(s)\n")
    print("| case | slice | PSF SNR, IN (dB) | PSF SNR, h(0) (dB) | gamma (Noll 4..) | deep-blur time (s) | PNG |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        snr = (f"{r['snr_in']:.1f} | {r['snr_h0']:.1f}") if "snr_in" in r else "- | -"
        print(f"| {r['case']} | {r['size']} | {snr} | {r['gamma']} | {r['time']:.2f} | {r['png'].name} |")
    for r in rows:
        if r["scores"]:
            print(f"\n{r['case']}: PSNR / SSIM against the ground-truth slice (after a gain/offset fit)\n")
            print("| result | PSNR (dB) | SSIM |\n|---|---|---|")
            for n, (ps, ss) in r["scores"].items():
                print(f"| {n} | {ps:.2f} | {ss:.3f} |")
    print("\nPNG panels, left to right: " + "; ".join(f"{r['png'].name}: {', '.join(r['panels'])}" for r in rows))


if __name__ == "__main__":
    main()
