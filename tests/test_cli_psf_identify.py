"""``unblur psf identify``: the deep-blur identification network from the command line."""

import json

import numpy as np
import torch

from unblur.cli.main import main
from unblur.io import read_image, write_image
from unblur.physics import Convolution


def test_psf_identify_writes_psf_and_coefficients(tmp_path, rng):
    """The command writes the API's PSF and coefficients, and that PSF is the blur's (not the aberration-free one)."""
    from unblur.blind.deepblur.api import IDENTIFY_WEIGHTS, identify_psf
    from unblur.blind.deepblur.psf_model import psf_model_from_description
    from unblur.blind.deepblur.train import load_weights

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
    gamma, psf_api, noll = identify_psf(read_image(tmp_path / "b.tif"))
    np.testing.assert_allclose(psf, psf_api, atol=1e-6)  # the file holds what the API identifies
    log = json.loads((tmp_path / "p.tif.json").read_text())
    assert [int(j) for j in log["coefficients"]] == list(noll) == list(range(4, 12))  # Noll 4..11
    np.testing.assert_allclose(list(log["coefficients"].values()), gamma, atol=1e-6)
    # measured: squared error 8.3e-5 to the blur's PSF against 1.1e-3 for the aberration-free PSF
    model = psf_model_from_description(load_weights(IDENTIFY_WEIGHTS)["psf_model"])
    h0 = model(torch.zeros(1, model.n_params))[0, 0].numpy()
    assert ((psf - psf_true) ** 2).sum() < 0.25 * ((h0 - psf_true) ** 2).sum()


def test_psf_identify_bad_input(tmp_path, capsys):
    rc = main(["psf", "identify", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "p.tif")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "p.tif").exists()
