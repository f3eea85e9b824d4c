"""Product-convolution (space-varying blur): adjointness, constant weights, both orders, solvers, eigen-PSFs."""

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.physics.convolution import BOUNDARIES, Convolution
from unblur.physics.product_convolution import ProductConvolution, grid_weight_maps
from unblur.solvers.linear import tikhonov_solve
from unblur.psf import eigen_psf_basis, gaussian_kernel, random_zernike_psfs
from unblur.solvers import rl_iterations

ORDERS = ("convolve-after-weighting", "weight-after-convolving")


def _grid_psfs(gy=3, gx=3, k=11):
    s = np.linspace(0.8, 2.2, gy * gx)
    return torch.from_numpy(np.stack([gaussian_kernel(k, a, 0.7 * a, 30 * i, truncate_check=False)
                                      for i, a in enumerate(s)]).reshape(gy, gx, k, k))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adjoint_exact(order, boundary):
    op = ProductConvolution.from_psf_grid(_grid_psfs(), (30, 37), order, boundary)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, *op.in_shape, generator=g, dtype=torch.float64).float()
    y = torch.randn(2, 2, *op.out_shape, generator=g).float()
    lhs, rhs = float((op.A(x) * y).sum()), float((x * op.A_adjoint(y)).sum())
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + abs(rhs)) + 1e-4


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("boundary", ["circular", "reflect", "valid"])
def test_constant_weights_equal_plain_convolution(order, boundary):
    h = _grid_psfs().reshape(9, 11, 11)
    c = torch.linspace(0.05, 0.2, 9)
    ref = Convolution(torch.einsum("m,mij->ij", c, h), (32, 40), boundary)
    shape = ref.in_shape if order == ORDERS[0] else ref.out_shape
    op = ProductConvolution(h, c[:, None, None].expand(9, *shape), (32, 40), order, boundary)
    x = torch.rand(1, 3, *ref.in_shape, generator=torch.Generator().manual_seed(1))
    assert float((op.A(x) - ref.A(x)).abs().max()) < 1e-5 * float(ref.A(x).abs().max())
    y = torch.rand(1, 3, *ref.out_shape, generator=torch.Generator().manual_seed(2))
    assert float((op.A_adjoint(y) - ref.A_adjoint(y)).abs().max()) < 1e-5 * float(ref.A_adjoint(y).abs().max())


def test_orders_differ_and_local_psf():
    psfs = _grid_psfs()
    caw = ProductConvolution.from_psf_grid(psfs, (48, 48), ORDERS[0], "zero")
    wac = ProductConvolution.from_psf_grid(psfs, (48, 48), ORDERS[1], "zero")
    # an impulse in the object at pixel u is blurred by sum_i w_i(u) h_i for CAW ...
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, 8, 8] = 1
    resp = caw.A(x)[0, 0, 3:14, 3:14]
    assert torch.allclose(resp, caw.local_psf((8, 8)), atol=1e-6)
    x[0, 0, 8, 8], x[0, 0, 7, 7] = 0, 1  # tile centres at 7.5, 23.5, 39.5: pixel 7 is before the first
    assert torch.allclose(caw.A(x)[0, 0, 2:13, 2:13], psfs[0, 0], atol=1e-6)
    # ... for WAC the response to an impulse is not the local PSF where weights vary
    x[0, 0, 7, 7], x[0, 0, 20, 24] = 0, 1
    assert float((caw.A(x) - wac.A(x)).abs().max()) > 1e-3
    # CAW with weights summing to 1 preserves flux (zero boundary, impulse away from the edges)
    assert abs(float(caw.A(x).sum()) - 1) < 1e-5


def test_tent_weights_partition_of_unity():
    w = grid_weight_maps((40, 50), (3, 4))
    assert w.shape == (12, 40, 50) and float(w.min()) >= 0
    assert torch.allclose(w.sum(0), torch.ones(40, 50), atol=1e-6)


def test_solvers_accept_operator():
    op = ProductConvolution.from_psf_grid(_grid_psfs(), (48, 48), ORDERS[0], "valid")
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, *op.in_shape, generator=g)
    y = op.A(x)
    xr, info = rl_iterations(op, y, op.initial_object(y), 30)
    r_rl = float((op.A(xr) - y).norm() / y.norm())
    r0 = float((op.A(op.initial_object(y)) - y).norm() / y.norm())
    assert info["iterations"] == 30 and r_rl < 0.5 * r0
    xt = tikhonov_solve(op, y, lam=1e-4)
    assert xt.shape == x.shape and float((op.A(xt) - y).norm() / y.norm()) < 0.01


