"""Every bad input gives one clear line on stderr, exit code 2 and no output file (a table, one row per case)."""

import os
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from conftest import gaussian_psf
from unblur.cli.main import main
from unblur.errors import InputError
from unblur.io import read_image
from unblur.solvers import richardson_lucy, rl_tv, tikhonov, wiener


@pytest.fixture
def d(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((32, 32)) * 200 + 20).astype(np.uint8)
    iio.imwrite(tmp_path / "gray.png", img)
    iio.imwrite(tmp_path / "rgb.png", np.stack([img] * 3, -1))
    p = gaussian_psf(7, 1.5)
    tifffile.imwrite(tmp_path / "psf.tif", p)
    tifffile.imwrite(tmp_path / "psf3d.tif", np.stack([p] * 5))
    iio.imwrite(tmp_path / "psf_rgb.png", (np.stack([p] * 3, -1) / p.max() * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "psf2c.tif", np.stack([p] * 2, -1))
    q = p.copy(); q[0, 0] = -0.01  # noqa: E702
    tifffile.imwrite(tmp_path / "psf_neg.tif", q)
    tifffile.imwrite(tmp_path / "psf_zero.tif", np.zeros((7, 7), np.float32))
    q = p.copy(); q[1, 1] = np.nan  # noqa: E702
    tifffile.imwrite(tmp_path / "psf_nan.tif", q)
    tifffile.imwrite(tmp_path / "psf_big.tif", np.ones((40, 40), np.float32))
    a = img.astype(np.float32) / 255
    for name, val in (("nan.tif", np.nan), ("inf.tif", np.inf)):
        b = a.copy(); b[3, 3] = val  # noqa: E702
        tifffile.imwrite(tmp_path / name, b)
    tifffile.imwrite(tmp_path / "one.tif", np.ones((1, 1), np.float32))
    tifffile.imwrite(tmp_path / "row.tif", np.ones((1, 20), np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 0), np.float32))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "img.xyz").write_text("x")
    tifffile.imwrite(tmp_path / "stack.tif", rng.random((8, 32, 32)).astype(np.float32))
    tifffile.imwrite(tmp_path / "neg.tif", a - 0.2)
    q = p.copy(); q[0, :] -= 0.5 * p.sum() / 7  # noqa: E702 - negative mass 50 % of the positive mass
    tifffile.imwrite(tmp_path / "psf_neg50.tif", q)
    tifffile.imwrite(tmp_path / "zeros.tif", np.zeros((32, 32), np.float32))
    return tmp_path


CASES = [
    ("missing.png", "psf.tif", "file not found"),
    ("gray.png", "missing.tif", "file not found"),
    ("corrupt.png", "psf.tif", "cannot read corrupt.png"),
    ("corrupt.tif", "psf.tif", "corrupt"),
    ("img.xyz", "psf.tif", "unsupported file type"),
    ("nan.tif", "psf.tif", "NaN or Inf"),
    ("inf.tif", "psf.tif", "NaN or Inf"),
    ("one.tif", "psf.tif", "single pixel"),
    ("empty.npy", "psf.tif", "empty"),
    ("row.tif", "psf.tif", "larger than the image (1, 20)"),
    ("gray.png", "psf_zero.tif", "sums to zero"),
    ("gray.png", "psf_nan.tif", "NaN or Inf"),
    ("gray.png", "psf_big.tif", "larger than the image"),
    ("gray.png", "psf3d.tif", "is 3-D"),
    ("stack.tif", "psf.tif", "is 3-D stack"),
    ("gray.png", "psf_rgb.png", "channel count mismatch"),
    ("rgb.png", "psf2c.tif", "channel count mismatch"),
    ("gray.png", "psf_neg50.tif", "negative mass of"),
]

