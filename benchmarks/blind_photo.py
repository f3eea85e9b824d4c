"""Blind deblurring of photographs: camera-shake kernels, non-periodic blur, against the true-kernel ceiling.

Data: gray 255x255 fields of view from BSD68 (``test/bsd68_gray``, ``--bsd``) and Set12 (``test/set12``,
``--set12``, starting at ``--set12-first``: by default the 512x512 images 08-12), each blurred by one
kernel taken in turn from ``--kernels`` (image j gets kernel j mod K): camera shake from
``unblur.psf.motion.motion_kernel`` (``motion25s3`` = 25 px, seed 3) and the USRNet motion kernels
``kernel09`` ... ``kernel12``.  The observation is the valid part of the blur of a larger crop (the field's
edge cuts through real content; :func:`nonblind_kernels.observe`), plus Gaussian noise ``--noise``
(default 0.01).  Every method gets the true kernel size and estimates the noise itself.

Methods (``--methods``; all through ``unblur.blind_deconvolve`` / ``unblur.deconvolve``):

* ``l0``: the classical L0 method with its defaults (final hyper-Laplacian step);
* ``l0+dpir``: the kernel of ``l0``, then non-blind ``dpir`` (its default ``valid`` boundary);
* ``fast-em``: Fast Diffusion EM from a Dirac kernel; ``fast-em-l0``: the same with ``init_kernel="l0"``
  (both on the first ``--fast-em-pairs`` pairs);
* ``selfdeblur``: ``preset="fast-c2f"`` on the first ``--selfdeblur-pairs`` pairs;
* ``true-l0``: the ceiling, ``l0``'s final step with the true kernel (``init_kernel`` = the true kernel);
  ``true-dpir``: ``dpir`` with the true kernel, the ceiling of ``l0+dpir``.

Columns: shift-tolerant PSNR / SSIM (``unblur.metrics.shift_tolerant``), the mean difference to the
true-kernel ceiling, the error ratio (``unblur.metrics.error_ratio``) of the output against the ceiling of
the same final step (``true-dpir`` for ``l0+dpir``, ``true-l0`` for the others, which have no separate final
step) with the share of images below 2 and 3, the kernel ratio (Levin et al.: ``l0``'s final step with
the estimated kernel over the same with the true kernel; it scores the kernel alone), the kernel error
(``unblur.metrics.kernel_error``), the CPU time (process time, all threads: the one-core time), and the number of images worse than the blurred input
(aligned PSNR of the output below that of the input).

The real motion-blurred clock of scikit-image (``skimage.data.clock()``, no ground truth) is restored by
``--clock-methods`` with kernel size ``--clock-kernel-size``; the inputs, outputs and kernels are saved
as one figure, ``OUT/clock.png`` (``--out``, default ``runs/blind_photo``).

    python benchmarks/blind_photo.py --bsd 8 --set12 4 --fast-em-pairs 2 --selfdeblur-pairs 1 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.metrics import error_ratio, kernel_error, shift_tolerant

from nonblind_kernels import load_images, load_kernel, observe

DEFAULT_KERNELS = "motion15s1,kernel09,motion25s2,kernel10,motion35s3,kernel11,motion25s4,kernel12"
ALL_METHODS = ("l0", "l0+dpir", "fast-em", "fast-em-l0", "selfdeblur", "true-l0", "true-dpir")


def run_method(name: str, y: np.ndarray, k_true: np.ndarray, cache: dict):
    """``(image, kernel, cpu_s)`` of one method on one observation (``cache`` holds l0's run for l0+dpir).

    The time is the process CPU time (all threads together: the one-core time, not inflated by other
    programs on a shared machine)."""
    ks = k_true.shape[0]
    t0 = time.process_time()
    if name == "l0" or (name == "l0+dpir" and "l0" not in cache):
        r = unblur.blind_deconvolve(y, method="l0", kernel_size=ks)
        cache["l0"] = (r.image, r.kernel, time.process_time() - t0)
        if name == "l0":
            return cache["l0"]
    if name == "l0+dpir":
        k = cache["l0"][1]
        t1 = time.process_time()
        r = unblur.deconvolve(y, k, method="dpir")
        return r.image, k, cache["l0"][2] + time.process_time() - t1
    if name in ("fast-em", "fast-em-l0"):
        kw = {"init_kernel": "l0"} if name == "fast-em-l0" else {}
        r = unblur.blind_deconvolve(y, method="fast-em", kernel_size=ks, **kw)
    elif name == "selfdeblur":
        r = unblur.blind_deconvolve(y, method="selfdeblur", kernel_size=ks, preset="fast-c2f")
    elif name == "true-l0":
        r = unblur.blind_deconvolve(y, method="l0", kernel_size=ks, init_kernel=k_true)
    elif name == "true-dpir":
        r = unblur.deconvolve(y, k_true, method="dpir")
        return r.image, k_true, time.process_time() - t0
    else:
        raise SystemExit(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}")
    return r.image, r.kernel, time.process_time() - t0


def final_step(y, k, ks):
    """``l0``'s final non-blind step with kernel ``k`` (for the kernel ratio)."""
    return unblur.blind_deconvolve(y, method="l0", kernel_size=ks, init_kernel=k).image


def clock_figure(methods: list[str], ks: int, out: Path) -> None:
    from skimage import data
    from PIL import Image

    y = data.clock().astype(np.float32) / 255
    panels, kernels = [("input", y)], []
    for m in methods:
        cache: dict = {}
        if m.startswith("true"):
            continue
        x, k, dt = run_method(m, y, np.zeros((ks, ks), np.float32), cache)
        print(f"  clock: {m} {dt:.1f} CPU s", flush=True)
        panels.append((m, np.clip(np.asarray(x, np.float32), 0, 1)))
        kernels.append(np.asarray(k, np.float32))
    h, w = y.shape
    canvas = np.ones((h, (w + 8) * len(panels)), np.float32)
    for i, (_, p) in enumerate(panels):
        canvas[:, i * (w + 8):i * (w + 8) + w] = p
    for i, k in enumerate(kernels):  # each kernel, scaled to its maximum, 3x in the top-left corner
        kk = np.kron(k / max(k.max(), 1e-12), np.ones((3, 3), np.float32))
        x0 = (i + 1) * (w + 8)
        canvas[:kk.shape[0], x0:x0 + kk.shape[1]] = kk
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray((canvas * 255 + 0.5).astype(np.uint8)).save(out / "clock.png")
    print(f"clock figure: {out / 'clock.png'} (panels: {', '.join(n for n, _ in panels)}; kernels in the corners)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bsd", type=int, default=8, help="BSD68 images")
    ap.add_argument("--set12", type=int, default=4, help="Set12 images")
    ap.add_argument("--set12-first", type=int, default=7, help="first Set12 image (sorted; 7 = 08.png, the 512 px ones)")
    ap.add_argument("--kernels", default=DEFAULT_KERNELS)
    ap.add_argument("--methods", default="l0,l0+dpir,fast-em,fast-em-l0,selfdeblur,true-l0,true-dpir")
    ap.add_argument("--fast-em-pairs", type=int, default=2, help="fast-em and fast-em-l0 run on the first N pairs")
    ap.add_argument("--selfdeblur-pairs", type=int, default=1, help="selfdeblur runs on the first N pairs")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock-methods", default="l0,l0+dpir,fast-em-l0", help="'' to skip the clock")
    ap.add_argument("--clock-kernel-size", type=int, default=31)
    ap.add_argument("--out", default="runs/blind_photo")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in ALL_METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(ALL_METHODS)}")
    limit = {"fast-em": args.fast_em_pairs, "fast-em-l0": args.fast_em_pairs, "selfdeblur": args.selfdeblur_pairs}
    images = [("bsd68/" + n, a) for n, a in load_images("bsd68", args.bsd)]
    images += [("set12/" + n, a) for n, a in load_images("set12", args.set12, args.set12_first)]
    knames = [k for k in args.kernels.split(",") if k]
    print(f"{len(images)} images x one kernel each ({', '.join(knames)} in turn), 255x255 valid-blur fields, noise "
          f"{args.noise:g}; torch threads {torch.get_num_threads()}\n", flush=True)
    rows = {m: [] for m in methods}
    for j, (iname, img) in enumerate(images):
        kname = knames[j % len(knames)]
        k = load_kernel(kname)
        y, truth = observe(img, k, args.noise, seed=args.seed + j)
        base = shift_tolerant(y, truth)["psnr"]
        cache: dict = {}
        res = {}
        for m in methods:
            if j >= limit.get(m, len(images)):
                continue
            res[m] = run_method(m, y, k, cache)
        ceil = {"true-l0": res.get("true-l0") or run_method("true-l0", y, k, {}),
                "true-dpir": res.get("true-dpir") or (run_method("true-dpir", y, k, {}) if "l0+dpir" in res else None)}
        ref_final = ceil["true-l0"][0]
        for m, (x, kest, dt) in res.items():
            x = np.clip(np.asarray(x, np.float64), 0, 1)
            al = shift_tolerant(x, truth)
            c = ceil["true-dpir" if m in ("l0+dpir", "true-dpir") else "true-l0"][0]
            true_k = m.startswith("true")
            kr = 1.0 if true_k else error_ratio(final_step(y, kest, k.shape[0]), ref_final, truth)
            rows[m].append(dict(psnr=al["psnr"], ssim=al["ssim"], d=al["psnr"] - shift_tolerant(c, truth)["psnr"],
                                ratio=error_ratio(x, c, truth), kratio=kr,
                                kerr=0.0 if true_k else kernel_error(kest, k), time=dt, worse=al["psnr"] < base,
                                base=base))
        print(f"  {j + 1}/{len(images)} {iname} {kname}: input {base:.2f} | "
              + " | ".join(f"{m} {rows[m][-1]['psnr']:.2f} dB, kernel error {rows[m][-1]['kerr']:.3f}, "
                           f"{rows[m][-1]['time']:.0f} CPU s" for m in res), flush=True)
    print("\n| method | images | PSNR (dB) | SSIM | minus ceiling (dB) | ratio < 2 | ratio < 3 | max ratio | "
          "kernel ratio < 2 / < 3 | kernel error | CPU time (s) | worse than input |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        r = rows[m]
        if not r:
            continue
        a = {key: np.array([v[key] for v in r], np.float64) for key in r[0]}
        print(f"| {m} | {len(r)} | {a['psnr'].mean():.2f} | {a['ssim'].mean():.3f} | {a['d'].mean():+.2f} | "
              f"{(a['ratio'] < 2).mean():.0%} | {(a['ratio'] < 3).mean():.0%} | {a['ratio'].max():.2f} | "
              f"{(a['kratio'] < 2).mean():.0%} / {(a['kratio'] < 3).mean():.0%} | {a['kerr'].mean():.3f} | "
              f"{a['time'].mean():.1f} | {int(a['worse'].sum())} |")
    base = np.array([v["base"] for v in rows[methods[0]]])
    print(f"\nblurred input: {base.mean():.2f} dB (aligned) over {len(base)} images")
    if args.clock_methods:
        clock_figure([m for m in args.clock_methods.split(",") if m], args.clock_kernel_size, Path(args.out))


if __name__ == "__main__":
    main()
