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
  the per-voxel cost of tiling.  ``--cpu-time``: this process only (whole volume and tiled with the
  ``sync`` scheduler, one thread), ``--repeat`` interleaved rounds, and the ratio of the tiled run's
  process CPU time to the whole volume's in each round (median and range): on a machine shared with
  other jobs, runs close in time see the same load.
* ``time-to-best``: Biggs-Andrews RL on ``bars-25pct``, whole volume and with tiles forced: best
  PSNR over the iteration count and the wall time of the run that reaches it.
* ``rl-blocks``: CPU time of RL on a stack and on its halves split on Y or on X (the per-row
  overhead that makes ``make_plan`` split the leading axes first).
* ``plans``: the tile plans ``make_plan`` chooses for a large stack under several memory limits,
  with the modelled work relative to the whole volume (no computation).
* ``large``: a seeded stack at least 4x larger than ``--memory-limit``, written plane by plane to
  ``--tmp`` (deleted afterwards) and restored through ``unblur deconvolve`` into Zarr: wall time,
  CPU time and the peak resident memory of the whole process tree (sampled every 0.2 s).

    python benchmarks/tiling.py memory-model
    python benchmarks/tiling.py accuracy
    python benchmarks/tiling.py throughput
    python benchmarks/tiling.py throughput --cpu-time --repeat 5
    python benchmarks/tiling.py time-to-best
    python benchmarks/tiling.py rl-blocks
    python benchmarks/tiling.py plans
    python benchmarks/tiling.py large --gb 4 --memory-limit 1GB --num-iter 5
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


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _keep_nanny_malloc():
    """Skip unblur's malloc setting in this worker (to measure what the nanny's setting costs)."""
    from unblur.tiling import engine
    engine._MALLOC_SET = True


def _load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _measure(fn, repeat):
    """(wall, CPU, page faults, result) of ``fn()`` in this process: the run with the least CPU time
    out of ``repeat`` (other jobs on the machine only ever add time)."""
    best = None
    for _ in range(repeat):
        c0, f0, t0 = _cpu(), _faults(), time.perf_counter()
        r = fn()
        m = (time.perf_counter() - t0, _cpu() - c0, _faults() - f0, r)
        best = m if best is None or m[1] < best[1] else best
    return best


