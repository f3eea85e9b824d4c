"""End-to-end CLI on tiny images: every classical method, simulate (seeded), JSON log, preview, exit codes."""

import json

import numpy as np
import pytest
import tifffile

from conftest import gaussian_psf
from unblur.cli.main import main
from unblur.io import read_image, write_image
from unblur.metrics import psnr
from unblur.physics.convolution import convolve


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    sharp = np.zeros((32, 32), np.float32)
    sharp[8:20, 10:24] = 0.8
    sharp[22:28, 4:12] = 0.4
    psf = gaussian_psf(7, 1.2)
    import torch
    blurred = convolve(torch.from_numpy(sharp)[None, None], torch.from_numpy(psf), "reflect")[0, 0].numpy()
    blurred = np.clip(blurred + 0.003 * rng.standard_normal(blurred.shape), 0, None).astype(np.float32)
    write_image(tmp_path / "sharp.tif", sharp)
    write_image(tmp_path / "blurred.tif", blurred)
    tifffile.imwrite(tmp_path / "psf.tif", psf)
    return tmp_path, sharp, blurred


@pytest.mark.parametrize("method,extra", [("rl", ["--num-iter", "30"]), ("rl-tv", []),
                                          ("wiener", []), ("tikhonov", ["--lam", "0.002"]),
                                          ("rl", ["--acceleration", "biggs-andrews", "--stop", "relative-change",
                                                  "--tol", "1e-3", "--boundary", "circular", "--num-iter", "500"])])
def test_deconvolve_methods(files, method, extra, capsys):
    d, sharp, blurred = files
    out = d / f"{method}.tif"
    rc = main(["deconvolve", str(d / "blurred.tif"), "--psf", str(d / "psf.tif"), "--method", method,
               "-o", str(out), "--no-progress" if method.startswith("rl") else "--no-preview", *extra])
    assert rc == 0, capsys.readouterr().err
    restored = read_image(out)
    assert restored.shape == sharp.shape and np.isfinite(restored).all()
    if "--stop" not in extra:  # (run to convergence, RL fits the noise: no PSNR claim there)
        assert psnr(restored, sharp) > psnr(blurred, sharp) + 1.0
    log = json.loads((d / f"{method}.tif.json").read_text())
    assert log["method"] == method and log["command"] == "deconvolve"
    assert log["image_shape"] == [32, 32] and log["psf_shape"] == [7, 7]
    assert str(out) in log["outputs"] and log["info"]["time_s"] > 0
    if method == "rl" and not extra[2:]:
        assert log["params"]["num_iter"] == 30 and log["info"]["iterations"] == 30
    if "--stop" in extra:
        assert log["info"]["stopped_by"] == "relative-change" and log["params"]["acceleration"] == "biggs-andrews"
        assert log["info"]["iterations"] < 500
    preview = d / f"{method}.tif.compare.png"
    assert preview.exists() == method.startswith("rl")
    if preview.exists():
        assert read_image(preview).shape == (32, 68, 3)


def test_deconvolve_png_16bit_and_force(files):
    d, _, _ = files
    args = ["deconvolve", str(d / "blurred.tif"), "--psf", str(d / "psf.tif"), "-o", str(d / "o.png"), "--bits", "16",
            "--num-iter", "5", "--no-progress"]
    assert main(args) == 0
    import imageio.v3 as iio
    assert iio.imread(d / "o.png").dtype == np.uint16
    first = (d / "o.png").read_bytes()
    assert main(args) == 2  # exists
    assert (d / "o.png").read_bytes() == first
    assert main(args[:-3] + ["--num-iter", "9", "--no-progress", "--force"]) == 0


def test_simulate_seeded(files):
    d, sharp, _ = files
    base = ["simulate", str(d / "sharp.tif"), "--psf", str(d / "psf.tif"), "--sigma", "0.02"]
    assert main(base + ["--seed", "3", "-o", str(d / "a.tif")]) == 0
    assert main(base + ["--seed", "3", "-o", str(d / "b.tif")]) == 0
    assert main(base + ["--seed", "4", "-o", str(d / "c.tif")]) == 0
    a, b, c = (read_image(d / f"{n}.tif") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(np.std(a - c) / np.sqrt(2) - 0.02) < 0.004
    log = json.loads((d / "a.tif.json").read_text())
    assert log["seed"] == 3 and log["noise"] == "gaussian" and log["sigma"] == 0.02
    assert main(base + ["--boundary", "valid", "--noise", "poisson", "--gain", "1000", "-o", str(d / "v.tif")]) == 0
    assert read_image(d / "v.tif").shape == (26, 26)


def test_help_and_methods(capsys):
    with pytest.raises(SystemExit) as e:
        main(["deconvolve", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("--psf", "--method", "examples", "rl-tv", "--num-iter", "--force", "JSON log"):
        assert word in text
    assert main(["methods"]) == 0
    assert "tikhonov" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["deconvolve", "blind", "simulate", "psf", "train", "methods"])
def test_every_help_text_renders(command, capsys):
    """argparse %-formats help strings: a bare "%" in a registry parameter's help used to crash --help."""
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_exit_code_1_on_internal_failure(files, monkeypatch, capsys):
    d, _, _ = files
    import unblur.cli.deconvolve as dec

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(dec, "deconvolve", broken)
    rc = main(["deconvolve", str(d / "blurred.tif"), "--psf", str(d / "psf.tif"), "-o", str(d / "x.tif")])
    assert rc == 1 and "failed: RuntimeError: boom" in capsys.readouterr().err
    assert not (d / "x.tif").exists()


@pytest.mark.parametrize("command", ["simulate", "blind", "psf"])
def test_existing_json_log_is_not_overwritten_without_force(command, tmp_path, capsys):
    """Every command checks its JSON log before doing any work: an existing one needs --force."""
    img = tmp_path / "in.tif"
    write_image(img, np.random.default_rng(0).random((32, 32)).astype(np.float32))
    psf = tmp_path / "psf.tif"
    write_image(psf, np.full((3, 3), 1 / 9, np.float32))
    out = tmp_path / "out.tif"
    log = tmp_path / "out.tif.json"
    log.write_text("{}")
    argv = {"simulate": ["simulate", str(img), "--psf", str(psf), "-o", str(out)],
            "blind": ["blind", str(img), "--method", "deepblur", "-o", str(out)],
            "psf": ["psf", "gaussian", "--size", "5", "--sigma", "1", "-o", str(out)]}[command]
    assert main(argv) == 2
    assert "out.tif.json exists" in capsys.readouterr().err
    assert log.read_text() == "{}" and not out.exists()
    log.unlink()  # without the log, the same command runs
    assert main(argv) == 0 and out.exists() and json.loads(log.read_text())["command"] == command