def test_eigen_basis_and_eigen_operator():
    psfs = random_zernike_psfs(21, 40, seed=0)[:, 0].numpy()
    basis = eigen_psf_basis(psfs, 6)
    e = [basis.captured_energy(k) for k in (1, 3, 6)]
    assert 0.5 < e[0] < e[1] < e[2] <= 1
    # captured energy equals 1 - relative squared reconstruction error over the family
    err2 = ((basis.reconstruct(basis.project(psfs)) - psfs) ** 2).sum() / (psfs**2).sum()
    assert abs((1 - err2) - e[2]) < 1e-5
    assert float(basis.relative_error(psfs).mean()) < float(eigen_psf_basis(psfs, 2).relative_error(psfs).mean())
    # all 40 components rebuild the family exactly
    full = eigen_psf_basis(psfs, 40)
    assert full.relative_error(psfs).max() < 1e-5
    # grid operator compressed on K eigen-PSFs approaches the full grid operator as K grows
    grid = torch.from_numpy(psfs[:16].reshape(4, 4, 21, 21))
    full_op = ProductConvolution.from_psf_grid(grid, (64, 64), ORDERS[0], "circular")
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    errs = [float((ProductConvolution.from_psf_grid(grid, (64, 64), ORDERS[0], "circular", n_components=k).A(x)
                   - full_op.A(x)).norm() / full_op.A(x).norm()) for k in (2, 8, 16)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-5


def test_bad_operator_input():
    h = _grid_psfs().reshape(9, 11, 11)
    with pytest.raises(InputError):
        ProductConvolution(h, torch.ones(8, 20, 20), (20, 20))  # one map per PSF
    with pytest.raises(InputError):
        ProductConvolution(h, torch.ones(9, 20, 20), (20, 20), order="convolve")
    op = ProductConvolution(h, torch.ones(9, 30, 30), (20, 20), boundary="valid")
    with pytest.raises(InputError):
        op.A(torch.ones(1, 1, 20, 20))


@pytest.mark.parametrize("order", ORDERS)
def test_3d_adjoint_and_constant_weights(order):
    g = torch.Generator().manual_seed(5)
    h = torch.rand(3, 5, 7, 7, generator=g)
    w = torch.rand(3, 12, 16, 16, generator=g)
    op = ProductConvolution(h, w, (12, 16, 16), order, "reflect")
    x, y = torch.randn(1, 1, 12, 16, 16, generator=g), torch.randn(1, 1, 12, 16, 16, generator=g)
    lhs, rhs = float((op.A(x) * y).sum()), float((x * op.A_adjoint(y)).sum())
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
    const = ProductConvolution(h, torch.full((3, 12, 16, 16), 0.5), (12, 16, 16), order, "reflect")
    ref = Convolution(0.5 * h.sum(0), (12, 16, 16), "reflect")
    assert float((const.A(x) - ref.A(x)).abs().max()) < 1e-5 * float(ref.A(x).abs().max())


def test_numpy_solvers_accept_space_varying_operator():
    """richardson_lucy, rl_tv and tikhonov take a ProductConvolution in place of the PSF."""
    import unblur
    from unblur.psf import gaussian_kernel

    rng = np.random.default_rng(3)
    x = np.zeros((64, 64), np.float32)
    x[rng.integers(4, 60, 30), rng.integers(4, 60, 30)] = 1.0
    grid = np.stack([gaussian_kernel(11, s) for s in (1.0, 1.5, 2.0, 2.5)]).reshape(2, 2, 11, 11)
    op = ProductConvolution.from_psf_grid(torch.from_numpy(grid), (64, 64), boundary="reflect")
    y = op.A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    err = lambda r: float(np.mean((r - x) ** 2))  # noqa: E731
    for restored in (unblur.richardson_lucy(y, op, num_iter=30), unblur.rl_tv(y, op),
                     unblur.tikhonov(y, op, lam=1e-3)):
        assert restored.shape == y.shape and np.isfinite(restored).all()
        assert err(restored) < 0.9 * err(y)
    with pytest.raises(unblur.InputError, match="does not match"):
        unblur.richardson_lucy(y[:32], op)
    with pytest.raises(unblur.InputError, match="needs a PSF"):
        unblur.wiener(y, op)
    # colour: a trailing channel axis, each channel restored on its own; channel_axis is checked, not ignored
    rgb = np.stack([y, 0.5 * y, 0.25 * y], -1)
    out = unblur.richardson_lucy(rgb, op, num_iter=10, channel_axis=-1)
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out[..., 1], 0.5 * out[..., 0], rtol=1e-3, atol=1e-6)
    with pytest.raises(unblur.InputError, match="trailing channel axis"):
        unblur.richardson_lucy(rgb, op, channel_axis=0)
    with pytest.raises(unblur.InputError, match="channel_axis=-1 given"):
        unblur.richardson_lucy(y, op, channel_axis=-1)
