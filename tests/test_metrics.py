"""Metrics: PSNR, SSIM (vs scikit-image), ISNR, alignment and shift-tolerant protocol, error ratio, kernel error."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity as sk_ssim

from unblur.errors import InputError
from unblur import metrics
from unblur.metrics import align, aligned_psnr, error_ratio, isnr, kernel_error, psnr, shift_tolerant, ssim


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
    _, (dy, dx) = align(moved, ref, crop=15)
    assert abs(dy + 1.25) < 0.06 and abs(dx - 2.5) < 0.06
    r = shift_tolerant(moved, ref)
    assert r["shift"] == (dy, dx) and r["psnr"] > 40 and r["ssim"] > 0.99
    assert psnr(moved, ref) < 30
    # error ratio = MSE(x) / MSE(reference) after alignment: offsets 0.02 vs 0.01 give 4, whatever the shift of x
    # (up to 1%: a sub-pixel shift along the mean gradient trades a little against a constant offset)
    assert error_ratio(ref + 0.02, ref + 0.01, ref) == pytest.approx(4.0, rel=0.01)
    assert error_ratio(moved + 0.02, ref + 0.01, ref) == pytest.approx(4.0, rel=0.03)
    assert error_ratio(ref + 0.01, ref + 0.02, ref) == pytest.approx(0.25, rel=0.01)
    noise = 0.01 * np.random.default_rng(5).standard_normal(ref.shape)
    assert error_ratio(ref + 2 * noise, ref + noise, ref) == pytest.approx(4.0, rel=0.01)


@pytest.mark.parametrize("shift", [(3.0, -7.0), (0.4, 0.7), (-9.5, 9.8), (1.05, -2.35)])
def test_align_recovers_integer_and_subpixel_shifts(shift):
    rng = np.random.default_rng(1)
    ref = ndimage.gaussian_filter(rng.random((96, 80)), 2)
    spline = ndimage.shift(ref, shift, order=3, mode="nearest")
    fourier = np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(ref), shift)))
    for moved in (spline, fourier):
        aligned, s = align(moved, ref, max_shift=10, crop=12)
        assert np.allclose(s, (-shift[0], -shift[1]), atol=0.026), s
    inner = (slice(12, -12), slice(12, -12))
    assert psnr(aligned[inner], ref[inner], ref.max()) > 50 > psnr(moved[inner], ref[inner], ref.max())
    # integer precision only when asked, and the search is bounded by max_shift
    if all(abs(v % 1 - 0.5) > 0.2 for v in shift):   # nearest integer well defined
        assert align(spline, ref, crop=12, upsample=1)[1] == tuple(float(round(-v)) for v in shift)
    assert max(abs(v) for v in align(spline, ref, max_shift=2, crop=12)[1]) <= 2


def test_align_is_one_fft_search_not_a_brute_force(monkeypatch):
    """The whole search costs a few FFTs; the image is resampled exactly once (at the chosen shift)."""
    calls = []
    real_shift = ndimage.shift
    monkeypatch.setattr(metrics.ndimage, "shift", lambda *a, **k: calls.append(1) or real_shift(*a, **k))
    rng = np.random.default_rng(2)
    ref = ndimage.gaussian_filter(rng.random((128, 128)), 2)
    moved = real_shift(ref, (2.3, -1.6), order=3, mode="nearest")
    r = shift_tolerant(moved, ref)
    assert len(calls) == 1 and np.allclose(r["shift"], (-2.3, 1.6), atol=0.026)


def test_align_colour_and_stack():
    rng = np.random.default_rng(3)
    ref = ndimage.gaussian_filter(rng.random((64, 64, 3)), (2, 2, 0))
    moved = ndimage.shift(ref, (1.5, -0.5, 0), order=3, mode="nearest")
    r = shift_tolerant(moved, ref, channel_axis=-1, crop=8, max_shift=4)
    assert np.allclose(r["shift"], (-1.5, 0.5), atol=0.026) and r["ssim"] > 0.999
    assert aligned_psnr(moved, ref, channel_axis=-1, crop=8, max_shift=4) == pytest.approx(r["psnr"])
    vol = ndimage.gaussian_filter(rng.random((24, 40, 40)), 2)
    _, s = align(ndimage.shift(vol, (1, 0.5, -2), order=3, mode="nearest"), vol, max_shift=3, crop=5)
    assert np.allclose(s, (-1, -0.5, 2), atol=0.026)
    with pytest.raises(InputError, match="too small"):
        align(vol, vol, crop=12)


def test_kernel_error_is_shift_invariant_and_normalised():
    k = np.zeros((9, 9))
    k[4, 2:7] = 1
    k /= k.sum()
    assert kernel_error(np.roll(k, (2, -1), (0, 1)), k) < 1e-12            # integer translation
    assert kernel_error(np.pad(k, 3), k) < 1e-12                          # different sizes
    assert kernel_error(3 * k, k) < 1e-12                                 # scaled to sum 1
    dirac = np.zeros((9, 9))
    dirac[4, 4] = 1
    assert kernel_error(dirac, k) == pytest.approx(4.0)                   # m - 1 for m = 5 equal pixels
    r = np.arange(15) - 7
    gauss = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * 1.5**2))
    half = np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(gauss / gauss.sum()), (1.5, -0.25))))
    assert kernel_error(half, gauss) < 1e-6                               # sub-pixel translation
    assert kernel_error(half, gauss, upsample=1) > 1e-2                   # integer search alone misses it
    # equal-norm kernels: 2 (1 - maximum normalised cross-correlation) (Hu & Yang's kernel similarity)
    other = np.zeros((9, 9))
    other[2:7, 4] = 1
    other /= other.sum()
    assert kernel_error(other, k) == pytest.approx(2 * (1 - 1 / 5))
    with pytest.raises(InputError):
        kernel_error(k, k[0])


def test_torch_ssim_of_the_losses_matches_skimage():
    """The differentiable SSIM (Gaussian 11x11, sigma 1.5, population covariance) equals skimage's."""
    import torch
    from skimage import data, transform

    from unblur.blind.dip.losses import ssim as torch_ssim

    rng = np.random.default_rng(4)
    cam = transform.resize(data.camera() / 255.0, (96, 80), anti_aliasing=True)
    blurred = ndimage.gaussian_filter(cam, 2)
    noisy = np.clip(cam + 0.1 * rng.standard_normal(cam.shape), 0, 1)
    smooth = ndimage.gaussian_filter(rng.random((64, 64)), 3)
    cases = [(blurred, cam), (noisy, cam), (smooth, np.roll(smooth, 2, 0)), (noisy[:64, :64] * 3, smooth * 3)]
    values = []
    for a, b in cases:
        dr = 3.0 if a.max() > 1.5 else 1.0
        ref = sk_ssim(a, b, data_range=dr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        ours = float(torch_ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], data_range=dr))
        assert abs(ours - ref) < 1e-3, (ours, ref)
        values.append(ref)
    assert max(values) - min(values) > 0.3          # the cases span a real range of SSIM
    rgb_a, rgb_b = np.stack([cam, blurred, noisy], -1), np.stack([blurred, cam, cam], -1)
    ref = sk_ssim(rgb_a, rgb_b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                  use_sample_covariance=False)
    ours = torch_ssim(torch.from_numpy(np.moveaxis(rgb_a, -1, 0))[None].float(),
                      torch.from_numpy(np.moveaxis(rgb_b, -1, 0))[None].float())
    assert abs(float(ours) - ref) < 1e-3
    assert abs(ssim(rgb_a, rgb_b, channel_axis=-1, gaussian_weights=True) - ref) < 1e-12
