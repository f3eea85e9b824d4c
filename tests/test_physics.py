"""Forward model: exact adjoints (inner-product identity), agreement with scipy, noise models."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.signal import convolve as sp_convolve

from unblur.errors import InputError
from unblur.physics.convolution import BOUNDARIES, Convolution, convolve
from unblur.physics.noise import GaussianNoise, PoissonGaussianNoise, PoissonNoise, estimate_noise_sigma, make_noise


def _adjoint_gap(op, b, c, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, c) + op.in_shape, generator=g, dtype=torch.float64)
    y = torch.rand((b, c) + op.out_shape, generator=g, dtype=torch.float64)
    lhs = float((op.A(x) * y).sum())
    rhs = float((x * op.A_adjoint(y)).sum())
    return abs(lhs - rhs) / abs(lhs)


@st.composite
def problems(draw, ndim):
    shape = tuple(draw(st.integers(4, 12 if ndim == 3 else 24)) for _ in range(ndim))
    k = tuple(draw(st.integers(1, n)) for n in shape)
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    psf_kind = draw(st.sampled_from(["shared", "per_channel", "per_image"]))
    return shape, k, b, c, psf_kind, draw(st.integers(0, 2**16))


def _psf(k, b, c, kind, seed):
    g = torch.Generator().manual_seed(seed + 1)
    lead = {"shared": (), "per_channel": (c,), "per_image": (b, c)}[kind]
    return torch.rand(lead + k, generator=g, dtype=torch.float64)


def _check_adjoint(boundary, problem):
    shape, k, b, c, kind, seed = problem
    op = Convolution(_psf(k, b, c, kind, seed), shape, boundary)
    assert _adjoint_gap(op, b, c, seed) < 1e-10


@pytest.mark.parametrize("boundary", BOUNDARIES)
@settings(max_examples=12, deadline=None)
@given(problem=problems(2))
def test_adjoint_2d(boundary, problem):
    _check_adjoint(boundary, problem)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@settings(max_examples=6, deadline=None)
@given(problem=problems(3))
def test_adjoint_3d(boundary, problem):
    _check_adjoint(boundary, problem)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adjoint_with_autograd_backend(boundary):
    """The torch FFT path (used when gradients flow) is adjoint too and matches the scipy path."""
    psf = torch.rand(5, 4, dtype=torch.float64)
    op = Convolution(psf, (13, 11), boundary)
    x = torch.rand((1, 1) + op.in_shape, dtype=torch.float64, requires_grad=True)
    y = torch.rand((1, 1) + op.out_shape, dtype=torch.float64)
    Ax = op.A(x)
    (g,) = torch.autograd.grad((Ax * y).sum(), x)
    assert torch.allclose(g, op.A_adjoint(y), atol=1e-12)
    assert torch.allclose(Ax.detach(), op.A(x.detach()), atol=1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_psf_batch_broadcasts_over_one_image(boundary, monkeypatch):
    """One image, B PSFs -> B results, identical for the scipy and torch FFT paths."""
    g = torch.Generator().manual_seed(0)
    psfs = torch.rand(3, 2, 5, 3, generator=g, dtype=torch.float64)
    op = Convolution(psfs, (12, 10), boundary)
    x = torch.rand((1, 2) + op.in_shape, generator=g, dtype=torch.float64)
    y = op.A(x)
    assert y.shape == (3, 2) + op.out_shape
    single = Convolution(psfs[1, 0], (12, 10), boundary).A(x[:, :1])
    assert torch.allclose(y[1:2, :1], single, atol=1e-12)
    monkeypatch.setenv("UNBLUR_FFT", "torch")
    assert torch.allclose(op.A(x), y, atol=1e-12)


@pytest.mark.parametrize("shape,k", [((20, 17), (5, 7)), ((9, 12, 10), (3, 5, 3)), ((31, 30), (31, 1))])
def test_zero_equals_scipy_same_and_valid(shape, k):
    rng = np.random.default_rng(1)
    x, p = rng.random(shape), rng.random(k)
    zero = Convolution(torch.from_numpy(p), shape, "zero").A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(zero, sp_convolve(x, p, mode="same"), atol=1e-12)
    op = Convolution(torch.from_numpy(p), tuple(n - m + 1 for n, m in zip(shape, k)), "valid")
    valid = op.A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(valid, sp_convolve(x, p, mode="valid"), atol=1e-12)


def test_even_kernel_centre_rule():
    """Even kernels are centred at n // 2 (one pixel from scipy's 'same' convention)."""
    x = np.zeros((16, 16))
    x[8, 8] = 1
    p = np.zeros((4, 4))
    p[2, 2] = 1  # the centre pixel n // 2: a delta there is the identity
    out = convolve(torch.from_numpy(x)[None, None], torch.from_numpy(p), "zero")[0, 0].numpy()
    np.testing.assert_allclose(out, x, atol=1e-12)


def test_circular_flux_and_shift():
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    p = torch.zeros(3, 3, dtype=torch.float64)
    p[1, 2] = 1.0  # y[i] = x[i + 1 - 2] = x[i - 1]: a shift right by one
    y = convolve(x, p, "circular")
    assert torch.allclose(y, torch.roll(x, 1, -1))


def test_replicate_constant_image_stays_constant():
    x = torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64)
    p = torch.rand(5, 5, dtype=torch.float64)
    p /= p.sum()
    for b in ("replicate", "reflect", "circular"):
        assert torch.allclose(convolve(x, p, b), x)
    assert float(convolve(x, p, "zero")[0, 0, 0, 0]) < 3.0  # zero padding darkens the edge


