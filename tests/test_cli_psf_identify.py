"""``unblur psf identify``: the deep-blur identification network from the command line."""

import json

import numpy as np
import torch

from unblur.cli.main import main
from unblur.io import read_image, write_image
from unblur.physics import Convolution


def test_psf_identify_writes_psf_and_coefficients(tmp_path, rng):
    from unblur.blind.deepblur.api import identify_psf
    from unblur.psf.zernike import PupilPSF  # noqa: F401  (the model the network was trained with)

    sharp = rng.random((96, 96)).astype(np.float32)
    sharp = np.kron(sharp[::4, ::4], np.ones((4, 4), np.float32))  # blocky, so blur is visible
    _, psf_true, _ = identify_psf(sharp)  # any valid PSF of the model family
    op = Convolution(torch.from_numpy(psf_true), sharp.shape, "reflect")
    blurred = op.A(torch.from_numpy(sharp)[None, None])[0, 0].numpy()
    write_image(tmp_path / "b.tif", blurred)
    rc = main(["psf", "identify", str(tmp_path / "b.tif"), "-o", str(tmp_path / "p.tif")])
    assert rc == 0
    psf = read_image(tmp_path / "p.tif")
    assert psf.shape == (31, 31) and abs(psf.sum() - 1) < 1e-4 and psf.min() >= 0
    log = json.loads((tmp_path / "p.json").read_text())
    assert len(log["coefficients"]) == 8  # Noll 4..11
    assert all(abs(v) < 0.5 for v in log["coefficients"].values())


def test_psf_identify_bad_input(tmp_path, capsys):
    rc = main(["psf", "identify", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "p.tif")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "p.tif").exists()
