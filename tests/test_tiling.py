"""Tiled deconvolution: geometry, blending, agreement with whole-volume RL, outputs, resume, Dask, faults."""

import doctest
import errno
import os
import sys
import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import unblur
from unblur.errors import InputError
from unblur.tiling import deconvolve_tiled, make_plan, parse_size
from unblur.tiling import blend, engine, plan as plan_mod
from unblur.tiling.blend import tile_weights

SIGMA = (1.2, 1.6, 1.6)


def _psf():
    p = np.zeros((7, 11, 11), np.float32)
    p[3, 5, 5] = 1
    return gaussian_filter(p, SIGMA)


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(3)
    x = gaussian_filter((rng.random((16, 80, 80)) > 0.99).astype(np.float32), 0.8) * 20 + 0.05
    y = gaussian_filter(x, SIGMA).astype(np.float32)
    return y, _psf()


@pytest.fixture(scope="module")
def whole(stack):
    y, psf = stack
    return unblur.deconvolve(y, psf, "rl", num_iter=15).image


def test_docstring_examples():
    for mod in (plan_mod, blend, engine):
        assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0


def test_parse_size():
    assert parse_size("512MB") == 512 * 10**6
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size(1000) == 1000
    for bad in ("four GB", "-1GB", "12XB", 0):
        with pytest.raises(InputError):
            parse_size(bad)


