"""Diffraction PSFs: Zernike orthonormality, Airy first zero, Marechal/Strehl, gradients, 3-D, bad input."""

import math

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.psf import center_of_mass
from unblur.psf.zernike import (DEEPBLUR_NOLL, PupilPSF, diffraction_psf, noll_to_nm, random_zernike_psfs,
                                sample_zernike_coefficients, widefield_psf, zernike, zernike_psf)


def test_noll_table():
    expected = [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (3, -1), (3, 1), (3, -3), (3, 3),
                (4, 0), (4, 2), (4, -2), (4, 4), (4, -4)]
    assert [noll_to_nm(j) for j in range(1, 16)] == expected


def test_zernike_orthonormal_on_disc():
    # midpoint rule in polar coordinates: (1/pi) int_0^1 int_0^2pi Z_i Z_j rho drho dtheta
    nr, nt = 400, 256
    rho = (np.arange(nr) + 0.5) / nr
    th = (np.arange(nt) + 0.5) * 2 * np.pi / nt
    R, T = np.meshgrid(rho, th, indexing="ij")
    w = R * (1 / nr) * (2 * np.pi / nt) / np.pi
    Z = np.stack([zernike(j, R, T) for j in range(1, 23)])
    G = np.einsum("iab,jab,ab->ij", Z, Z, w)
    assert np.abs(G - np.eye(22)).max() < 2e-3


def test_airy_first_zero():
    # lambda 0.5, NA 1.0: first zero at 0.61 lambda/NA = 0.305 um = 30.5 pixels of 10 nm
    p = diffraction_psf(129, na=1.0, wavelength=0.5, pixel_size=0.01, refractive_index=1.33, oversampling=4)
    row = p[64, 64:].astype(np.float64)
    i = int(np.argmin(row[:45]))
    a, b, c = row[i - 1: i + 2]
    zero = i + 0.5 * (a - c) / (a - 2 * b + c)
    assert row[i] / row[0] < 1e-3
    assert abs(zero - 0.6098 * 0.5 / 1.0 / 0.01) < 0.25  # within a quarter pixel (measured 30.495)


@pytest.mark.parametrize("rms", [0.02, 0.05, 0.08])
def test_strehl_marechal(rms):
    m = PupilPSF(31, noll=(4, 5, 6, 7, 8, 11), cutoff=0.2, oversampling=4)
    g = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    g = g / g.norm(dim=1, keepdim=True) * rms
    with torch.no_grad():
        strehl = m.intensity(g).amax(dim=(1, 2)) / m.intensity(torch.zeros(1, 6)).amax()
    expected = math.exp(-(2 * math.pi * rms) ** 2)
    assert float((strehl - expected).abs().max()) < 0.01  # measured mean 0.9843/0.9059/0.7773


def test_psf_normalised_centred_batched_differentiable():
    gamma = sample_zernike_coefficients(4, len(DEEPBLUR_NOLL), seed=1)
    assert float(gamma.abs().max()) <= 0.15
    gamma.requires_grad_(True)
    psf = zernike_psf(gamma, size=31)
    assert psf.shape == (4, 1, 31, 31)
    assert torch.allclose(psf.sum((1, 2, 3)), torch.ones(4), atol=1e-5) and float(psf.detach().min()) >= 0
    target = zernike_psf(sample_zernike_coefficients(4, len(DEEPBLUR_NOLL), seed=2), size=31)
    loss = ((psf - target) ** 2).sum()
    loss.backward()
    assert gamma.grad is not None and float(gamma.grad.abs().sum()) > 0
    # a gradient step reduces the loss (the gradient is right, not just present)
    with torch.no_grad():
        loss2 = ((zernike_psf(gamma - 1e-2 * gamma.grad / gamma.grad.norm(), size=31) - target) ** 2).sum()
    assert float(loss2) < float(loss.detach())
    # no aberration: centred, symmetric
    p0 = diffraction_psf(31, cutoff=0.2)
    assert np.allclose(center_of_mass(p0), [15, 15], atol=1e-3) and np.allclose(p0, p0.T, atol=1e-7)
    assert torch.equal(random_zernike_psfs(31, 3, seed=5), random_zernike_psfs(31, 3, seed=5))


def test_widefield_stack():
    w = widefield_psf(33, 11, 0.25, na=1.2, wavelength=0.5, pixel_size=0.06, refractive_index=1.33)
    assert w.shape == (11, 33, 33) and abs(w.sum() - 1) < 1e-5
    peaks = w.max(axis=(1, 2))
    assert int(np.argmax(peaks)) == 5 and np.allclose(peaks, peaks[::-1], rtol=1e-3)  # symmetric about focus
    assert peaks[0] < 0.2 * peaks[5]
    # in-focus plane equals the 2-D PSF (up to the stack normalisation)
    p2 = diffraction_psf(33, na=1.2, wavelength=0.5, pixel_size=0.06, refractive_index=1.33)
    assert np.allclose(w[5] / w[5].sum(), p2, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(na=1.5, wavelength=0.5, pixel_size=0.05),                       # NA >= refractive index
    dict(na=1.4, wavelength=0.5, pixel_size=0.05, refractive_index=1.4),
    dict(na=1.0, wavelength=0.5, pixel_size=0.5, refractive_index=1.5),  # pupil beyond Nyquist
    dict(na=-1.0, wavelength=0.5, pixel_size=0.05),
    dict(cutoff=0.2, coefficients={0: 0.1}),                             # Noll index starts at 1
])
def test_bad_optics_rejected(kw):
    with pytest.raises(InputError):
        diffraction_psf(31, **kw)


def test_bad_gamma_shape_rejected():
    with pytest.raises(InputError):
        PupilPSF(31, noll=(4, 5), cutoff=0.2)(torch.zeros(2, 3))
