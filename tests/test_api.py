"""The public Python API: every name in unblur.__all__, star import, lazy loading, python -m unblur."""

import subprocess
import sys

import numpy as np
import pytest

import unblur
from unblur.errors import InputError


def test_every_public_name_imports():
    for name in unblur.__all__:
        assert getattr(unblur, name) is not None, name
    assert callable(unblur.deconvolve) and callable(unblur.blind_deconvolve)
    ns: dict = {}
    exec("from unblur import *", ns)
    assert set(unblur.__all__) <= set(ns)
    with pytest.raises(AttributeError):
        unblur.no_such_name  # noqa: B018


def test_import_unblur_is_light():
    code = ("import sys, unblur\nunblur.deconvolve; unblur.blind_deconvolve; unblur.get_method('rl').params\n"
            "assert 'torch' not in sys.modules and 'scipy' not in sys.modules\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_python_m_unblur():
    r = subprocess.run([sys.executable, "-m", "unblur", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "deconvolve" in r.stdout and "blind" in r.stdout
    r = subprocess.run([sys.executable, "-m", "unblur", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"unblur {unblur.__version__}"


def test_deconvolve_and_kind_errors():
    x = np.zeros((24, 24), np.float32)
    x[8:16, 8:16] = 1
    psf = np.ones((3, 3), np.float32) / 9
    from scipy.ndimage import convolve
    y = convolve(x, psf, mode="reflect")
    r = unblur.deconvolve(y, psf)  # default: rl
    assert r.info["method"] == "rl" and r.info["params"]["num_iter"] == 50 and r.info["time_s"] > 0
    assert np.abs(r.image - x).mean() < np.abs(y - x).mean()
    with pytest.raises(InputError, match="blind method"):
        unblur.deconvolve(y, psf, method="selfdeblur")
    with pytest.raises(InputError, match="needs a PSF"):
        unblur.blind_deconvolve(y, method="rl")
    with pytest.raises(InputError, match="no parameter"):
        unblur.deconvolve(y, psf, method="wiener", num_iter=3)


def test_objects_pass_through_the_registry():
    """Benchmarks pass a prior object and a torch device through deconvolve."""
    import torch

    from unblur.models import GaussianSmoother
    y = np.full((16, 16), 0.5, np.float32)
    r = unblur.deconvolve(y, np.ones((3, 3)) / 9, method="dpir", prior=GaussianSmoother(), num_iter=2,
                          device=torch.device("cpu"))
    assert r.image.shape == y.shape and r.info["nfe"] == 2
