"""Tiled, out-of-core deconvolution scheduled with Dask.

:func:`deconvolve_tiled` cuts the volume into tiles (:mod:`unblur.tiling.plan`), restores each tile
with a registered tileable method and the ``valid`` boundary model (one Dask task per tile and
channel), and adds the tiles' blended results (:mod:`unblur.tiling.blend`) into the output.

Where tiles run
    ``scheduler=None`` or ``"threads"``: a thread pool in this process (``workers`` threads, each
    tile using ``torch.get_num_threads() // workers`` torch threads); ``"processes"``: a local process pool; ``"sync"``: one
    after the other; ``"tcp://HOST:PORT"``: an existing ``dask.distributed`` scheduler (connection
    refused after ``connect_timeout`` seconds); ``client=``: an existing ``distributed.Client``.
    A worker that dies is replaced by Dask and its tile recomputed; on the local process pool the
    unfinished tiles run on a new pool (:data:`PROCESS_RETRIES` times).
What is kept
    With ``output=``, each finished tile is saved (atomically) as ``<output>.partial/c<C>_t<N>.npy``
    together with ``plan.json`` (input, PSF, method, parameters, tile geometry).  ``resume=True``
    computes only the missing tiles; the output is then assembled block by block into a temporary
    file renamed onto ``output`` when complete, and ``.partial`` is removed.  On a cluster, ``.partial`` and the input must be on a filesystem every worker sees.
Memory
    A worker holds one tile at a time (:data:`unblur.tiling.plan.BYTES_PER_VOXEL` per voxel of its
    FFT grid); the assembler holds one output block (a tile's core) plus memory maps of the saved
    tiles touching it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..api import Restoration
from ..errors import InputError, require
from .blend import tile_weights
from .output import check_target, open_output
from .plan import Tile, TilePlan, bytes_per_voxel, cpu_count, make_plan
from .sources import ArraySource, as_source, describe

LOCAL = (None, "threads", "processes", "sync")
#: bytes per voxel of a tile's FFT grid (read box + PSF - 1) that Richardson-Lucy's modelled peak
#: (:meth:`unblur.solvers.richardson_lucy.GridStep.memory_multiple`) leaves out: slab temporaries, the
#: read block and the allocator; the peak of ``rl`` measured by ``benchmarks/tiling.py memory-model``
#: (BENCHMARKS.md, "Memory model") less the modelled peak of the same runs, rounded up
RL_UNMODELLED = 10.0
#: new process pools started after local worker processes die (``scheduler="processes"``)
PROCESS_RETRIES = 2


@dataclass
class TileJob:
    """Everything one task needs (pickled to the worker): where to read, what to run, where to write."""

    source: Any
    psf: np.ndarray
    method: str | Callable
    params: dict
    tile: Tile
    channel: int | None
    device: str | None = None
    folder: str | None = None
    torch_threads: int | None = None
    time: int | None = None
    block: np.ndarray | None = field(default=None, repr=False)
    memory: float | None = None

    @property
    def name(self) -> str:
        return tile_file(self.channel, self.tile.index, self.time)

    def index(self, which: str) -> tuple:
        """Slices of the ``which`` box (``read``, ``keep``) with the time point and channel."""
        return ((self.time,) if self.time is not None else ()) + self.tile.slices(which) + \
            ((self.channel,) if self.channel is not None else ())


def tile_file(channel, index, time=None) -> str:
    return (f"t{time}_" if time is not None else "") + f"c{channel or 0}_t{index:06d}.npy"


def rl_memory_target(block_shape, psf_shape, memory: float) -> float:
    """The memory target of Richardson-Lucy on one tile, in multiples of the tile's float32 data
    (:data:`unblur.solvers.richardson_lucy.memory_target`): the tile's ``memory`` (bytes) less
    :data:`RL_UNMODELLED` per voxel of its FFT grid ``g = block + psf - 1``, ``(memory - 10 g) / (4 block)``.

    RL then takes its fastest mode (stored OTF, float32 acceleration state) whenever the tile's share of
    the memory limit holds it, instead of the whole-volume target, which is relative to the data and
    so, for a tile whose halo and ``valid`` padding make the grid large against its data, falls back
    to generating the OTF at every convolution (slower; BENCHMARKS.md, "Throughput: 1 and 2 workers,
    cost of tiling").
    """
    grid = math.prod(n + k - 1 for n, k in zip(block_shape, psf_shape))
    return (memory - RL_UNMODELLED * grid) / (4.0 * math.prod(block_shape))


def restore_block(method, block: np.ndarray, psf: np.ndarray, params: dict, device=None,
                  memory: float | None = None) -> np.ndarray:
    """Restore one block with the ``valid`` boundary: a registered method (by name) or a function
    ``f(block, psf, boundary="valid", **params) -> array``.  ``memory``: bytes the block may use
    (Richardson-Lucy picks its mode from it, :func:`rl_memory_target`); None: the methods' own targets."""
    kw = dict(params, boundary="valid")
    if device is not None:
        kw["device"] = device
    token = None
    if memory is not None:
        from ..solvers.richardson_lucy import memory_target
        token = memory_target.set(rl_memory_target(block.shape[:np.ndim(psf)], np.shape(psf), memory))
    try:
        if isinstance(method, str):
            from ..registry import get_method
            out, _ = get_method(method).run(block, psf, **kw)
        else:
            out = method(block, psf, **kw)
    finally:
        if token is not None:
            memory_target.reset(token)
    return np.asarray(out, dtype=np.float32)


_MALLOC_SET = False


def _malloc_for_tiles() -> None:
    """Undo ``MALLOC_TRIM_THRESHOLD_`` (set by ``dask.distributed``'s nanny in every worker process).

    Setting it fixes glibc's mmap threshold at 128 kB, so every large array a tile allocates is a
    fresh ``mmap`` whose pages fault in again: two RL tiles of 48x281x512 (20 iterations) took 4.0
    million page faults and 1.3-1.5x the CPU time in a worker process with it, 35 thousand without
    (``benchmarks/tiling.py throughput --nanny-malloc``).  Here the threshold glibc would have
    adapted to (32 MiB) and a trim threshold of twice that are restored, once per process.  Nothing
    changes where the variable is not set or the C library is not glibc.
    """
    global _MALLOC_SET
    if _MALLOC_SET or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _MALLOC_SET = True
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD (glibc's largest dynamic value)
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def run_tile(job: TileJob, sink: Callable | None = None):
    """Read, restore, crop and weight one tile; save it in ``job.folder`` (returns its file name),
    hand the weighted kept block to ``sink(job, block)`` (in-process schedulers; returns None), or
    return it."""
    _malloc_for_tiles()
    if job.torch_threads:
        import torch
        torch.set_num_threads(job.torch_threads)
    if job.block is not None:
        block = job.block
    else:
        block = job.source.read(job.index("read"))
    restored = restore_block(job.method, block, job.psf, job.params, job.device, job.memory)
    kept = restored[job.tile.keep_in_read()]
    kept = np.ascontiguousarray(kept * tile_weights(kept.shape, job.tile.ramps), dtype=np.float32)
    if job.folder is None:
        if sink is not None:
            sink(job, kept)
            return None
        return kept
    tmp = Path(job.folder) / f".{job.name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, kept)
    os.replace(tmp, Path(job.folder) / job.name)
    return job.name


# -- where tasks run --------------------------------------------------------------------------------

class Engine:
    """Runs :class:`TileJob` s with Dask: a local scheduler, or a ``distributed`` client."""

    def __init__(self, scheduler=None, client=None, workers=None, connect_timeout: float = 5.0):
        self.client, self.own_client, self.kind = client, False, "distributed"
        if client is None and scheduler not in LOCAL:
            address = str(scheduler)
            require("://" in address or ":" in address, f"unknown scheduler {scheduler!r}",
                    "use 'threads', 'processes', 'sync' or a scheduler address tcp://HOST:PORT")
            self.client = connect(address, connect_timeout)
            self.own_client = True
        if self.client is None:
            self.kind = scheduler or "threads"
            self.workers = 1 if self.kind == "sync" else int(workers or cpu_count())
            require(self.workers >= 1, f"workers must be >= 1, got {workers}", "give --workers 1 or more")
        else:
            threads = self.client.nthreads()
            require(len(threads) > 0, "the Dask cluster has no workers", "start workers: dask worker tcp://HOST:PORT")
            self.workers = int(sum(threads.values()))

    @property
    def concurrent(self) -> int:
        return self.workers

    @property
    def shares_memory(self) -> bool:
        return self.kind in ("threads", "sync")

    def close(self):
        if self.own_client:
            self.client.close()

    def run(self, jobs: list[TileJob], on_done: Callable, bar) -> None:
        """Run ``jobs``; ``on_done(job, result)`` receives each result (called from the worker threads
        on the in-process schedulers, so it must be thread-safe)."""
        if not jobs:
            return
        if self.client is not None:
            return self._run_distributed(jobs, on_done, bar)
        import dask
        from dask.callbacks import Callback
        run = uuid.uuid4().hex[:8]
        names = {f"unblur-tile-{run}-{i:07d}": j for i, j in enumerate(jobs)}  # key order = job order

        from concurrent.futures.process import BrokenProcessPool
        sink = on_done if self.shares_memory else None  # threads: each task adds its own block
        finished = set()

        class Count(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if key in names and key not in finished:
                    finished.add(key)
                    if sink is None:
                        on_done(names[key], result)
                    bar.update(1)

        for attempt in range(1, PROCESS_RETRIES + 2):
            threads = torch_threads(self.workers) if self.kind == "threads" else contextlib.nullcontext()
            tasks = [dask.delayed(run_tile, pure=False)(j, sink, dask_key_name=k) for k, j in names.items()
                     if k not in finished]
            try:
                with threads, Count():
                    dask.compute(*tasks, scheduler=self.kind, num_workers=self.workers)
                return
            except BrokenProcessPool:  # a worker process died: a new pool runs the unfinished tiles
                if attempt > PROCESS_RETRIES:
                    raise InputError(f"tile worker processes died {attempt} times", "check the memory limit "
                                     "(a worker killed for memory) or run with --scheduler threads") from None

    def _run_distributed(self, jobs, on_done, bar):
        from distributed import as_completed
        futures = {self.client.submit(run_tile, j, pure=False,
                                      key=f"unblur-tile-{j.channel or 0}-{j.tile.index}-{uuid.uuid4().hex[:8]}"): j
                   for j in jobs}
        try:
            for fut in as_completed(futures):
                on_done(futures[fut], fut.result())
                fut.release()
                bar.update(1)
        except BaseException:
            self.client.cancel(list(futures))
            raise


def connect(address: str, timeout: float):
    """A ``distributed.Client`` on ``address``, or a one-line :class:`InputError` after ``timeout`` seconds."""
    from distributed import Client
    try:
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise InputError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({type(e).__name__})",
                         "start it (dask scheduler; dask worker ADDRESS) or check --scheduler") from None


@contextlib.contextmanager
def torch_threads(workers: int):
    """Share torch's threads among ``workers`` concurrent tiles (each gets ``threads // workers``), then restore."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, before // workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- input layout -----------------------------------------------------------------------------------

def split_psfs(psf, shape) -> tuple[list[np.ndarray] | np.ndarray, int, int | None]:
    """``(psfs, spatial_ndim, channels)``: one PSF per channel (a list) or one shared PSF."""
    from ..psf.core import prepare_psf
    if isinstance(psf, (str, Path)):
        from ..io import read_image
        psf = read_image(psf, scale=False, drop_alpha=False)
    if isinstance(psf, (list, tuple)):
        spatial = np.asarray(psf[0]).ndim
        require(len(shape) == spatial + 1 and shape[-1] == len(psf),
                f"{len(psf)} PSFs for an image of shape {tuple(shape)}", "give one PSF per channel (last axis)")
        return [prepare_psf(p, spatial_ndim=spatial, image_shape=shape[:spatial], name=f"PSF of channel {c}")
                for c, p in enumerate(psf)], spatial, shape[-1]
    p = np.asarray(psf)
    if p.ndim == len(shape) == 4:  # (z, y, x, C): one PSF per channel of a (Z, Y, X, C) stack
        require(p.shape[-1] in (1, shape[-1]), f"the PSF has {p.shape[-1]} channels and the image {shape[-1]}",
                "give one PSF per channel or a single PSF")
        return split_psfs([p[..., c] for c in range(p.shape[-1])] * (shape[-1] if p.shape[-1] == 1 else 1), shape)
    require(p.ndim in (2, 3), f"the PSF has {p.ndim} axes", "give a 2-D or 3-D PSF")
    require(len(shape) in (p.ndim, p.ndim + 1), f"a {p.ndim}-D PSF cannot blur an image of shape {tuple(shape)}",
            "give a PSF with as many spatial axes as the image")
    spatial = p.ndim
    return prepare_psf(p, spatial_ndim=spatial, image_shape=shape[:spatial]), spatial, (shape[-1] if len(shape) > spatial else None)


def _digest(psfs) -> str:
    h = hashlib.sha1()
    for p in psfs if isinstance(psfs, list) else [psfs]:
        h.update(np.ascontiguousarray(p, np.float32).tobytes())
    return h.hexdigest()


# -- assembly ---------------------------------------------------------------------------------------

class Tiles:
    """The saved tiles of a run: sums the weighted kept blocks that fall in any output region.

    Each tile file is memory-mapped only while a region that it touches is summed, so nothing stays
    resident between regions."""

    def __init__(self, plan: TilePlan, folder: Path, channels: int | None, time: int | None = None):
        self.tiles, self.folder, self.channels, self.time = plan.tiles(), Path(folder), channels, time
        self.counts = plan.counts
        self.keeps = [[part[1] for part in plan.axis_parts(ax)] for ax in range(len(plan.shape))]

    def touching(self, box) -> list[Tile]:
        """The tiles whose kept box meets ``box``."""
        js = [[j for j, (k0, k1) in enumerate(keeps) if k0 < b and k1 > a] for keeps, (a, b) in zip(self.keeps, box)]
        return [self.tiles[int(np.ravel_multi_index(g, self.counts))] for g in product(*js)]

    def region(self, box) -> np.ndarray:
        """The output over ``box`` (``(start, stop)`` per spatial axis), all channels."""
        shape = tuple(b - a for a, b in box)
        out = np.zeros(shape + ((self.channels,) if self.channels else ()), np.float32)
        for t in self.touching(box):
            inter = [(max(a, k0), min(b, k1)) for (a, b), (k0, k1) in zip(box, t.keep)]
            dst = tuple(slice(lo - a, hi - a) for (lo, hi), (a, _) in zip(inter, box))
            src = tuple(slice(lo - k0, hi - k0) for (lo, hi), (k0, _) in zip(inter, t.keep))
            for c in range(self.channels or 1):
                name = tile_file(c if self.channels else None, t.index, self.time)
                block = np.load(self.folder / name, mmap_mode="r")[src]
                out[dst + ((c,) if self.channels else ())] += block
        return out


def assemble(tiles: Tiles, plan: TilePlan, writer=None):
    """Write the blended output (of ``tiles.time``) block by block, one tile core at a time, through
    ``writer``; or return it as an array when ``writer`` is None."""
    if writer is None:
        return tiles.region(tuple((0, n) for n in plan.shape))
    lead = (tiles.time,) if tiles.time is not None else ()
    for t in tiles.tiles:
        writer.write(lead + t.slices("core"), tiles.region(t.core))
    return None


# -- the entry point --------------------------------------------------------------------------------

def deconvolve_tiled(image, psf, method: str | Callable = "rl", *, output=None, tile=None, halo=None, overlap=None,
                     memory_limit=None, scheduler=None, client=None, workers: int | None = None, resume: bool = False,
                     overwrite: bool = False, progress: bool = False, device: str | None = None,
                     time_axis: bool | None = None, connect_timeout: float = 5.0, stage: Callable | None = None,
                     **params) -> Restoration:
    """Deconvolve a large image or stack tile by tile with a tileable method, scheduled with Dask.

    Each tile is read with a halo (default: the PSF's size on each axis) and restored with the
    ``valid`` boundary model, and neighbouring tiles are blended with raised-cosine weights that sum
    to 1 (:mod:`unblur.tiling.blend`).  Inputs are read block by block; with ``output=`` the result
    is streamed to disk and the finished tiles survive an interruption (``resume=True``).

    Parameters
    ----------
    image : array, str, Path or lazy image
        ``(Y, X)``, ``(Y, X, C)``, ``(Z, Y, X)`` or ``(Z, Y, X, C)`` (numpy layout); a TIFF, ``.zarr``
        or ``.npy`` path (read lazily; integer data scaled to [0, 1]); or an object with ``shape``,
        ``dtype`` and ``read(slices)``.
    psf : array, list of arrays or path
        One PSF for every channel, ``(z, y, x, C)`` or a list with one PSF per channel (normalised
        to sum 1).
    method : str or callable
        A registered method that declares itself tileable (``unblur methods``: ``tileable``), or a
        function ``f(block, psf, boundary="valid", **params) -> array``.
    output : str, Path or None
        ``.tif``, ``.zarr`` or ``.npy`` file written atomically (None: return the array).
    tile : tuple of int or None
        Core size ``(z, y, x)`` of each tile (at least the PSF's size); None: chosen from ``memory_limit``.
    halo : int, tuple of int or None
        Voxels read around each tile's kept box; default the PSF's size per axis.
    overlap : int, tuple of int or None
        Width of the blend between neighbouring tiles; default half the PSF's size (at least 2).
    memory_limit : str, int or None
        Memory for all tiles running at once, e.g. ``"4GB"``; default half of the available memory.
    scheduler : str or None
        ``"threads"`` (default), ``"processes"``, ``"sync"`` or a ``dask.distributed`` scheduler
        address ``"tcp://HOST:PORT"``.
    client : distributed.Client or None
        An existing Dask client (takes precedence over ``scheduler``).
    workers : int or None
        Tiles run at once on the local schedulers (default: the number of CPUs); a cluster's size is
        its workers' threads.
    resume : bool
        Continue an interrupted run from ``<output>.partial`` (same input, PSF, method and tiles).
    overwrite : bool
        Replace an existing ``output``.
    progress : bool
        Show a progress bar counting tiles.
    device : str or None
        Torch device for every tile (``"cuda"``: one tile per GPU worker); checked before any work.
    time_axis : bool or None
        The first axis holds time points (``(T, Z, Y, X[, C])``), each restored on its own; None:
        when the file's metadata says so (axes starting with ``T``).
    connect_timeout : float
        Seconds to wait for a scheduler address.
    stage : callable or None
        Commit the output as part of a larger unit: the output is written by ``stage(output, write)``,
        which calls ``write(tmp)`` to stream the result into a temporary path of its choice and
        renames it later (``unblur.cli.common.Outputs.write``, then ``commit`` with the JSON log).
        ``<output>.partial`` is then kept (``info["partial"]``) for the caller to remove once the
        unit is committed, so an interruption before that can still ``resume``.
    **params
        The method's parameters, e.g. ``num_iter=30`` (``boundary`` is always ``"valid"``).

    Returns
    -------
    Restoration
        ``.image``: the restored array, or the output path; ``.info``: ``tiles``, ``computed``
        (tiles run now), ``reused`` (tiles from ``.partial``), ``tile``, ``halo``, ``overlap``,
        ``counts``, ``workers``, ``time_s``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.ndimage import gaussian_filter
    >>> x = np.zeros((16, 96, 96), np.float32); x[4:12, 20:70, 30:40] = 1
    >>> psf = np.zeros((5, 9, 9), np.float32); psf[2, 4, 4] = 1; psf = gaussian_filter(psf, 1.2)
    >>> y = gaussian_filter(x, 1.2)
    >>> r = deconvolve_tiled(y, psf, "rl", tile=(16, 48, 48), num_iter=10, workers=1)
    >>> r.image.shape, r.info["tiles"]
    ((16, 96, 96), 4)
    """
    t0 = time.perf_counter()
    name = _check_method(method, params, device)
    src = as_source(image)
    if time_axis is None:
        time_axis = str(getattr(getattr(src, "metadata", None), "axes", None) or "").startswith("T")
    lead = 1 if time_axis else 0
    times = src.shape[0] if time_axis else None
    psfs, spatial, channels = split_psfs(psf, tuple(src.shape[lead:]))
    psf_list = psfs if isinstance(psfs, list) else [psfs]
    psf_shape = tuple(max(p.shape[i] for p in psf_list) for i in range(spatial))
    shape = tuple(src.shape[lead:lead + spatial])
    levels = _whole_image_saturation(src, params, lead, spatial)

    target = check_target(output, overwrite) if output is not None else None
    partial = Path(str(target) + ".partial") if target is not None else None
    if partial is not None and partial.exists() and not resume:
        raise InputError(f"an unfinished run left {partial}", "pass resume=True (--resume) to continue it, or delete the folder")

    engine = Engine(scheduler, client, workers, connect_timeout)
    try:
        per_channel = (channels or 1) * (times or 1)
        plan = make_plan(shape, psf_shape, tile, halo, overlap, memory_limit, bytes_per_voxel(name),
                         concurrent=engine.concurrent, min_tiles=-(-engine.concurrent // per_channel) if tile is None else 1,
                         tasks_per_tile=per_channel)
        manifest = {"input": describe(src), "shape": list(src.shape), "method": name, "params": repr(sorted(params.items())),
                    "psf": _digest(psfs), "counts": plan.counts, "halo": plan.halo, "overlap": plan.overlap}
        # with an output the tiles are saved (resume); without one they are added into the array
        folder = _open_partial(partial, manifest) if partial is not None else None
        tiles = plan.tiles()
        jobs, reused = [], 0
        for k in range(per_channel):
            tp, c = divmod(k, channels or 1)
            tp, ch = (tp if times else None), (c if channels else None)
            for t in tiles:
                if folder is not None and (folder / tile_file(ch, t.index, tp)).exists():
                    reused += 1
                    continue
                job_params = params if levels is None else dict(params, saturation=_level(levels, tp, ch))
                job = TileJob(src, psf_list[c] if isinstance(psfs, list) else psfs, method, job_params, t, ch, device,
                              str(folder) if folder is not None else None, time=tp, memory=plan.tile_memory,
                              torch_threads=None if engine.shares_memory or engine.client is not None else max(1, cpu_count() // engine.workers))
                if isinstance(src, ArraySource) and not engine.shares_memory:
                    job.block, job.source = src.read(job.index("read")), None
                jobs.append(job)

        out = np.zeros(tuple(src.shape), np.float32) if folder is None else None
        lock, order, pending, added = threading.Lock(), {id(j): i for i, j in enumerate(jobs)}, {}, [0]

        def on_done(job, result):
            """Add the tiles in job order whatever order they finish in (sums of 3 or more overlapping
            tiles are then the same in every run); a tile finished early waits in ``pending``."""
            if out is None:
                return
            with lock:
                pending[order[id(job)]] = (job, result)
                while added[0] in pending:
                    j, block = pending.pop(added[0])
                    out[j.index("keep")] += block
                    added[0] += 1

        from tqdm.auto import tqdm
        with tqdm(total=len(tiles) * per_channel, initial=reused, unit="tile", disable=not progress,
                  desc=f"{name} tiles") as bar:
            engine.run(jobs, on_done, bar)

        result = _finish(out, folder, plan, channels, times, target, overwrite, getattr(src, "metadata", None), stage)
        if partial is not None and stage is None:
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        engine.close()
    info = {"method": name, "params": dict(params), "tiles": len(tiles) * per_channel, "computed": len(jobs),
            "reused": reused, "counts": plan.counts, "tile": plan.max_core(), "halo": plan.halo,
            "overlap": plan.overlap, "workers": engine.workers, "scheduler": engine.kind,
            "time_s": time.perf_counter() - t0}
    if levels is not None:
        info["saturation_levels"] = [None if np.isnan(v) else float(v) for v in np.ravel(levels)]
    if partial is not None and stage is not None:
        info["partial"] = str(partial)
    if isinstance(image, np.ndarray) and image.dtype == np.float64 and isinstance(result, np.ndarray):
        result = result.astype(np.float64)
    return Restoration(result, info)


def _whole_image_saturation(src, params: dict, lead: int, spatial: int):
    """``saturation="auto"`` decided on the whole image (one read pass), per time point and channel: an array
    of ceilings (NaN: not clipped), or None when ``saturation`` is not ``"auto"``. A tile alone would take its
    own maximum for a ceiling wherever it is a plateau (:mod:`unblur.physics.saturation`)."""
    from ..physics.saturation import auto_levels, saturation_level
    if "saturation" not in params or saturation_level(params["saturation"]) != "auto":
        return None
    return auto_levels(src.read, tuple(src.shape), tuple(range(lead, lead + spatial)))


def _level(levels: np.ndarray, time_point, channel) -> float | None:
    """The ceiling of one time point and channel from :func:`_whole_image_saturation` (None: not clipped)."""
    v = levels[tuple(i for i in (time_point, channel) if i is not None)]
    return None if np.isnan(v) else float(v)


def _check_method(method, params, device) -> str:
    require("boundary" not in params or params["boundary"] == "valid",
            f"tiles are always restored with boundary='valid', not {params.get('boundary')!r}",
            "drop the boundary parameter (or deconvolve the whole volume)")
    params.pop("boundary", None)
    if device is not None:
        from ..arrays import resolve_device
        resolve_device(device)  # a clear error before any work when the device is missing
    if not isinstance(method, str):
        require(callable(method), f"method must be a name or a function, got {type(method).__name__}")
        return getattr(method, "__qualname__", "function")
    from ..registry import get_method, list_methods
    m = get_method(method)
    tileable = ", ".join(x.name for x in list_methods("nonblind") if x.capabilities.tileable)
    require(m.kind == "nonblind" and m.capabilities.tileable, f"method {method!r} cannot run tile by tile",
            f"use a tileable method ({tileable}) or deconvolve the whole image")
    require(device is None or m.capabilities.device, f"method {method!r} does not take a device",
            "drop --device for it")
    m.resolve(params)  # unknown parameters fail now, not in a worker
    return method


def _open_partial(partial: Path, manifest: dict) -> Path:
    book = partial / "plan.json"
    manifest = json.loads(json.dumps(manifest))
    if book.exists():
        before = json.loads(book.read_text())
        differs = sorted(k for k in manifest if before.get(k) != manifest[k])
        require(not differs, f"{partial} belongs to another run (different {', '.join(differs)})",
                "resume with the same input, PSF, method, parameters and tiles, or delete the folder")
    else:
        partial.mkdir(exist_ok=True)
        book.write_text(json.dumps(manifest, indent=1))
    return partial


def _finish(out, folder, plan, channels, times, target, overwrite, metadata=None, stage=None):
    """The restored array (no ``target``), or the output file written from the saved tiles (through
    ``stage`` when given)."""
    if folder is None:
        return out
    lead = (times,) if times else ()
    shape = lead + plan.shape + ((channels,) if channels else ())
    chunks = (1,) * len(lead) + plan.max_core() + ((channels,) if channels else ())

    def write(path, replace):
        writer = open_output(path, shape, chunks=chunks, metadata=metadata, overwrite=replace)
        try:
            for t in range(times or 1):
                assemble(Tiles(plan, folder, channels, t if times else None), plan, writer)
            return writer.finalize()
        except OSError as e:
            writer.abort()
            raise InputError(f"writing {target} failed: {e.strerror or e}; no output was written",
                             f"free space or choose another place; the finished tiles are kept in {folder}, "
                             "rerun with resume=True (--resume)") from e
        except BaseException:
            writer.abort()
            raise

    if stage is not None:
        return stage(target, lambda tmp: write(Path(tmp), True))
    return write(target, overwrite)


__all__ = ["Engine", "TileJob", "connect", "deconvolve_tiled", "restore_block", "run_tile"]
