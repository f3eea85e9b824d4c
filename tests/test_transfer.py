"""Transfer curves: sRGB decoding/encoding, and restoring photographs in linear light from the CLI."""

import doctest
import json

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import signal

import unblur.physics.transfer as transfer
from conftest import gaussian_psf
from unblur.cli.main import main
from unblur.data import data_path
from unblur.errors import InputError
from unblur.io import read_image, write_image
from unblur.metrics import aligned_psnr
from unblur.physics.transfer import decode, encode, linear_to_srgb, srgb_to_linear


def test_module_examples():
    assert doctest.testmod(transfer, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_srgb_curve_values_and_inverse():
    v = np.linspace(-0.2, 1.3, 301)
    assert np.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-12)
    assert np.all(np.diff(srgb_to_linear(v)) > 0)
    # the standard's breakpoints and mid-grey
    assert srgb_to_linear(np.float64(0.04045)) == pytest.approx(0.04045 / 12.92)
    assert srgb_to_linear(np.float64(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert linear_to_srgb(np.float64(0.18)) == pytest.approx(0.46135, abs=1e-5)
    assert srgb_to_linear(np.zeros(3, np.float32)).dtype == np.float32
    x = np.ones(4)
    assert decode(x, "linear") is x and encode(x, "linear") is x
    with pytest.raises(InputError, match="transfer"):
        decode(x, "gamma")


@pytest.fixture
def photo(tmp_path):
    """A Set12 crop blurred in linear light, encoded to sRGB and stored as 16 bits, and its sharp encoded scene."""
    img = iio.imread(data_path("test/set12/05.png")).astype(np.float64) / 255
    psf = gaussian_psf(9, 1.8).astype(np.float64)
    big = img[60:60 + 72, 60:60 + 72]
    rng = np.random.default_rng(0)
    y = encode(np.clip(signal.fftconvolve(decode(big, "srgb"), psf, mode="valid")
                       + 0.003 * rng.standard_normal((64, 64)), 0, 1), "srgb")
    write_image(tmp_path / "photo.png", np.clip(y, 0, 1).astype(np.float32), bits=16)
    write_image(tmp_path / "psf.tif", psf.astype(np.float32))
    return tmp_path, big[4:68, 4:68]


def test_cli_deconvolve_in_linear_light_restores_a_photograph_better(photo):
    d, sharp = photo
    scores = {}
    for t in ("linear", "srgb"):
        out = d / f"out_{t}.tif"
        assert main(["deconvolve", str(d / "photo.png"), "--psf", str(d / "psf.tif"), "--method", "tv-admm",
                     "--transfer", t, "-o", str(out), "--no-preview"]) == 0
        scores[t] = aligned_psnr(read_image(out), sharp)
        assert json.loads(out.with_name(out.name + ".json").read_text())["transfer"] == t
    assert scores["srgb"] > scores["linear"] + 1.0, scores


def test_cli_transfer_with_tiles_refused_and_blind_records_it(photo, capsys):
    d, _ = photo
    rc = main(["deconvolve", str(d / "photo.png"), "--psf", str(d / "psf.tif"), "--transfer", "srgb",
               "--tile", "32,32", "-o", str(d / "tiled.tif")])
    assert rc == 2 and "--transfer srgb" in capsys.readouterr().err and not (d / "tiled.tif").exists()
    out = d / "blind.png"
    assert main(["blind", str(d / "photo.png"), "--kernel-size", "9", "--transfer", "srgb", "-o", str(out),
                 "--no-preview"]) == 0
    log = json.loads(out.with_name(out.name + ".json").read_text())
    assert log["transfer"] == "srgb" and log["method"] == "l0"


def test_api_transfer_decodes_and_encodes(photo):
    import unblur
    d, sharp = photo
    y = read_image(d / "photo.png")
    psf = read_image(d / "psf.tif")
    plain = unblur.deconvolve(y, psf, method="rl", num_iter=30)
    light = unblur.deconvolve(y, psf, method="rl", num_iter=30, transfer="srgb")
    by_hand = encode(unblur.deconvolve(decode(y, "srgb"), psf, method="rl", num_iter=30).image, "srgb")
    assert light.info["transfer"] == "srgb" and plain.info["transfer"] == "linear"
    assert np.allclose(light.image, by_hand, atol=1e-6) and light.image.dtype == y.dtype
    assert aligned_psnr(light.image, sharp) > aligned_psnr(plain.image, sharp)
    blind = unblur.blind_deconvolve(y, kernel_size=9, transfer="srgb")
    assert blind.info["transfer"] == "srgb" and blind.kernel.shape == (9, 9)
    import torch
    with pytest.raises(InputError, match="numpy"):
        unblur.deconvolve(torch.from_numpy(y)[None, None], psf, transfer="srgb")
    with pytest.raises(InputError, match="transfer"):
        unblur.deconvolve(y, psf, transfer="log")
