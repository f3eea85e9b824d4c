"""Richardson-Lucy throughput: unblur vs ``skimage.restoration.richardson_lucy``, side by side.

Both run the same algorithm (zero boundary / ``scipy.signal.convolve(mode="same")``, flat 0.5
start, no ``A^T 1`` normalisation, result clipped to [-1, 1] / [0, 1]) on the same float32 data, in
one process, and the outputs are compared (max abs difference).  Prints a markdown table.

skimage is timed twice: first with glibc's default allocator settings (as in a fresh process: its
per-iteration temporaries page-fault), then, alternating with unblur, with freed memory kept on the
heap (:func:`keep_freed_memory`), which is skimage's best case.  The first column is only "fresh"
for the first case a process runs: use ``--only 2d`` / ``--only 3d`` for separate processes.
This measures raw solver iterations per second against another library, so unblur's RL is called as
the plain function :func:`unblur.solvers.richardson_lucy` (the signature skimage users know), not
through the registry.

    python benchmarks/rl_throughput.py [--iters2d 20] [--iters3d 5] [--repeats 2] [--threads N] [--only 2d|3d]
"""

from __future__ import annotations

import argparse
import os
import time

import unblur  # noqa: F401  (imported before torch: sets OMP_WAIT_POLICY=PASSIVE, see unblur/__init__.py)
import numpy as np
import torch
from skimage.restoration import richardson_lucy as sk_rl

from unblur.solvers import richardson_lucy


def gaussian(shape, sigmas):
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    p = np.exp(-sum(g**2 / (2 * s**2) for g, s in zip(grids, sigmas)))
    return (p / p.sum()).astype(np.float32)


def test_image(shape, seed=0):
    """Blurred random blobs in [0, 1] plus a little Poisson-like noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    idx = tuple(rng.integers(0, n, 300 if len(shape) == 2 else 2000) for n in shape)
    x[idx] = rng.uniform(0.3, 1.0, len(idx[0]))
    from scipy.ndimage import gaussian_filter
    x = gaussian_filter(x, 1.0) * 4
    return np.clip(x, 0, 1).astype(np.float32)


def times(fns, repeats):
    """Time each function ``repeats`` times, alternating them (so that both see the same machine
    state); returns the best time and the last output of each."""
    best, outs = [np.inf] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, outs


def keep_freed_memory():
    """glibc: serve large arrays from the heap instead of fresh mmap'ed (page-faulting) pages.

    scikit-image allocates ~10 arrays of the FFT size per iteration; with glibc's default thresholds
    each of them page-faults, which halves its speed until some earlier large allocation in the
    process has raised the dynamic mmap threshold (unblur's own run does that).  Setting the
    thresholds explicitly makes the second measurement independent of what ran before."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 128 << 20))


def case(name, shape, psf_shape, sigmas, iters, repeats):
    from scipy.signal import fftconvolve
    x = test_image(shape)
    psf = gaussian(psf_shape, sigmas)
    y = np.clip(fftconvolve(x, psf, mode="same"), 0, None).astype(np.float32)
    run_sk = lambda: sk_rl(y, psf, num_iter=iters, clip=True)  # noqa: E731
    run_ub = lambda: richardson_lucy(y, psf, num_iter=iters, boundary="zero", init="flat",  # noqa: E731
                                     normalize=False, clip=True)
    (t_cold,), _ = times([run_sk], repeats)  # first thing this process runs on this size: glibc defaults
    keep_freed_memory()
    (t_sk, t_ub), (out_sk, out_ub) = times([run_sk, run_ub], repeats)
    diff = float(np.abs(out_sk - out_ub).max())
    return (f"| {name} | {iters} | {iters / t_cold:.2f} | {iters / t_sk:.2f} | {iters / t_ub:.2f} "
            f"| {t_cold / t_ub:.2f}x | **{t_sk / t_ub:.2f}x** | {diff:.1e} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters2d", type=int, default=20)
    ap.add_argument("--iters3d", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=("2d", "3d"), default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at start (times: best of {a.repeats}; see keep_freed_memory)\n")
    print("| case | iterations | skimage it/s (default malloc) | skimage it/s (heap kept) | unblur it/s "
          "| speed-up vs default | speed-up vs heap kept | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    if a.only in (None, "2d"):
        print(case("2-D 512x512, PSF 61x61 (Gaussian sigma 8)", (512, 512), (61, 61), (8, 8), a.iters2d, a.repeats), flush=True)
    if a.only in (None, "3d"):
        print(case("3-D 64x256x256, PSF 15x31x31 (Gaussian 2,4,4)", (64, 256, 256), (15, 31, 31), (2, 4, 4),
                   a.iters3d, a.repeats), flush=True)


if __name__ == "__main__":
    main()
