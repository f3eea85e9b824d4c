"""Metrics: PSNR, SSIM (vs scikit-image), ISNR, shift-tolerant protocol, error ratio."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity as sk_ssim

from unblur.errors import InputError
from unblur.metrics import best_shift, error_ratio, isnr, psnr, shift_tolerant, ssim


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    ref = ndimage.gaussian_filter(rng.random((64, 72)), 3)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    return ref, np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)


def test_psnr_known_value():
    a = np.zeros((10, 10))
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert psnr(a + 2.0, a, data_range=20.0) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")
    with pytest.raises(InputError, match="shape mismatch"):
        psnr(a, a[:5])


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_matches_skimage_gray(pair, gaussian):
    ref, noisy = pair
    ours = ssim(noisy, ref, gaussian_weights=gaussian)
    theirs = sk_ssim(noisy, ref, data_range=1.0, gaussian_weights=gaussian, sigma=1.5, use_sample_covariance=not gaussian)
    assert abs(ours - theirs) < 1e-3 and ours < 0.95


def test_ssim_matches_skimage_colour_and_3d(pair):
    ref, noisy = pair
    rgb_ref = np.stack([ref, ref[::-1], ref[:, ::-1]], -1)
    rgb = np.stack([noisy, noisy[::-1], noisy[:, ::-1]], -1)
    ours = ssim(rgb, rgb_ref, channel_axis=-1)
    assert abs(ours - sk_ssim(rgb, rgb_ref, data_range=1.0, channel_axis=-1)) < 1e-3
    vol_ref = np.stack([ref[:, :20]] * 9)
    vol = np.stack([noisy[:, :20 + i][:, i:] for i in range(9)])
    assert abs(ssim(vol, vol_ref) - sk_ssim(vol, vol_ref, data_range=1.0)) < 1e-3


def test_isnr(pair):
    ref, noisy = pair
    assert isnr(ref + 0.5 * (noisy - ref), noisy, ref) == pytest.approx(10 * np.log10(4))


def test_shift_tolerant_recovers_subpixel_shift(pair):
    ref, _ = pair
    moved = ndimage.shift(ref, (1.25, -2.5), order=1, mode="nearest")
    dy, dx = best_shift(moved, ref, crop=15)
    assert (dy, dx) == (-1.25, 2.5)
    r = shift_tolerant(moved, ref)
    assert r["shift"] == (-1.25, 2.5) and r["psnr"] > 40 and r["ssim"] > 0.99
    assert psnr(moved, ref) < 30
    # error ratio = MSE(x) / MSE(reference) after alignment: offsets 0.02 vs 0.01 give 4, whatever the shift of x
    assert error_ratio(ref + 0.02, ref + 0.01, ref) == pytest.approx(4.0, rel=1e-6)
    assert error_ratio(moved + 0.02, ref + 0.01, ref) == pytest.approx(4.0, rel=0.03)
    assert error_ratio(ref + 0.01, ref + 0.02, ref) == pytest.approx(0.25, rel=1e-6)
