"""PSF from beads (synthetic with a known PSF, and the flowdec bead stack) and the ``unblur psf`` command."""

import json

import numpy as np
import pytest
import tifffile

from unblur.cli.main import main
from unblur.errors import InputError
from unblur.psf import center_of_mass, gaussian_kernel, psf_from_beads


def _synthetic_beads(seed=0, size=256, sx=2.5, sy=1.5, angle=30.0, photons=1000.0, background=10.0):
    """Beads at random sub-pixel positions (>= 40 px apart) imaged by an analytic rotated Gaussian."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    img = np.full((size, size), background)
    centres = []
    for _ in range(400):
        c = rng.uniform(20, size - 20, 2)
        if all(np.hypot(*(c - d)) > 40 for d in centres):
            centres.append(c)
    a = np.radians(angle)
    for cy, cx in centres:
        dx, dy = xx - cx, -(yy - cy)
        u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        img += photons * np.exp(-(u**2) / (2 * sx**2) - v**2 / (2 * sy**2))
    return rng.poisson(img).astype(np.float32), np.array(centres)


def test_synthetic_beads_recover_known_psf():
    img, centres = _synthetic_beads()
    psf, info = psf_from_beads(img, 25, return_info=True)
    ref = gaussian_kernel(25, 2.5, 1.5, 30.0)
    err = np.linalg.norm(psf - ref) / np.linalg.norm(ref)
    assert info["used"] == len(centres) == 21
    assert err < 0.03  # measured 0.015 (Poisson noise, 1000 photons per bead peak)
    assert abs(psf.sum() - 1) < 1e-5 and np.allclose(center_of_mass(psf), [12, 12], atol=0.05)
    # sub-pixel registration: found centres match the true ones
    found = info["positions"]
    d = np.sqrt(((found[:, None] - centres[None]) ** 2).sum(-1)).min(1)
    assert d.max() < 0.15


def test_overlapping_beads_rejected_and_no_beads_error():
    img = np.zeros((64, 64), np.float32)
    img[30, 30] = img[30, 36] = 1.0  # two beads 6 px apart: neither is isolated for a 15-px window
    with pytest.raises(InputError):
        psf_from_beads(img, 15, smooth=0)
    with pytest.raises(InputError):
        psf_from_beads(np.zeros((32, 32)), 9)


def test_flowdec_bead_stack(shared_data):
    folder = shared_data("microscopy/flowdec/bead-25pct")
    data = tifffile.imread(folder / "data.tif")
    kernel = tifffile.imread(folder / "kernel.tif").astype(np.float64)
    psf, info = psf_from_beads(data, 33, return_info=True)
    assert info["used"] == 1 and np.allclose(info["positions"][0], [25.1, 30.6, 31.6], atol=0.2)
    assert psf.shape == (33, 33, 33) and abs(psf.sum() - 1) < 1e-5
    ref = kernel[16:49, 16:49, 16:49]
    ref /= ref.sum()
    err = np.linalg.norm(psf - ref) / np.linalg.norm(ref)
    # This bead is not sub-resolution: its lateral half-maximum area is ~90 px against ~1 px for
    # kernel.tif, so the average is bead (x) PSF and differs strongly from kernel.tif (measured 0.907).
    assert 0.8 < err < 0.95


@pytest.mark.parametrize("argv,shape", [
    (["gaussian", "--size", "61", "--sigma", "3"], (61, 61)),
    (["disk", "--size", "15", "--radius", "5"], (15, 15)),
    (["motion", "--size", "33", "--seed", "4"], (33, 33)),
    (["motion", "--size", "21", "--length", "9", "--angle", "20"], (21, 21)),
    (["zernike", "--size", "31", "--cutoff", "0.2", "--random", "--seed", "3"], (31, 31)),
    (["widefield", "--size", "17", "--nz", "9", "--z-step", "0.2", "--na", "1.2", "--wavelength", "0.5",
      "--pixel-size", "0.08", "--refractive-index", "1.33"], (9, 17, 17)),
])
def test_cli_psf(tmp_path, argv, shape):
    out = tmp_path / "psf.tif"
    assert main(["psf", *argv, "-o", str(out)]) == 0
    p = tifffile.imread(out)
    assert p.shape == shape and abs(p.sum() - 1) < 1e-4 and p.min() >= 0
    assert (tmp_path / "psf.tif.preview.png").exists()
    assert json.loads((tmp_path / "psf.tif.json").read_text())["kind"] == argv[0]


def test_cli_seed_reproducible_and_beads(tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["psf", "motion", "--seed", seed, "-o", str(tmp_path / f"{name}.tif"), "--no-preview"]) == 0
    a, b, c = (tifffile.imread(tmp_path / f"{n}.tif") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    img, _ = _synthetic_beads()
    tifffile.imwrite(tmp_path / "beads.tif", img)
    assert main(["psf", "beads", str(tmp_path / "beads.tif"), "--size", "25", "-o", str(tmp_path / "m.tif")]) == 0
    assert np.linalg.norm(tifffile.imread(tmp_path / "m.tif") - gaussian_kernel(25, 2.5, 1.5, 30.0)) < 0.03 * np.linalg.norm(
        gaussian_kernel(25, 2.5, 1.5, 30.0))


@pytest.mark.parametrize("argv", [
    ["gaussian", "--sigma", "-1"],
    ["zernike", "--na", "1.5", "--wavelength", "0.5", "--pixel-size", "0.05"],
    ["zernike", "--na", "1.2"],
    ["zernike", "--cutoff", "0.2", "--coef", "four=0.1"],
    ["disk", "--size", "11", "--radius", "8"],
    ["motion", "--size", "9"],
])
def test_cli_bad_parameters_exit_2(tmp_path, argv, capsys):
    assert main(["psf", *argv, "-o", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unblur psf: error:")
    assert not (tmp_path / "x.tif").exists()
