"""Golden-array regression tests: RL, RL-TV, Wiener and Tikhonov on the bundled example.

Each reference is the 64x64 crop ``[96:160, 96:160]`` of the method's result on
``examples/blurred.tif`` with ``examples/psf.tif`` (float32 ``.npy`` in ``tests/golden/``).  They pin
the numbers, next to the PSNR-gain tests of ``test_solvers.py`` that pin the quality.  Tolerance:
``max |result - reference| <= 1e-4`` (image in [0, 1]; FFT backends and thread counts move float32
results by ~1e-6), except RL-TV: its TV gradient ``grad x / sqrt(|grad x|^2 + eps^2)`` with
``eps = 1e-3`` amplifies float32 round-off over 25 iterations (two exact OTFs that differ by 1e-7,
from torch's and scipy's FFT or from two FFT grid sizes, move the crop by up to 6e-4), so its bound
is 1e-3.  Regenerate after an intended change of a method with::

    UNBLUR_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

import os
from pathlib import Path

import numpy as np
import pytest

from unblur.io import read_image
from unblur.solvers import richardson_lucy, rl_tv, tikhonov, wiener

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CROP = (slice(96, 160), slice(96, 160))
TOL = 1e-4
TOL_METHOD = {"rl_tv": 1e-3}

METHODS = {
    "rl": lambda y, p: richardson_lucy(y, p, 30),
    "rl_tv": lambda y, p: rl_tv(y, p, 25, lambda_tv=0.005),
    "wiener": lambda y, p: wiener(y, p, balance=0.01),
    "tikhonov": lambda y, p: tikhonov(y, p, lam=2e-3),
}


@pytest.fixture(scope="module")
def example():
    return read_image(ROOT / "examples" / "blurred.tif"), read_image(ROOT / "examples" / "psf.tif")


@pytest.mark.filterwarnings("ignore:image.*negative pixel")  # the example has a few (RL sets them to 0)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_golden(example, name):
    y, psf = example
    out = np.asarray(METHODS[name](y, psf), np.float32)
    assert out.shape == y.shape and np.isfinite(out).all()
    crop = out[CROP]
    path = GOLDEN / f"{name}.npy"
    if os.environ.get("UNBLUR_REGENERATE_GOLDEN"):
        np.save(path, crop)
    ref = np.load(path)
    assert np.abs(crop - ref).max() <= TOL_METHOD.get(name, TOL), f"{name}: max deviation {np.abs(crop - ref).max():.2e}"
