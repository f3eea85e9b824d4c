"""One contract for every linear operator: adjoint, quadratic solves against dense linear algebra,
crop/initial shapes, in-place kernel update (Convolution with every boundary in 2-D and 3-D, odd and
even kernels; ProductConvolution in both orders; Masked convolutions, missing data)."""

import pytest
import torch

from unblur.errors import InputError
from unblur.physics.convolution import BOUNDARIES, Convolution
from unblur.physics.operator import Masked, gradient_normal
from unblur.physics.product_convolution import ProductConvolution

CASES = [(b, shape, k) for b in BOUNDARIES
         for shape, k in [((6, 7), (3, 3)), ((7, 6), (2, 4)), ((4, 5, 4), (3, 2, 3))]]


def _rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _conv(boundary, shape, k, seed=0):
    return Convolution(_rand(k, seed) + 0.05, shape, boundary)


def _product(order, boundary, seed=0):
    shape, m, k = (7, 8), 3, (3, 3)
    ref = Convolution(torch.ones(k, dtype=torch.float64), shape, boundary)
    grid = ref.in_shape if order == "caw" else ref.out_shape
    return ProductConvolution(_rand((m, *k), seed), _rand((m, *grid), seed + 1), shape, order, boundary)


def _operators():
    ops = [pytest.param(lambda b=b, s=s, k=k: _conv(b, s, k), id=f"conv-{b}-{'x'.join(map(str, s))}-k{''.join(map(str, k))}")
           for b, s, k in CASES]
    ops += [pytest.param(lambda o=o, b=b: _product(o, b), id=f"product-{o}-{b}")
            for o in ("caw", "wac") for b in ("circular", "zero", "valid")]
    ops += [pytest.param(lambda b=b: _masked(b), id=f"masked-{b}") for b in ("circular", "valid")]
    return ops


def _masked(boundary):
    op = _conv(boundary, (6, 7), (3, 3))
    mask = (_rand((1, 1, *op.out_shape), 5) > 0.3).to(torch.float64)
    return Masked(op, mask)


def dense(fn, in_shape):
    """The matrix of a linear map on ``(1, 1, *in_shape)`` arrays (columns = images of the unit vectors)."""
    n = int(torch.tensor(in_shape).prod())
    cols = [fn(e.reshape(1, 1, *in_shape)).flatten() for e in torch.eye(n, dtype=torch.float64)]
    return torch.stack(cols, 1)


SOLVE = dict(max_iter=2000, tol=1e-13)


@pytest.mark.parametrize("make", _operators())
def test_adjoint_identity(make):
    op = make()
    x, y = _rand((2, 2) + op.in_shape, 3), _rand((2, 2) + op.out_shape, 4)
    lhs, rhs = float((op.A(x) * y).sum()), float((x * op.A_adjoint(y)).sum())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


