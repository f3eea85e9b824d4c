"""Outputs as one unit (log with checksums, lock, names), signals, full disks, integer arrays, crafted files."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from conftest import gaussian_psf
from unblur.cli.main import main
from unblur.errors import InputError
from unblur.io import read_image, write_image


@pytest.fixture
def d(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "in.tif", (0.2 + 0.6 * rng.random((32, 32))).astype(np.float32))
    write_image(tmp_path / "psf.tif", gaussian_psf(7, 1.5))
    return tmp_path


def _run(d, out, *extra):
    return main(["deconvolve", str(d / "in.tif"), "--psf", str(d / "psf.tif"), "-o", str(out), "--num-iter", "3",
                 "--no-progress", *extra])


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_log_and_preview_names_are_unique_per_output_and_hold_checksums(d):
    assert _run(d, d / "x.png") == 0 and _run(d, d / "x.jpg") == 0
    for name in ("x.png", "x.jpg"):
        log = json.loads((d / f"{name}.json").read_text())
        assert log["sha256"][str(d / name)] == _sha(d / name)
        assert log["sha256"][str(d / f"{name}.compare.png")] == _sha(d / f"{name}.compare.png")
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["in.tif", "psf.tif", "x.png", "x.png.json", "x.png.compare.png", "x.jpg", "x.jpg.json", "x.jpg.compare.png"])


def test_log_mode_is_the_image_mode(d):
    old = os.umask(0o022)
    try:
        assert _run(d, d / "o.tif") == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in d.glob("o.tif*")}
    assert modes == {"o.tif": 0o644, "o.tif.json": 0o644, "o.tif.compare.png": 0o644}


@pytest.mark.parametrize("which", ["image", "psf"])
def test_force_with_the_output_equal_to_an_input_is_refused(d, which, capsys):
    target = d / ("in.tif" if which == "image" else "psf.tif")
    before = target.read_bytes()
    assert _run(d, target, "--force") == 2
    assert "is the input" in capsys.readouterr().err
    assert target.read_bytes() == before and not (d / f"{target.name}.json").exists()


def test_a_live_lock_refuses_a_second_run_and_a_stale_lock_is_taken_over(d, capsys):
    lock = d / "o.tif.lock"
    lock.write_text(f"{os.getpid()}\n")  # a running process holds it
    assert _run(d, d / "o.tif") == 2
    assert "being written by another unblur run" in capsys.readouterr().err
    assert not (d / "o.tif").exists() and lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")  # its process is gone
    assert _run(d, d / "o.tif") == 0
    assert (d / "o.tif").exists() and not lock.exists()


def test_disk_full_is_one_line_and_leaves_nothing(d, monkeypatch, capsys):
    import unblur.io

    def full(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(unblur.io, "write_image", full)
    assert _run(d, d / "o.tif") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disk full writing" in err and "free space" in err and "Traceback" not in err
    assert sorted(p.name for p in d.iterdir()) == ["in.tif", "psf.tif"]


def test_disk_full_anywhere_else_is_one_line(d, monkeypatch, capsys):
    import unblur.cli.deconvolve as dec

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/x")

    monkeypatch.setattr(dec, "deconvolve", full)
    assert _run(d, d / "o.tif") == 2
    err = capsys.readouterr().err.strip()
    assert err == "unblur deconvolve: error: disk full writing /somewhere/x; free space or choose another folder"


def test_a_failure_after_the_image_was_written_removes_it(d, monkeypatch):
    import unblur.io

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(unblur.io, "preview_png", broken)
    assert _run(d, d / "o.tif") == 1
    assert sorted(p.name for p in d.iterdir()) == ["in.tif", "psf.tif"]


def test_sigterm_during_deconvolve_exits_143_and_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "stack.tif", rng.random((32, 96, 96)).astype(np.float32))
    write_image(tmp_path / "psf.tif", gaussian_psf(9, 2.0, ndim=3))
    out = tmp_path / "o.tif"
    p = subprocess.Popen([sys.executable, "-m", "unblur", "deconvolve", str(tmp_path / "stack.tif"), "--psf",
                          str(tmp_path / "psf.tif"), "-o", str(out), "--num-iter", "100000", "--no-progress"],
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    t0 = time.time()
    while not (tmp_path / "o.tif.lock").exists() and p.poll() is None and time.time() - t0 < 60:
        time.sleep(0.05)
    time.sleep(1.0)  # reading and iterating
    assert p.poll() is None, p.stderr.read()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1] == "unblur deconvolve: terminated (SIGTERM); no partial output was written"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["psf.tif", "stack.tif"]


def test_sigterm_while_torch_starts_is_held_until_its_import_ends(tmp_path):
    """A signal handled inside torch's C++ start-up aborts the process (exit -6, "terminate called after
    throwing ..."): the command line holds it until the import is complete, then exits 143 as anywhere else."""
    write_image(tmp_path / "in.tif", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    write_image(tmp_path / "psf.tif", gaussian_psf(5, 1.0))
    code = ("import os, signal, sys\n"
            "class Trigger:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch._C':\n"
            "            os.kill(os.getpid(), signal.SIGTERM)\n"
            "        return None\n"
            "sys.meta_path.insert(0, Trigger())\n"
            "from unblur.cli.main import main\n"
            f"rc = main(['deconvolve', {str(tmp_path / 'in.tif')!r}, '--psf', {str(tmp_path / 'psf.tif')!r}, "
            f"'-o', {str(tmp_path / 'o.tif')!r}, '--no-progress'])\n"
            "print(rc, 'torch._C' in sys.modules, 'torch.nn' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["143", "True", "True"], r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == "unblur deconvolve: terminated (SIGTERM); no partial output was written"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.tif", "psf.tif"]


def test_device_cuda_without_a_gpu_is_one_line(d, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert _run(d, d / "o.tif", "--device", "cuda") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "CUDA was requested" in err
    assert sorted(p.name for p in d.iterdir()) == ["in.tif", "psf.tif"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_arrays_are_scaled_like_files(dtype):
    import unblur

    maxv = np.iinfo(dtype).max
    rng = np.random.default_rng(1)
    ints = (rng.random((24, 24)) * maxv).astype(dtype)
    floats = ints.astype(np.float32) / maxv
    psf = gaussian_psf(5, 1.0)
    for method, kw in (("rl", {"num_iter": 5}), ("wiener", {}), ("tikhonov", {"lam": 1e-2})):
        a = unblur.deconvolve(ints, psf, method=method, **kw).image
        b = unblur.deconvolve(floats, psf, method=method, **kw).image
        assert a.dtype == np.float32 and b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert unblur.richardson_lucy(ints, psf, 3).dtype == np.float32
    assert float(unblur.richardson_lucy(ints, psf, 3).max()) <= 1.5


def test_integer_torch_tensor_is_scaled_too():
    from unblur.arrays import to_batch

    x, _ = to_batch(torch.full((1, 1, 8, 8), 255, dtype=torch.uint8), 2)
    assert x.dtype == torch.float32 and float(x.max()) == 1.0


def _checkpoint_with_claim(path, tmp_path, deflate_bytes=None):
    """A torch zip checkpoint whose one tensor record is deflated to hold ``deflate_bytes`` zero bytes."""
    torch.save({"w": torch.ones(4)}, tmp_path / "small.pt")
    src = zipfile.ZipFile(tmp_path / "small.pt")
    with zipfile.ZipFile(path, "w") as z:
        for name in src.namelist():
            info = zipfile.ZipInfo(name.replace("small/", "crafted/"))
            if name.endswith("data/0"):
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, bytes(deflate_bytes))
            else:
                z.writestr(info, src.read(name))


def test_a_checkpoint_that_expands_beyond_its_size_is_refused_before_reading(tmp_path, monkeypatch):
    from unblur.models import checkpoints

    path = tmp_path / "crafted.pt"
    _checkpoint_with_claim(path, tmp_path, deflate_bytes=8 << 20)
    assert path.stat().st_size < 64 << 10
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    with pytest.raises(InputError, match="claims .* GiB of data in a .* MiB file") as e:
        checkpoints.read_checkpoint(path)
    assert "\n" not in str(e.value)


def test_a_checkpoint_whose_tensor_claims_10_12_values_is_refused(tmp_path):
    """The storage size in the pickle disagrees with its record: torch refuses it before allocating."""
    from unblur.models import checkpoints

    torch.save({"w": torch.ones(4)}, tmp_path / "small.pt")
    src = zipfile.ZipFile(tmp_path / "small.pt")
    pkl = src.read("small/data.pkl")
    huge = (10**12).to_bytes(6, "little")
    claim = b"\x8a\x06" + huge  # LONG1: 10**12
    import pickletools
    fours = [pos for op, arg, pos in pickletools.genops(pkl) if op.name == "BININT1" and arg == 4]
    assert len(fours) == 2  # the storage's element count and the tensor's size
    for pos in reversed(fours):
        pkl = pkl[:pos] + claim + pkl[pos + 2:]
    with zipfile.ZipFile(tmp_path / "huge.pt", "w") as z:
        for name in src.namelist():
            z.writestr(name.replace("small/", "huge/"), pkl if name.endswith("data.pkl") else src.read(name))
    with pytest.raises(InputError, match="cannot read checkpoint") as e:
        checkpoints.read_checkpoint(tmp_path / "huge.pt")
    assert "\n" not in str(e.value)


def test_rl_tv_divergence_stops_with_a_message(monkeypatch):
    """Were the lambda bound lifted, the run-time flux check stops a diverging RL-TV run."""
    rl = sys.modules["unblur.solvers.richardson_lucy"]
    monkeypatch.setattr(rl, "max_lambda_tv", lambda ndim: 100.0)
    y = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    with pytest.raises(InputError, match=r"RL-TV diverged at iteration \d+ \(total intensity .*x the data's\)"):
        rl.rl_tv(y, gaussian_psf(5, 1.0), num_iter=40, lambda_tv=10.0)


def test_rl_tv_within_the_bound_keeps_the_flux():
    from unblur.solvers.richardson_lucy import max_lambda_tv, rl_tv

    y = np.clip(np.random.default_rng(0).random((48, 48)), 0, 1).astype(np.float32)
    for boundary in ("valid", "circular"):
        x = rl_tv(y, gaussian_psf(7, 1.5), num_iter=60, lambda_tv=0.99 * max_lambda_tv(2), boundary=boundary)
        assert np.isfinite(x).all() and 0.8 < x.mean() / y.mean() < 1.25


def test_stage_then_commit_keeps_previous_outputs_until_the_end(d):
    """With --force, the old image and log stay in place until the new pair is complete."""
    assert _run(d, d / "o.tif") == 0
    first = (d / "o.tif").read_bytes(), (d / "o.tif.json").read_text()
    assert _run(d, d / "o.tif", "--force", "--num-iter", "7") == 0
    log = json.loads((d / "o.tif.json").read_text())
    assert log["params"]["num_iter"] == 7 and log["sha256"][str(d / "o.tif")] == _sha(d / "o.tif")
    assert (d / "o.tif").read_bytes() != first[0]
    assert read_image(d / "o.tif").shape == (32, 32)
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_file_rules_are_noted_in_the_log(tmp_path):
    """Alpha set aside on reading and values clipped by ``--bits 8`` are stated in the JSON log (``file_notes``)."""
    import json

    import imageio.v3 as iio

    from unblur.cli.main import main

    rng = np.random.default_rng(0)
    rgba = np.concatenate([(rng.random((48, 48, 3)) * 255).astype(np.uint8),
                           np.full((48, 48, 1), 128, np.uint8)], -1)  # half-transparent alpha
    iio.imwrite(tmp_path / "a.png", rgba)
    k = np.zeros((5, 5), np.float32)
    k[2, 1:4] = 1 / 3
    iio.imwrite(tmp_path / "k.tif", k)
    assert main(["deconvolve", str(tmp_path / "a.png"), "--psf", str(tmp_path / "k.tif"), "--num-iter", "30",
                 "--bits", "8", "--no-progress", "-o", str(tmp_path / "o.png")]) == 0
    notes = " ".join(json.loads((tmp_path / "o.png.json").read_text())["file_notes"])
    assert "alpha" in notes and "clipped" in notes
    assert iio.imread(tmp_path / "o.png").shape == (48, 48, 4)  # alpha written back unchanged
