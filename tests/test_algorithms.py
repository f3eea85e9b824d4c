"""Tests of the non-blind learned solvers (unblur.algorithms): PnP-ADMM, DPIR, DPS, PiGDM, RL-diffusion.

Priors are tiny and training-free (an exact Gaussian-model MMSE denoiser, a random conv net for the
gradient checks), so nothing here depends on shipped weights.
"""

import numpy as np
import pytest
import torch

from unblur.algorithms import DPSGuidance, PiGDMGuidance, dpir, dps, pigdm, pnp_admm, rl_diffusion
from unblur.algorithms.ddpm import ddpm_posterior_step, make_x0_predictor
from unblur.algorithms.guidance import solve_regularized_gram
from unblur.algorithms.pnp import data_step
from unblur.algorithms.rl_diffusion import rl_diffusion_schedule
from unblur.diffusion.schedule import VPSchedule
from unblur.diagnostics import residual_map
from unblur.errors import InputError
from unblur.metrics import psnr
from unblur.models.base import Denoiser
from unblur.physics.convolution import Convolution, convolve
from unblur.registry import get_method


class GaussianModelDenoiser(Denoiser):
    """Exact MMSE denoiser of a stationary Gaussian image model (mean 0.5, 1/(f^2 + c) spectrum)."""

    name = "gaussian-model"
    sigma_max = 1e3

    def forward(self, x, sigma):
        H, W = x.shape[-2:]
        fy = torch.fft.fftfreq(H, dtype=x.dtype, device=x.device).view(-1, 1)
        fx = torch.fft.rfftfreq(W, dtype=x.dtype, device=x.device).view(1, -1)
        spectrum = 2e-4 / (fy**2 + fx**2 + 1e-3)
        gain = spectrum / (spectrum + sigma**2)
        return 0.5 + torch.fft.irfftn(torch.fft.rfftn(x - 0.5, dim=(-2, -1)) * gain, s=(H, W), dim=(-2, -1))


class TinyNet(Denoiser):
    """A random non-linear denoiser (conv-tanh-conv, sigma as an input channel) for gradient checks."""

    name = "tiny-net"
    sigma_max = 1e3

    def __init__(self, channels=1):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.nn.Parameter(0.3 * torch.randn(4, channels + 1, 3, 3, generator=g, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(0.3 * torch.randn(channels, 4, 3, 3, generator=g, dtype=torch.float64))

    def forward(self, x, sigma):
        s = torch.log1p(sigma).expand(-1, 1, *x.shape[-2:]).to(x)
        h = torch.tanh(torch.nn.functional.conv2d(torch.cat([x, s], 1), self.w1, padding=1))
        return x + torch.nn.functional.conv2d(h, self.w2, padding=1)


def _scene(size=40, channels=1):
    yy, xx = np.mgrid[:size, :size]
    img = 0.5 + 0.3 * np.sin(xx / 4) * np.cos(yy / 5)
    img[8:26, 10:18] = 0.9
    img = np.clip(img, 0, 1).astype(np.float32)
    if channels == 3:
        img = np.stack([img, img[::-1], 0.5 * (img + img.T)], -1)
    return img


def _gauss_psf(k=9, s=1.5):
    g = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * s**2))
    p = np.outer(g, g)
    return (p / p.sum()).astype(np.float32)


def _blur(img, psf, boundary, sigma=0.01, seed=0):
    t = torch.from_numpy(img)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    b = convolve(t, torch.from_numpy(psf), boundary)[0]
    b = b[0].numpy() if img.ndim == 2 else b.permute(1, 2, 0).numpy()
    return b + sigma * np.random.default_rng(seed).standard_normal(b.shape).astype(np.float32)


SOLVERS = {
    "pnp-admm": (pnp_admm, {}),
    "dpir": (dpir, {}),
    "dps": (dps, {"start": "noise", "steps": 100, "zeta": 2.0}),  # the default start: test_dps_start
    "pigdm": (pigdm, {"steps": 30}),
    "rl-diffusion": (rl_diffusion, {"N": 5, "L": 10, "M": 10, "zeta": 1.0}),
}