def test_operator_errors():
    with pytest.raises(InputError, match="unknown boundary"):
        Convolution(torch.ones(3, 3), (8, 8), "wrap")
    with pytest.raises(InputError, match="larger than the image"):
        Convolution(torch.ones(9, 9), (8, 8), "zero")
    op = Convolution(torch.ones(3, 3) / 9, (8, 8), "circular")
    with pytest.raises(InputError, match="expected"):
        op.A(torch.ones(1, 1, 7, 8))


def test_noise_models_seeded():
    z = torch.full((1, 1, 64, 64), 0.5)
    for noise in (GaussianNoise(0.05), PoissonNoise(50.0), PoissonGaussianNoise(0.01, 1e-3)):
        a, b, c = noise(z, seed=3), noise(z, seed=3), noise(z, seed=4)
        assert torch.equal(a, b) and not torch.equal(a, c)
        var = float(((a - z) ** 2).mean())
        assert abs(var - float(noise.variance(z).mean())) < 0.15 * float(noise.variance(z).mean())
    assert torch.equal(make_noise("none")(z, seed=0), z)
    with pytest.raises(InputError):
        make_noise("salt")


def test_noise_sigma_estimate():
    rng = np.random.default_rng(0)
    img = np.kron(rng.random((16, 16)), np.ones((8, 8)))  # piecewise constant
    assert abs(estimate_noise_sigma(img + 0.02 * rng.standard_normal(img.shape)) - 0.02) < 0.003
    stack = np.stack([img] * 6, -1)  # a colour image, or a stack read (Z, Y, X): further axes are pooled
    assert abs(estimate_noise_sigma(stack + 0.05 * rng.standard_normal(stack.shape)) - 0.05) < 0.003
    assert estimate_noise_sigma(img) < 1e-6  # noise-free piecewise-constant image


# ---------------------------------------------------------------- in-place FFT grid, separable OTF and A^T 1
@pytest.mark.parametrize("boundary", ["valid", "zero", "circular"])
@pytest.mark.parametrize("shape,k", [((20, 26), (5, 7)), ((9, 14, 12), (3, 5, 4))])
@pytest.mark.parametrize("otf", ["stored", "computed"])
def test_fft_grid_convolves_in_place(boundary, shape, k, otf):
    """The in-place grid gives A x and A^T y of the operator (float32 round-off), per-channel PSFs included."""
    from unblur.physics.convolution import FFTGrid
    g = torch.Generator().manual_seed(3)
    op = Convolution(torch.rand((2,) + k, generator=g), shape, boundary)
    grid = FFTGrid(op, (1, 2), otf=otf)
    x = torch.rand((1, 2) + op.in_shape, generator=g)
    grid.grid.fill_(7.0)                     # garbage outside the object must be zeroed
    grid.object.copy_(x)
    grid.zero_outside_object()
    grid.convolve()
    ref = op.A(x)
    torch.testing.assert_close(grid.window, ref, rtol=0, atol=2e-6 * float(ref.abs().max()))
    y = torch.rand((1, 2) + op.out_shape, generator=g)
    grid.window.copy_(y)
    grid.zero_outside_window()
    grid.convolve(conj=True)
    ref = op.A_adjoint(y)
    torch.testing.assert_close(grid.object, ref, rtol=0, atol=2e-6 * float(ref.abs().max()))
    ref = op.A_adjoint(op.A(x))                # A^T A in one grid (CG's matvec)
    torch.testing.assert_close(op.AtA(x), ref, rtol=0, atol=2e-6 * float(ref.abs().max()))


@pytest.mark.parametrize("k,fft_shape", [((5, 7), (20, 24)), ((3, 5, 4), (10, 16, 15)), ((6, 6), (64, 64))])
def test_separable_otf_equals_fft_of_psf(k, fft_shape):
    from unblur.physics.convolution import SeparableOTF, psf_to_otf
    p = np.random.default_rng(0).random(k)
    ref = psf_to_otf(torch.from_numpy(p)[None, None], fft_shape)[0, 0].numpy()
    s = SeparableOTF(p, fft_shape)
    got = np.concatenate([s.block(i).numpy() for i in range(0, fft_shape[0], s.step)])
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("boundary", ["valid", "zero", "circular"])
@pytest.mark.parametrize("shape,k", [((20, 26), (5, 7)), ((9, 14, 12), (3, 5, 4))])
def test_sensitivity_is_adjoint_of_ones(boundary, shape, k):
    """The separable sum equals A^T 1 computed by FFT (floored at 1e-3 of its maximum)."""
    from unblur.physics.convolution import Sensitivity
    psf = torch.rand(k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    op = Convolution(psf, shape, boundary)
    ref = op.adjoint_of_ones(torch.zeros((1, 1) + shape, dtype=torch.float64))[0, 0]
    ref = ref.clamp_min(1e-3 * float(ref.max()))
    s = Sensitivity(op, psf.numpy())
    if boundary == "circular":
        assert abs(s.slice(0) - float(psf.sum())) < 1e-12
        return
    got = s.slice(slice(None)) if len(shape) == 2 else torch.stack([s.slice(i) for i in range(op.in_shape[0])])
    assert got.shape == ref.shape
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.max()))


def test_fft_grid_shape_cost_model():
    """Grids cover the minimum, are 11-smooth, and follow the modelled cost (1054 -> 1056, not the 5-smooth 1080)."""
    from unblur.physics.convolution import _length_cost, fft_grid_shape
    for m in [(46, 542, 542), (78, 1054, 1054), (37, 45), (7, 129, 250)]:
        g = fft_grid_shape(m)
        assert all(n >= a and _length_cost(n) is not None for n, a in zip(g, m))
    assert fft_grid_shape((78, 1054, 1054)) == (80, 1056, 1056)
    assert fft_grid_shape((64, 1024, 1024)) == (64, 1024, 1024)
    assert _length_cost(13) is None and _length_cost(1056) is not None
