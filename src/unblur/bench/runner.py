"""Run the cases of a suite through the registry, in parallel with Dask, into a resumable results file.

Every case calls :func:`unblur.deconvolve` (non-blind methods, given the true kernel) or
:func:`unblur.blind_deconvolve` (blind methods) and nothing else; the metrics are those of
:mod:`unblur.metrics` and :mod:`unblur.iqa`.  A case's record holds the metrics, the wall time, the peak
memory, the method's resolved parameters, the seed, the unblur version and the machine.

Where cases run (``scheduler``): ``"sync"`` (one after the other in this process; the default with one
worker), ``"processes"`` (a local pool of ``workers`` processes; the default with more, so that each
case's memory is measured in a process of its own), ``"threads"``, or the address of a
``dask.distributed`` scheduler (``tcp://HOST:PORT``).  Each worker gives torch ``cpus // workers``
threads.

Peak memory (``peak_mem_mb``) is the case's own: before the case, memory that the allocator kept after
earlier cases is handed back to the system (glibc ``malloc_trim``) and the kernel's high-water mark of
the worker's resident-set size is reset (``/proc/self/clear_refs``); after it, the high-water mark
(``VmHWM``) minus the RSS at the start is recorded.  Without that kernel interface the RSS is sampled
every 5 ms instead (``mem_method`` in the record says which).  On a CUDA device the peak allocated CUDA
memory is recorded as well.  With the ``threads`` scheduler, cases share a process and one case's peak
includes its neighbours' allocations.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from .cases import Case, degrade
from .store import append_record, read_records
from .suite import substitute

RESULTS = "results.jsonl"


def machine_info() -> dict:
    """CPU model, cores, torch threads, GPU (name or None), OS, Python, torch and unblur versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    import torch

    from .. import __version__
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "gpu": gpu, "load_1min": load,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "torch": torch.__version__, "unblur": __version__}


def safe_name(cid: str) -> str:
    return hashlib.sha1(cid.encode()).hexdigest()[:16]


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmHWM``, ``VmRSS``), None where there is no procfs."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _release_freed_memory() -> None:
    """Hand memory that the allocator keeps after ``free`` back to the system (glibc ``malloc_trim(0)``), so
    that the RSS counts only live memory and a case's allocations show up as RSS growth; a no-op elsewhere."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    """Reset the kernel's RSS high-water mark (``VmHWM``) to the current RSS (Linux >= 4.0: write 5 to
    ``/proc/self/clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


class PeakRSS:
    """Peak resident memory of this process during the block, above its RSS at entry (bytes, ``peak``).

    On entry, memory the allocator kept after earlier frees is returned to the system (``malloc_trim``)
    and the kernel's high-water mark is reset (``/proc/self/clear_refs``); on exit the peak is
    ``VmHWM - RSS at entry``, exact whatever the block's duration.  Where the kernel does not offer this,
    the RSS is sampled every ``interval`` seconds (``psutil``) and short peaks can be missed
    (``method`` says which was used).
    """

    def __init__(self, interval: float = 0.005):
        import psutil
        self.proc, self.interval = psutil.Process(), interval
        self.peak = 0
        self.method = "sampled"
        self._stop = threading.Event()
        self._t = None

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss - self.base)
            self._stop.wait(self.interval)

    def __enter__(self):
        _release_freed_memory()
        if _reset_hwm():
            self.method = "hwm"
            self.base = _status_kib("VmRSS") * 1024
            return self
        self.base = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        if self.method == "hwm":
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                self.peak = max(0, hwm * 1024 - self.base)
                return
        self._stop.set()
        if self._t is not None:
            self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss - self.base)


def _channel_axis(truth: np.ndarray, kernel) -> int | None:
    kdim = kernel.ndim if kernel is not None else 2
    return -1 if truth.ndim == kdim + 1 else None


def _reblur(x: np.ndarray, k: np.ndarray, y: np.ndarray, boundary: str) -> float:
    """RMS of ``k * x - y`` (image units): how well the restoration and its kernel explain the data."""
    import torch

    from ..physics.convolution import convolve
    colour = x.ndim == k.ndim + 1
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)[None] if colour else x[None, None])).float()
    b = "reflect" if boundary == "valid" else boundary  # the restoration has the data's size
    z = convolve(t, torch.from_numpy(np.ascontiguousarray(k)).float(), b)[0]
    z = np.moveaxis(z.numpy(), 0, -1) if colour else z[0].numpy()
    return float(np.sqrt(np.mean((z - y) ** 2)))


