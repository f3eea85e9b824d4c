"""Clipped highlights: ``saturation="auto"`` against treating clipped pixels as data, blind and non-blind.

Scenes as a camera records them: a gray crop as the scene's radiance, either brightened (``bright``: 1.5 times
the image, so that its light regions exceed the white level) or with eight small lights (``lights``: 3x3
squares at 8 times the white level, street lights at night); the valid part of the blur of a larger crop by
a camera-shake kernel (25x25: USRNet ``kernel11``, ``kernel12`` and two of ``unblur.psf.motion_kernel``),
Gaussian noise 1%, then clipped to [0, 1] like the sensor. Scored against the scene clipped to [0, 1] (what
an ideal sharp photo records), on the result clipped to [0, 1], shift-tolerant PSNR (dB):

* ``RL``: Richardson-Lucy with the true kernel, 30 iterations, ``saturation=None`` and ``"auto"`` (the
  clipped pixels as lower bounds); also over the pixels within 8 px of a clipped one (``near``);
* ``TV-ADMM``: the same with the true kernel and noise level, its defaults otherwise;
* ``l0, true kernel``: ``l0``'s final step with the true kernel (``init_kernel``), without and with;
* ``l0``: blind, the true kernel size and noise level given, without and with (kernel error too);
* ``--learned``: DPIR and PnP-ADMM (shipped gray prior, true kernel and noise level), without and with, on the
  first 3 held-out images.

Held-out images: BSD68 ``test042``-``test053`` less ``test048`` and ``test051`` (not used to choose anything in
``l0``); the choice of the kernel-step exclusion around clipped pixels (``SATURATION_BUDGET``) was made on Set12
``01``-``06`` with other kernels (``--images tune --budget B``); that of the refinement's edges from the latent image
clipped to the observed range (``REFINE_CLIP_EDGES``) on Set12 ``01``-``06`` and six BSD68 tuning images
(``--images tune`` and ``tune-bsd``, ``--blind-only --refine-clip on|off``). Resumable: finished cases are kept in
``--out``.

    python benchmarks/saturation.py --out runs/saturation.jsonl
    python benchmarks/saturation.py --images tune --budget 0 --out runs/saturation-tune-b0.jsonl
    python benchmarks/saturation.py --timing
    python benchmarks/saturation.py --learned --out runs/saturation-learned.jsonl
    python benchmarks/saturation.py --images tune-bsd --blind-only --refine-clip off --out runs/sat-tune-bsd-off.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
import zlib
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import ndimage, signal  # noqa: E402

HELD_OUT = ["test042", "test043", "test044", "test045", "test046", "test047", "test049", "test050", "test052",
            "test053"]
TUNE = ["01", "02", "03", "04", "05", "06"]
TUNE_BSD = ["test022", "test029", "test032", "test036", "test040", "test056"]  # l0's tuning images, none held out
SIGMA, GAIN, LIGHTS, LIGHT_LEVEL = 0.01, 1.5, 8, 8.0


def kernels(which: str) -> dict[str, np.ndarray]:
    from unblur.data import data_path
    from unblur.psf import motion_kernel
    usrnet = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))
    names, seeds = (("kernel11", "kernel12"), (200, 201)) if which == "held-out" else (("kernel09", "kernel10"), (100, 101))
    out = {n: usrnet[n] for n in names}
    out.update({f"motion25-{s}": motion_kernel(25, seed=s) for s in seeds})
    return {n: np.asarray(k, np.float64) / float(np.sum(k)) for n, k in out.items()}


def scene(img: np.ndarray, kind: str, rng) -> np.ndarray:
    if kind == "bright":
        return GAIN * img
    out = img.copy()
    for _ in range(LIGHTS):
        i, j = rng.integers(20, out.shape[0] - 20, 2)
        out[i - 1:i + 2, j - 1:j + 2] = LIGHT_LEVEL
    return out


def run_learned(path, kname, k, kind) -> dict:
    """DPIR and PnP-ADMM (shipped gray prior, true kernel and noise level) with and without ``saturation``."""
    import unblur
    from unblur.bench.cases import mirror_crop
    from unblur.io import read_image
    from unblur.metrics import shift_tolerant
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(zlib.crc32(f"{Path(path).stem}|{kname}|{kind}".encode()))
    img = np.asarray(read_image(path), np.float64)
    n = 255 + k.shape[0] - 1
    s = scene(mirror_crop(img, (n, n)), kind, rng)
    y = np.clip(signal.fftconvolve(s, k, mode="valid") + SIGMA * rng.standard_normal((255, 255)), 0, 1)
    r = k.shape[0] // 2
    truth = np.clip(s[r:-r, r:-r], 0, 1)
    rec = {"image": Path(path).stem, "kernel": kname, "scene": kind, "input": shift_tolerant(y, truth)["psnr"]}
    for method in ("dpir", "pnp-admm"):
        for sat in (None, "auto"):
            x = unblur.deconvolve(y.astype(np.float32), k.astype(np.float32), method=method, noise_sigma=SIGMA,
                                  saturation=sat).image
            rec[f"{method}_{'auto' if sat else 'none'}"] = shift_tolerant(np.clip(x, 0, 1), truth)["psnr"]
    return rec


def run_case(arg) -> dict:
    path, kname, k, kind, opts = arg
    if opts == "learned":
        return run_learned(path, kname, k, kind)
    from unblur.bench.cases import mirror_crop
    from unblur.blind import l0
    from unblur.blind.l0 import l0_blind
    if opts["budget"] is not None:
        l0.SATURATION_BUDGET = float(opts["budget"])
    l0.REFINE_CLIP_EDGES = opts["refine_clip"]
    from unblur.io import read_image
    from unblur.metrics import kernel_error, shift_tolerant
    from unblur.solvers import richardson_lucy
    from unblur.solvers.tv import tv_admm
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(zlib.crc32(f"{Path(path).stem}|{kname}|{kind}".encode()))
    img = np.asarray(read_image(path), np.float64)
    img = img if img.ndim == 2 else img[..., :3] @ np.array([0.299, 0.587, 0.114])
    n = 255 + k.shape[0] - 1
    s = scene(mirror_crop(img, (n, n)), kind, rng)
    y = np.clip(signal.fftconvolve(s, k, mode="valid") + SIGMA * rng.standard_normal((255, 255)), 0, 1)
    r = k.shape[0] // 2
    truth = np.clip(s[r:-r, r:-r], 0, 1)
    near = ndimage.binary_dilation(y >= 1, iterations=8)
    score = lambda x: shift_tolerant(np.clip(x, 0, 1), truth)["psnr"]  # noqa: E731
    rec = {"image": Path(path).stem, "kernel": kname, "scene": kind, "clipped": float((y >= 1).mean()),
           "input": score(y)}
    if opts["blind_only"]:
        x, info = l0_blind(y, kernel_size=k.shape[0], noise_sigma=SIGMA)
        rec["l0_auto"], rec["l0_auto_ke"] = score(x), kernel_error(info["kernel"], k)
        return rec
    for sat in (None, "auto"):
        tag = "auto" if sat else "none"
        x = richardson_lucy(y.astype(np.float32), k.astype(np.float32), 30, saturation=sat)
        rec[f"rl_{tag}"] = score(x)
        err = (np.clip(x, 0, 1) - truth)[near]
        rec[f"rl_{tag}_near"] = float(10 * np.log10(1 / max(np.mean(err ** 2), 1e-12))) if err.size else float("nan")
        x = tv_admm(y.astype(np.float32), k.astype(np.float32), noise_sigma=SIGMA, saturation=sat)
        rec[f"tv_{tag}"] = score(x)
        err = (np.clip(x, 0, 1) - truth)[near]
        rec[f"tv_{tag}_near"] = float(10 * np.log10(1 / max(np.mean(err ** 2), 1e-12))) if err.size else float("nan")
        x, _ = l0_blind(y, init_kernel=k, noise_sigma=SIGMA, saturation=sat)
        rec[f"true_{tag}"] = score(x)
        x, info = l0_blind(y, kernel_size=k.shape[0], noise_sigma=SIGMA, saturation=sat)
        rec[f"l0_{tag}"] = score(x)
        rec[f"l0_{tag}_ke"] = kernel_error(info["kernel"], k)
    return rec


def summary_learned(records: list[dict]) -> None:
    print("| method | bright: PSNR (dB) | lights: PSNR (dB) | better with `\"auto\"` (bright / lights) |")
    print("|---|---|---|---|")
    for m in ("dpir", "pnp-admm"):
        for tag in ("none", "auto"):
            cells = [f"{np.mean([r[f'{m}_{tag}'] for r in records if r['scene'] == s]):.2f}" for s in ("bright", "lights")]
            better = " / ".join(f"{sum(r[f'{m}_auto'] > r[f'{m}_none'] for r in records if r['scene'] == s)}/"
                                f"{sum(r['scene'] == s for r in records)}" for s in ("bright", "lights"))
            print(f"| {m}, saturation={tag} | " + " | ".join(cells) + f" | {better if tag == 'auto' else '-'} |")


def summary(records: list[dict]) -> None:
    cols = [("input", "blurred input"), ("rl_none", "RL, clipped pixels as data"), ("rl_auto", "RL, `saturation=\"auto\"`"),
            ("tv_none", "TV-ADMM, clipped pixels as data"), ("tv_auto", "TV-ADMM, `saturation=\"auto\"`"),
            ("true_none", "`l0` final step (true kernel), as data"), ("true_auto", "`l0` final step (true kernel), auto"),
            ("l0_none", "`l0` blind, `saturation=None`"), ("l0_auto", "`l0` blind, `saturation=\"auto\"` (default)")]
    print("| method | " + " | ".join(f"{s}: PSNR (dB)" for s in ("bright", "lights")) + " | "
          + " | ".join(f"{s}: worse than input" for s in ("bright", "lights")) + " | kernel error (bright / lights) |")
    print("|---|---|---|---|---|---|")
    for key, label in [c for c in cols if c[0] in records[0]]:
        cells, worse, ke = [], [], []
        for s in ("bright", "lights"):
            rs = [r for r in records if r["scene"] == s]
            cells.append(f"{np.mean([r[key] for r in rs]):.2f}")
            worse.append("-" if key == "input" else str(sum(r[key] < r["input"] for r in rs)))
            ke.append(f"{np.mean([r[key + '_ke'] for r in rs]):.3f}" if key + "_ke" in rs[0] else "-")
        print(f"| {label} | " + " | ".join(cells + worse) + f" | {' / '.join(ke)} |")
    for s in ("bright", "lights") if "rl_none" in records[0] else ():
        rs = [r for r in records if r["scene"] == s]
        print(f"\n{s}: {len(rs)} cases, {100 * np.mean([r['clipped'] for r in rs]):.1f}% of the pixels clipped; RL within "
              f"8 px of a clipped pixel: {np.nanmean([r['rl_none_near'] for r in rs]):.2f} dB as data, "
              f"{np.nanmean([r['rl_auto_near'] for r in rs]):.2f} dB with saturation='auto'; TV-ADMM "
              f"{np.nanmean([r['tv_none_near'] for r in rs]):.2f} and {np.nanmean([r['tv_auto_near'] for r in rs]):.2f} dB")


def timing(repeats: int = 5) -> None:
    """Seconds per Richardson-Lucy run (50 iterations, 512x512, USRNet kernel11, one thread) with and without
    ``saturation="auto"`` on a clipped image: the median of ``repeats`` runs."""
    import time

    import torch
    from unblur.solvers import richardson_lucy
    torch.set_num_threads(1)
    k = kernels("held-out")["kernel11"].astype(np.float32)
    rng = np.random.default_rng(0)
    y = np.clip(signal.fftconvolve(rng.random((512 + 24, 512 + 24)) * 1.9, k, mode="valid"), 0, 1).astype(np.float32)
    warnings.simplefilter("ignore")
    for sat in (None, "auto"):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            richardson_lucy(y, k, 50, saturation=sat)
            times.append(time.perf_counter() - t0)
        print(f"RL 50 iterations 512x512, saturation={sat!r}: {np.median(times):.2f} s ({100 * (y >= 1).mean():.0f}% clipped)")


def main() -> None:
    from unblur.data import data_path
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/saturation.jsonl"))
    p.add_argument("--images", choices=("held-out", "tune", "tune-bsd"), default="held-out",
                   help="held-out: BSD68 test042-test053; tune: Set12 01-06; tune-bsd: BSD68 images l0 was tuned on "
                   "(both tuning sets with the tuning kernels)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--budget", type=float, help="l0's SATURATION_BUDGET for this run (0: only the clipped pixels and "
                   "their neighbours left out of the kernel step, 1: always their footprints)")
    p.add_argument("--refine-clip", choices=("on", "off"), default="on", help="l0's REFINE_CLIP_EDGES for this run "
                   "(off: the refinement's edges from the latent image as rebuilt, above the ceiling too)")
    p.add_argument("--blind-only", action="store_true", help="only blind l0 with its defaults (the tuning runs)")
    p.add_argument("--timing", action="store_true", help="only time RL with and without saturation='auto'")
    p.add_argument("--learned", action="store_true", help="DPIR and PnP-ADMM rows instead, on the first 3 images")
    args = p.parse_args()
    if args.timing:
        return timing()
    paths = {"held-out": [data_path(f"test/bsd68_gray/{n}.png") for n in HELD_OUT],
             "tune": [data_path(f"test/set12/{n}.png") for n in TUNE],
             "tune-bsd": [data_path(f"test/bsd68_gray/{n}.png") for n in TUNE_BSD]}[args.images]
    ks = kernels("held-out" if args.images == "held-out" else "tune")
    if args.learned:
        paths = paths[:3]
    mode = "learned" if args.learned else {"budget": args.budget, "refine_clip": args.refine_clip == "on",
                                           "blind_only": args.blind_only}
    todo = [(str(pth), kn, k, kind, mode) for pth in paths for kn, k in ks.items() for kind in ("bright", "lights")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.out.open()] if args.out.exists() else []
    seen = {(r["image"], r["kernel"], r["scene"]) for r in done}
    todo = [t for t in todo if (Path(t[0]).stem, t[1], t[3]) not in seen]
    print(f"{len(done)} cases done, {len(todo)} to run", flush=True)
    with Pool(args.workers) as pool, args.out.open("a") as fh:
        for rec in pool.imap_unordered(run_case, todo):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()  # one line per finished case: an interrupted run resumes from here
            done.append(rec)
            print(f"{len(done)}: {rec['image']} {rec['kernel']} {rec['scene']}", flush=True)
    (summary_learned if args.learned else summary)(done)


if __name__ == "__main__":
    main()