# PSNR gain over the blurred input (dB): about half of the measured gain (seeded runs; measured gray:
# pnp-admm 3.41, dpir 3.57, dps 0.98, pigdm 2.45, rl-diffusion 2.19; colour: pnp-admm 2.50, rl-diffusion 0.92,
# pigdm 1.20), so that a solver that stops working fails while a change of CPU or BLAS does not.
MIN_GAIN_GRAY = {"pnp-admm": 1.7, "dpir": 1.8, "dps": 0.5, "pigdm": 1.2, "rl-diffusion": 1.1}
MIN_GAIN_COLOUR = {"pnp-admm": 1.2, "rl-diffusion": 0.45, "pigdm": 0.6}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_each_solver_improves_psnr_gray(name):
    img, psf = _scene(), _gauss_psf(11, 2.5)
    y = _blur(img, psf, "circular")
    func, kw = SOLVERS[name]
    out, info = func(y, psf, prior=GaussianModelDenoiser(), noise_sigma=0.01, boundary="circular", **kw)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1  # [0, 1] in, [0, 1] out
    assert psnr(out, img) > psnr(y, img) + MIN_GAIN_GRAY[name], (psnr(out, img), psnr(y, img))
    assert info["nfe"] > 0 and info["time_s"] > 0


@pytest.mark.parametrize("name", list(MIN_GAIN_COLOUR))
def test_colour_replicate_boundary(name):
    img, psf = _scene(32, channels=3), _gauss_psf()
    y = _blur(img, psf, "replicate")
    func, kw = SOLVERS[name]
    kw = dict(kw, cg_iter=20) if name == "pigdm" else kw
    out, info = func(y, psf, prior=GaussianModelDenoiser(), noise_sigma=0.01, boundary="replicate", **kw)
    assert out.shape == img.shape and out.dtype == np.float32
    assert psnr(out, img) > psnr(y, img) + MIN_GAIN_COLOUR[name], (psnr(out, img), psnr(y, img))


def test_rl_diffusion_schedule_and_nfe():
    rl_ts, dps_ts = rl_diffusion_schedule(20, 80)
    assert rl_ts == list(range(99, 79, -1)) and dps_ts == list(range(79, -1, -1))
    assert len(rl_ts) + len(dps_ts) == 100
    sched = VPSchedule()
    assert abs(float(sched.betas[100]) - 0.002) < 1e-4  # "start at t = 100, beta = 0.002"

    seen = []

    class Recorder(GaussianModelDenoiser):
        def forward(self, x, sigma):
            seen.append(float(sigma.reshape(-1)[0]))
            return super().forward(x, sigma)

    img, psf = _scene(24), _gauss_psf(5, 1.0)
    N, L, M = 4, 3, 6
    _, info = rl_diffusion(_blur(img, psf, "replicate"), psf, N=N, L=L, M=M, prior=Recorder(), noise_sigma=0.01)
    assert info["nfe"] == N + M == len(seen)
    expected_t = list(range(M + N - 1, -1, -1))
    assert info["rl_timesteps"] + info["dps_timesteps"] == expected_t
    # the network saw exactly the noise levels of those timesteps ([0, 1] units = sigma_t / 2)
    np.testing.assert_allclose(seen, [float(sched.sigma(t)) / 2 for t in expected_t], rtol=1e-5)
    # ablation: refinement from y uses only the M refinement evaluations
    _, info_y = rl_diffusion(_blur(img, psf, "replicate"), psf, N=N, L=L, M=M, prior=Recorder(), refine_from="y")
    assert info_y["nfe"] == M and info_y["rl_timesteps"] == []


def _tiny_problem(boundary):
    g = torch.Generator().manual_seed(1)
    psf = torch.rand(3, 3, generator=g, dtype=torch.float64)
    op = Convolution(psf / psf.sum(), (8, 8), boundary)
    y = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)
    x_t = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)
    return op, y, x_t


