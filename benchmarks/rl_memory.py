"""Peak memory and seconds per iteration of whole-volume deconvolution, each run in a fresh process.

For every case a child process imports numpy, torch, unblur (and the peer library), reads its
resident-set size (the interpreter baseline), loads the float32 stack from a ``.npy`` file (the
input itself, 1x), runs the method and reads the peak resident-set size (``VmHWM``).  The memory
multiple is ``(peak - baseline) / input bytes``; the baseline is taken after a warm-up run of the
same method on a tiny stack (loaded code and FFT plans are not data).  Per-iteration times: unblur's
come from its ``callback`` and RedLionfish's from its per-iteration tick (one time stamp per
iteration; the set-up is the time to the first stamp minus one iteration); scikit-image has neither
and no set-up to speak of, so its s/iteration is total time / iterations.  Minimum and median over
all iterations of all repeats, in wall-clock seconds and in CPU seconds of the process (user +
system, ``time.process_time``: on a shared machine it does not count the time the process waits for
a core, so it ranks single-threaded runs where wall-clock time cannot).

Data: random blobs blurred by the Gaussian PSF plus Poisson noise (generated once per size into
``--workdir``).  PSF: a normalised Gaussian of shape ``--psf`` (default 15x31x31).

    python benchmarks/rl_memory.py --sizes 32x512x512 64x1024x1024 --threads 1 2 --peers skimage redlionfish
    python benchmarks/rl_memory.py --sizes 32x256x256 --methods rl rl-ba rl-tv wiener tikhonov tv-admm
    python benchmarks/rl_memory.py --fft-sizes      # per-length FFT cost and the fitted grid cost model

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
    """Ground truth: random points smoothed into blobs (Gaussian, sigma 1.5 px), ~200 photons peak on a
    background of 1, saved next to the data (``*_truth.npy``); data: the truth blurred by the PSF's
    Gaussian (the benchmark's PSF, truncated at its extent), with Poisson noise."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    n = max(1000, int(np.prod(shape) // 20000))
    idx = tuple(rng.integers(0, s, n) for s in shape)
    x[idx] = rng.uniform(0.3, 1.0, n).astype(np.float32)
    gaussian_filter(x, 1.5, output=x, truncate=3.0)
    x *= 200.0 / max(float(x.max()), 1e-12)
    x += 1.0
    np.save(_truth_path(path), x)
    gaussian_filter(x, [max(k / 6, 0.5) for k in psf_shape], output=x, truncate=3.0)
    np.save(path, rng.poisson(x).astype(np.float32))


def _truth_path(path) -> Path:
    return Path(str(path).replace(".npy", "_truth.npy"))


def flux_psnr(result, truth):
    """PSNR of ``result`` scaled to the truth's total flux (peak: the truth's maximum)."""
    r = np.asarray(result, np.float64)
    r = r * (float(truth.sum(dtype=np.float64)) / max(float(r.sum()), 1e-30))
    mse = float(np.mean((r - truth) ** 2))
    return 10 * np.log10(float(truth.max()) ** 2 / max(mse, 1e-30))


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
    times, cpu = [], []   # wall and CPU (process) seconds per iteration
    setup = None
    out = None
    if args.method == "skimage":      # no set-up beyond flipping the PSF: total time / iterations
        for _ in range(args.repeats):
            out = None
            t0, c0 = time.perf_counter(), time.process_time()
            out = sk_rl(y, psf, num_iter=args.iters, clip=False)
            times.append((time.perf_counter() - t0) / args.iters)
            cpu.append((time.process_time() - c0) / args.iters)
    elif args.method == "redlionfish":  # its per-iteration tick gives one time stamp per iteration
        for _ in range(args.repeats):
            stamps, cstamps = [], []
            out = None
            t0 = time.perf_counter()
            out = rlf.doRLDeconvolutionFromNpArrays(y, psf, niter=args.iters, method="cpu", resAsUint8=False,
                                              callbkTickFunc=lambda: stamps.append(time.perf_counter()) or
                                              cstamps.append(time.process_time()))
            if len(stamps) >= 2:
                times.extend(np.diff(stamps).tolist())
                cpu.extend(np.diff(cstamps).tolist())
                setup = min(setup or np.inf, stamps[0] - t0 - float(np.median(np.diff(stamps))))
            else:
                times.append((time.perf_counter() - t0) / args.iters)
    else:
        stamps, cstamps = [], []
        cb = lambda it, x, info: stamps.append(time.perf_counter()) or cstamps.append(time.process_time())  # noqa: E731
        bd = args.boundary
        fn = {
            "rl": lambda: richardson_lucy(y, psf, args.iters, boundary=bd, callback=cb),
            "rl-ba": lambda: richardson_lucy(y, psf, args.iters, boundary=bd, acceleration="biggs-andrews", callback=cb),
            "rl-tv": lambda: rl_tv(y, psf, args.iters, boundary=bd, callback=cb),
            "wiener": lambda: wiener(y, psf, balance=1e-2, boundary="circular" if bd == "circular" else "reflect"),
            "tikhonov": lambda: tikhonov(y, psf, lam=1e-3, boundary=bd, max_iter=args.iters, tol=1e-12, callback=cb),
            "tv-admm": lambda: tv_admm(y, psf, lam=2e-3, num_iter=args.iters, boundary=bd, callback=cb),
        }[args.method]
        setup = None
        for _ in range(args.repeats):
            stamps.clear()
            cstamps.clear()
            out = None
            t0 = time.perf_counter()
            out = fn()
            total = time.perf_counter() - t0
            if len(stamps) >= 2:
                d = np.diff(stamps)
                times.extend(d.tolist())
                cpu.extend(np.diff(cstamps).tolist())
                setup = min(setup or np.inf, stamps[0] - t0 - float(np.median(d)))
            else:  # Wiener: one filter (its time is the whole run)
                times.append(total)
    peak = _rss("VmHWM")
    del y
    truth = _truth_path(args.data)
    score = flux_psnr(out, np.load(truth)) if truth.exists() and out is not None else None
    print(json.dumps({"psnr": score, "peak_multiple": (peak - base) / nbytes, "peak_gib": (peak - base) / 2**30,
                      "s_iter_min": float(np.min(times)), "s_iter_median": float(np.median(times)),
                      "cpu_iter_min": float(np.min(cpu)) if cpu else None,
                      "cpu_iter_median": float(np.median(cpu)) if cpu else None,
                      "setup_s": setup}))


def fft_sizes(lo=16, hi=1200, repeats=5):
    """Time a batch of complex 1-D FFTs (2^20 points in all, one worker) for every 11-smooth length in
    ``[lo, hi]``, fit ``cost = a + sum_p w_p (number of factors p)`` (ns per point) and print both."""
    import scipy.fft as sf

    def factors(n):
        out = []
        for p in (2, 3, 5, 7, 11):
            while n % p == 0:
                out.append(p)
                n //= p
        return out if n == 1 else None

    rows = []
    for n in range(lo, hi + 1):
        f = factors(n)
        if f is None:
            continue
        a = np.ones((max(1, (1 << 20) // n), n), np.complex64)
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            sf.fft(a, axis=-1, workers=1, overwrite_x=True)
            best = min(best, time.perf_counter() - t0)
        rows.append((n, f, best / a.size * 1e9))
    X = np.array([[1.0] + [f.count(p) for p in (2, 3, 5, 7, 11)] for _, f, _ in rows])
    y = np.array([c for *_, c in rows])
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    err = np.abs(X @ w - y) / y
    print(f"fit (ns/point): a={w[0]:.3f}, w2={w[1]:.3f}, w3={w[2]:.3f}, w5={w[3]:.3f}, w7={w[4]:.3f}, w11={w[5]:.3f}; "
          f"median error {100 * np.median(err):.1f}%, max {100 * err.max():.1f}% over {len(rows)} lengths")
    print("| n | factors | ns/point (min of repeats) | n x ns/point |")
    print("|---|---|---|---|")
    for n, f, c in rows:
        if n in (64, 80, 81, 84, 96, 100, 128, 512, 540, 550, 560, 576, 1024, 1050, 1056, 1078, 1080, 1100, 1120, 1152):
            print(f"| {n} | {'x'.join(map(str, f))} | {c:.3f} | {n * c:.0f} |")


def fft_planes(lo=400, hi=1200, pairs=240, repeats=5, seed=0):
    """Time torch's 2-D plane transforms as the 3-D Richardson-Lucy grid uses them (``rfft2`` of a
    plane, then the column ``ifft`` and the row ``irfft``; one thread) for ``pairs`` random 11-smooth
    shapes ``n1 x n2`` in ``[lo, hi]`` plus every square one, and fit the per-point cost of one
    transform (half the pair) as ``a + sum_p u_p e_p(n1) + sum_p v_p e_p(n2)`` over the odd primes
    (ns per point; ``e_p(n)``: the number of factors ``p`` of ``n``; MKL's per-point cost hardly grows
    with the power of two), the model of :func:`unblur.physics.convolution.fft_grid_shape` for the
    plane axes of 3-D grids."""
    import torch

    torch.set_num_threads(1)
    primes = (2, 3, 5, 7, 11)

    def factors(n):
        e = []
        for p in primes:
            k = 0
            while n % p == 0:
                n //= p
                k += 1
            e.append(k)
        return e if n == 1 else None

    smooth = [n for n in range(lo, hi + 1) if factors(n) is not None]
    rng = np.random.default_rng(seed)
    shapes = [(n, n) for n in smooth] + [tuple(int(v) for v in rng.choice(smooth, 2)) for _ in range(pairs)]
    rows = []
    for n1, n2 in shapes:
        real = torch.rand(n1, n2)
        spec = torch.empty(n1, n2 // 2 + 1, dtype=torch.complex64)
        tmp = torch.empty_like(spec)
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.fft.rfft2(real, out=spec)
            torch.fft.ifft(spec, dim=0, out=tmp)
            torch.fft.irfft(tmp, n=n2, dim=-1, out=real)
            best = min(best, time.perf_counter() - t0)
        rows.append((n1, n2, best / 2 / (n1 * n2) * 1e9))
    X = np.array([[1.0] + factors(a)[1:] + factors(b)[1:] for a, b, _ in rows])
    y = np.array([c for *_, c in rows])
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    err = np.abs(X @ w - y) / y
    print("fit (ns/point, one 2-D plane transform): a=%.3f, columns %s, rows %s; median error %.1f%%, max %.1f%% "
          "over %d shapes" % (w[0], dict(zip(primes[1:], np.round(w[1:5], 3))), dict(zip(primes[1:], np.round(w[5:], 3))),
                              100 * np.median(err), 100 * err.max(), len(rows)))
    print("| n1 x n2 | ns/point measured | modelled |")
    print("|---|---|---|")
    for (n1, n2, c), m in zip(rows, X @ w):
        if n1 == n2 and n1 in (512, 528, 540, 550, 560, 576, 600, 1024, 1050, 1056, 1078, 1080, 1100, 1120, 1152):
            print(f"| {n1} x {n2} | {c:.3f} | {m:.3f} |")


def _f(v):
    return "-" if v is None else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["32x512x512"])
    ap.add_argument("--psf", default="15x31x31")
    ap.add_argument("--methods", nargs="*", default=["rl", "rl-ba"])
    ap.add_argument("--peers", nargs="*", default=[])
    ap.add_argument("--boundaries", nargs="+", default=["valid", "circular"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="runs of the method inside one process")
    ap.add_argument("--rounds", type=int, default=1,
                    help="fresh processes per case, the cases alternating (one row per process)")
    ap.add_argument("--workdir", default="/tmp/unblur_rl_memory")
    ap.add_argument("--fft-sizes", action="store_true", help="time 1-D FFT lengths and fit the grid cost model")
    ap.add_argument("--fft-planes", action="store_true",
                    help="time torch's 2-D plane transforms and fit the plane cost model of 3-D grids")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--boundary", default="valid", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fft_sizes:
        return fft_sizes()
    if args.fft_planes:
        return fft_planes()
    if args.child:
        args.psf = [int(v) for v in args.psf.split("x")]
        args.threads = args.threads[0]
        return child(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}")
    print("| size | method | boundary | threads | peak (x input) | peak GiB | s/iter min | s/iter median | "
          "CPU s/iter min | CPU s/iter median | set-up s | PSNR dB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        shape = tuple(int(v) for v in size.split("x"))
        data = work / f"blobs_{size}_psf{args.psf}.npy"
        if not data.exists():
            make_data(shape, tuple(int(v) for v in args.psf.split("x")), data)
        cases = [(m, b) for m in args.methods for b in args.boundaries] + [(p, "(own)") for p in args.peers]
        for threads, _, (method, bd) in ((t, r, c) for t in args.threads for r in range(args.rounds) for c in cases):
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
            score = f"{r['psnr']:.2f}" if r.get("psnr") is not None else "-"
            print(f"| {size} | {method} | {bd} | {threads} | {r['peak_multiple']:.2f} | {r['peak_gib']:.2f} | "
                  f"{r['s_iter_min']:.3f} | {r['s_iter_median']:.3f} | {_f(r['cpu_iter_min'])} | {_f(r['cpu_iter_median'])} | "
                  f"{setup} | {score} |", flush=True)
        print(f"load average after {size}: {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