@pytest.mark.parametrize("make", _operators())
def test_solves_match_dense_linear_algebra(make):
    op = make()
    A = dense(op.A, op.in_shape)
    G = dense(gradient_normal, op.in_shape)          # D^T D, circular differences on the object grid
    n_in, n_out = A.shape[1], A.shape[0]
    eye_in, eye_out = torch.eye(n_in, dtype=torch.float64), torch.eye(n_out, dtype=torch.float64)
    v, y = _rand((1, 1) + op.in_shape, 5), _rand((1, 1) + op.out_shape, 6)
    mu = 0.3
    as_in = lambda a: a.reshape((1, 1) + op.in_shape)  # noqa: E731
    prox = torch.linalg.solve(A.T @ A + mu * eye_in, A.T @ y.flatten() + mu * v.flatten())
    torch.testing.assert_close(op.prox_l2(v, y, mu, **SOLVE), as_in(prox), atol=1e-8, rtol=1e-8)
    for reg, L in (("identity", eye_in), ("gradient", G)):
        ref = torch.linalg.solve(A.T @ A + mu * L, v.flatten())
        torch.testing.assert_close(op.solve_normal(v, mu, reg=reg, **SOLVE), as_in(ref), atol=1e-8, rtol=1e-8)
        tik = torch.linalg.solve(A.T @ A + mu * L, A.T @ y.flatten())
        torch.testing.assert_close(op.regularized_inverse(y, mu, reg=reg, **SOLVE), as_in(tik), atol=1e-8, rtol=1e-8)
    gram = torch.linalg.solve(0.7 * A @ A.T + 0.05 * eye_out, y.flatten())
    torch.testing.assert_close(op.solve_gram(y, 0.05, weight=0.7, **SOLVE), gram.reshape(y.shape), atol=1e-8, rtol=1e-8)
    # a batch of weights (one per image), as unrolled networks use
    mus = torch.tensor([0.3, 2.0], dtype=torch.float64).view(2, 1, *([1] * len(op.in_shape)))
    v2 = torch.cat([v, 2 * v])
    out = op.solve_normal(v2, mus, **SOLVE)
    torch.testing.assert_close(out[1:], as_in(torch.linalg.solve(A.T @ A + 2.0 * eye_in, 2 * v.flatten())), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("make", _operators())
def test_crop_and_initial_shapes(make):
    op = make()
    y = _rand((2, 3) + op.out_shape, 7)
    x0 = op.initial_object(y)
    assert tuple(x0.shape) == (2, 3) + tuple(op.in_shape)
    assert tuple(op.crop_object(x0).shape) == tuple(y.shape)
    if tuple(op.in_shape) == tuple(op.out_shape):
        seen = op.mask.expand_as(y) > 0 if isinstance(op, Masked) else torch.ones_like(y, dtype=torch.bool)
        torch.testing.assert_close(x0[seen], y[seen])  # missing pixels (Masked) are filled from their neighbours
        assert x0.data_ptr() != y.data_ptr()  # a copy: solvers may update it in place
        assert bool(torch.isfinite(x0).all()) and float(x0.min()) > 0


@pytest.mark.parametrize("boundary,shape,k", CASES)
def test_update_kernel_equals_fresh_operator(boundary, shape, k):
    op = _conv(boundary, shape, k, seed=0)
    y = _rand((1, 1) + op.out_shape, 8)
    before = op.adjoint_of_ones(y).clone()
    new_psf = _rand(k, 9) + 0.05
    op.update_kernel(new_psf)
    fresh = Convolution(new_psf, shape, boundary)
    x = _rand((1, 1) + fresh.in_shape, 10)
    torch.testing.assert_close(op.A(x), fresh.A(x))
    torch.testing.assert_close(op.A_adjoint(y), fresh.A_adjoint(y))
    torch.testing.assert_close(op.adjoint_of_ones(y), fresh.adjoint_of_ones(y))  # the cache follows the kernel
    assert not torch.allclose(before, op.adjoint_of_ones(y))
    torch.testing.assert_close(op.prox_l2(x, y, 0.5, **SOLVE), fresh.prox_l2(x, y, 0.5, **SOLVE))


@pytest.mark.parametrize("order", ["caw", "wac"])
def test_product_update_kernel_equals_fresh_operator(order):
    op = _product(order, "zero", seed=0)
    fresh = _product(order, "zero", seed=0)
    new = _rand(tuple(op.psfs.shape), 11)
    op.update_kernel(new)
    fresh = ProductConvolution(new, fresh.weights, fresh.out_shape, order, "zero")
    x, y = _rand((1, 1) + op.in_shape, 12), _rand((1, 1) + op.out_shape, 13)
    torch.testing.assert_close(op.A(x), fresh.A(x))
    torch.testing.assert_close(op.A_adjoint(y), fresh.A_adjoint(y))
    with pytest.raises(InputError, match="expected"):
        op.update_kernel(new[:2])


def test_fourier_solve_only_when_diagonal():
    circ, refl = _conv("circular", (6, 7), (3, 3)), _conv("reflect", (6, 7), (3, 3))
    assert circ.diagonal_in_fourier and not refl.diagonal_in_fourier
    v, y = _rand((1, 1, 6, 7), 1), _rand((1, 1, 6, 7), 2)
    torch.testing.assert_close(circ.prox_l2(v, y, 0.2, method="fourier"), circ.prox_l2(v, y, 0.2, method="cg", **SOLVE))
    with pytest.raises(InputError, match="circular"):
        refl.prox_l2(v, y, 0.2, method="fourier")
    with pytest.raises(InputError, match="solve method"):
        circ.solve_normal(v, 0.2, method="lu")
