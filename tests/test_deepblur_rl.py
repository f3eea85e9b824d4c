"""deep-blur with Richardson-Lucy as the second stage (``deblur="rl"``): IN's PSF, then RL."""

import numpy as np
import pytest

from unblur.api import blind_deconvolve
from unblur.blind.deepblur.api import identify_psf
from unblur.errors import InputError
from unblur.solvers import richardson_lucy


def _image(shape=(72, 72), seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    x[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = 1.0
    from scipy.ndimage import gaussian_filter
    return np.clip(gaussian_filter(x, 1.5) * 8, 0, 1).astype(np.float32)


def test_rl_second_stage_uses_the_identified_psf():
    y = _image()
    res = blind_deconvolve(y, "deepblur", deblur="rl", rl_iters=5)
    _, psf, _ = identify_psf(y)
    assert res.info["deblur"] == "rl" and res.info["nfe"] == 1
    np.testing.assert_allclose(res.kernel, psf, atol=1e-6)
    expected = richardson_lucy(y, psf, num_iter=5, boundary="valid")
    np.testing.assert_allclose(res.image, expected, atol=1e-5)
    dn = blind_deconvolve(y, "deepblur")
    assert dn.info["deblur"] == "dn" and not np.allclose(dn.image, res.image)


def test_rl_second_stage_colour_and_bad_choice():
    y = np.stack([_image(seed=s) for s in range(3)], -1)
    res = blind_deconvolve(y, "deepblur", deblur="rl", rl_iters=3)
    assert res.image.shape == y.shape and np.isfinite(res.image).all()
    with pytest.raises(InputError, match="not one of dn, rl"):
        blind_deconvolve(y[..., 0], "deepblur", deblur="wiener")