@pytest.mark.parametrize("squared", [False, True])
def test_dps_gradient_matches_finite_differences(squared):
    op, y, x_t = _tiny_problem("replicate")
    sched = VPSchedule()
    predict = make_x0_predictor(TinyNet(), sched)
    guide = DPSGuidance(predict, y, op, zeta=0.3, squared=squared)
    t = 300
    _, g = guide.gradient(x_t, t)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (0, 0, 3, 4), (0, 0, 7, 7), (0, 0, 5, 1)]:
        e = torch.zeros_like(x_t)
        e[idx] = h
        with torch.no_grad():
            fd = float((guide.loss(predict(x_t + e, t)) - guide.loss(predict(x_t - e, t))) / (2 * h))
        gi = float(g[idx].detach())
        assert abs(gi - fd) < 1e-6 * max(1.0, abs(fd)), (idx, gi, fd)
    # the update is -zeta * gradient
    _, upd = guide(x_t, t, t - 1)
    torch.testing.assert_close(upd, -0.3 * g)


@pytest.mark.parametrize("boundary", ["circular", "replicate"])
def test_pigdm_gradient_matches_finite_differences(boundary):
    op, y, x_t = _tiny_problem(boundary)
    sched = VPSchedule()
    predict = make_x0_predictor(TinyNet(), sched)
    guide = PiGDMGuidance(predict, y, op, sigma=0.05, schedule=sched, cg_iter=200)
    t, s = 400, 390
    x0, g = guide.gradient(x_t, t, s)
    v = guide.vector(x0, guide.r_squared(t, s))
    gen = torch.Generator().manual_seed(3)
    h = 1e-6
    for _ in range(3):  # directional derivatives: <g, d> = <v, d x0_hat(x_t)[d]>
        d = torch.randn(x_t.shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            fd = float(((predict(x_t + h * d, t) - predict(x_t - h * d, t)) / (2 * h) * v).sum())
            gd = float((g * d).sum())
        assert abs(gd - fd) < 1e-6 * max(1.0, abs(fd)), (gd, fd)
    # the regularised inverse solves the system it claims to (Fourier or CG)
    r = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    sol = solve_regularized_gram(op, r, 0.7, 0.01, max_iter=500, tol=1e-12)
    torch.testing.assert_close(0.7 * op.A(op.A_adjoint(sol)) + 0.01 * sol, r, atol=1e-8, rtol=1e-8)



def _abar_by_hand(t):
    """``abar_t`` of the linear schedule (betas 1e-4 .. 0.02, T = 1000), computed here independently."""
    return float(np.prod(1.0 - np.linspace(1e-4, 0.02, 1000)[: t + 1]))


def test_dps_zeta_schedule():
    op, y, x_t = _tiny_problem("replicate")
    sched = VPSchedule()
    predict = make_x0_predictor(TinyNet(), sched)
    const = DPSGuidance(predict, y, op, zeta=0.3)
    ramp = DPSGuidance(predict, y, op, zeta=0.3, zeta_schedule="sqrt_abar", schedule=sched)
    for t in (0, 250, 999):
        assert const.step_size(t) == 0.3
        assert abs(ramp.step_size(t) - 0.3 * _abar_by_hand(t) ** 0.5) < 1e-12
    assert abs(ramp.step_size(999) - 0.3 * 0.0063532) < 1e-6  # sqrt(abar_999) = 6.35e-3
    # the update is -zeta_t * gradient, the gradient itself unchanged
    t = 300
    _, g = const.gradient(x_t, t)
    _, upd = ramp(x_t, t, t - 1)
    torch.testing.assert_close(upd, -0.3 * _abar_by_hand(t) ** 0.5 * g)
    # the default schedule object is unblur's linear one
    assert DPSGuidance(predict, y, op, zeta_schedule="sqrt_abar").step_size(t) == ramp.step_size(t)
    with pytest.raises(InputError, match="zeta schedule"):
        DPSGuidance(predict, y, op, zeta_schedule="linear")


def test_pigdm_r_squared_and_step_by_hand():
    op, y, _ = _tiny_problem("circular")
    sched = VPSchedule()
    predict = make_x0_predictor(TinyNet(), sched)
    kw = dict(sigma=0.05, schedule=sched)
    paper = PiGDMGuidance(predict, y, op, r_choice="paper", **kw)
    fast = PiGDMGuidance(predict, y, op, r_choice="fastem", weight=2.0, **kw)
    t, s = 400, 390
    ab_t, ab_s = _abar_by_hand(t), _abar_by_hand(s)
    alpha = ab_t / ab_s
    v = (1 - alpha) * (1 - ab_s) / (1 - ab_t)
    assert abs(paper.r_squared(t, s) - (1 - ab_t)) < 1e-12
    assert abs(fast.r_squared(t, s) - 4 * v / (1 + v)) < 1e-12  # v / (1 + v) in [0, 1] units
    assert abs(paper.coefficient(t, s) - (1 - alpha) / alpha**0.5) < 1e-12
    assert abs(fast.coefficient(t, s) - 2.0 * ab_t**0.5 * (v / (1 + v)) * (1 / (1 + v)) ** 0.5) < 1e-12
    # last step (s = -1): the step variance is 0, so the Fast EM update vanishes; the Tweedie one does not
    assert fast.r_squared(0, -1) == 0.0 and fast.coefficient(0, -1) == 0.0
    assert abs(paper.coefficient(0, -1) - (1 - _abar_by_hand(0)) / _abar_by_hand(0) ** 0.5) < 1e-12
    with pytest.raises(InputError, match="r_t"):
        PiGDMGuidance(predict, y, op, r_choice="posterior", **kw)


@pytest.mark.parametrize("r_choice", ["paper", "fastem"])
def test_pigdm_gradient_is_unit_free(r_choice):
    """g computed as the Fast EM code does, in [0, 1] units (x0 in [0, 1], sigma in [0, 1] units, r^2 / 4),
    equals unblur's [-1, 1]-unit g (circular blur: both inverses exact in Fourier)."""
    op, y, x_t = _tiny_problem("circular")
    sched = VPSchedule()
    predict = make_x0_predictor(TinyNet(), sched)
    sigma = 0.05
    guide = PiGDMGuidance(predict, y, op, sigma=sigma, schedule=sched, r_choice=r_choice)
    t, s = 400, 390
    _, g = guide.gradient(x_t, t, s)
    r2_01 = guide.r_squared(t, s) / 4
    xt = x_t.clone().requires_grad_(True)
    x01 = (predict(xt, t) + 1) / 2
    vec = op.A_adjoint(solve_regularized_gram(op, y - op.A(x01.detach()), r2_01, sigma**2))
    (g01,) = torch.autograd.grad(x01, xt, grad_outputs=vec)
    torch.testing.assert_close(g01, g, atol=1e-10, rtol=1e-10)

def test_fourier_and_cg_data_steps_agree():
    op, y, _ = _tiny_problem("circular")
    v = torch.rand_like(y)
    exact = data_step(op, y, v, 0.2, method="fourier")
    cg = data_step(op, y, v, 0.2, method="cg", max_iter=500, tol=1e-12)
    torch.testing.assert_close(exact, cg, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(op.AtA(exact) + 0.2 * exact, op.A_adjoint(y) + 0.2 * v)


def test_ddpm_step_ends_at_x0():
    sched = VPSchedule()
    x_t, x0 = torch.randn(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(ddpm_posterior_step(sched, x_t, x0, 0, -1, torch.randn(1, 1, 4, 4)), x0)


@pytest.mark.parametrize("name", ["dps", "rl-diffusion"])
def test_same_seed_same_result(name):
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    y = _blur(img, psf, "replicate")
    func, kw = SOLVERS[name]
    kw = dict(kw, steps=10) if name == "dps" else dict(kw, N=2, M=3)
    a, _ = func(y, psf, prior=GaussianModelDenoiser(), seed=7, **kw)
    b, _ = func(y, psf, prior=GaussianModelDenoiser(), seed=7, **kw)
    c, _ = func(y, psf, prior=GaussianModelDenoiser(), seed=8, **kw)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


DIAG_KW = {"dps": {"steps": 6}, "pigdm": {"steps": 6, "cg_iter": 10}, "rl-diffusion": {"N": 2, "L": 5, "M": 2}}


@pytest.mark.parametrize("name", list(DIAG_KW))
def test_samplers_return_maps_only_when_asked(name):
    img, psf = _scene(24, channels=3), _gauss_psf(5, 1.0)
    y = _blur(img, psf, "replicate", sigma=0.02)
    func = SOLVERS[name][0]
    kw = dict(DIAG_KW[name], prior=GaussianModelDenoiser(), noise_sigma=0.02, seed=3, average=False)
    plain, info = func(y, psf, seeds=1, **kw)
    assert not {"residual_map", "seed_spread", "residual_outlier_share", "seed_spread_mean"} & set(info)
    out, info = func(y, psf, seeds=1, diagnostics=True, **kw)
    np.testing.assert_array_equal(out, plain)  # the maps do not change the result
    r = info["residual_map"]
    assert isinstance(r, np.ndarray) and r.shape == y.shape
    assert 0 <= info["residual_outlier_share"] <= 1 and info["residual_mean_abs"] > 0
    assert "seed_spread" not in info
    out2, info2 = func(y, psf, seeds=2, **kw)
    np.testing.assert_array_equal(out2, plain)  # the first seed's sample is returned
    assert info2["seeds"] == [3, 4] and info2["seed_spread"].shape == y.shape
    assert info2["seed_spread_mean"] > 0 and "residual_map" not in info2
    with pytest.raises(InputError):
        func(y, psf, seeds=0, **kw)


@pytest.mark.parametrize("name", list(DIAG_KW))
def test_average_returns_the_mean_of_the_seeds_and_its_residual_map(name):
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    y = _blur(img, psf, "replicate", sigma=0.02)
    func = SOLVERS[name][0]
    kw = dict(DIAG_KW[name], prior=GaussianModelDenoiser(), noise_sigma=0.02, boundary="replicate")
    a, ia = func(y, psf, seed=3, seeds=1, diagnostics=True, **kw)
    b, ib = func(y, psf, seed=4, seeds=1, diagnostics=True, **kw)
    assert np.abs(a - b).max() > 1e-4  # two different samples
    mean, info = func(y, psf, seed=3, seeds=2, average=True, diagnostics=True, **kw)
    np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-6)
    assert info["averaged"] == 2 and info["seed_spread"].shape == y.shape
    # the map of the mean: the residual is linear in the image (both samples lie in [0, 1], no clipping)
    want = residual_map(y, mean, psf, 0.02, boundary="replicate")
    np.testing.assert_allclose(info["residual_map"], want, atol=1e-3)
    np.testing.assert_allclose(info["residual_map"], (ia["residual_map"] + ib["residual_map"]) / 2, atol=1e-5)
    one, info = func(y, psf, seed=3, seeds=1, average=True, **kw)
    np.testing.assert_array_equal(one, a)  # the mean of one sample is that sample

@pytest.mark.parametrize("name, ratio", [("dps", 0.5), ("pigdm", 0.5), ("rl-diffusion", 0.9)])  # RL-diffusion: close
def test_consistency_step_brings_the_output_back_to_the_data(name, ratio):
    img, psf = _scene(32), _gauss_psf(7, 1.5)
    y = _blur(img, psf, "replicate", sigma=0.02)
    func = SOLVERS[name][0]
    kw = dict(DIAG_KW[name], prior=GaussianModelDenoiser(), noise_sigma=0.02, diagnostics=True)
    if name == "dps":
        kw["zeta"] = 0.05  # far too weak guidance: the sample ignores the data
    if name == "pigdm":
        kw["weight"] = 0.02  # the same for PiGDM
    _, off = func(y, psf, consistency_tau=0.0, **kw)
    out, on = func(y, psf, consistency_tau=0.05, **kw)
    assert on["consistency_tau"] == 0.05 and out.min() >= 0 and out.max() <= 1
    assert on["residual_mean_abs"] < ratio * off["residual_mean_abs"], (on["residual_mean_abs"], off["residual_mean_abs"])


def test_rl_diffusion_default_M_follows_the_noise_level():
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    y = _blur(img, psf, "replicate")
    for sigma, M in ((0.01, 20), (0.025, 20), (0.05, 80)):
        _, info = rl_diffusion(y, psf, N=2, L=2, prior=GaussianModelDenoiser(), noise_sigma=sigma)
        assert info["M"] == M and info["nfe"] == 2 + M and info["dps_timesteps"][0] == M - 1
    _, info = rl_diffusion(y, psf, N=2, L=2, M=5, prior=GaussianModelDenoiser(), noise_sigma=0.05)
    assert info["M"] == 5


def test_registry_and_cli_parameters():
    m = get_method("rl-diffusion")
    assert m.defaults()["N"] == 20 and m.defaults()["L"] == 20 and m.defaults()["M"] is None
    assert m.defaults()["consistency_tau"] == 0.05 and get_method("dps").defaults()["consistency_tau"] is None
    assert get_method("pigdm").defaults()["consistency_tau"] == 0.02
    assert get_method("pnp-admm").defaults()["rho"] == 0.02 and get_method("pnp-admm").defaults()["num_iter"] == 24
    assert get_method("dps").defaults()["zeta"] is None  # 0.3 from noise, 1.0 from an estimate (test_dps_start)
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    out, info = get_method("pigdm").func(_blur(img, psf, "replicate"), psf, prior=GaussianModelDenoiser(), steps=5,
                                         progress=False)
    assert info["nfe"] == 2 * 5 and info["averaged"] == 2 and out.shape == img.shape  # the mean of 2 samples
    assert get_method("pigdm").defaults()["seeds"] == 2 and get_method("pigdm").defaults()["average"] is True


@pytest.mark.parametrize("name", list(SOLVERS))
def test_bad_inputs_rejected(name):
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    func, _ = SOLVERS[name]
    with pytest.raises(InputError, match="sigma"):
        func(img, psf, prior=GaussianModelDenoiser(), noise_sigma=-0.1)
    with pytest.raises(InputError, match="PSF"):
        func(img, _gauss_psf(31, 4.0), prior=GaussianModelDenoiser())
    with pytest.raises(InputError, match="channel"):
        func(_scene(24, 3), np.stack([psf, psf], -1), prior=GaussianModelDenoiser())
    with pytest.raises(InputError, match="prior"):
        func(img, psf, prior=42)


def test_checkpoint_of_the_wrong_kind_rejected(tmp_path):
    bad = tmp_path / "not_a_prior.pt"
    torch.save({"optimizer": {"lr": 1e-3}}, bad)
    img, psf = _scene(24), _gauss_psf(5, 1.0)
    with pytest.raises(InputError):
        rl_diffusion(img, psf, prior=str(bad), N=1, M=1)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError):
        dps(img, psf, prior=str(text), steps=2)


def test_sampler_refuses_prior_without_the_noise_range():
    class SmallRange(GaussianModelDenoiser):
        sigma_max = 1.0  # like a DnCNN: trained up to sigma 1 in [0, 1] units

    img, psf = _scene(24), _gauss_psf(5, 1.0)
    with pytest.raises(InputError, match="timestep 999"):
        dps(img, psf, prior=SmallRange(), start="noise", steps=10)
    _, info = dps(img, psf, prior=SmallRange(), t_start=9, seeds=1)  # from an estimate at t = 9: allowed
    assert info["nfe"] == 10
    with pytest.raises(InputError, match="timestep"):
        pigdm(img, psf, prior=SmallRange(), start="noise", steps=10)
    _, info = rl_diffusion(img, psf, prior=SmallRange(), N=2, L=2, M=2)  # t < 100 only: allowed
    assert info["nfe"] == 4


def test_gray_prior_on_colour_image_channel_by_channel():
    from unblur.algorithms.prior import CountedPrior

    class Gray(GaussianModelDenoiser):
        channels = (1,)

    x = torch.rand(2, 3, 16, 16)
    p = CountedPrior(Gray(), border=0)
    out = p(x, torch.tensor([0.1, 0.2]))
    ref = torch.stack([Gray()(x[:, c:c + 1], torch.tensor([0.1, 0.2]))[:, 0] for c in range(3)], 1)
    torch.testing.assert_close(out, ref)
    assert p.nfe == 1
