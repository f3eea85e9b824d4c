"""Data-consistency maps: the re-blur residual and the seed spread (unblur.diagnostics)."""

import numpy as np
import pytest
import torch

from unblur.diagnostics import OUTLIER_LEVEL, residual_map, seed_spread, summarize
from unblur.errors import InputError
from unblur.physics.convolution import convolve


def _gauss_psf(k=7, s=1.5):
    g = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * s**2))
    p = np.outer(g, g)
    return (p / p.sum()).astype(np.float32)


def _scene(size=96, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = 0.5 + 0.3 * np.sin(xx / 5) * np.cos(yy / 7) + 0.05 * rng.standard_normal((size, size))
    img = np.clip(img, 0, 1).astype(np.float32)
    return np.stack([img, img[::-1], img.T], -1) if channels == 3 else img


def _blur(x, psf, sigma, boundary="replicate", seed=1):
    t = torch.from_numpy(x)
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    b = convolve(t, torch.from_numpy(psf), boundary)[0]
    b = b[0].numpy() if x.ndim == 2 else b.permute(1, 2, 0).numpy()
    return b + sigma * np.random.default_rng(seed).standard_normal(b.shape).astype(np.float32)


@pytest.mark.parametrize("boundary", ["replicate", "circular"])
def test_residual_of_the_true_image_is_standard_normal(boundary):
    x, psf, sigma = _scene(), _gauss_psf(), 0.02
    y = _blur(x, psf, sigma, boundary)
    raw = residual_map(y, x, psf, sigma, boundary=boundary, window=1)
    assert raw.shape == y.shape and raw.dtype == np.float32
    assert abs(raw.mean()) < 0.05 and 0.95 < raw.std() < 1.05  # exactly the noise / sigma
    smooth = residual_map(y, x, psf, sigma, boundary=boundary)  # window 7: window sum / 7, still ~N(0, 1)
    assert abs(smooth.mean()) < 0.3 and 0.7 < smooth.std() < 1.3
    assert summarize(residual=smooth)["residual_outlier_share"] < 0.02
    # with the sigma estimated from the data, the same scale
    est = residual_map(y, x, psf, None, boundary=boundary, window=1)
    assert 0.8 < est.std() < 1.25


def test_residual_is_large_where_the_restoration_was_altered():
    x, psf, sigma = _scene(), _gauss_psf(), 0.02
    y = _blur(x, psf, sigma)
    altered = x.copy()
    altered[40:56, 40:56] += 0.1  # invented structure, 5 sigma of the data
    r = residual_map(y, altered, psf, sigma)
    inside = np.abs(r[44:52, 44:52])
    outside = np.abs(np.concatenate([r[:30].ravel(), r[66:].ravel()]))
    assert inside.min() > OUTLIER_LEVEL and inside.mean() > 10
    assert (outside > OUTLIER_LEVEL).mean() < 0.02
    assert summarize(residual=r)["residual_outlier_share"] > 0.02


def test_residual_colour_layout_and_off_colour_patch():
    x, psf, sigma = _scene(64, 3), _gauss_psf(), 0.02
    y = _blur(x, psf, sigma)
    assert residual_map(y, x, psf, sigma).shape == (64, 64, 3)
    shifted = x.copy()
    shifted[20:40, 20:40, 0] += 0.08  # off-colour patch: red up, blue down, brightness about unchanged
    shifted[20:40, 20:40, 2] -= 0.08
    r = residual_map(y, shifted, psf, sigma)
    assert r[25:35, 25:35, 0].mean() > OUTLIER_LEVEL and r[25:35, 25:35, 2].mean() < -OUTLIER_LEVEL
    assert np.abs(r[25:35, 25:35, 1]).mean() < 2


def test_residual_refuses_bad_input():
    x, psf = _scene(32), _gauss_psf()
    y = _blur(x, psf, 0.01)
    with pytest.raises(InputError, match="object"):
        residual_map(y, x, psf, 0.01, boundary="valid")  # the valid model's object is larger than the image
    with pytest.raises(InputError, match="sigma"):
        residual_map(y, x, psf, 0.0)
    with pytest.raises(InputError):
        residual_map(y, x[..., None].repeat(3, -1), psf, 0.01)


def test_seed_spread():
    a = _scene(16)
    assert np.all(seed_spread([a, a, a]) == 0)
    b = a + 0.1 * np.random.default_rng(0).standard_normal(a.shape).astype(np.float32)
    s = seed_spread(np.stack([a, b]))
    assert s.shape == a.shape and s.min() >= 0 and s.mean() > 0.01
    np.testing.assert_allclose(s, np.abs(a - b) / np.sqrt(2), rtol=1e-5, atol=1e-7)  # ddof=1 for two samples
    assert summarize(spread=s)["seed_spread_mean"] == pytest.approx(float(s.mean()))
    with pytest.raises(InputError, match="at least 2"):
        seed_spread([a])
