"""One noise estimate: wavelet MAD per channel / per (b, c), numpy and torch layouts."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from unblur.errors import InputError
from unblur.physics.noise import estimate_noise_sigma


def _smooth(shape, seed=0):
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 4)


def test_rgb_is_the_mean_of_per_channel_sigmas_not_the_channel_mean():
    rng = np.random.default_rng(1)
    rgb = np.stack([_smooth((128, 128), s) for s in range(3)], -1) + 0.03 * rng.standard_normal((128, 128, 3))
    est = estimate_noise_sigma(rgb, channel_axis=-1)
    assert est == pytest.approx(0.03, rel=0.1)
    # what the channel mean gives for independent noise: sigma / sqrt(3)
    assert estimate_noise_sigma(rgb.mean(-1)) == pytest.approx(0.03 / np.sqrt(3), rel=0.1)
    # channels with different noise: the mean of the sigmas
    rgb2 = rgb.copy()
    rgb2[..., 0] += 0.06 * rng.standard_normal((128, 128))
    s0 = np.hypot(0.03, 0.06)
    assert estimate_noise_sigma(rgb2, channel_axis=-1) == pytest.approx((s0 + 0.06) / 3, rel=0.1)
    assert estimate_noise_sigma(np.moveaxis(rgb, -1, 0), channel_axis=0) == pytest.approx(est)
    assert estimate_noise_sigma(rgb, spatial_axes=(0, 1)) == pytest.approx(est)


def test_torch_batches_are_estimated_per_image_and_channel():
    g = torch.Generator().manual_seed(2)
    clean = torch.from_numpy(np.stack([_smooth((96, 96), s) for s in range(6)]).reshape(2, 3, 96, 96))
    y = clean + 0.02 * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
    assert estimate_noise_sigma(y) == pytest.approx(0.02, rel=0.1)
    assert estimate_noise_sigma(y.float()) == pytest.approx(0.02, rel=0.1)
    y[1] += 0.04 * torch.randn(y[1].shape, generator=g, dtype=y.dtype)       # second image noisier
    assert estimate_noise_sigma(y) == pytest.approx((0.02 + np.hypot(0.02, 0.04)) / 2, rel=0.1)
    # (B, C, Z, Y, X) stacks: HHH band over the three spatial axes
    vol = torch.from_numpy(_smooth((16, 48, 48)))[None, None]
    vol = vol + 0.05 * torch.randn(vol.shape, generator=g, dtype=vol.dtype)
    assert estimate_noise_sigma(vol) == pytest.approx(0.05, rel=0.1)
    assert estimate_noise_sigma(vol[0, 0].numpy()) == pytest.approx(estimate_noise_sigma(vol))
    # a 2-D tensor is an image like a numpy array
    assert estimate_noise_sigma(y[0, 0]) == pytest.approx(estimate_noise_sigma(y[0, 0].numpy()))


def test_noise_free_and_errors():
    img = np.kron(np.random.default_rng(3).random((8, 8)), np.ones((8, 8)))   # piecewise constant
    assert estimate_noise_sigma(img) < 1e-12
    assert estimate_noise_sigma(np.stack([img] * 4)) < 1e-12                # a stack of it
    with pytest.raises(InputError, match="both"):
        estimate_noise_sigma(img, channel_axis=-1, spatial_axes=(0,))
    with pytest.raises(InputError):
        estimate_noise_sigma(torch.zeros(1, 1, 8, 8), channel_axis=1)
    with pytest.raises(InputError):
        estimate_noise_sigma(np.zeros((1, 1)))
