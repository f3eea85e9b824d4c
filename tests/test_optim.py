"""Fidelities, priors (TV prox, denoiser convention, Tikhonov), the iteration driver, TV-ADMM and Poisson PnP."""

import numpy as np
import pytest
import torch

from conftest import gaussian_psf
from unblur.errors import InputError
from unblur.metrics import psnr
from unblur.optim import (DenoiserPrior, L2Fidelity, PoissonKL, Progress, StoppingRule, TikhonovPrior, TotalVariation,
                          iterate, poisson_prox, tv_prox)
from unblur.optim.prior import differences_adjoint, forward_differences
from unblur.physics.convolution import Convolution, convolve
from unblur.solvers import richardson_lucy, tikhonov
from unblur.solvers.tv import tv_admm


def _rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _tv(x):
    return float(torch.sqrt(sum(g * g for g in forward_differences(x))).sum())


# ---------------------------------------------------------------- priors
@pytest.mark.parametrize("shape", [(1, 1, 12, 10), (1, 2, 5, 6, 7)])
def test_differences_adjoint(shape):
    x = _rand(shape, 1)
    p = [_rand(shape, 2 + i) for i in range(len(shape) - 2)]
    lhs = sum(float((a * b).sum()) for a, b in zip(forward_differences(x), p))
    assert abs(lhs - float((x * differences_adjoint(p)).sum())) < 1e-12


@pytest.mark.parametrize("shape", [(1, 1, 16, 14), (1, 1, 6, 8, 7)])
def test_tv_prox_is_the_minimiser(shape):
    """FGP's output satisfies the optimality of prox_{gamma TV}: its objective is below that of random
    perturbations and is within 1e-6 (relative) of a ten times longer run's, 2-D and 3-D."""
    v, gamma = _rand(shape, 3), 0.08
    obj = lambda x: 0.5 * float(((x - v) ** 2).sum()) + gamma * _tv(x)  # noqa: E731
    x, _ = tv_prox(v, gamma, n_iter=300)
    ref, _ = tv_prox(v, gamma, n_iter=3000)
    assert obj(x) <= obj(ref) * (1 + 1e-6)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert obj(x) < obj(x + 1e-3 * torch.randn(x.shape, generator=g, dtype=x.dtype))
    assert _tv(x) < 0.7 * _tv(v)                        # it does smooth
    assert abs(float(x.mean() - v.mean())) < 1e-10      # and keeps the mean (D^T p sums to 0)
    prior = TotalVariation(weight=2.0, prox_iter=300)
    torch.testing.assert_close(prior.prox(v, gamma / 2), x)  # prox(v, gamma) uses gamma * weight


def test_tv_gradient_is_the_smoothed_tv_gradient():
    x = _rand((1, 1, 9, 8), 4).requires_grad_(True)
    eps = 0.05
    val = torch.sqrt(sum(g * g for g in forward_differences(x)) + eps**2).sum()
    (g,) = torch.autograd.grad(val, x)
    torch.testing.assert_close(TotalVariation(1.0, eps).gradient(x.detach()), g)


def test_denoiser_prior_convention():
    seen = []
    prior = DenoiserPrior(lambda x, sigma: seen.append(sigma) or x * 0.5)
    out = prior.prox(torch.ones(1, 1, 4, 4), 0.04)
    assert seen == [pytest.approx(0.2)] and float(out.mean()) == 0.5


@pytest.mark.parametrize("reg", ["identity", "gradient"])
def test_tikhonov_prior_prox(reg):
    v, gamma = _rand((1, 1, 8, 9), 5), 0.7
    prior = TikhonovPrior(2.0, reg)
    x = prior.prox(v, gamma)
    torch.testing.assert_close(x + gamma * prior.gradient(x), v)  # optimality: x + gamma grad phi(x) = v


