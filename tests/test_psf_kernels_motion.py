"""Analytic kernels and random camera-shake kernels: normalisation, centring, seeds, bad input."""

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.psf import (MotionKernelSampler, box_kernel, center_of_mass, disk_kernel, gaussian_kernel,
                        line_motion_kernel, motion_kernel, random_motion_kernels)


def _moments(k):
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]].astype(float)
    c = center_of_mass(k)
    return (k * (yy - c[0]) ** 2).sum(), (k * (xx - c[1]) ** 2).sum(), (k * (yy - c[0]) * (xx - c[1])).sum()


def test_gaussian_rl_diffusion_kernel_and_rotation():
    k = gaussian_kernel(61, 3.0)
    assert k.shape == (61, 61) and k.dtype == np.float32
    assert abs(k.sum() - 1) < 1e-5 and np.allclose(center_of_mass(k), [30, 30], atol=1e-4)
    vy, vx, _ = _moments(k)
    assert abs(vy - 9) < 0.01 and abs(vx - 9) < 0.01
    # anisotropic along x (angle 0): variance 16 along columns, 1 along rows
    vy, vx, cxy = _moments(gaussian_kernel(41, 4.0, 1.0, angle=0))
    assert abs(vx - 16) < 0.05 and abs(vy - 1) < 0.01 and abs(cxy) < 1e-6
    # 45 degrees, y up: rows increase downwards so the row/col covariance is negative
    vy, vx, cxy = _moments(gaussian_kernel(41, 4.0, 1.0, angle=45))
    assert abs(vx - 8.5) < 0.05 and abs(vy - 8.5) < 0.05 and abs(cxy + 7.5) < 0.05


def test_disk_box_line():
    d = disk_kernel(21, 6.5)
    assert abs(d.sum() - 1) < 1e-6 and np.allclose(center_of_mass(d), [10, 10], atol=1e-6)
    support = (d > 0).sum()
    assert abs(support - np.pi * 6.5**2) < 4 * 2 * np.pi * 6.5 * 0.5  # edge pixels partial
    assert abs(d.max() * np.pi * 6.5**2 - 1) < 0.02  # interior value = 1 / area
    b = box_kernel(9, 5)
    assert b.max() == pytest.approx(1 / 25) and (b > 0).sum() == 25
    ln = line_motion_kernel(31, 20.0, angle=30.0)
    assert abs(ln.sum() - 1) < 1e-6 and np.allclose(center_of_mass(ln), [15, 15], atol=1e-4)
    vy, vx, _ = _moments(ln)
    # uniform segment of length L: variance L^2/12 along it, + 1/6 per axis from bilinear splatting
    # and a little from the finite sampling (measured 33.88 for 33.33 + 0.33 + 0.21)
    assert abs(vx + vy - (20**2 / 12 + 1 / 3)) < 0.35
    h = line_motion_kernel(15, 6.4, angle=0)  # sub-pixel length: row 7 only, 8 pixels touched
    assert np.count_nonzero(h.sum(1)) == 1 and np.count_nonzero(h[7]) == 9  # x in [3.8, 10.2]: pixels 3..11


@pytest.mark.parametrize("model", ["gp", "physiological", "mixed"])
@pytest.mark.parametrize("size", [13, 33, 48, 75])
def test_motion_kernels_normalised_centred(model, size):
    k = random_motion_kernels(size, 16, seed=3, model=model)
    assert k.shape == (16, 1, size, size) and k.dtype == torch.float32
    assert float(k.min()) >= 0
    assert torch.allclose(k.sum((1, 2, 3)), torch.ones(16), atol=1e-5)
    for kk in k[:, 0]:
        assert np.allclose(center_of_mass(kk.numpy()), [size // 2, size // 2], atol=1e-3)


def test_motion_intensity_controls_extent():
    def extent(k):
        rows = np.nonzero(k.sum(1) > 1e-4)[0]
        cols = np.nonzero(k.sum(0) > 1e-4)[0]
        return max(np.ptp(rows), np.ptp(cols))
    small = [extent(k[0].numpy()) for k in random_motion_kernels(41, 8, seed=0, model="gp", intensity=0.2)]
    big = [extent(k[0].numpy()) for k in random_motion_kernels(41, 8, seed=0, model="gp", intensity=1.0)]
    assert max(small) <= 0.2 * 38 + 2 and min(big) >= 0.5 * 38


def test_motion_seed_reproducible_and_sampler():
    a = random_motion_kernels(33, 4, seed=7)
    b = random_motion_kernels(33, 4, seed=7)
    c = random_motion_kernels(33, 4, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    s1, s2 = MotionKernelSampler(25, 3, seed=1), MotionKernelSampler(25, 3, seed=1)
    x1, y1 = next(s1), next(s1)
    assert torch.equal(x1, next(s2)) and torch.equal(y1, next(s2)) and not torch.equal(x1, y1)
    assert motion_kernel(33, seed=2).shape == (33, 33)


@pytest.mark.parametrize("call", [
    lambda: gaussian_kernel(31, -1.0),
    lambda: gaussian_kernel(7, 3.0),              # kernel cuts the Gaussian
    lambda: disk_kernel(11, 8.0),                 # disk larger than requested size
    lambda: box_kernel(5, 7),
    lambda: line_motion_kernel(15, 20.0),         # motion longer than the kernel
    lambda: random_motion_kernels(9, 2),          # size outside 13..75
    lambda: random_motion_kernels(33, 2, model="walk"),
    lambda: random_motion_kernels(33, 2, intensity=1.5),
])
def test_bad_parameters_rejected(call):
    with pytest.raises(InputError):
        call()
