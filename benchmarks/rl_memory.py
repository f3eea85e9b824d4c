"""Peak memory and seconds per iteration of whole-volume deconvolution, each run in a fresh process.

For every case a child process imports numpy, torch, unblur (and the peer library), reads its
resident-set size (the interpreter baseline), loads the float32 stack from a ``.npy`` file (the
input itself, 1x), runs the method and reads the peak resident-set size (``VmHWM``).  The memory
multiple is ``(peak - baseline) / input bytes``.  Per-iteration times: unblur's come from its
``callback`` (one time stamp per iteration; the set-up is the time to the first iteration minus one
iteration); the peers have no callback, so they are timed with ``num_iter = 1`` and ``num_iter = N``
in the same process and ``(t_N - t_1) / (N - 1)`` is their s/iteration.  The repeat count gives
the minimum and the median.

Data: random blobs blurred by the Gaussian PSF plus Poisson noise (generated once per size into
``--workdir``).  PSF: a normalised Gaussian of shape ``--psf`` (default 15x31x31).

    python benchmarks/rl_memory.py --sizes 32x512x512 64x1024x1024 --threads 1 2 --peers skimage redlionfish
    python benchmarks/rl_memory.py --sizes 32x256x256 --methods rl rl-ba rl-tv wiener tikhonov tv-admm

Prints markdown tables (one row per case).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

UNBLUR_METHODS = ("rl", "rl-ba", "rl-tv", "wiener", "tikhonov", "tv-admm")
PEERS = ("skimage", "redlionfish")


def gaussian_psf(shape, sigmas=None):
    sigmas = sigmas or [n / 6 for n in shape]
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    p = np.exp(-sum(g.astype(np.float64) ** 2 / (2 * s**2) for g, s in zip(grids, sigmas)))
    return (p / p.sum()).astype(np.float32)


def make_data(shape, psf_shape, path: Path, seed=0):
    """Blobs blurred by the separable Gaussian of the PSF, Poisson noise at ~200 photons peak."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    n = max(1000, int(np.prod(shape) // 20000))
    idx = tuple(rng.integers(0, s, n) for s in shape)
    x[idx] = rng.uniform(0.3, 1.0, n).astype(np.float32)
    gaussian_filter(x, [max(k / 6, 0.5) for k in psf_shape], output=x, truncate=3.0)
    x *= 200.0 / max(float(x.max()), 1e-12)
    x += 1.0
    y = rng.poisson(x).astype(np.float32)
    np.save(path, y)


def _rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def warm(args, y, psf):
    """Run the case once on a tiny stack, so that the baseline includes loaded code (not data)."""
    m = args.method
    if m == "skimage":
        from skimage.restoration import richardson_lucy as sk_rl
        sk_rl(y, psf, num_iter=2)
    elif m == "redlionfish":
        import RedLionfishDeconv as rlf
        rlf.doRLDeconvolutionFromNpArrays(y, psf, niter=2, method="cpu", resAsUint8=False)
    else:
        from unblur.solvers import richardson_lucy, rl_tv, tikhonov, wiener
        from unblur.solvers.tv import tv_admm
        richardson_lucy(y, psf, 2, acceleration="biggs-andrews", boundary=args.boundary)
        richardson_lucy(y, psf, 2, boundary=args.boundary)
        rl_tv(y, psf, 2, boundary=args.boundary)
        wiener(y, psf, balance=1e-2)
        tikhonov(y, psf, boundary=args.boundary, max_iter=2)
        tv_admm(y, psf, num_iter=2, boundary=args.boundary)