#: (extra arguments of ``unblur deconvolve gray.png --psf psf.tif -o out/restored.tif``, message)
OPTION_CASES = [
    (["--background", "-1"], "background must be >= 0"),
    (["--background", "0.99"], "is not below the data's mean"),
    (["--method", "rl-tv", "--lambda-tv", "10"], "lambda_tv 10 is too large"),
    (["--method", "rl-tv", "--lambda-tv", "0.2"], "it must be < 0.125"),
    (["--num-iter", "0"], "num_iter must be >= 1"),
    (["--method", "rl-tv", "--num-iter", "0"], "num_iter must be >= 1"),
    (["--num-iter", "-3"], "num_iter must be >= 1"),
    (["--method", "wiener", "--num-iter", "5"], "does not take --num-iter"),
    (["--method", "tikhonov", "--lam", "0"], "must be > 0"),
    (["--boundary", "wrap"], "invalid choice"),
]


@pytest.mark.parametrize("image,psf,message", CASES)
def test_cli_bad_input(d, image, psf, message, capsys):
    out = d / "out" / "restored.tif"
    out.parent.mkdir()
    rc = main(["deconvolve", str(d / image), "--psf", str(d / psf), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and message.replace("is 3-D stack", "3-D stack") in lines[0], err
    assert "; " in lines[0]  # what is wrong; what to do
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize("extra,message", OPTION_CASES)
def test_cli_bad_option(d, extra, message, capsys):
    out = d / "out" / "restored.tif"
    out.parent.mkdir()
    try:
        rc = main(["deconvolve", str(d / "gray.png"), "--psf", str(d / "psf.tif"), "-o", str(out), "--no-progress", *extra])
    except SystemExit as e:  # argparse refuses choices itself (exit 2, usage + one error line)
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2
    lines = [ln for ln in err.splitlines() if not ln.startswith(("warning:", "usage:", " "))]
    assert len(lines) == 1 and message in lines[0], err
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize("argv,message", [
    (["psf", "gaussian", "--size", "100000", "--sigma", "2"], "more than the limit"),
    (["psf", "gaussian", "--size", "0", "--sigma", "2"], "must be >= 1"),
    (["psf", "widefield", "--size", "4000", "--nz", "64", "--z-step", "0.1", "--na", "1", "--wavelength", "0.5",
      "--pixel-size", "0.1"], "more than the limit"),
])
def test_psf_size_refused_before_allocating(d, argv, message, capsys):
    out = d / "out"
    out.mkdir()
    assert main([*argv, "-o", str(out / "p.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert os.listdir(out) == []


def test_output_equal_to_input_is_refused_even_with_force(d, capsys):
    before = (d / "gray.png").read_bytes()
    assert main(["deconvolve", str(d / "gray.png"), "--psf", str(d / "psf.tif"), "-o", str(d / "gray.png"),
                 "--force", "--num-iter", "2", "--no-progress"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert (d / "gray.png").read_bytes() == before


def test_background_rule_on_an_all_zero_image(d, capsys):
    """--background on an all-zero image: no background can be below its mean."""
    rc = main(["deconvolve", str(d / "zeros.tif"), "--psf", str(d / "psf.tif"), "-o", str(d / "z.tif"),
               "--background", "0.1", "--no-progress"])
    assert rc == 2 and "is not below the data's mean" in capsys.readouterr().err
    assert not (d / "z.tif").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc as an unwritable folder")
def test_unwritable_output_folder(d, capsys):
    targets = [("/proc/restored.tif")]
    if os.geteuid() != 0:  # root may write anywhere except pseudo file systems
        ro = d / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        targets.append(str(ro / "restored.tif"))
    for t in targets:
        rc = main(["deconvolve", str(d / "gray.png"), "--psf", str(d / "psf.tif"), "-o", t])
        assert rc == 2 and "not writable" in capsys.readouterr().err
    rc = main(["deconvolve", str(d / "gray.png"), "--psf", str(d / "psf.tif"), "-o", str(d / "nope" / "x.tif")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_stack_refused_by_a_2d_only_method(d, capsys):
    rc = main(["deconvolve", str(d / "stack.tif"), "--psf", str(d / "psf3d.tif"), "--method", "dpir",
               "-o", str(d / "s.tif")])
    err = capsys.readouterr().err
    assert rc == 2 and "restores 2-D images, not 3-D stacks" in err and len(err.strip().splitlines()) == 1
    assert not (d / "s.tif").exists()


def test_stack_to_png_refused_before_computing(d, capsys):
    rc = main(["deconvolve", str(d / "stack.tif"), "--psf", str(d / "psf3d.tif"), "-o", str(d / "s.png")])
    assert rc == 2 and "cannot be written as .png" in capsys.readouterr().err
    assert not (d / "s.png").exists()


def test_negative_psf_is_clipped_with_a_note(d, capsys):
    rc = main(["deconvolve", str(d / "gray.png"), "--psf", str(d / "psf_neg.tif"), "-o", str(d / "o.tif"),
               "--no-progress", "--num-iter", "3"])
    assert rc == 0 and "clipped negative values" in capsys.readouterr().out
    assert read_image(d / "o.tif").shape == (32, 32)


def test_negative_image_pixels_rule(d):
    """RL family: negatives set to 0 with a warning (count given); linear methods keep them."""
    with pytest.warns(UserWarning, match=r"\d+ negative pixel"):
        out = richardson_lucy(read_image(d / "neg.tif"), gaussian_psf(7, 1.5), 3)
    assert out.min() >= 0
    img = read_image(d / "neg.tif")
    lin = tikhonov(img, gaussian_psf(7, 1.5), lam=1e-2, boundary="circular")
    assert lin.min() < -0.05  # kept: the dark regions stay negative
    assert wiener(img, gaussian_psf(7, 1.5), balance=1e-2).min() < -0.05
    with pytest.warns(UserWarning, match="negative pixel"):  # the CLI prints it as "warning: ..."
        rc = main(["deconvolve", str(d / "neg.tif"), "--psf", str(d / "psf.tif"), "-o", str(d / "o.tif"),
                   "--no-progress", "--num-iter", "3"])
    assert rc == 0


def test_colour_psf_per_channel(d):
    assert main(["deconvolve", str(d / "rgb.png"), "--psf", str(d / "psf_rgb.png"), "-o", str(d / "c.tif"),
                 "--no-progress", "--num-iter", "5"]) == 0
    c = read_image(d / "c.tif")
    assert c.shape == (32, 32, 3)
    np.testing.assert_allclose(c[..., 0], c[..., 2], atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda p: richardson_lucy(np.zeros((0, 5)), p), "too small"),
    (lambda p: richardson_lucy(np.ones((16, 16)), np.zeros((3, 3))), "sums to zero"),
    (lambda p: richardson_lucy(np.ones((16, 16)), np.full((3, 3), np.nan)), "NaN"),
    (lambda p: richardson_lucy(np.ones((4, 4)), p), "larger than the image"),
    (lambda p: richardson_lucy(np.ones((16, 16)), p, boundary="wrap"), "unknown boundary"),
    (lambda p: richardson_lucy(np.ones((16, 16)), p, init="noise"), "unknown init"),
    (lambda p: richardson_lucy(np.ones((16, 16)), p, stop="sometimes"), "unknown stopping rule"),
    (lambda p: richardson_lucy(np.ones((16, 16)), p, num_iter=-1), "num_iter"),
    (lambda p: richardson_lucy(np.ones((16, 16, 3, 2)), p), "axes"),
    (lambda p: richardson_lucy(np.ones((16, 16, 3)), np.ones((7, 7, 2)), channel_axis=-1), "channel count mismatch"),
    (lambda p: wiener(np.ones((16, 16)), p, boundary="zero"), "wiener supports"),
    (lambda p: wiener(np.ones((16, 16)), p, reg="tv"), "unknown regulariser"),
    (lambda p: tikhonov(np.ones((16, 16)), p, reg="tv"), "unknown regulariser"),
    (lambda p: tikhonov(np.ones((16, 16)), p, lam=0), "must be > 0"),
])
def test_api_bad_input(call, message):
    with pytest.raises(InputError, match=message) as e:
        call(gaussian_psf(7, 1.5))
    assert "\n" not in str(e.value)