def _cluster_rate(src, psf, tile, n, kw, keep_nanny_malloc=False, repeat=1):
    """Wall time, CPU seconds and page faults of all workers, and the result of a tiled run on
    ``n`` local worker processes (started and warmed up before the clock starts; the run with the
    least wall time out of ``repeat``)."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        if keep_nanny_malloc:
            client.run(_keep_nanny_malloc)
        small = np.ones((16, 64, 64), np.float32)
        deconvolve_tiled(small, psf[:9, :9, :9], "rl", client=client, tile=(16, 32, 32), num_iter=2)  # warm-up
        best = None
        for _ in range(repeat):
            cpu0, f0 = sum(client.run(_cpu).values()), sum(client.run(_faults).values())
            t0 = time.perf_counter()
            r = deconvolve_tiled(src, psf, "rl", client=client, tile=tile, **kw)
            wall = time.perf_counter() - t0
            m = (wall, sum(client.run(_cpu).values()) - cpu0, sum(client.run(_faults).values()) - f0, r)
            best = m if best is None or m[0] < best[0] else best
        return best


def throughput(a):
    import torch

    from unblur.tiling.plan import bytes_per_voxel, make_plan
    y, psf, _, _ = synthetic(tuple(a.shape3))
    kw = dict(num_iter=a.num_iter)
    torch.set_num_threads(1)
    if a.tile3:
        tile = tuple(a.tile3)
    else:  # the plan unblur chooses for 2 workers under the default memory limit
        tile = make_plan(y.shape, psf.shape, bytes_per_voxel=bytes_per_voxel("rl"), concurrent=2, min_tiles=2).max_core()
    unblur.deconvolve(y[:16, :64, :64], psf[:9, :9, :9], "rl", num_iter=2)
    deconvolve_tiled(y[:16, :64, :64], psf[:9, :9, :9], "rl", tile=(16, 32, 64), scheduler="sync", num_iter=2)  # imports
    if a.cpu_time:
        a.in_process_only, a.nanny_malloc = True, False
    rows, rep = [], a.repeat
    print(f"stack {y.shape}, PSF {psf.shape}, {a.num_iter} RL iterations, tiles {tile}, best of {rep}, "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}; {_load()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="unblur-thr-", dir=a.tmp))
    try:
        np.save(tmp / "y.npy", y)  # workers read their blocks from the file
        runs = {"whole": lambda: unblur.deconvolve(y, psf, "rl", **kw),
                "sync": lambda: deconvolve_tiled(tmp / "y.npy", psf, "rl", tile=tile, scheduler="sync", **kw)}
        if a.threads:
            runs["threads"] = lambda: deconvolve_tiled(tmp / "y.npy", psf, "rl", tile=tile, scheduler="threads",
                                                       workers=2, **kw)
        best, rounds = {}, []
        for _ in range(rep):  # interleaved, so that a change in the load touches every run alike
            cpu = {}
            for name, fn in runs.items():
                m = _measure(fn, 1)
                cpu[name] = m[1]
                best[name] = m if name not in best or m[1] < best[name][1] else best[name]
            rounds.append(cpu)
            print(f"  whole/sync{'/threads' if a.threads else ''} done: CPU {' / '.join(f'{c:.1f}' for c in cpu.values())} s; "
                  f"{_load()}", flush=True)
        tw, cw, fw, _ = best["whole"]
        rows.append(("whole volume, 1 thread, this process", tw, cw, fw, "1.00"))
        ts, cs, fs, r = best["sync"]
        ratios = sorted(c["sync"] / c["whole"] for c in rounds)
        per_round = (f"; per round {np.median(ratios):.2f}x (median of {rep}, {ratios[0]:.2f}-{ratios[-1]:.2f})"
                     if a.cpu_time else "")
        rows.append(("tiled, this process (scheduler sync)", ts, cs, fs, f"CPU per voxel {cs / cw:.2f}x whole{per_round}"))
        if a.threads:
            tt, ct, ft, _ = best["threads"]
            rows.append(("tiled, this process, 2 threads (scheduler threads)", tt, ct, ft,
                         f"CPU per voxel {ct / cw:.2f}x whole; wall speed-up {ts / tt:.2f}x over sync"))
        if a.nanny_malloc and not a.in_process_only:
            t1, c1, f1, _ = _cluster_rate(tmp / "y.npy", psf, tile, 1, kw, keep_nanny_malloc=True, repeat=rep)
            rows.append(("tiled, 1 worker process, nanny's MALLOC_TRIM_THRESHOLD_ kept", t1, c1, f1,
                         f"CPU per voxel {c1 / cw:.2f}x whole"))
            print(f"  1 worker (nanny malloc) done; {_load()}", flush=True)
        if not a.in_process_only:
            t1, c1, f1, r = _cluster_rate(tmp / "y.npy", psf, tile, 1, kw, repeat=rep)
            rows.append(("tiled, 1 worker process (1 thread)", t1, c1, f1, f"CPU per voxel {c1 / cw:.2f}x whole"))
            print(f"  1 worker done; {_load()}", flush=True)
            t2, c2, f2, _ = _cluster_rate(tmp / "y.npy", psf, tile, 2, kw, repeat=rep)
            rows.append(("tiled, 2 worker processes (1 thread each)", t2, c2, f2,
                         f"CPU per voxel {c2 / cw:.2f}x whole; wall speed-up {t1 / t2:.2f}x over 1 worker"))
            print(f"  2 workers done; {_load()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    vox = y.size / 1e6
    print(f"\n{r.info['tiles']} tiles of {r.info['tile']}, halo {r.info['halo']}, overlap {r.info['overlap']}\n")
    print("| run | wall time (s) | CPU time (s) | page faults | Mvoxel/s (wall) | relative |")
    print("|---|---|---|---|---|---|")
    for label, t, c, f, rel in rows:
        print(f"| {label} | {t:.1f} | {c:.1f} | {f / 1e3:.0f} k | {vox / t:.2f} | {rel} |")


def rl_blocks(a):
    """CPU time of RL on the whole stack and on a half (with halo) split on Y or on X: the per-row
    overhead behind :data:`unblur.tiling.plan.ROW_OVERHEAD`."""
    import torch
    from unblur.physics.convolution import fft_grid_shape
    y, psf, _, _ = synthetic(tuple(a.shape3))
    torch.set_num_threads(1)
    unblur.deconvolve(y[:16, :64, :64], psf[:9, :9, :9], "rl", num_iter=2)
    z, n, _ = y.shape
    half = n // 2 + psf.shape[1] // 2 // 2 + psf.shape[1]  # core + half the overlap + halo, as a 2-tile plan reads
    print(f"RL, {a.num_iter} iterations, `valid` boundary, one thread; {_load()}\n")
    print("| block | FFT grid | CPU time (s) | two such blocks / whole (CPU) | per grid point / whole |")
    print("|---|---|---|---|---|")
    ref = None
    for label, shape in [("whole", (z, n, n)), ("half, split on Y", (z, half, n)), ("half, split on X", (z, n, half))]:
        block = np.ascontiguousarray(y[:shape[0], :shape[1], :shape[2]])
        grid = fft_grid_shape(tuple(s + k - 1 for s, k in zip(shape, psf.shape)))
        c0 = _cpu()
        unblur.deconvolve(block, psf, "rl", boundary="valid", num_iter=a.num_iter)
        c = _cpu() - c0
        ref = ref or (c, np.prod(grid))
        two = "-" if shape == (z, n, n) else f"{2 * c / ref[0]:.2f}"
        print(f"| {label} {'x'.join(map(str, shape))} | {'x'.join(map(str, grid))} | {c:.1f} | {two} | "
              f"{c / np.prod(grid) / (ref[0] / ref[1]):.2f} |")


def plans(a):
    """The automatic plans for a stack under several memory limits (no computation)."""
    import math

    from unblur.tiling.plan import ROW_OVERHEAD, _axis_cost, bytes_per_voxel, make_plan
    shape, psf = tuple(a.shape3), tuple(a.psf3)

    def cost(p):  # modelled RL-step cost of all tiles (padded grids), as make_plan models it
        total = 0.0
        for t in p.tiles():
            parts = [_axis_cost(b - a_ + k - 1) for (a_, b), k in zip(t.read, psf)]
            total += math.prod(n for n, _ in parts) * (sum(c for _, c in parts) + 2) * (1 + ROW_OVERHEAD / parts[-1][0])
        return total

    whole = cost(make_plan(shape, psf, tile=shape))
    print(f"stack {shape} ({math.prod(shape) * 4 / 1e9:.1f} GB float32), PSF {psf}, method rl, {a.workers} workers\n")
    print("| --memory-limit | tiles | core | read box (largest) | memory per tile | modelled work / whole volume |")
    print("|---|---|---|---|---|---|")
    for lim in a.limits:
        p = make_plan(shape, psf, memory_limit=lim, bytes_per_voxel=bytes_per_voxel("rl"), concurrent=a.workers,
                      min_tiles=a.workers)
        read = max((tuple(b - a_ for a_, b in t.read) for t in p.tiles()), key=math.prod)
        print(f"| {lim} | {'x'.join(map(str, p.counts))} = {p.n_tiles} | {'x'.join(map(str, p.max_core()))} | "
              f"{'x'.join(map(str, read))} | {p.grid_voxels() * bytes_per_voxel('rl') / 1e9:.2f} GB | {cost(p) / whole:.2f} |")


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


def _tree_rss(proc) -> int:
    """Resident bytes of ``proc`` and all its descendants."""
    import psutil
    total = 0
    for q in [proc] + proc.children(recursive=True):
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def large(a):
    """A seeded synthetic stack of at least ``--gb`` GB on disk, restored through the command line."""
    import math

    import psutil
    import tifffile

    from unblur.tiling.plan import parse_size
    limit = parse_size(a.memory_limit)
    nz = max(8, math.ceil(a.gb * 1e9 / 4 / (a.yx * a.yx)))
    shape = (nz, a.yx, a.yx)
    tmp = Path(tempfile.mkdtemp(prefix="unblur-large-", dir=a.tmp))
    try:
        src, psf_file, out = tmp / "stack.tif", tmp / "psf.tif", tmp / "out.zarr"
        rng = np.random.default_rng(0)
        planes = (rng.random((a.yx, a.yx), dtype=np.float32) + 0.1 for _ in range(nz))  # lazily, plane by plane
        tifffile.imwrite(src, planes, shape=shape, dtype=np.float32, bigtiff=True)
        k = np.zeros((9, 15, 15), np.float32)
        k[4, 7, 7] = 1
        tifffile.imwrite(psf_file, gaussian_filter(k, (2, 1.5, 1.5)))
        cmd = [sys.executable, "-m", "unblur.cli.main", "deconvolve", str(src), "--psf", str(psf_file),
               "--memory-limit", a.memory_limit, "--num-iter", str(a.num_iter), "--no-progress", "-o", str(out)]
        if a.workers:
            cmd += ["--workers", str(a.workers)]
        print("command: unblur " + " ".join(cmd[3:]).replace(str(tmp), "$TMP"), f"; {_load()}", flush=True)
        peak, t0 = 0, time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, _tree_rss(ps))
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        text = proc.stdout.read()
        if proc.returncode:
            raise SystemExit(f"unblur failed ({proc.returncode}):\n{text}")
        info = json.loads((tmp / "out.zarr.json").read_text())["info"]
        size = math.prod(shape) * 4
        print(f"done; {_load()}\n")
        print("| stack | memory limit | tiles | RL iterations | workers | wall (s) | CPU (s) | peak RSS, process tree (GB) |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {shape} float32 TIFF ({size / 1e9:.2f} GB) -> Zarr | {a.memory_limit} ({size / limit:.1f}x smaller) | "
              f"{info['tiles']} tiles of {tuple(info['tile'])}, halo {tuple(info['halo'])} | {a.num_iter} | "
              f"{info['workers']} ({info['scheduler']}) | {wall:.0f} | {cpu:.0f} | {peak / 1e9:.2f} |")
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
    t.add_argument("--tile3", type=int, nargs=3, default=None, help="tile core (default: unblur's plan for 2 workers)")
    t.add_argument("--nanny-malloc", action="store_true", help="also time 1 worker with the nanny's malloc setting kept")
    t.add_argument("--threads", action="store_true", help="also time 2 threads in this process (the default scheduler)")
    t.add_argument("--in-process-only", action="store_true", help="skip the worker processes")
    t.add_argument("--cpu-time", action="store_true",
                   help="this process only; the tiled / whole ratio of process CPU time in each round (median, range)")
    t.add_argument("--repeat", type=int, default=1, help="runs of each kind; the best is shown")
    t.add_argument("--num-iter", type=int, default=20)
    t.add_argument("--tmp", default="/tmp")
    r = sub.add_parser("rl-blocks")
    r.add_argument("--shape3", type=int, nargs=3, default=(48, 512, 512))
    r.add_argument("--num-iter", type=int, default=20)
    q = sub.add_parser("plans")
    q.add_argument("--shape3", type=int, nargs=3, default=(200, 2048, 2048))
    q.add_argument("--psf3", type=int, nargs=3, default=(15, 31, 31))
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--limits", nargs="+", default=["16GB", "4GB", "1GB", "500MB"])
    b = sub.add_parser("time-to-best")
    b.add_argument("--tile3", type=int, nargs=3, default=(32, 48, 48))
    b.add_argument("--halo3", type=int, nargs=3, default=(16, 24, 24))
    b.add_argument("--psf3", type=int, nargs=3, default=(32, 48, 48))
    b.add_argument("--workers", type=int, default=1)
    b.add_argument("--iters", type=int, nargs="+", default=[20, 30, 37, 45, 60])
    g = sub.add_parser("large")
    g.add_argument("--gb", type=float, default=4.0)
    g.add_argument("--yx", type=int, default=1024)
    g.add_argument("--memory-limit", default="1GB")
    g.add_argument("--workers", type=int, default=None, help="default: unblur's (the number of CPUs)")
    g.add_argument("--num-iter", type=int, default=5)
    g.add_argument("--tmp", default="/tmp")
    a = ap.parse_args()
    {"memory-model": memory_model, "accuracy": accuracy, "throughput": throughput, "time-to-best": time_to_best,
     "large": large, "plans": plans, "rl-blocks": rl_blocks}[a.cmd](a)


if __name__ == "__main__":
    main()