def child(args):
    """One case in this (fresh) process; prints a JSON line."""
    import unblur  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
    import torch
    torch.set_num_threads(args.threads)
    import scipy.fft  # noqa: F401
    if args.method == "skimage":
        from skimage.restoration import richardson_lucy as sk_rl
    elif args.method == "redlionfish":
        import RedLionfishDeconv as rlf
    else:
        from unblur import deconvolve  # noqa: F401
        from unblur.solvers import richardson_lucy, rl_tv, tikhonov, wiener
        from unblur.solvers.tv import tv_admm
    psf = gaussian_psf(tuple(args.psf))
    y = np.ones(tuple(2 * k for k in args.psf), np.float32)   # warm-up: load code and FFT plans on a tiny stack
    warm(args, y, psf)
    del y
    base = _rss("VmRSS")
    _reset_peak()
    y = np.load(args.data)
    nbytes = y.nbytes
    times = []
    if args.method in PEERS:
        def run(n):
            t0 = time.perf_counter()
            if args.method == "skimage":
                sk_rl(y, psf, num_iter=n, clip=False)
            else:
                rlf.doRLDeconvolutionFromNpArrays(y, psf, niter=n, method="cpu", resAsUint8=False)
            return time.perf_counter() - t0
        for _ in range(args.repeats):
            t1, tn = run(1), run(args.iters)
            times.append((tn - t1) / (args.iters - 1))
        setup = None
    else:
        stamps = []
        cb = lambda it, x, info: stamps.append(time.perf_counter())  # noqa: E731
        bd = args.boundary
        fn = {
            "rl": lambda: richardson_lucy(y, psf, args.iters, boundary=bd, callback=cb),
            "rl-ba": lambda: richardson_lucy(y, psf, args.iters, boundary=bd, acceleration="biggs-andrews", callback=cb),
            "rl-tv": lambda: rl_tv(y, psf, args.iters, boundary=bd, callback=cb),
            "wiener": lambda: wiener(y, psf, balance=1e-2, boundary="circular" if bd == "circular" else "reflect"),
            "tikhonov": lambda: tikhonov(y, psf, lam=1e-3, boundary=bd, max_iter=args.iters, tol=1e-12),
            "tv-admm": lambda: tv_admm(y, psf, lam=2e-3, num_iter=args.iters, boundary=bd, callback=cb),
        }[args.method]
        setup = None
        for _ in range(args.repeats):
            stamps.clear()
            t0 = time.perf_counter()
            fn()
            total = time.perf_counter() - t0
            if len(stamps) >= 2:
                d = np.diff(stamps)
                times.extend(d.tolist())
                setup = min(setup or np.inf, stamps[0] - t0 - float(np.median(d)))
            else:  # Wiener (one pass), Tikhonov (CG iterations without callback)
                times.append(total / (args.iters if args.method == "tikhonov" else 1))
    peak = _rss("VmHWM")
    print(json.dumps({"peak_multiple": (peak - base) / nbytes, "peak_gib": (peak - base) / 2**30,
                      "s_iter_min": float(np.min(times)), "s_iter_median": float(np.median(times)),
                      "setup_s": setup}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["32x512x512"])
    ap.add_argument("--psf", default="15x31x31")
    ap.add_argument("--methods", nargs="+", default=["rl", "rl-ba"])
    ap.add_argument("--peers", nargs="*", default=[])
    ap.add_argument("--boundaries", nargs="+", default=["valid", "circular"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/unblur_rl_memory")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--boundary", default="valid", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.psf = [int(v) for v in args.psf.split("x")]
        args.threads = args.threads[0]
        return child(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print("| size | method | boundary | threads | peak (x input) | peak GiB | s/iter min | s/iter median | set-up s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        shape = tuple(int(v) for v in size.split("x"))
        data = work / f"stack_{size}.npy"
        if not data.exists():
            make_data(shape, tuple(int(v) for v in args.psf.split("x")), data)
        cases = [(m, b) for m in args.methods for b in args.boundaries] + [(p, "(own)") for p in args.peers]
        for threads in args.threads:
            for method, bd in cases:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                           OPENBLAS_NUM_THREADS=str(threads))
                cmd = [sys.executable, __file__, "--child", "--method", method, "--boundary", bd if bd != "(own)" else "valid",
                       "--data", str(data), "--psf", args.psf, "--threads", str(threads), "--iters", str(args.iters),
                       "--repeats", str(args.repeats)]
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    print(f"| {size} | {method} | {bd} | {threads} | failed: {p.stderr.strip().splitlines()[-1:]} |||||")
                    continue
                r = json.loads(p.stdout.strip().splitlines()[-1])
                setup = f"{r['setup_s']:.2f}" if r["setup_s"] is not None else "-"
                print(f"| {size} | {method} | {bd} | {threads} | {r['peak_multiple']:.2f} | {r['peak_gib']:.2f} | "
                      f"{r['s_iter_min']:.3f} | {r['s_iter_median']:.3f} | {setup} |", flush=True)


if __name__ == "__main__":
    main()