@pytest.mark.parametrize("shape,counts", [((30, 50, 41), (2, 3, 2)), ((64, 37), (3, 2))])
def test_blend_weights_sum_to_one(shape, counts):
    psf = (5,) * len(shape)
    p = make_plan(shape, psf, tile=tuple(-(-n // c) for n, c in zip(shape, counts)), overlap=4)
    assert p.counts == counts
    total = np.zeros(shape, np.float32)
    cover = np.zeros(shape, np.int32)
    for t in p.tiles():
        keep = t.slices("keep")
        total[keep] += tile_weights(tuple(b - a for a, b in t.keep), t.ramps)
        cover[keep] += 1
        assert all(r0 <= k0 and k1 <= r1 for (k0, k1), (r0, r1) in zip(t.keep, t.read))
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert cover.max() == 2 ** len(shape)  # blended corners: every neighbour contributes
    # raised-cosine ramps: smooth, strictly inside (0, 1) over the overlap
    w = blend.axis_weights(10, (4, 4))
    assert np.all((w[:4] > 0) & (w[:4] < 1)) and np.all(np.diff(w[:4]) > 0) and w[4] == 1


def test_plan_from_memory_limit():
    bpv = plan_mod.bytes_per_voxel("rl")
    p = make_plan((64, 512, 512), (9, 15, 15), memory_limit="200MB", bytes_per_voxel=bpv, concurrent=2)
    assert p.n_tiles > 1
    assert p.grid_voxels() * bpv <= 100e6
    big = make_plan((64, 512, 512), (9, 15, 15), memory_limit="20GB", bytes_per_voxel=bpv)
    assert big.n_tiles == 1
    assert make_plan((64, 512, 512), (9, 15, 15), memory_limit="20GB", bytes_per_voxel=bpv, min_tiles=2).n_tiles >= 2


def test_bad_tiles_and_limits(stack):
    y, psf = stack
    with pytest.raises(InputError, match="smaller than the PSF"):
        deconvolve_tiled(y, psf, "rl", tile=(16, 8, 8), num_iter=2)
    with pytest.raises(InputError, match="memory limit .* below what one tile needs"):
        deconvolve_tiled(y, psf, "rl", memory_limit="1MB", num_iter=2)
    with pytest.raises(InputError, match="below what one tile needs"):
        deconvolve_tiled(y, psf, "rl", tile=(16, 40, 40), memory_limit="2MB", workers=1, num_iter=2)
    with pytest.raises(InputError, match="cannot run tile by tile"):
        deconvolve_tiled(y, psf, "dps")
    with pytest.raises(InputError, match="boundary='valid'"):
        deconvolve_tiled(y, psf, "rl", boundary="circular")
    with pytest.raises(InputError, match="no parameter"):
        deconvolve_tiled(y, psf, "rl", num_iters=3)


def test_tiled_matches_whole_volume(stack, whole):
    y, psf = stack
    r = deconvolve_tiled(y, psf, "rl", tile=(16, 40, 40), num_iter=15, workers=2)
    assert r.info["tiles"] == 4 and r.info["counts"] == (1, 2, 2)
    assert r.image.shape == y.shape and r.image.dtype == np.float32
    err = np.abs(r.image - whole).max() / whole.max()
    assert err < 2e-3, err
    # the tiles did restore (not a copy of the data)
    assert np.abs(r.image - y).max() > 50 * np.abs(r.image - whole).max()


@pytest.mark.parametrize("acceleration", ["none", "biggs-andrews"])
def test_rl_tile_mode_from_its_memory_share(stack, monkeypatch, acceleration):
    """RL on a tile takes the fastest mode its share of the memory limit holds (stored OTF, float32
    state), not the whole-volume target relative to the data; its modelled peak stays within the share."""
    import importlib
    import torch
    from unblur.physics.convolution import Convolution
    R = importlib.import_module("unblur.solvers.richardson_lucy")
    y, psf = stack
    block = np.ascontiguousarray(y[:, :48, :48])
    chosen, init = [], R.GridStep.__init__

    def record(self, op, data, **kw):
        chosen.append((kw["otf"], kw["state"]))
        init(self, op, data, **kw)

    monkeypatch.setattr(R.GridStep, "__init__", record)
    op = Convolution(torch.from_numpy(psf / psf.sum()), block.shape, "valid")
    grid, data = np.prod(op.in_shape), block.size
    acc = None if acceleration == "none" else acceleration
    modes = [("stored", "full"), ("stored", "lean"), ("computed", "full"), ("computed", "lean")]
    need = {m: R.GridStep.memory_multiple(op, acc, *m) * 4 * data + engine.RL_UNMODELLED * grid for m in modes}
    assert need[("stored", "full")] / (4 * data) > R.MEMORY_TARGET  # the whole-volume target would not store the OTF
    kw = dict(num_iter=2, acceleration=acceleration)
    engine.restore_block("rl", block, psf, kw)
    assert chosen.pop()[0] == "computed"
    for memory in sorted(set(need.values())):
        engine.restore_block("rl", block, psf, kw, memory=memory)
        mode = chosen.pop()
        assert need[mode] <= memory and mode == next(m for m in modes if need[m] <= memory)
        assert R.memory_target.get() is None
    out = engine.restore_block("rl", block, psf, kw, memory=1e9)
    assert chosen.pop() == ("stored", "full")
    np.testing.assert_allclose(out, engine.restore_block("rl", block, psf, kw), rtol=1e-4, atol=1e-6 * float(out.max()))


@pytest.mark.parametrize("ext", [".tif", ".zarr", ".npy"])
def test_streamed_outputs_from_file(tmp_path, stack, whole, ext):
    import tifffile
    y, psf = stack
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, y)
    out = tmp_path / f"out{ext}"
    r = deconvolve_tiled(str(src), psf, "rl", tile=(8, 40, 40), num_iter=15, workers=2, output=out)
    assert r.image == out and out.exists() and not (tmp_path / f"out{ext}.partial").exists()
    back = unblur.io.read_image(out)
    assert back.shape == y.shape
    assert np.abs(back - whole).max() / whole.max() < 2e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tif", out.name])
    with pytest.raises(InputError, match="exists"):
        deconvolve_tiled(str(src), psf, "rl", tile=(8, 40, 40), num_iter=1, output=out)


def test_integer_file_scaled(tmp_path, stack):
    import tifffile
    y, psf = stack
    y16 = np.round(y / y.max() * 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in16.tif", y16)
    r = deconvolve_tiled(tmp_path / "in16.tif", psf, "rl", tile=(16, 40, 40), num_iter=3, workers=1)
    ref = deconvolve_tiled(y16.astype(np.float32) / 65535, psf, "rl", tile=(16, 40, 40), num_iter=3, workers=1)
    np.testing.assert_allclose(r.image, ref.image, rtol=1e-5, atol=1e-7)
    assert 0 < r.image.max() < 2


def test_per_channel_psfs(stack):
    y, psf = stack
    psf2 = gaussian_filter(np.pad(psf, ((0, 0), (1, 1), (1, 1)))[:, 1:-1, 1:-1], 0.7)
    img = np.stack([y, 0.5 * y[:, ::-1]], axis=-1)
    r = deconvolve_tiled(img, [psf, psf2], "rl", tile=(16, 40, 40), num_iter=8, workers=2)
    assert r.image.shape == img.shape and r.info["tiles"] == 8
    for c, p in enumerate((psf, psf2)):
        ref = unblur.deconvolve(img[..., c], p, "rl", num_iter=8).image
        assert np.abs(r.image[..., c] - ref).max() / ref.max() < 2e-3
    r4 = deconvolve_tiled(img, np.stack([psf, psf2], -1), "rl", tile=(16, 40, 40), num_iter=8, workers=2)
    np.testing.assert_array_equal(r4.image, r.image)


def test_device_refused_before_any_work(tmp_path, stack):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    y, psf = stack
    with pytest.raises(InputError, match="CUDA"):
        deconvolve_tiled(y, psf, "rl", device="cuda", output=tmp_path / "o.tif", num_iter=2)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_scheduler_fails_fast(stack):
    y, psf = stack
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        deconvolve_tiled(y, psf, "rl", scheduler="tcp://127.0.0.1:9", connect_timeout=2, num_iter=2)
    assert time.perf_counter() - t0 < 15


class _FailAfter:
    """RL that raises after ``n`` calls (an interrupted run)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, block, psf, **kw):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return unblur.deconvolve(block, psf, "rl", **kw).image


def test_interrupted_run_resumes(tmp_path, stack, whole):
    y, psf = stack
    out = tmp_path / "out.tif"
    kw = dict(tile=(8, 40, 40), num_iter=15, workers=1, scheduler="sync", output=out)
    with pytest.raises(KeyboardInterrupt):
        deconvolve_tiled(y, psf, _FailAfter(3), **kw)
    assert not out.exists()
    partial = tmp_path / "out.tif.partial"
    assert len(list(partial.glob("c0_t*.npy"))) == 3
    with pytest.raises(InputError, match="unfinished run"):
        deconvolve_tiled(y, psf, _FailAfter(100), **kw)
    with pytest.raises(InputError, match="another run"):
        deconvolve_tiled(y, psf, _FailAfter(100), resume=True, **dict(kw, num_iter=14))
    r = deconvolve_tiled(y, psf, _FailAfter(100), resume=True, **kw)
    assert (r.info["reused"], r.info["computed"]) == (3, 5)
    assert not partial.exists()
    assert np.abs(unblur.io.read_image(out) - whole).max() / whole.max() < 2e-3


def test_disk_full_removes_partial_output(tmp_path, stack, monkeypatch, whole):
    from unblur.tiling import output
    y, psf = stack
    out = tmp_path / "out.npy"

    def full(self, slices, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output.NpyOutput, "write", full)
    with pytest.raises(InputError, match="No space left on device"):
        deconvolve_tiled(y, psf, "rl", tile=(16, 40, 40), num_iter=15, workers=1, output=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy.partial"]  # tiles kept, no output
    monkeypatch.undo()
    r = deconvolve_tiled(y, psf, "rl", tile=(16, 40, 40), num_iter=15, workers=1, output=out, resume=True)
    assert r.info["computed"] == 0 and r.info["reused"] == 4
    assert np.abs(np.load(out) - whole).max() / whole.max() < 2e-3


def _kill_worker_once(block, psf, flag=None, **kw):
    """RL, except that the first call anywhere kills its worker process (a crashed machine)."""
    if not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return unblur.deconvolve(block, psf, "rl", **kw).image


@pytest.mark.slow
def test_local_cluster_survives_a_dying_worker(tmp_path, stack, whole):
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    y, psf = stack
    flag = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        r = deconvolve_tiled(y, psf, _kill_worker_once, client=client, tile=(16, 40, 40), num_iter=15,
                             flag=str(flag), output=tmp_path / "out.zarr")
        assert flag.exists() and r.info["workers"] == 2 and r.info["computed"] == 4
        assert np.abs(unblur.io.read_image(r.image) - whole).max() / whole.max() < 2e-3
        r2 = deconvolve_tiled(y, psf, "rl", scheduler=cluster.scheduler_address, tile=(16, 40, 40), num_iter=15)
        assert np.abs(r2.image - whole).max() / whole.max() < 2e-3


def test_time_points_and_many_files(tmp_path, stack, whole):
    import tifffile
    from unblur.tiling import deconvolve_files, output_names
    y, psf = stack
    movie = np.stack([y, 2 * y])
    r = deconvolve_tiled(movie, psf, "rl", time_axis=True, tile=(16, 40, 40), num_iter=15, workers=2)
    assert r.image.shape == movie.shape and r.info["tiles"] == 8
    assert np.abs(r.image[0] - whole).max() / whole.max() < 2e-3
    assert np.abs(r.image[1] - 2 * whole).max() / whole.max() < 4e-3
    inputs = [tmp_path / "a.tif", tmp_path / "b.tif"]
    tifffile.imwrite(inputs[0], y)
    tifffile.imwrite(inputs[1], y[:, ::-1])
    outs = output_names(inputs, tmp_path, ext=".zarr")
    assert [o.name for o in outs] == ["a_deconv.zarr", "b_deconv.zarr"]
    res = deconvolve_files(inputs, psf, outs, "rl", tile=(16, 40, 40), num_iter=15, workers=2)
    assert [x.image for x in res] == outs
    a, b = unblur.io.read_image(outs[0]), unblur.io.read_image(outs[1])[:, ::-1]
    assert np.abs(a - whole).max() / whole.max() < 2e-3 and np.abs(b - a).max() / a.max() < 2e-3
    with pytest.raises(InputError, match="exists"):  # checked before any work
        deconvolve_files([inputs[0]], psf, [outs[1]], "rl", num_iter=1)


def test_parse_tile():
    from unblur.tiling import parse_tile
    assert parse_tile("32,512,512") == (32, 512, 512) and parse_tile("8x64x64") == (8, 64, 64) and parse_tile(None) is None
    for bad in ("32,,512", "a,b", "0,4,4"):
        with pytest.raises(InputError, match="tile size"):
            parse_tile(bad)


@pytest.mark.parametrize("ext,dtype", [(".tif", np.float32), (".tif", np.uint16), (".npy", np.float32), (".npy", np.uint8)])
def test_file_source_reads_blocks(tmp_path, ext, dtype):
    import tifffile
    from unblur.tiling.sources import FileSource
    rng = np.random.default_rng(1)
    a = (rng.random((6, 20, 24, 3)) * (np.iinfo(dtype).max if dtype != np.float32 else 1)).astype(dtype)
    path = tmp_path / f"a{ext}"
    tifffile.imwrite(path, a, photometric="minisblack", planarconfig="contig") if ext == ".tif" else np.save(path, a)
    src = FileSource(path)
    scale = np.float32(np.iinfo(dtype).max) if dtype != np.float32 else np.float32(1)
    ref = a.astype(np.float32) / scale
    assert src.shape == a.shape and src._mapped  # plain reads, no memory map
    for sl in [(slice(1, 4), slice(5, 17), slice(3, 20), 2), (slice(0, 6), slice(0, 20), slice(0, 24), slice(0, 3))]:
        np.testing.assert_array_equal(src.read(sl), ref[sl])


def test_cli_tiled_run_matches_whole_volume_and_many_files(tmp_path):
    """``unblur deconvolve --tile`` (and several inputs) go through the tiling engine; same result as one volume."""
    import json

    import tifffile
    from scipy import ndimage

    from unblur.cli.main import main

    rng = np.random.default_rng(0)
    x = np.zeros((16, 64, 64), np.float32)
    x[rng.integers(0, 16, 40), rng.integers(0, 64, 40), rng.integers(0, 64, 40)] = 1
    psf = np.zeros((5, 7, 7), np.float32)
    psf[2, 3, 3] = 1
    psf = ndimage.gaussian_filter(psf, (1.0, 1.2, 1.2))
    psf /= psf.sum()
    y = ndimage.convolve(x, psf, mode="reflect") + 0.01
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, y.astype(np.float32))
    tifffile.imwrite(tmp_path / "p.tif", psf)
    common = ["--psf", str(tmp_path / "p.tif"), "--num-iter", "8", "--no-progress"]
    assert main(["deconvolve", str(tmp_path / "a.tif"), *common, "--tile", "8,32,32", "-o", str(tmp_path / "t.tif")]) == 0
    assert main(["deconvolve", str(tmp_path / "a.tif"), *common, "--no-preview", "-o", str(tmp_path / "w.tif")]) == 0
    tiled, whole = tifffile.imread(tmp_path / "t.tif"), tifffile.imread(tmp_path / "w.tif")
    assert tiled.shape == whole.shape and np.abs(tiled - whole).max() < 2e-3 * whole.max()
    assert json.loads((tmp_path / "t.tif.json").read_text())["tiled"] is True
    out = tmp_path / "out"
    out.mkdir()
    assert main(["deconvolve", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), *common, "-o", str(out)]) == 0
    assert len(list(out.glob("*.tif"))) == 2
    # a method that cannot run on tiles is refused in one line
    assert main(["deconvolve", str(tmp_path / "a.tif"), "--psf", str(tmp_path / "p.tif"), "--method", "dps",
                 "--tile", "8,32,32", "-o", str(tmp_path / "d.tif")]) == 2


def _cli_stack(tmp_path):
    import tifffile
    from scipy import ndimage
    rng = np.random.default_rng(0)
    x = np.zeros((16, 64, 64), np.float32)
    x[rng.integers(0, 16, 40), rng.integers(0, 64, 40), rng.integers(0, 64, 40)] = 1
    psf = np.zeros((5, 7, 7), np.float32)
    psf[2, 3, 3] = 1
    psf = ndimage.gaussian_filter(psf, (1.0, 1.2, 1.2))
    y = (ndimage.convolve(x, psf / psf.sum(), mode="reflect") + 0.01).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", y)
    tifffile.imwrite(tmp_path / "p.tif", psf)
    return ["deconvolve", str(tmp_path / "a.tif"), "--psf", str(tmp_path / "p.tif"), "--num-iter", "4", "--no-progress",
            "--tile", "8,32,32", "--scheduler", "sync"]


def test_cli_tiled_output_and_log_are_one_unit(tmp_path, monkeypatch, capsys):
    """An interrupted tiled run (Ctrl-C while restoring, a full disk while writing) leaves neither OUT
    nor OUT.json, only OUT.partial/; --resume then commits both together and removes the tiles."""
    import hashlib
    import json

    from unblur.cli.main import main
    from unblur.tiling import output

    args = _cli_stack(tmp_path)
    out = tmp_path / "t.npy"
    log, partial = tmp_path / "t.npy.json", tmp_path / "t.npy.partial"
    real, calls = engine.restore_block, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(engine, "restore_block", interrupted)
    capsys.readouterr()
    assert main([*args, "-o", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "p.tif", "t.npy.partial"]
    assert len(list(partial.glob("c0_t*.npy"))) == 3

    def full(self, slices, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output.NpyOutput, "write", full)  # every tile done, then the disk fills up
    capsys.readouterr()
    assert main([*args, "--resume", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left" in err and "--resume" in err
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "p.tif", "t.npy.partial"]
    assert len(list(partial.glob("c0_t*.npy"))) == 8

    assert main([*args, "--resume", "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "p.tif", "t.npy", "t.npy.json"]
    record = json.loads(log.read_text())
    assert (record["info"]["computed"], record["info"]["reused"]) == (0, 8) and record["tiled"] is True
    assert record["sha256"][str(out)] == hashlib.sha256(out.read_bytes()).hexdigest()
    ref = tmp_path / "ref.npy"
    assert main([*args, "-o", str(ref)]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(ref))


@pytest.mark.parametrize("extra,message", [
    (["--tile", "8,4,4"], "smaller than the PSF"),
    (["--memory-limit", "100kB"], "below what one tile needs"),
    (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
])
def test_cli_tiled_faults_one_line(tmp_path, capsys, extra, message):
    from unblur.cli.main import main
    args = [a for a in _cli_stack(tmp_path) if a not in ("--tile", "8,32,32", "--scheduler", "sync")]
    capsys.readouterr()
    assert main([*args, *extra, "-o", str(tmp_path / "o.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "p.tif"]


def test_plan_prefers_few_splits():
    """The automatic split keeps the halo's extra work small: one split axis for two workers, thin Z whole."""
    bpv = plan_mod.bytes_per_voxel("rl")
    p = make_plan((48, 512, 512), (15, 21, 21), memory_limit="16GB", bytes_per_voxel=bpv, concurrent=2, min_tiles=2)
    assert p.n_tiles == 2 and p.counts[0] == 1
    p = make_plan((200, 2048, 2048), (15, 31, 31), memory_limit="1GB", bytes_per_voxel=bpv, concurrent=2, min_tiles=2)
    assert p.grid_voxels() * bpv <= 0.5e9 and p.n_tiles % 2 == 0  # fits, and no idle worker in the last round
    # the cost model: fewer, larger tiles than splitting every axis evenly
    assert p.n_tiles < 242


@pytest.mark.slow
def test_local_process_pool_survives_a_dying_worker(tmp_path, stack, whole):
    """scheduler='processes': a worker process that dies breaks the pool; the unfinished tiles run on a new one."""
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    y, psf = stack
    flag = tmp_path / "killed"
    r = deconvolve_tiled(y, psf, _kill_worker_once, scheduler="processes", workers=2, tile=(16, 40, 40), num_iter=15,
                         flag=str(flag))
    assert flag.exists() and r.info["computed"] == 4
    assert np.abs(r.image - whole).max() / whole.max() < 2e-3
