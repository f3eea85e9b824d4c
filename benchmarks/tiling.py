"""Tiled deconvolution (``unblur.tiling``) against whole-volume deconvolution.

Subcommands (each prints Markdown rows for BENCHMARKS.md):

* ``memory-model``: peak memory of one tile per method, in bytes per voxel of its FFT grid (read
  box + PSF - 1), measured in a fresh process (``ru_maxrss`` above the interpreter after a warm-up);
  the factors behind :data:`unblur.tiling.plan.BYTES_PER_VOXEL`.
* ``accuracy``: tiled vs whole-volume RL on flowdec ``bars-25pct`` (``microscopy/flowdec/bars-25pct``:
  data, kernel, ground truth; estimates scaled by ``sum(actual) / sum(data)``, PSNR with data range
  ``max(actual)``) and on a synthetic stack (beads and filaments, Gaussian PSF, Poisson noise):
  PSNR against the ground truth and the maximum pixel difference, for several halos.
* ``throughput``: voxels per second of tiled RL with 1 and 2 local Dask worker processes
  (``distributed.LocalCluster``, one thread each) and of whole-volume RL on one thread: scaling and
  the per-voxel cost of tiling.
* ``time-to-best``: Biggs-Andrews RL on ``bars-25pct``, whole volume and with tiles forced: best
  PSNR over the iteration count and the wall time of the run that reaches it.
* ``large``: a stack several times larger than ``--memory-limit``, generated lazily on disk
  (``--tmp``, deleted afterwards), restored tile by tile into Zarr: wall time and peak memory.

    python benchmarks/tiling.py memory-model
    python benchmarks/tiling.py accuracy
    python benchmarks/tiling.py throughput
    python benchmarks/tiling.py time-to-best
    python benchmarks/tiling.py large --gb 2 --memory-limit 500MB --num-iter 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import unblur  # noqa: F401  (before torch: thread settings)
import numpy as np
from scipy.ndimage import gaussian_filter

from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.tiling import deconvolve_tiled

warnings.filterwarnings("ignore", message="PSF: normalised")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- memory model --------------------------------------------------------------------------------

_CHILD = r"""
import json, resource, sys, warnings
import unblur, numpy as np, torch
from scipy.ndimage import gaussian_filter
warnings.filterwarnings("ignore")
method, shape, k = sys.argv[1], tuple(map(int, sys.argv[2].split("x"))), tuple(map(int, sys.argv[3].split("x")))
psf = np.zeros(k, np.float32); psf[tuple(n // 2 for n in k)] = 1; psf = gaussian_filter(psf, 1.5)
params = {"rl": dict(num_iter=3), "rl-tv": dict(num_iter=3), "tv-admm": dict(num_iter=3)}.get(method, {})
small = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
unblur.deconvolve(small, psf[:7, :9, :9], method, boundary="valid", **params)   # warm-up
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
y = np.random.default_rng(1).random(shape).astype(np.float32) + 0.1
unblur.deconvolve(y, psf, method, boundary="valid", **params)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
grid = int(np.prod([a + b - 1 for a, b in zip(shape, k)]))
print(json.dumps({"method": method, "peak_mb": (peak - base) / 1e6, "grid": grid, "bpv": (peak - base) / grid}))
"""


def memory_model(a):
    print(f"read box {a.shape}, PSF {a.psf}; bytes per voxel of the FFT grid (read box + PSF - 1)\n")
    print("| method | grid voxels | peak above baseline (MB) | bytes / grid voxel |")
    print("|---|---|---|---|")
    for m in a.methods.split(","):
        out = subprocess.run([sys.executable, "-c", _CHILD, m, a.shape, a.psf], capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
        if out.returncode:
            print(f"| {m} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {m} | {r['grid']:,} | {r['peak_mb']:.0f} | {r['bpv']:.1f} |")


# -- data ----------------------------------------------------------------------------------------

def crop(psf, shape):
    """The centred ``shape`` box of ``psf`` (centre ``n // 2`` kept at ``m // 2``)."""
    return psf[tuple(slice(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(psf.shape, shape))]


def bars(psf_shape=None):
    """flowdec bars-25pct; its PSF fills the whole 32x64x64 box: ``psf_shape`` crops it (32x48x48: 99 % of the energy)."""
    root = data_path("microscopy/flowdec/bars-25pct")
    y, psf, truth = (read_image(root / f"{n}.tif") for n in ("data", "kernel", "actual"))
    return y, (crop(psf, psf_shape) if psf_shape else psf), truth, float(truth.sum() / y.sum())


def synthetic(shape=(48, 192, 192), seed=0):
    """Beads and filaments, blurred by an anisotropic Gaussian PSF (15x21x21), Poisson noise (peak ~1000)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    idx = tuple(rng.integers(0, n, 300) for n in shape)
    x[idx] = rng.uniform(0.5, 1.0, 300)
    for _ in range(20):  # filaments: random straight segments
        p0, d = rng.uniform(0, 1, 3) * shape, rng.normal(size=3)
        for t in np.linspace(0, 60, 240):
            q = np.round(p0 + t * d / np.linalg.norm(d)).astype(int)
            if all(0 <= v < n for v, n in zip(q, shape)):
                x[tuple(q)] = 0.6
    x = gaussian_filter(x, 0.6) * 10 + 0.01
    k = np.zeros((15, 21, 21), np.float32)
    k[7, 10, 10] = 1
    k = gaussian_filter(k, (2.5, 1.8, 1.8))
    from unblur.physics.convolution import Convolution
    import torch
    op = Convolution(torch.from_numpy(k / k.sum()), shape, "circular")
    blurred = op.A(torch.from_numpy(x)[None, None])[0, 0].numpy().clip(0)
    y = rng.poisson(blurred * 1000 / blurred.max()).astype(np.float32) * (blurred.max() / 1000)
    return y, k, x, 1.0


def _psnr(est, truth, scale):
    return psnr(est * scale, truth, data_range=float(truth.max()))


def accuracy(a):
    print("| data | run | tiles | halo | PSNR (dB) | PSNR - whole (dB) | max pixel diff / max | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, (y, psf, truth, scale), tile, halos in (
            ("bars-25pct 32x64x64, PSF cropped to 32x48x48", bars((32, 48, 48)), (32, 48, 48), [(16, 16, 16), (16, 24, 24), (32, 48, 48)]),
            ("synthetic 48x192x192, PSF 15x21x21", synthetic(), (48, 96, 96), [(8, 10, 10), (15, 21, 21), (30, 42, 42)])):
        kw = dict(num_iter=a.num_iter)
        t0 = time.perf_counter()
        whole = unblur.deconvolve(y, psf, "rl", **kw).image
        tw = time.perf_counter() - t0
        pw = _psnr(whole, truth, scale)
        print(f"| {label} | whole volume | 1 | - | {pw:.3f} | 0 | 0 | {tw:.1f} |")
        for h in halos:
            t0 = time.perf_counter()
            r = deconvolve_tiled(y, psf, "rl", tile=tile, halo=h, workers=1, **kw)
            tt = time.perf_counter() - t0
            p = _psnr(r.image, truth, scale)
            diff = float(np.abs(r.image - whole).max() / whole.max())
            print(f"| {label} | tiled {tile} | {r.info['tiles']} | {h} | {p:.3f} | {p - pw:+.3f} | {diff:.1e} | {tt:.1f} |")


def _cpu() -> float:
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


def _cluster_rate(src, psf, tile, n, kw):
    """Wall time, CPU seconds of all workers and the result of a tiled run on ``n`` local worker processes."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        small = np.ones((16, 64, 64), np.float32)
        deconvolve_tiled(small, psf[:9, :9, :9], "rl", client=client, tile=(16, 32, 32), num_iter=2)  # warm-up
        cpu0 = sum(client.run(_cpu).values())
        t0 = time.perf_counter()
        r = deconvolve_tiled(src, psf, "rl", client=client, tile=tile, **kw)
        return time.perf_counter() - t0, sum(client.run(_cpu).values()) - cpu0, r


def throughput(a):
    import torch
    y, psf, _, _ = synthetic(tuple(a.shape3))
    kw = dict(num_iter=a.num_iter)
    torch.set_num_threads(1)
    unblur.deconvolve(y[:16, :64, :64], psf[:9, :9, :9], "rl", num_iter=2)
    c0, t0 = _cpu(), time.perf_counter()
    unblur.deconvolve(y, psf, "rl", **kw)
    tw, cw = time.perf_counter() - t0, _cpu() - c0
    tile = tuple(a.tile3)
    tmp = Path(tempfile.mkdtemp(prefix="unblur-thr-", dir=a.tmp))
    try:
        np.save(tmp / "y.npy", y)  # workers read their blocks from the file
        cs, ts = _cpu(), time.perf_counter()
        deconvolve_tiled(tmp / "y.npy", psf, "rl", tile=tile, scheduler="sync", **kw)
        ts, cs = time.perf_counter() - ts, _cpu() - cs
        t1, c1, r = _cluster_rate(tmp / "y.npy", psf, tile, 1, kw)
        t2, c2, _ = _cluster_rate(tmp / "y.npy", psf, tile, 2, kw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    vox = y.size / 1e6
    print(f"stack {y.shape}, PSF {psf.shape}, {a.num_iter} RL iterations, tiles {tile} ({r.info['tiles']} tiles, "
          f"halo {r.info['halo']})\n")
    print("| run | wall time (s) | CPU time (s) | Mvoxel/s (wall) | relative |")
    print("|---|---|---|---|---|")
    print(f"| whole volume, 1 thread | {tw:.1f} | {cw:.1f} | {vox / tw:.2f} | 1.00 |")
    print(f"| tiled, in this process (scheduler sync) | {ts:.1f} | {cs:.1f} | {vox / ts:.2f} | CPU per voxel {cs / cw:.2f}x whole |")
    print(f"| tiled, 1 worker (1 thread) | {t1:.1f} | {c1:.1f} | {vox / t1:.2f} | CPU per voxel {c1 / cw:.2f}x whole |")
    print(f"| tiled, 2 workers (1 thread each) | {t2:.1f} | {c2:.1f} | {vox / t2:.2f} | wall speed-up {t1 / t2:.2f}x over 1 worker |")


def time_to_best(a):
    y, psf, truth, scale = bars(tuple(a.psf3))
    print(f"PSF cropped to {psf.shape}\n")
    print("| run | iterations | PSNR (dB) | wall time (s) |")
    print("|---|---|---|---|")
    for label, fn in (("whole volume, valid", lambda n: unblur.deconvolve(y, psf, "rl", num_iter=n, acceleration="biggs-andrews").image),
                      ("whole volume, circular", lambda n: unblur.deconvolve(y, psf, "rl", num_iter=n, boundary="circular",
                                                                             acceleration="biggs-andrews").image),
                      (f"tiled {tuple(a.tile3)}, halo {tuple(a.halo3)}",
                       lambda n: deconvolve_tiled(y, psf, "rl", tile=tuple(a.tile3), halo=tuple(a.halo3), workers=a.workers,
                                                  num_iter=n, acceleration="biggs-andrews").image)):
        best = (-1, 0, 0)
        for n in a.iters:
            t0 = time.perf_counter()
            p = _psnr(fn(n), truth, scale)
            best = max(best, (p, n, time.perf_counter() - t0))
        print(f"| {label} | {best[1]} | {best[0]:.2f} | {best[2]:.1f} |")


def large(a):
    from unblur.tiling.plan import parse_size
    limit = parse_size(a.memory_limit)
    nz = max(8, int(a.gb * 1e9 / 4 / (a.yx * a.yx)))
    shape = (nz, a.yx, a.yx)
    tmp = Path(tempfile.mkdtemp(prefix="unblur-large-", dir=a.tmp))
    try:
        src = tmp / "stack.tif"
        rng = np.random.default_rng(0)
        import tifffile
        planes = (rng.random((a.yx, a.yx), dtype=np.float32) + 0.1 for _ in range(nz))  # lazily, plane by plane
        tifffile.imwrite(src, planes, shape=shape, dtype=np.float32, bigtiff=True)
        k = np.zeros((9, 15, 15), np.float32)
        k[4, 7, 7] = 1
        k = gaussian_filter(k, (2, 1.5, 1.5))
        base = rss_mb()
        cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        t0 = time.perf_counter()
        r = deconvolve_tiled(src, k, "rl", output=tmp / "out.zarr", memory_limit=a.memory_limit, workers=a.workers,
                             num_iter=a.num_iter)
        wall = time.perf_counter() - t0
        cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
        size = np.prod(shape) * 4
        print("| stack | memory limit | tiles | RL iterations | workers | wall (s) | CPU (s) | peak RSS (MB) |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {shape} float32 TIFF ({size / 1e9:.2f} GB) -> Zarr | {a.memory_limit} ({size / limit:.1f}x smaller) | "
              f"{r.info['tiles']} tiles of {r.info['tile']}, halo {r.info['halo']} | {a.num_iter} | {a.workers} | "
              f"{wall:.0f} | {cpu:.0f} | {rss_mb():.0f} (before the run {base:.0f}) |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory-model")
    m.add_argument("--methods", default="rl,rl-tv,wiener,tikhonov,tv-admm")
    m.add_argument("--shape", default="32x192x192")
    m.add_argument("--psf", default="9x15x15")
    c = sub.add_parser("accuracy")
    c.add_argument("--num-iter", type=int, default=30)
    t = sub.add_parser("throughput")
    t.add_argument("--shape3", type=int, nargs=3, default=(48, 512, 512))
    t.add_argument("--tile3", type=int, nargs=3, default=(48, 256, 256))
    t.add_argument("--num-iter", type=int, default=20)
    t.add_argument("--tmp", default="/tmp")
    b = sub.add_parser("time-to-best")
    b.add_argument("--tile3", type=int, nargs=3, default=(32, 48, 48))
    b.add_argument("--halo3", type=int, nargs=3, default=(16, 24, 24))
    b.add_argument("--psf3", type=int, nargs=3, default=(32, 48, 48))
    b.add_argument("--workers", type=int, default=1)
    b.add_argument("--iters", type=int, nargs="+", default=[20, 30, 37, 45, 60])
    g = sub.add_parser("large")
    g.add_argument("--gb", type=float, default=2.0)
    g.add_argument("--yx", type=int, default=1024)
    g.add_argument("--memory-limit", default="500MB")
    g.add_argument("--workers", type=int, default=2)
    g.add_argument("--num-iter", type=int, default=3)
    g.add_argument("--tmp", default="/tmp")
    a = ap.parse_args()
    {"memory-model": memory_model, "accuracy": accuracy, "throughput": throughput, "time-to-best": time_to_best,
     "large": large}[a.cmd](a)


if __name__ == "__main__":
    main()