# ---------------------------------------------------------------- fidelities
def test_poisson_prox_closed_form():
    v, y, gamma = torch.linspace(-1, 2, 7, dtype=torch.float64), torch.tensor([0, 0.5, 1, 2, 0, 3, 1.0], dtype=torch.float64), 0.3
    u = poisson_prox(v, y, gamma)
    # grid minimisation of gamma (u - y log u) + (u - v)^2 / 2 over u > 0, per pixel
    grid = torch.linspace(1e-6, 4, 400001, dtype=torch.float64)[:, None]
    f = gamma * (grid - torch.where(y > 0, y * torch.log(grid), torch.zeros_like(grid))) + 0.5 * (grid - v) ** 2
    torch.testing.assert_close(u, grid[f.argmin(0), 0], atol=2e-5, rtol=0)
    assert bool((u >= 0).all())


def test_fidelity_gradients_and_prox():
    op = Convolution(torch.from_numpy(gaussian_psf(5, 1.0)).double(), (10, 12), "valid")
    x = _rand((1, 1) + op.in_shape, 6) + 0.1
    y = _rand((1, 1) + op.out_shape, 7) + 0.1
    for fid in (L2Fidelity(op, y), PoissonKL(op, y, background=0.05)):
        xg = x.clone().requires_grad_(True)
        if isinstance(fid, L2Fidelity):
            val = 0.5 * ((op.A(xg) - y) ** 2).sum()
        else:
            m = op.A(xg) + 0.05
            val = (y * torch.log(y / m) + m - y).sum()
        (g,) = torch.autograd.grad(val, xg)
        torch.testing.assert_close(fid.gradient(x), g)
        assert abs(fid.value(x) - float(val)) < 1e-9 * abs(float(val))
    p = L2Fidelity(op, y).prox(x, 2.0, max_iter=500, tol=1e-13)
    torch.testing.assert_close(p, op.prox_l2(x, y, 0.5, max_iter=500, tol=1e-13))
    ident = PoissonKL(None, y)
    torch.testing.assert_close(ident.prox(y, 0.3), poisson_prox(y, y, 0.3))
    with pytest.raises(InputError, match="identity"):
        PoissonKL(op, y).prox(x, 0.3)


# ---------------------------------------------------------------- driver
def test_driver_stopping_and_progress():
    seen = []
    step = lambda v, it: (v * 0.5, None)  # noqa: E731  (relative change 0.5 every step)
    x, info = iterate(step, torch.ones(1, 1, 4, 4), 10, progress=Progress(10, "t", False, lambda it, x, i: seen.append(it)))
    assert info == {"iterations": 10, "stopped_by": "num_iter"} and seen == list(range(10))
    assert float(x.max()) == 0.5**10
    step = lambda v, it: (v * (1 - 0.5 / (it + 1) ** 2), None)  # noqa: E731
    _, info = iterate(step, torch.ones(1, 1, 4, 4), 100, stop=StoppingRule("relative-change", tol=1e-3))
    # relative change 0.5 / k^2 < 1e-3 first at k = 23
    assert info == {"iterations": 23, "stopped_by": "relative-change"}
    y = torch.full((1, 1, 4, 4), 2.0)
    step = lambda v, it: (v + 0.5, v)  # noqa: E731  (model = v: discrepancy (v - 2)^2 / 0.1^2 <= 1 once v = 2)
    _, info = iterate(step, torch.zeros(1, 1, 4, 4), 10, y=y, stop=StoppingRule("discrepancy", sigma=0.1))
    assert info == {"iterations": 5, "stopped_by": "discrepancy"}
    with pytest.raises(InputError, match="acceleration"):
        iterate(step, y, 1, acceleration="anderson")


def test_nesterov_accelerates_gradient_descent():
    """FISTA momentum on least squares with an ill-conditioned blur: lower objective after 50 steps."""
    op = Convolution(torch.from_numpy(gaussian_psf(9, 2.0)).double(), (32, 32), "circular")
    truth = _rand((1, 1, 32, 32), 8)
    fid = L2Fidelity(op, op.A(truth))
    step = lambda v, it: (v - fid.gradient(v), None)  # noqa: E731  (step 1 / ||A||^2 = 1)
    plain, _ = iterate(step, torch.zeros_like(truth), 50)
    fast, _ = iterate(step, torch.zeros_like(truth), 50, acceleration="nesterov")
    assert fid.value(fast) < 0.2 * fid.value(plain)


