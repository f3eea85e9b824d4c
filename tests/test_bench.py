"""unblur bench: suites load, the smoke suite runs on a folder of tiny images, interrupted runs resume to the same results."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from unblur.bench import load_suite, shipped_suites
from unblur.errors import InputError

SHIPPED = ["smoke", "rl-diffusion-gaussian", "fastem-motion", "deepblur-zernike", "blind-camera-shake", "microscopy",
           "rl-throughput", "rl-edge-ringing", "blind-dip"]


def _folder(tmp_path, n=3, size=48):
    import imageio.v3 as iio
    from scipy import ndimage
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        a = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
        a = (255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8)
        iio.imwrite(d / f"img{i}.png", a)
    return d


def test_shipped_suites_load_reduced_and_full():
    from unblur.bench.cases import check_parameters
    assert set(SHIPPED) <= set(shipped_suites())
    for name in shipped_suites():
        for full in (False, True):
            s = load_suite(name, full=full)
            assert s.name == name and s.methods
            check_parameters(s.methods)
    assert load_suite("blind-camera-shake", full=True).dataset["crop"] == 279  # 255x255 observed (valid blur, 25x25 kernels)


def test_protocol_settings():
    s = load_suite("rl-diffusion-gaussian")
    assert s.degradation["boundary"] == "replicate" and s.degradation["levels"] == [0.025]
    assert s.degradation["kernels"] == [{"source": "gaussian", "size": 61, "sigma": 3.0}]
    f = load_suite("fastem-motion")
    assert np.allclose(f.degradation["levels"], [5 / 255, 10 / 255, 20 / 255])


def test_overrides_and_errors(tmp_path):
    s = load_suite("smoke", overrides=["dataset.limit=1", "dataset.crop=32"])
    assert s.dataset["limit"] == 1 and s.dataset["crop"] == 32
    with pytest.raises(InputError, match="no suite named"):
        load_suite("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\n[dataset]\npath = "x"\n[degradation]\nkernels = [{source = "gaussian"}]\n'
                   '[[methods]]\nmethod = "rl"\n[metrics]\nnames = ["psnr", "sharpness"]\n')
    with pytest.raises(InputError, match="unknown metric"):
        load_suite(bad)
    with pytest.raises(InputError, match="KEY=VALUE"):
        load_suite("smoke", overrides=["dataset.limit"])


def test_units_are_seeded_by_name(tmp_path):
    from unblur.bench.cases import degrade, make_cases
    d = _folder(tmp_path)
    s = load_suite("smoke")
    a = make_cases(s, d)
    b = make_cases(load_suite("smoke", overrides=["dataset.limit=1"]), d)
    assert len(a) == 3 * 2 * 3 and len(b) == 1 * 2 * 3
    ya = degrade(a[0].unit)["blurred"]
    assert np.array_equal(ya, degrade(b[0].unit)["blurred"])  # --limit does not change what a unit sees
    assert not np.array_equal(ya, degrade(a[3].unit)["blurred"])  # another kernel
    assert a[0].method.label == "Wiener" and a[0].reference is None and a[1].reference == "Wiener"


def test_kernel_sources():
    from unblur.bench.cases import build_kernels
    s = load_suite("smoke", overrides=['degradation.kernels=[{source = "disk", size = 9, radius = 3}, '
                                       '{source = "defocus", size = 15, waves = 0.5}, {source = "zernike", size = 15, count = 2}, '
                                       '{source = "motion", size = 15, count = 2, seed = 5}]'])
    ks = build_kernels(s)
    assert [k.shape for _, k in ks] == [(9, 9), (15, 15), (15, 15), (15, 15), (15, 15), (15, 15)]
    assert all(abs(float(k.sum()) - 1) < 1e-5 and k.min() >= 0 for _, k in ks)
    assert not np.array_equal(ks[4][1], ks[5][1])


def test_smoke_suite_on_tiny_folder(tmp_path):
    """The CI smoke run: 3 tiny images x 2 kernels x 3 methods through the CLI module (seconds)."""
    from unblur.bench.store import read_records
    from unblur.cli.bench import main
    d = _folder(tmp_path)
    out = tmp_path / "run"
    md = tmp_path / "B.md"
    md.write_text("# title\n\n## Other\n\nkept\n")
    assert main(["smoke", "--data", str(d), "--out", str(out), "--no-progress", "--set", "dataset.crop=40",
                 "--markdown", str(md)]) == 0
    recs = read_records(out / "results.jsonl")
    assert len(recs) == 18 and all(r["ok"] for r in recs), [r.get("error") for r in recs]
    r = next(r for r in recs if r["label"] == "RL 30")
    for key in ("psnr", "ssim", "psnr_shift", "error_ratio", "isnr", "reblur_rms", "time_s", "peak_mem_mb"):
        assert key in r["metrics"], key
    assert r["params"]["num_iter"] == 30 and r["machine"]["cores"] >= 1 and r["machine"]["unblur"]
    # error ratio = MSE ratio against the reference (Wiener) on the same unit, as unblur.metrics defines it
    ref = next(q for q in recs if q["unit"] == r["unit"] and q["label"] == "Wiener")
    assert r["metrics"]["error_ratio"] == pytest.approx(10 ** ((ref["metrics"]["psnr_shift"] - r["metrics"]["psnr_shift"]) / 10),
                                                        rel=1e-6)
    # deconvolution helps: RL-TV beats the blurred input on average
    assert np.mean([q["metrics"]["isnr"] for q in recs if q["label"] == "RL-TV 30"]) > 0
    assert (out / "report.html").stat().st_size > 10_000
    text = md.read_text()
    assert "## Other\n\nkept" in text and "### `smoke`" in text and "unblur bench smoke" in text
    # a second run without --resume is refused, with it nothing is recomputed
    with pytest.raises(InputError, match="--resume"):
        from unblur.bench import run_suite
        run_suite(load_suite("smoke"), out, data=d)
    assert main(["smoke", "--data", str(d), "--out", str(out), "--no-progress", "--set", "dataset.crop=40", "--resume"]) == 0
    assert len(read_records(out / "results.jsonl")) == 18


def test_resume_after_kill_gives_the_same_results(tmp_path):
    """Kill a run (SIGKILL) after a few cases, resume it, and compare with an uninterrupted run."""
    d = _folder(tmp_path, n=4, size=64)
    args = ["smoke", "--data", str(d), "--no-progress", "--methods", "RL 30", "--set", "methods=[{method = \"rl\", "
            "label = \"RL 30\", params = {num_iter = 400, boundary = \"circular\"}}]", "--set", "metrics.names=[\"psnr\", \"ssim\"]",
            "--set", "metrics.reference=\"RL 30\""]
    cmd = [sys.executable, "-m", "unblur.cli.bench"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = tmp_path / "killed"
    p = subprocess.Popen(cmd + args + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = killed / "results.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    p.wait()
    n_before = len(results.read_text().splitlines())
    assert p.returncode != 0 and 2 <= n_before < 6, (p.returncode, n_before)
    assert subprocess.run(cmd + args + ["--out", str(killed), "--resume"], env=env, capture_output=True).returncode == 0
    straight = tmp_path / "straight"
    assert subprocess.run(cmd + args + ["--out", str(straight)], env=env, capture_output=True).returncode == 0

    def load(folder):
        return {r["case"]: r for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines())}

    a, b = load(killed), load(straight)
    assert sorted(a) == sorted(b) and len(a) == 6  # 3 images (the suite's limit) x 2 kernels
    for cid in a:
        for key in ("psnr", "ssim"):
            assert a[cid]["metrics"][key] == pytest.approx(b[cid]["metrics"][key], abs=1e-9)


def test_parallel_processes_match_sequential(tmp_path):
    from unblur.bench import run_suite
    d = _folder(tmp_path, n=2, size=40)
    s = load_suite("smoke", overrides=['metrics.names=["psnr", "psnr_shift", "error_ratio", "time", "memory"]', "dataset.crop=0"])
    seq = run_suite(s, tmp_path / "seq", data=d)["records"]
    par = run_suite(s, tmp_path / "par", data=d, workers=2)["records"]
    a = {r["case"]: r["metrics"]["psnr"] for r in seq}
    b = {r["case"]: r["metrics"]["psnr"] for r in par}
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
    assert all("error_ratio" in r["metrics"] for r in par if r["label"] != "Wiener")


def test_pairs_dataset_and_blind_method(tmp_path):
    """Paired blurred/sharp folders with kernels; a blind method gets a kernel error."""
    import imageio.v3 as iio
    import torch

    from unblur.bench import run_suite
    from unblur.physics.convolution import convolve
    from unblur.psf import motion_kernel
    sharp = _folder(tmp_path, n=1, size=96)
    (tmp_path / "blurred").mkdir()
    (tmp_path / "kernels").mkdir()
    k = motion_kernel(15, seed=2)
    x = iio.imread(sharp / "img0.png").astype(np.float32) / 255
    y = convolve(torch.from_numpy(x)[None, None], torch.from_numpy(k), "circular")[0, 0].numpy()
    np.save(tmp_path / "blurred" / "img0.npy", y)
    np.save(tmp_path / "kernels" / "img0.npy", k)
    suite = tmp_path / "pairs.toml"
    suite.write_text(f'name = "pairs"\nkind = "mixed"\n[dataset]\nkind = "pairs"\nblurred = "{tmp_path}/blurred"\n'
                     f'sharp = "{sharp}"\nkernels = "{tmp_path}/kernels"\n[degradation]\nboundary = "circular"\n'
                     '[[methods]]\nmethod = "l0"\nparams = {kernel_size = 15, outer_iter = 2}\n[[methods]]\nmethod = "wiener"\n'
                     'params = {boundary = "circular", noise_sigma = 0.002}\n'
                     '[metrics]\nnames = ["psnr_shift", "kernel_error", "reblur", "time"]\nshift_crop = 10\n')
    recs = run_suite(load_suite(suite), tmp_path / "out")["records"]
    assert all(r["ok"] for r in recs), [r.get("error") for r in recs]
    l0 = next(r for r in recs if r["label"] == "l0")
    assert 0 <= l0["metrics"]["kernel_error"] < 2 and "kernel_error" not in next(r for r in recs if r["label"] == "wiener")["metrics"]
    assert (tmp_path / "out" / "kernels").is_dir()


def test_valid_boundary_degradation_observes_the_valid_part():
    """A ``valid`` suite blurs the whole crop: the observation is ``crop - k + 1`` and the truth its centre."""
    from unblur.bench.cases import degrade, make_units

    suite = load_suite("blind-camera-shake")
    unit = make_units(suite)[0]
    d = degrade(unit)
    k = d["kernel"].shape[0]
    assert unit.boundary == "valid"
    assert d["blurred"].shape == d["truth"].shape == (152 - k + 1,) * 2
    # noise-free check of the model: the observation is the valid convolution of the crop
    from scipy import signal

    from unblur.bench.cases import load_item
    crop = np.asarray(load_item(unit), np.float64)
    ref = signal.fftconvolve(crop, d["kernel"], mode="valid")
    assert np.abs(d["blurred"] - ref).std() < 0.02  # only the 1% noise differs


@pytest.mark.parametrize("hwm", [True, False])
def test_peak_memory_is_each_blocks_own(monkeypatch, hwm):
    """A block that allocates 20 MiB in 2 MiB arrays reports about 20 MiB, also right after a block that
    allocated and freed 40 MiB the same way (glibc keeps such freed memory in the heap, so the RSS would not
    grow again), with the kernel's high-water mark and with the sampling fall-back."""
    from unblur.bench import runner
    if not hwm:
        monkeypatch.setattr(runner, "_reset_hwm", lambda: False)
    elif not runner._reset_hwm():
        pytest.skip("no /proc/self/clear_refs here")
    mib = 2**20

    def block(n):
        xs = [np.ones(2 * mib // 8) for _ in range(n)]
        time.sleep(0.05)  # the sampling fall-back sees an allocation held for a few samples
        del xs

    big = np.ones(30 * mib // 8)  # freeing a large array raises glibc's mmap threshold above 2 MiB
    del big
    with runner.PeakRSS() as first:
        block(20)
    with runner.PeakRSS() as second:
        block(10)
    with runner.PeakRSS() as none:
        pass
    assert first.method == second.method == ("hwm" if hwm else "sampled")
    assert 36 < first.peak / mib < 48, first.peak / mib
    assert 18 < second.peak / mib < 26, second.peak / mib
    assert none.peak / mib < 4


def test_selected_images_and_border_band_psnr(tmp_path):
    """``dataset.select`` keeps the named images; ``metrics.band`` adds PSNR on the border band and inside it,
    and with the valid model RL's border band is not worse than with the circular one (no wrap-around)."""
    from unblur.bench import run_suite
    d = _folder(tmp_path, n=3, size=72)
    suite = tmp_path / "edge.toml"
    suite.write_text(f'name = "edge"\n[dataset]\npath = ["{d}"]\nselect = ["img0", "img2"]\ncrop = 72\n'
                     '[degradation]\nboundary = "valid"\nnoise = "gaussian"\nlevels = [0.002]\n'
                     'kernels = [{source = "gaussian", size = 9, sigma = 2.0}]\n'
                     '[[methods]]\nmethod = "rl"\nlabel = "valid"\nparams = {num_iter = 20, boundary = "valid"}\n'
                     '[[methods]]\nmethod = "rl"\nlabel = "circular"\nparams = {num_iter = 20, boundary = "circular"}\n'
                     '[metrics]\nnames = ["psnr"]\nband = 8\n')
    recs = run_suite(load_suite(suite), tmp_path / "out")["records"]
    assert sorted({r["image"] for r in recs}) == ["img0", "img2"] and all(r["ok"] for r in recs)
    by = {(r["image"], r["label"]): r["metrics"] for r in recs}
    for (img, lab), m in by.items():
        assert set(m) >= {"psnr", "psnr_band", "psnr_interior"}
        assert min(m["psnr_band"], m["psnr_interior"]) <= m["psnr"] <= max(m["psnr_band"], m["psnr_interior"]) + 1e-9
    assert np.mean([by[(i, "valid")]["psnr_band"] - by[(i, "circular")]["psnr_band"] for i in ("img0", "img2")]) > 0
    bad = tmp_path / "bad.toml"
    bad.write_text(suite.read_text().replace('"img2"', '"nope"'))
    with pytest.raises(InputError, match="nope"):
        run_suite(load_suite(bad), tmp_path / "out2")


def test_method_limit_runs_a_slow_method_on_the_first_units_only(tmp_path):
    from unblur.bench.cases import make_cases
    d = _folder(tmp_path)
    s = load_suite("smoke", overrides=['methods=[{method = "wiener", label = "Wiener"}, {method = "rl", label = "RL", limit = 2}]'])
    cases = make_cases(s, d)
    assert sum(c.method.label == "Wiener" for c in cases) == 6 and sum(c.method.label == "RL" for c in cases) == 2
    rl_units = [c.unit.uid for c in cases if c.method.label == "RL"]
    assert rl_units == [c.unit.uid for c in cases if c.method.label == "Wiener"][:2]
    with pytest.raises(InputError, match="negative limit"):
        load_suite("smoke", overrides=['methods=[{method = "rl", limit = -1}]'])


def test_sigterm_stops_worker_processes_and_says_how_to_resume(tmp_path):
    """SIGTERM during a 2-worker run: exit 143 in seconds (workers stopped, not awaited), a line naming --resume."""
    d = _folder(tmp_path, n=4, size=64)
    args = ["smoke", "--data", str(d), "--no-progress", "--workers", "2", "--set", "methods=[{method = \"rl\", "
            "label = \"RL\", params = {num_iter = 3000, boundary = \"circular\"}}]", "--set", "metrics.names=[\"psnr\"]",
            "--set", "metrics.reference=\"RL\""]
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "unblur", "bench", *args, "--out", str(out)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = out / "results.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None and not results.exists():
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=30)[1]
    assert p.returncode == 143, err
    assert "--resume" in err and "results.jsonl" in err
    assert 1 <= len(results.read_text().splitlines()) < 6


@pytest.mark.parametrize("full", [False, True])
def test_shipped_blind_suites_give_images_large_enough_for_their_kernels(full):
    """Blind methods refuse a kernel wider than a third of the image: a shipped suite must not ask for that."""
    for name in SHIPPED:
        s = load_suite(name, full=full)
        crop = s.dataset.get("crop")
        if s.kind == "nonblind" or not crop:
            continue
        for k in s.degradation["kernels"]:
            if "size" in k:
                assert crop >= 3 * k["size"], (name, full, crop, k)


def test_blind_warmstart_and_fastem_motion_suites_and_the_dirac_reference(tmp_path):
    """The warm-start and Fast EM suites name registered parameters, pair each l0 start with its own start, fit their
    kernels; a non-blind method given ``kernel = "dirac"`` restores with a centred Dirac (and is scored as that kernel)."""
    from unblur.bench import run_suite
    from unblur.bench.cases import check_parameters
    from unblur.metrics import kernel_error
    for name in ("blind-warmstart", "fastem-motion"):
        for full in (False, True):
            s = load_suite(name, full=full)
            check_parameters(s.methods)
            observed = s.dataset["crop"] - (max(k["size"] for k in s.degradation["kernels"] if "size" in k) - 1
                                            if s.degradation["boundary"] == "valid" else 0)
            assert all(observed >= 3 * k["size"] for k in s.degradation["kernels"] if "size" in k), (name, full)
            warm = [m for m in s.methods if m.params.get("init_kernel") == "l0" and "mstep_start" not in m.params]
            for m in warm if name == "blind-warmstart" else []:  # the same method and settings from its own start
                own = {k: v for k, v in m.params.items() if k != "init_kernel"}
                assert any(o.method == m.method and {k: v for k, v in o.params.items() if k != "init_kernel"} == own
                           and o.params.get("init_kernel", "dirac") != "l0" for o in s.methods), m.label
    warm = load_suite("blind-warmstart", full=True)
    assert {m.method for m in warm.methods if m.params.get("init_kernel") == "l0"} == {"fast-em", "selfdeblur"}
    motion = load_suite("fastem-motion", full=True)
    assert sorted(m.kernel for m in motion.methods if m.method == "pigdm") == ["dirac", "true"]
    assert {"diffusion-em", "fast-em", "pigdm"} <= {m.method for m in motion.methods}
    d = _folder(tmp_path, n=1, size=40)
    s = load_suite("smoke", overrides=['methods=[{method = "wiener", label = "true"}, {method = "wiener", label = "dirac", '
                                       'kernel = "dirac"}]', 'metrics.names=["psnr", "kernel_error"]', "metrics.reference=\"true\"",
                                       'degradation.kernels=[{source = "gaussian", size = 9, sigma = 1.5}]'])
    res = run_suite(s, tmp_path / "out", data=d)
    recs = {r["label"]: r for r in res["records"]}
    assert all(r["ok"] for r in recs.values()), [r.get("error") for r in recs.values()]
    assert {r["machine"]["torch_threads"] for r in recs.values()} == {res["machine"]["torch_threads"]}  # the block's line
    from unblur.psf import gaussian_kernel
    k = gaussian_kernel(9, 1.5)
    dirac = np.zeros((9, 9), np.float32)
    dirac[4, 4] = 1
    assert recs["dirac"]["metrics"]["kernel_error"] == pytest.approx(kernel_error(dirac, k / k.sum()), rel=1e-4)
    assert "kernel_error" not in recs["true"]["metrics"] and recs["dirac"]["metrics"]["psnr"] < recs["true"]["metrics"]["psnr"]
    with pytest.raises(InputError, match="kernel"):
        load_suite("smoke", overrides=['methods=[{method = "wiener", kernel = "flat"}]'])


def test_script_shards_parse_and_merge(tmp_path):
    import argparse
    import pickle

    from unblur.bench import shards
    assert shards.parse("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(InputError, match="--shard"):
            shards.parse(bad)
    ap = argparse.ArgumentParser()
    shards.add_arguments(ap)
    seen = []
    rows = shards.rows_of(ap.parse_args(["--shard", "1/2", "--save", str(tmp_path / "a.pkl")]),
                          lambda shard: seen.append(shard) or {"k": [1.0]})
    assert seen == [(1, 2)] and rows == {"k": [1.0]}
    (tmp_path / "b.pkl").write_bytes(pickle.dumps({"k": [2.0], "j": [3.0]}))
    merged = shards.rows_of(ap.parse_args(["--merge", str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")]), None)
    assert merged == {"k": [1.0, 2.0], "j": [3.0]}
