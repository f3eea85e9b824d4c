"""Non-blind methods with the true kernel stay stable on non-periodic data and long camera-shake kernels:
Wiener's valid boundary and balance rule, the learned solvers' boundary default and noise floor, and the
defaults of Tikhonov, TV-ADMM, RL-TV and PnP-ADMM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unblur
from unblur.algorithms.common import QUANTISATION_SIGMA, SIGMA_FLOOR, robust_noise_sigma
from unblur.metrics import psnr
from unblur.physics.convolution import Convolution
from unblur.psf.motion import motion_kernel
from unblur.solvers.linear import _wiener_balance
from unblur.solvers.tv import tv_admm

FIELD = 96


def _observe(k: np.ndarray, sigma: float = 0.01, seed: int = 0):
    """The valid part of the blur of a larger crop of the camera man (no periodic wrap), plus noise."""
    from skimage import data

    img = data.camera().astype(np.float32) / 255
    n = FIELD + k.shape[0] - 1
    scene = np.ascontiguousarray(img[150:150 + n, 200:200 + n])
    truth = scene[k.shape[0] // 2:k.shape[0] // 2 + FIELD, k.shape[1] // 2:k.shape[1] // 2 + FIELD]
    y = Convolution(torch.from_numpy(k), (FIELD, FIELD), "valid").A(torch.from_numpy(scene)[None, None])[0, 0].numpy()
    y = y + sigma * np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    return y.astype(np.float32), truth


@pytest.fixture(scope="module")
def long_shake():
    k = motion_kernel(31, seed=31)
    y, truth = _observe(k)
    rl = psnr(np.clip(unblur.deconvolve(y, k, method="rl", progress=False).image, 0, 1), truth)
    return k, y, truth, rl


def test_wiener_default_is_not_below_rl_on_a_long_kernel(long_shake):
    k, y, truth, rl = long_shake
    r = unblur.deconvolve(y, k, method="wiener")
    assert r.info["boundary"] == "valid" and r.info["solver"] == "cg"
    default = psnr(np.clip(r.image, 0, 1), truth)
    padded = psnr(np.clip(unblur.deconvolve(y, k, method="wiener", boundary="reflect").image, 0, 1), truth)
    assert default > rl - 0.5, (default, rl)
    assert default > padded + 1.0, (default, padded)  # pad-then-crop rings with a long kernel


def test_wiener_balance_with_a_kernel_that_transfers_almost_nothing():
    """A 61-px line on a 64x64 grid: fewer than 8 frequencies have |H|^2 > 0.1; the band is widened and
    the balance stays a regularising one (not the near-inverse 1e-6)."""
    k = np.zeros((61, 61), np.float32)
    k[30, :] = 1 / 61
    rng = np.random.default_rng(1)
    y = torch.from_numpy((0.5 + 0.01 * rng.standard_normal((64, 64))).astype(np.float32))[None, None]
    op = Convolution(torch.from_numpy(k), (64, 64), "circular")
    assert int((op.transfer_power() > 0.1).sum()) < 8 * 64
    b = _wiener_balance(y, op, 0.01, "gradient")
    assert b > 1e-3, b
    assert _wiener_balance(y, op, 0.0, "gradient") == 1e-6


def test_noise_floor():
    rng = np.random.default_rng(2)
    y = torch.from_numpy((0.5 + 0.02 * rng.standard_normal((64, 64))).astype(np.float32))[None, None]
    notes = []
    used, est = robust_noise_sigma(y, 0.001, notes)
    assert 0.015 < est < 0.025 and used == pytest.approx(SIGMA_FLOOR * est) and "below" in notes[0]
    assert robust_noise_sigma(y, 0.03) == (0.03, est)  # a larger given sigma is kept
    flat = torch.full((1, 1, 32, 32), 0.5)
    assert robust_noise_sigma(flat, None)[0] == pytest.approx(QUANTISATION_SIGMA)


def test_dpir_default_boundary_and_floor(long_shake):
    k, y, truth, rl = long_shake
    r = unblur.deconvolve(y, k, method="dpir")
    assert r.info["boundary"] == "valid" and r.info["noise_sigma_estimate"] > 0.005
    default = psnr(np.clip(r.image, 0, 1), truth)
    assert default > rl - 0.5, (default, rl)
    # an underestimated sigma (a tenth of the truth) is floored: close to the default, not noise-amplified
    low = unblur.deconvolve(y, k, method="dpir", noise_sigma=0.001)
    assert low.info["noise_sigma"] > 0.007 and low.info["notes"]
    assert psnr(np.clip(low.image, 0, 1), truth) > default - 1.0


def test_tikhonov_default_is_wiener_default(long_shake):
    """No lam: Wiener's fitted balance on the valid model, the same image as the Wiener default."""
    k, y, truth, rl = long_shake
    r, t = unblur.deconvolve(y, k, method="tikhonov"), unblur.deconvolve(y, k, method="wiener")
    assert r.info["solver"] == "cg" and r.info["lam"] == pytest.approx(t.info["balance"], rel=1e-6)
    assert np.abs(np.asarray(r.image) - np.asarray(t.image)).max() < 1e-3
    assert psnr(np.clip(r.image, 0, 1), truth) > rl - 0.5
    op = Convolution(torch.from_numpy(k), (FIELD, FIELD), "valid")
    with pytest.raises(unblur.InputError, match="pass lam"):
        unblur.tikhonov(y, op)


# Gain over RL required of each default on this field (measured: tv-admm +3.5, rl-tv +1.0, pnp-admm +4.3 dB;
# other settings, tv-admm lam 2e-3 reflect, rl-tv 25 iterations lambda 0.005, pnp-admm with a constant penalty
# rho 0.2 (sigma_start=None): +0.7, -0.3, +1.4 dB).
MIN_GAIN_OVER_RL = {"tv-admm": 1.5, "rl-tv": 0.5, "pnp-admm": 2.5}


@pytest.mark.parametrize("method", sorted(MIN_GAIN_OVER_RL))
def test_defaults_above_rl_on_a_long_kernel(long_shake, method):
    k, y, truth, rl = long_shake
    r = unblur.deconvolve(y, k, method=method, progress=False)
    assert psnr(np.clip(r.image, 0, 1), truth) > rl + MIN_GAIN_OVER_RL[method]


def test_tv_admm_lam_follows_the_noise(long_shake):
    k, y, truth, rl = long_shake
    _, info = tv_admm(y, k, num_iter=2, return_info=True)
    assert 0.005 < info["noise_sigma"] < 0.02 and info["lam"] == pytest.approx(8.0 * info["noise_sigma"] ** 2)
    _, info = tv_admm(y, k, num_iter=2, noise_sigma=0.02, lam_factor=10.0, return_info=True)
    assert info["lam"] == pytest.approx(4e-3)


def test_samplers_default_to_the_valid_boundary():
    for method in ("dps", "pigdm", "rl-diffusion", "dpir", "pnp-admm"):
        assert unblur.get_method(method).defaults()["boundary"] == "valid", method