# ---------------------------------------------------------------- methods built from the pieces
def _piecewise_constant(n=64):
    x = np.zeros((n, n), np.float32)
    x[10:30, 12:50], x[36:56, 8:28], x[40:60, 36:58] = 0.8, 0.4, 1.0
    return x


def test_tv_admm_beats_tikhonov_on_piecewise_constant():
    """Best-tuned lam of each over the same small grid (reflect boundary, noise 0.02)."""
    x = _piecewise_constant()
    psf = gaussian_psf(9, 1.5)
    y = convolve(torch.from_numpy(x)[None, None], torch.from_numpy(psf), "reflect")[0, 0].numpy()
    y = y + 0.02 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    lams = (1e-3, 3e-3, 1e-2)
    best_tik = max(psnr(tikhonov(y, psf, lam=lam), x) for lam in lams)
    best_tv = max(psnr(tv_admm(y, psf, lam=lam), x) for lam in lams)
    assert best_tik > psnr(y, x) + 1.0
    assert best_tv > best_tik + 5.0
    out, info = tv_admm(y.astype(np.float64), psf, lam=3e-3, return_info=True)
    assert out.dtype == np.float64 and info["stopped_by"] == "relative-change" and info["iterations"] < 100


def test_tv_admm_3d_and_operator():
    rng = np.random.default_rng(1)
    x = np.zeros((8, 20, 20), np.float32)
    x[2:6, 4:12, 5:15] = 1.0
    psf = gaussian_psf(3, 0.8, ndim=3)
    y = convolve(torch.from_numpy(x)[None, None], torch.from_numpy(psf), "circular")[0, 0].numpy()
    y = y + 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    out = tv_admm(y, psf, lam=3e-3, boundary="circular")
    assert out.shape == x.shape and psnr(out, x) > psnr(y, x) + 3.0


def test_poisson_pnp_improves_on_rl():
    from test_algorithms import GaussianModelDenoiser, _gauss_psf, _scene

    from unblur.algorithms.pnp import poisson_pnp

    x = _scene(40, 1)
    x = x[..., 0] if x.ndim == 3 else x
    psf = _gauss_psf()
    gain = 200.0
    z = convolve(torch.from_numpy(x.astype(np.float32))[None, None], torch.from_numpy(psf), "circular")[0, 0].numpy()
    y = (np.random.default_rng(0).poisson(gain * np.clip(z, 0, None)) / gain).astype(np.float32)
    out, info = poisson_pnp(y, psf, gain=gain, num_iter=20, prior=GaussianModelDenoiser(), boundary="circular")
    assert out.shape == y.shape and info["nfe"] == 20
    assert psnr(out, x) > psnr(y, x) + 2.0
    assert psnr(out, x) > psnr(richardson_lucy(y, psf, 30, boundary="circular"), x) + 2.0
    with pytest.raises(InputError, match="gain"):
        poisson_pnp(y, psf, gain=0, prior=GaussianModelDenoiser())