def compute_metrics(case: Case, data: dict, restored: np.ndarray, kernel_hat, out_dir: Path | None,
                    info: dict | None = None) -> tuple[dict, list[str]]:
    """The case's metrics (see :data:`unblur.bench.suite.METRICS`) and notes on those that could not be computed;
    ``info`` is the method's result info (``residual_share`` for ``valid`` data, ``seed_spread``)."""
    from .. import metrics as M
    names, opts = case.metrics, case.metric_options
    truth, y, k = data["truth"], data["blurred"], data["kernel"]
    x = np.asarray(restored, np.float64)
    scale = float(truth.sum()) / float(y.sum()) if opts.get("flux_scale") else 1.0
    x = x * scale  # data and truth in different units (flux_scale): a fixed factor, the ratio of their sums
    out: dict = {}
    notes: list[str] = []
    ca = _channel_axis(truth, k)
    drange = float(opts.get("data_range", 0) or 0) or (1.0 if truth.max() <= 1.0 + 1e-6 else float(truth.max() - truth.min()))
    if opts.get("clip"):  # metrics of the restoration clipped to the data range, as it would be displayed or stored
        x = np.clip(x, 0.0, drange)
    info = info or {}
    if "seed_spread" in names:
        if info.get("seed_spread_mean") is not None:
            out["seed_spread"] = float(info["seed_spread_mean"])
        elif int(case.method.params.get("seeds", 1)) >= 2:  # other methods have no spread: no note
            notes.append("seed spread: the method gave no seed_spread_mean for seeds >= 2")
    if "residual_share" in names:
        share, why = _residual_share(case, data, x, info)
        if share is not None:
            out["residual_share"] = share
        else:
            notes.append(f"residual share: {why}")
    if x.shape != truth.shape:
        notes.append(f"restoration {x.shape} and truth {truth.shape} differ in shape: full-reference metrics skipped")
        return out, notes
    border = int(opts.get("crop", 0))
    inner = tuple(slice(border, n - border) if border and (ca is None or i != truth.ndim - 1) else slice(None)
                  for i, n in enumerate(truth.shape))
    if "psnr" in names:
        out["psnr"] = M.psnr(x[inner], truth[inner], drange)
    if "ssim" in names:
        win = min(7, min(s for i, s in enumerate(x[inner].shape) if ca is None or i != x.ndim - 1) // 2 * 2 - 1)
        out["ssim"] = M.ssim(x[inner], truth[inner], drange, channel_axis=ca, win_size=max(win, 3))
    shift_kw = {"crop": int(opts.get("shift_crop", 15)), "max_shift": float(opts.get("max_shift", 10)), "channel_axis": ca,
                "data_range": drange}
    if "psnr_shift" in names or "ssim_shift" in names or "gain" in names:
        st = M.shift_tolerant(x, truth, **shift_kw)
        for key in ("psnr", "ssim"):
            if f"{key}_shift" in names:
                out[f"{key}_shift"] = st[key]
        out["shift"] = list(st["shift"])
        if "gain" in names and y.shape == truth.shape:  # shift-tolerant PSNR over that of the blurred input
            out["gain"] = st["psnr"] - M.shift_tolerant(np.asarray(y, np.float64) * scale, truth, **shift_kw)["psnr"]
    if "error_ratio" in names and case.reference is not None and out_dir is not None:
        ref_file = out_dir / "restored" / f"{safe_name(f'{case.unit.uid}|{case.reference}')}.npy"
        if ref_file.exists():
            out["error_ratio"] = M.error_ratio(x, np.load(ref_file), truth, **shift_kw)
        else:
            notes.append(f"error ratio: the reference {case.reference!r} has no restoration for this unit (it failed)")
    band = int(opts.get("band", 0))
    if "psnr_input" in names and y.shape == truth.shape:
        out["psnr_input"] = M.psnr(np.asarray(y, np.float64)[inner] * scale, truth[inner], drange)
    if "psnr_delta" in names and case.reference is not None and out_dir is not None:
        ref_file = out_dir / "restored" / f"{safe_name(f'{case.unit.uid}|{case.reference}')}.npy"
        if ref_file.exists():
            xr = np.load(ref_file).astype(np.float64) * scale
            xr = np.clip(xr, 0.0, drange) if opts.get("clip") else xr
            if xr.shape == truth.shape:
                out["psnr_delta"] = M.psnr(x[inner], truth[inner], drange) - M.psnr(xr[inner], truth[inner], drange)
        else:
            notes.append(f"PSNR difference: the reference {case.reference!r} has no restoration for this unit (it failed)")
    if band and "psnr" in names and truth.shape[0] > 2 * band:  # edge ringing: PSNR on the border band and inside it
        mask = np.zeros(truth.shape[:2], bool)
        mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = True, True, True, True
        out["psnr_band"] = M.psnr(x[mask], truth[mask], drange)
        out["psnr_interior"] = M.psnr(x[~mask], truth[~mask], drange)
    if "isnr" in names and y.shape == truth.shape:
        out["isnr"] = M.isnr(x, y * scale, truth)
    if "reblur" in names:
        kk = kernel_hat if kernel_hat is not None else k
        if kk is not None and y.shape == x.shape:
            out["reblur_rms"] = _reblur(np.asarray(restored, np.float32), np.asarray(kk, np.float32), y, case.unit.boundary)
    if "kernel_error" in names and kernel_hat is not None and k is not None:
        out["kernel_error"] = M.kernel_error(kernel_hat, k)
    if ("niqe" in names or "brisque" in names) and x.ndim == 2 + (ca is not None):
        from .. import iqa
        img = np.clip(x / drange, 0, 1)
        for name in ("niqe", "brisque"):
            if name in names:
                try:
                    out[name] = getattr(iqa, name)(img)
                except InputError as e:
                    notes.append(f"{name}: {e}")
    if "lpips" in names:
        weights = opts.get("lpips_weights") or os.environ.get("UNBLUR_LPIPS_WEIGHTS")
        if not weights:
            notes.append("lpips: no weights supplied (--lpips-weights FILE or UNBLUR_LPIPS_WEIGHTS); not computed")
        else:
            from .. import iqa
            out["lpips"] = iqa.lpips(x, truth, weights)
    return out, notes


def _given_kernel(k: np.ndarray, which: str) -> np.ndarray:
    """The kernel a non-blind method is given: the true ``k``, or (``"dirac"``) a Dirac of its size at its centre."""
    if which == "true":
        return k
    d = np.zeros_like(k)
    d[tuple(n // 2 for n in k.shape)] = 1
    return d


def _residual_share(case: Case, data: dict, x: np.ndarray, info: dict) -> tuple[float | None, str]:
    """Share of pixels with ``|r_w| > 3`` (:func:`unblur.diagnostics.residual_map`, window 7, the true noise sigma,
    the degradation's boundary); for ``valid`` data (the restoration is the cropped object) the method's own
    ``info["residual_outlier_share"]``.  ``(None, why)`` where it cannot be had."""
    sigma, k, y = data.get("sigma"), data.get("kernel"), data["blurred"]
    if case.unit.boundary == "valid" or x.shape != y.shape:
        if info.get("residual_outlier_share") is not None:
            return float(info["residual_outlier_share"]), ""
        return None, "valid-model data: give the method diagnostics = true (its own residual map)"
    if not sigma or k is None:
        return None, "needs Gaussian noise of known sigma and the true kernel"
    from ..diagnostics import residual_map, summarize
    r = residual_map(np.asarray(y, np.float32), np.asarray(x, np.float32), np.asarray(k, np.float32), float(sigma),
                     boundary=case.unit.boundary)
    return summarize(residual=r)["residual_outlier_share"], ""


def _threads_for(workers: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


_WARM: set = set()


def _warm_up(m) -> None:
    """Import the method's module and run a non-blind method once on 16x16 pixels, so that a case's time
    excludes one-off import and allocation costs of the worker process."""
    if m.name in _WARM:
        return
    _WARM.add(m.name)
    try:
        m.func  # noqa: B018 - imports the module
        if m.kind == "nonblind" and not m.capabilities.prior:
            import unblur
            y = np.random.default_rng(0).random((16, 16)).astype(np.float32)
            kw = {"progress": False} if "progress" in {p.name for p in m.params} else {}
            unblur.deconvolve(y, np.full((3, 3), 1 / 9, np.float32), method=m.name, **kw)
    except Exception:  # the case itself reports any error
        pass


def run_case(case: Case, out_dir: str | None, threads: int | None = None, save: bool = False, _dep=None) -> dict:
    """Degrade the case's unit, restore it with the case's method through the registry, measure; a record."""
    import torch

    import unblur
    from ..registry import get_method
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir) if out_dir else None
    u = case.unit
    rec = {"case": case.cid, "unit": u.uid, "image": u.item["name"], "kernel": u.kernel_name, "noise": u.noise,
           "level": u.level, "method": case.method.method, "label": case.method.label, "seed": case.seed,
           "kind": case.kind, "ok": False, "metrics": {}, "notes": [],
           "group": u.item["name"] if "shape" in u.item else None}  # synthetic data: one table per shape
    rec["index"] = case.index
    if u.kernel is not None:
        rec["kernel_shape"] = list(u.kernel.shape)
    if case.group_by == "kernel":
        rec["group"] = f"{u.kernel_name} ({'x'.join(map(str, u.kernel.shape))})" if u.kernel is not None else u.kernel_name
    elif case.group_by == "image":
        rec["group"] = u.item["name"]
    t_start = time.time()
    try:
        data = degrade(u)
        m = get_method(case.method.method)
        k = data["kernel"]
        values = {"sigma": data["sigma"] if data["sigma"] is not None else None,
                  "kernel_size": int(max(k.shape)) if k is not None else None, "seed": case.seed, "kernel": k}
        params = substitute(case.method.params, values)
        names = {p.name for p in m.params}
        if "progress" in names:
            params.setdefault("progress", False)
        if "seed" in names and m.capabilities.stochastic:
            params.setdefault("seed", case.seed)
        y = data["blurred"]
        _warm_up(m)
        with PeakRSS() as mem:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            if case.kind == "blind":
                res = unblur.blind_deconvolve(y, method=m.name, **params)
            else:
                require(k is not None, f"{u.item['name']} has no kernel for the non-blind method {m.name}",
                        "give the dataset its kernels or choose a blind method")
                res = unblur.deconvolve(y, _given_kernel(k, case.method.kernel), method=m.name, **params)
            wall = time.perf_counter() - t0
        restored = np.asarray(res.image, np.float32)
        kernel_hat = res.kernel if case.kind == "blind" else (None if case.method.kernel == "true" else _given_kernel(k, case.method.kernel))
        if kernel_hat is None and case.kind == "blind":
            kernel_hat = res.info.get("kernel")
        if kernel_hat is not None:
            kernel_hat = np.asarray(kernel_hat.detach().cpu().numpy() if hasattr(kernel_hat, "detach") else kernel_hat, np.float32)
            kernel_hat = np.squeeze(kernel_hat)
        if out is not None and (save or case.reference is None):
            (out / "restored").mkdir(exist_ok=True)
            np.save(out / "restored" / f"{safe_name(case.cid)}.npy", restored)
        if out is not None and kernel_hat is not None:
            (out / "kernels").mkdir(exist_ok=True)
            np.save(out / "kernels" / f"{safe_name(case.cid)}.npy", kernel_hat)
        metrics, notes = compute_metrics(case, data, restored, kernel_hat, out, res.info)
        metrics["time_s"] = wall
        metrics["peak_mem_mb"] = mem.peak / 2**20
        rec["mem_method"] = mem.method
        if torch.cuda.is_available():
            metrics["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        info = res.info
        iters = info.get("iterations", info.get("num_iter", info.get("params", {}).get("num_iter")))
        if "throughput" in case.metrics and iters:
            metrics["iterations"] = int(iters)
            metrics["it_per_s"] = float(iters) / wall
            metrics["mvox_it_per_s"] = float(iters) * y.size / wall / 1e6
        if "nfe" in info:
            metrics["nfe"] = info["nfe"]
        metrics.update(safeguard_metrics(info))
        rec.update(ok=True, metrics=metrics, notes=notes, sigma=data["sigma"], shape=list(y.shape),
                   params={k2: v for k2, v in info.get("params", params).items() if isinstance(v, (int, float, str, bool, type(None)))})
    except Exception as e:  # a failing method is a result, not the end of the run
        rec.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6))
    rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    rec["elapsed_s"] = time.time() - t_start
    rec["machine"] = machine_info()
    return rec


def safeguard_metrics(info: dict) -> dict:
    """``{"kept_start": 0 or 1}`` when the method ran a safeguard (Fast EM, Diffusion EM: ``info["safeguard"]``)
    that could return its start instead of its own result, ``{"unstable": 0 or 1}`` when it checked its
    kernel's stability (``l0``'s ``verify``: ``info["checks"]["kernel_stable"]``, with the disagreement);
    tables show the share of cases where it did / where the kernel was unstable."""
    out = {}
    sg = info.get("safeguard")
    if isinstance(sg, dict) and sg.get("enabled"):
        out["kept_start"] = float(bool(sg.get("kept_start")))
    checks = info.get("checks") or {}
    if checks.get("kernel_stable") is not None:
        out["unstable"] = float(not checks["kernel_stable"])
        out["kernel_disagreement"] = float(checks["kernel_disagreement"])
    return out


def pending(cases: list[Case], results: Path) -> list[Case]:
    """Cases whose id has no record in ``results`` yet."""
    done = {r.get("case") for r in read_records(results)}
    return [c for c in cases if c.cid not in done]


def run_cases(cases: list[Case], out_dir: Path, workers: int = 1, scheduler: str | None = None, progress: bool = True,
              save_units: set[str] = frozenset(), on_record=None) -> int:
    """Run ``cases`` (those not yet in ``out_dir/results.jsonl``), appending one record per case; returns the count run."""
    from tqdm import tqdm
    out_dir = Path(out_dir)
    results = out_dir / RESULTS
    todo = pending(cases, results)
    if not todo:
        return 0
    require(workers >= 1, f"workers must be >= 1, got {workers}", "give --workers 1 or more")
    scheduler = scheduler or ("sync" if workers == 1 else "processes")
    threads = _threads_for(workers)
    bar = tqdm(total=len(cases), initial=len(cases) - len(todo), desc="cases", unit="case", disable=not progress,
               dynamic_ncols=True)

    def done(rec):
        append_record(results, rec)
        if on_record is not None:
            on_record(rec)
        bar.update(1)
        if not rec["ok"]:
            bar.write(f"failed: {rec['case']}: {rec.get('error')}")

    try:
        if scheduler in ("sync", "threads", "processes"):
            _run_local(todo, out_dir, workers, scheduler, threads, save_units, done)
        else:
            _run_distributed(todo, out_dir, scheduler, threads, save_units, done)
    finally:
        bar.close()
    return len(todo)


def _graph(todo, out_dir, threads, save_units):
    """Dask tasks: a case whose error-ratio reference also runs now waits for it."""
    import dask
    tasks, keys = {}, {}
    for c in sorted(todo, key=lambda c: c.reference is not None):
        dep = None
        if c.reference is not None:
            dep = tasks.get(f"{c.unit.uid}|{c.reference}")
        key = f"unblur-case-{safe_name(c.cid)}"
        tasks[c.cid] = dask.delayed(run_case, pure=False)(c, str(out_dir), threads, c.unit.uid in save_units, dep,
                                                          dask_key_name=key)
        keys[key] = c
    return tasks, keys


def _run_local(todo, out_dir, workers, scheduler, threads, save_units, done):
    import dask
    from dask.callbacks import Callback
    tasks, keys = _graph(todo, out_dir, threads, save_units)

    class Record(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in keys:
                done(result)

    kw = {"num_workers": workers} if scheduler != "sync" else {}
    if scheduler == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context("spawn")  # torch is not fork-safe once its thread pool started
        pool = ProcessPoolExecutor(workers, mp_context=ctx)
        try:
            with Record():  # chunksize 1: a worker holds one case, so an interruption loses at most one per worker
                dask.compute(*tasks.values(), scheduler="processes", pool=pool, chunksize=1)
        except BaseException:  # Ctrl-C / SIGTERM: stop the workers now instead of waiting for their cases
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return
    before = None
    if scheduler == "sync":
        import torch
        before = torch.get_num_threads()
    try:
        with Record():
            dask.compute(*tasks.values(), scheduler=scheduler, **kw)
    finally:
        if before is not None:
            import torch
            torch.set_num_threads(before)


def _run_distributed(todo, out_dir, address, threads, save_units, done):
    from distributed import as_completed

    from ..tiling.engine import connect
    client = connect(address, 5.0)
    try:
        futures = {}
        by_cid = {}
        for c in sorted(todo, key=lambda c: c.reference is not None):
            dep = by_cid.get(f"{c.unit.uid}|{c.reference}") if c.reference is not None else None
            f = client.submit(run_case, c, str(out_dir), threads, c.unit.uid in save_units, dep, pure=False,
                              key=f"unblur-case-{safe_name(c.cid)}")
            futures[f] = c
            by_cid[c.cid] = f
        for fut in as_completed(list(futures)):
            done(fut.result())
    finally:
        client.close()
