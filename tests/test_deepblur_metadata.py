"""Deep-blur takes its pixel size from the image's metadata (ImageJ / OME TIFF) when no optics are given."""

import json

import numpy as np
import pytest
import torch

from unblur.blind.deepblur.api import (CUTOFF_RANGE, cutoff_mismatch, identify_psf, optics_for_pixel_size,
                                       training_optics)
from unblur.blind.deepblur.psf_model import eigen_psf_model, model_optics, zernike_psf_model
from unblur.cli.main import main
from unblur.errors import InputError
from unblur.io import read_image, read_metadata, write_image
from unblur.metadata import ImageMetadata
from unblur.physics import Convolution


def _blurred(rng, size=64, cutoff_pixel=0.1):
    """A blocky image blurred by an aberrated Zernike PSF at NA 1.2, wavelength 0.6 um and ``cutoff_pixel`` um."""
    sharp = np.kron(rng.random((size // 4 + 8, size // 4 + 8)), np.ones((4, 4))).astype(np.float32)
    model = zernike_psf_model((1.2, 0.6, cutoff_pixel))
    h = model(torch.full((1, 8), 0.08))
    sharp = sharp[:size + 30, :size + 30]  # valid blur of a 31x31 PSF
    return Convolution(h[0], (size, size), "valid").A(torch.from_numpy(sharp[None, None]))[0, 0].numpy()


def _write(path, image, pixel):
    write_image(path, image, metadata=ImageMetadata(axes="YX").with_voxel_size((pixel, pixel)))
    assert read_metadata(path).voxel_size(2) == pytest.approx((pixel, pixel))  # the file really carries it


def test_training_optics_and_rule():
    assert training_optics() == (1.2, 0.6, 0.1)
    assert model_optics(eigen_psf_model(2, (1.0, 0.5, 0.1), n_samples=20).description) == (1.0, 0.5, 0.1)
    assert optics_for_pixel_size(0.11) == (1.2, 0.6, 0.11)
    lo, hi = CUTOFF_RANGE
    assert cutoff_mismatch((1.2, 0.6, 0.1 * (lo + hi) / 2), training_optics()) is None
    assert "outside" in cutoff_mismatch((1.2, 0.6, 0.1 * lo * 0.9), training_optics())
    assert "outside" in cutoff_mismatch((1.2, 0.6, 0.1 * hi * 1.1), training_optics())
    with pytest.raises(InputError, match="above the 0.5"):  # cut-off 0.6 cycles/pixel: not sampled
        optics_for_pixel_size(0.3)
    with pytest.raises(InputError):
        optics_for_pixel_size(0)


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif"])
def test_psf_identify_takes_pixel_size_from_metadata(tmp_path, rng, capsys, recwarn, suffix):
    y = _blurred(rng, cutoff_pixel=0.12)
    path = tmp_path / f"img{suffix}"
    _write(path, y, 0.12)
    rc = main(["psf", "identify", str(path), "-o", str(tmp_path / "p.tif"), "--no-preview"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"pixel size 0.12 µm taken from img{suffix}'s metadata" in out.out
    assert not [w for w in recwarn if "cut-off" in str(w.message)]  # ratio 1.2: inside the covered range
    log = json.loads((tmp_path / "p.tif.json").read_text())
    assert log["optics"] == "1.2,0.6,0.12"
    psf = read_image(tmp_path / "p.tif")
    _, at_pixel, _ = identify_psf(y, optics=(1.2, 0.6, 0.12))
    _, at_training, _ = identify_psf(y)
    np.testing.assert_allclose(psf, at_pixel, atol=1e-6)  # the PSF is evaluated at the image's pixel size
    assert np.abs(at_pixel - at_training).max() > 1e-3
    assert read_metadata(tmp_path / "p.tif").voxel_size(2) == pytest.approx((0.12, 0.12))


def test_psf_identify_explicit_optics_and_no_metadata(tmp_path, rng, capsys):
    y = _blurred(rng)
    _write(tmp_path / "img.tif", y, 0.12)
    rc = main(["psf", "identify", str(tmp_path / "img.tif"), "-o", str(tmp_path / "p.tif"), "--no-preview",
               "--optics", "1.2,0.6,0.1"])
    assert rc == 0 and "taken from" not in capsys.readouterr().out  # the user's optics win
    write_image(tmp_path / "plain.tif", y)  # no pixel size: the training optics, silently
    rc = main(["psf", "identify", str(tmp_path / "plain.tif"), "-o", str(tmp_path / "q.tif"), "--no-preview"])
    assert rc == 0 and "taken from" not in capsys.readouterr().out
    np.testing.assert_allclose(read_image(tmp_path / "q.tif"), read_image(tmp_path / "p.tif"), atol=1e-6)


def test_psf_identify_out_of_range_pixel(tmp_path, rng, capsys):
    y = _blurred(rng)
    _write(tmp_path / "fine.tif", y, 0.06)  # cut-off ratio 0.6: runs with a one-line warning
    with pytest.warns(UserWarning, match=r"cut-off 0.12 cycles/pixel .* outside 0.75-1.35 x the 0.2"):
        rc = main(["psf", "identify", str(tmp_path / "fine.tif"), "-o", str(tmp_path / "p.tif"), "--no-preview"])
    assert rc == 0 and "pixel size 0.06 µm taken from" in capsys.readouterr().out
    _write(tmp_path / "coarse.tif", y, 0.3)  # cut-off 0.6 cycles/pixel: refused, nothing written
    rc = main(["psf", "identify", str(tmp_path / "coarse.tif"), "-o", str(tmp_path / "q.tif"), "--no-preview"])
    assert rc == 2 and "above the 0.5" in capsys.readouterr().err
    assert not (tmp_path / "q.tif").exists()


def test_blind_deepblur_takes_pixel_size_from_metadata(tmp_path, rng, capsys):
    y = _blurred(rng, cutoff_pixel=0.11)
    _write(tmp_path / "img.ome.tif", y, 0.11)
    rc = main(["blind", str(tmp_path / "img.ome.tif"), "--method", "deepblur", "--deblur", "rl", "--rl-iters", "2",
               "-o", str(tmp_path / "out.tif")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "pixel size 0.11 µm taken from img.ome.tif's metadata" in out.out
    log = json.loads((tmp_path / "out.tif.json").read_text())
    assert log["params"]["optics"] == "1.2,0.6,0.11"
    _, psf, _ = identify_psf(y, optics=(1.2, 0.6, 0.11))
    np.testing.assert_allclose(read_image(tmp_path / "out_kernel.tif"), psf, atol=1e-6)