def test_multiplicative_driver_matches_generic_biggs_andrews():
    """A step returning the factor q (x_new = v q) gives the iterates of the same step in the generic form,
    with Biggs-Andrews acceleration, the relative-change rule and the callback."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 6, 7, generator=g) + 0.5

    class Mult:
        multiplicative = True

        def __init__(self):
            self.buf = torch.empty_like(target)

        def point_buffer(self):
            return self.buf

        def __call__(self, v, it):
            return (target / v) ** 0.5, None   # fixed point x = target, contraction 1/2 in log

    generic = lambda v, it: (v * (target / v) ** 0.5, None)  # noqa: E731
    x0 = torch.full_like(target, 0.7)
    seen = []
    for accel in ("none", "biggs-andrews"):
        a, ia = iterate(Mult(), x0, 40, acceleration=accel, project=lambda v: v.clamp_min(0),
                        stop=StoppingRule("relative-change", tol=1e-5),
                        progress=Progress(40, "t", False, lambda it, x, i: seen.append(it)))
        b, ib = iterate(generic, x0, 40, acceleration=accel, project=lambda v: v.clamp_min(0),
                        stop=StoppingRule("relative-change", tol=1e-5))
        assert ia == ib and 5 < ia["iterations"] < 40
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    assert float(x0.max()) == pytest.approx(0.7)   # x0 untouched
    assert seen[:3] == [0, 1, 2]


def test_conjugate_gradient_on_the_driver():
    """CG: the textbook loop's iterate, the relative-residual rule, per-iteration callbacks."""
    from unblur.solvers.cg import conjugate_gradient
    g = torch.Generator().manual_seed(0)
    A = torch.randn(2, 12, 12, generator=g, dtype=torch.float64)
    M = A @ A.transpose(1, 2) + 0.1 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(2, 12, 1, generator=g, dtype=torch.float64)
    x, r = torch.zeros_like(b), b.clone()
    p, rs, n_ref = r.clone(), (r * r).sum((1, 2), keepdim=True), 0
    for _ in range(200):                      # reference loop
        if bool((rs / (b * b).sum((1, 2), keepdim=True)).max() < 1e-9**2):
            break
        Mp = M @ p
        alpha = rs / (p * Mp).sum((1, 2), keepdim=True)
        x, r = x + alpha * p, r - alpha * Mp
        rs_new = (r * r).sum((1, 2), keepdim=True)
        p, rs, n_ref = r + rs_new / rs * p, rs_new, n_ref + 1
    seen = []
    got = conjugate_gradient(lambda v: M @ v, b, max_iter=200, tol=1e-9,
                             progress=Progress(200, "cg", False, lambda it, xx, info: seen.append(info["stop_value"])))
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)
    assert len(seen) == n_ref and 5 < n_ref < 200 and seen[-1] < 1e-9 <= seen[-2]
    assert conjugate_gradient(lambda v: M @ v, b, x0=got, tol=1e-6) is not got  # warm start: returns a copy at once


def test_multiplicative_driver_state_region_and_dtype():
    """Biggs-Andrews state kept on a region (``step.state_region``): with an elementwise step the region
    follows the accelerated run of that part alone and the rest plain steps; ``step.state_dtype``
    bfloat16 stays close to float32 state."""
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 8, 9, generator=g) + 0.5
    region = (slice(None), slice(None), slice(2, 6), slice(1, 7))

    class Mult:
        multiplicative = True

        def __init__(self, tgt, **attrs):
            self.tgt, self.buf = tgt, torch.empty_like(tgt)
            self.__dict__.update(attrs)

        def point_buffer(self):
            return self.buf

        def __call__(self, v, it):
            return (self.tgt / v) ** 0.5, None

    x0 = torch.full_like(target, 0.7)
    run = lambda step, x, accel: iterate(step, x, 9, acceleration=accel, project=lambda v: v.clamp_min(0))[0]  # noqa: E731
    lean = run(Mult(target, state_region=region), x0, "biggs-andrews")
    plain = run(Mult(target), x0, "none")
    sub = run(Mult(target[region].contiguous()), x0[region].contiguous(), "biggs-andrews")
    torch.testing.assert_close(lean[region], sub, rtol=1e-6, atol=0)
    outside = torch.ones_like(target, dtype=torch.bool)
    outside[region] = False
    torch.testing.assert_close(lean[outside], plain[outside], rtol=0, atol=0)
    assert float((sub - target[region]).abs().max()) < float((plain[region] - target[region]).abs().max()) / 10
    bf = run(Mult(target, state_dtype=torch.bfloat16), x0, "biggs-andrews")
    full = run(Mult(target), x0, "biggs-andrews")
    torch.testing.assert_close(bf, full, rtol=1e-2, atol=0)
