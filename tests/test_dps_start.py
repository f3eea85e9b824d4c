"""The samplers' start (unblur.algorithms.dps, shared by PiGDM): pure noise (the papers) or a forward-diffused
estimate (CCDF).

Tiny images and the training-free Gaussian-model prior of ``test_algorithms``: nothing here depends on
shipped weights.
"""

import numpy as np
import pytest
import torch

from unblur.algorithms import dps, pigdm
from unblur.algorithms.common import start as begin
from unblur.algorithms.ddpm import randn, respaced_timesteps
from unblur.algorithms.dps import T_START, ZETA_START, dps_refine, start_timesteps
from unblur.algorithms.ddpm import guided_ddpm, make_x0_predictor
from unblur.algorithms.guidance import PiGDMGuidance, finish_sample
from unblur.diffusion.schedule import VPSchedule
from unblur.errors import InputError
from unblur.metrics import psnr
from unblur.registry import get_method

from test_algorithms import GaussianModelDenoiser, _blur, _gauss_psf, _scene


def _valid(img, psf):
    """The valid part of the blur of ``img`` (edges cropped by k // 2), noise 0.01."""
    c = psf.shape[0] // 2
    return np.ascontiguousarray(_blur(img, psf, "replicate")[c:-c, c:-c])


def _paper_dps(y, psf, steps, seed):
    """Algorithm 1 of the DPS paper as unblur ran it before the start options: noise at t = 999, respaced steps."""
    run = begin(y, psf, boundary="valid", noise_sigma=0.01, prior=GaussianModelDenoiser(), seed=seed)
    ts = respaced_timesteps(run.schedule, steps)
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    x = dps_refine(run, x_T, ts, zeta=0.3, squared=False, zeta_schedule="constant")
    return finish_sample(run, x, 0.1, {})[0]


@pytest.mark.parametrize("steps", [1000, 7])
def test_noise_start_is_the_papers_algorithm(steps):
    img, psf = _scene(16), _gauss_psf(5, 1.0)
    y = _valid(img, psf)
    out, info = dps(y, psf, start="noise", steps=steps, prior=GaussianModelDenoiser(), noise_sigma=0.01, seed=3)
    np.testing.assert_array_equal(out, _paper_dps(y, psf, steps, seed=3))
    assert info["nfe"] == steps and info["t_start"] == 999 and info["start"] == "noise"
    if steps == 1000:
        _, info = dps(y, psf, start="noise", prior=GaussianModelDenoiser(), noise_sigma=0.01, seed=3)
        assert info["steps"] == 1000  # the default from noise: every timestep


def test_start_timesteps():
    sched = VPSchedule()
    assert start_timesteps(sched, 999, 10) == respaced_timesteps(sched, 10)
    assert start_timesteps(sched, 200, 201) == list(range(200, -1, -1))
    ts = start_timesteps(sched, 100, 5)
    assert ts == [100, 75, 50, 25, 0]


def test_default_start_is_rl_at_t_start():
    m = get_method("dps")
    assert m.defaults()["start"] == "rl" and m.defaults()["t_start"] is None and m.defaults()["steps"] is None
    assert set(m.param("start").choices) == {"noise", "rl", "y"}
    img, psf = _scene(16), _gauss_psf(5, 1.0)
    y = _valid(img, psf)
    _, info = dps(y, psf, steps=4, prior=GaussianModelDenoiser(), noise_sigma=0.01)
    assert info["start"] == "rl" and info["t_start"] == T_START == 30
    assert info["averaged"] == 2 and info["nfe"] == 2 * 4 and m.defaults()["seeds"] is None  # the mean of 2 samples
    assert info["zeta"] == ZETA_START == 1.0 and m.defaults()["zeta"] is None
    assert info["consistency_tau"] == 0.05 and m.defaults()["consistency_tau"] is None
    _, info = dps(y, psf, start="noise", steps=4, prior=GaussianModelDenoiser(), noise_sigma=0.01)
    assert info["zeta"] == 0.3 and info["consistency_tau"] == 0.1  # unblur's DPS from noise, as before
    assert info["nfe"] == 4 and "averaged" not in info  # one sample from noise
    _, info = dps(y, psf, t_start=9, prior=GaussianModelDenoiser(), noise_sigma=0.01)
    assert info["t_start"] == 9 and info["nfe"] == 2 * 10  # every timestep from t_start by default


def test_estimate_starts_improve_and_stay_close_to_the_estimate():
    img, psf = _scene(32), _gauss_psf(11, 2.5)
    y = _blur(img, psf, "circular")
    kw = dict(prior=GaussianModelDenoiser(), noise_sigma=0.01, boundary="circular", zeta=1.0, seeds=1)
    for start in ("rl", "y"):
        out, info = dps(y, psf, start=start, t_start=50, **kw)
        assert out.shape == img.shape and info["nfe"] == 51
        assert psnr(out, img) > psnr(y, img) + 0.5, (start, psnr(out, img), psnr(y, img))
    # an array start: a late t_start (little noise) returns close to the given estimate
    out, _ = dps(y, psf, start=img, t_start=3, consistency_tau=0.0, **kw)
    assert psnr(out, img) > 30
    out2, info = dps(y, psf, start=torch.from_numpy(img)[None, None], t_start=3, consistency_tau=0.0, **kw)
    np.testing.assert_array_equal(out, out2)
    assert info["start"] == "array"


def test_array_start_on_the_data_grid_of_a_valid_blur():
    img, psf = _scene(24, channels=3), _gauss_psf(5, 1.0)
    y = _valid(img, psf)  # (20, 20, 3): the object grid is 24x24
    out, info = dps(y, psf, start=y, t_start=5, prior=GaussianModelDenoiser(), noise_sigma=0.01, seeds=1)
    assert out.shape == y.shape and info["nfe"] == 6


def test_bad_start_parameters_rejected():
    img, psf = _scene(16), _gauss_psf(5, 1.0)
    y = _valid(img, psf)
    kw = dict(prior=GaussianModelDenoiser(), noise_sigma=0.01)
    with pytest.raises(InputError, match="start.*noise.*rl"):
        dps(y, psf, start="wiener", **kw)
    with pytest.raises(InputError, match="pure noise") as e:
        dps(y, psf, start="noise", t_start=100, **kw)
    assert "start='rl'" in str(e.value)
    with pytest.raises(InputError, match=r"t_start must be in \[0, 999\]"):
        dps(y, psf, t_start=1000, **kw)
    with pytest.raises(InputError, match="t_start must be an integer"):
        dps(y, psf, t_start=10.5, **kw)
    with pytest.raises(InputError, match="steps must be an integer in") as e:
        dps(y, psf, t_start=10, steps=12, **kw)
    assert "fewer steps" in str(e.value)
    with pytest.raises(InputError, match="steps"):
        dps(y, psf, steps=0, **kw)
    with pytest.raises(InputError, match="zeta must be >= 0"):
        dps(y, psf, zeta=-1.0, **kw)
    with pytest.raises(InputError, match="consistency_tau must be >= 0"):
        dps(y, psf, consistency_tau=-0.1, **kw)
    with pytest.raises(InputError, match="start has shape"):
        dps(y, psf, start=np.zeros((5, 5), np.float32), **kw)


def _paper_pigdm(y, psf, steps, seed):
    """PiGDM from pure noise over respaced steps, as unblur ran it before the start options."""
    run = begin(y, psf, boundary="valid", noise_sigma=0.01, prior=GaussianModelDenoiser(), seed=seed)
    ts = respaced_timesteps(run.schedule, steps)
    guidance = PiGDMGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, run.sigma, run.schedule,
                             r_choice="paper", weight=1.0, cg_iter=10)
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    x = guided_ddpm(x_T, ts, run.schedule, guidance, run.generator, None)
    return finish_sample(run, (x + 1) / 2, 0.02, {})[0]


def test_pigdm_noise_start_is_the_papers_sampler_and_rl_the_default():
    img, psf = _scene(16), _gauss_psf(5, 1.0)
    y = _valid(img, psf)
    kw = dict(prior=GaussianModelDenoiser(), noise_sigma=0.01, cg_iter=10)
    out, info = pigdm(y, psf, start="noise", steps=7, seeds=1, seed=3, **kw)
    np.testing.assert_array_equal(out, _paper_pigdm(y, psf, 7, seed=3))
    assert info["nfe"] == 7 and info["t_start"] == 999 and info["start"] == "noise"
    _, info = pigdm(y, psf, start="noise", seeds=1, **kw)
    assert info["steps"] == 100  # respaced over the whole schedule
    m = get_method("pigdm")
    assert m.defaults()["start"] == "rl" and m.defaults()["t_start"] is None and m.defaults()["steps"] is None
    _, info = pigdm(y, psf, **kw)
    assert info["start"] == "rl" and info["t_start"] == 200 and info["steps"] == 40 and info["nfe"] == 2 * 40
    assert info["averaged"] == 2
    _, info = pigdm(y, psf, t_start=9, seeds=1, **kw)
    assert info["t_start"] == 9 and info["steps"] == 10  # 40 steps capped at one per timestep
    with pytest.raises(InputError, match="pure noise"):
        pigdm(y, psf, start="noise", t_start=100, **kw)
    with pytest.raises(InputError, match="steps must be an integer in"):
        pigdm(y, psf, t_start=10, steps=12, **kw)
    with pytest.raises(InputError, match="start.*noise.*rl"):
        pigdm(y, psf, start="wiener", **kw)


def test_pigdm_estimate_starts_improve_and_stay_close_to_the_estimate():
    img, psf = _scene(32), _gauss_psf(11, 2.5)
    y = _blur(img, psf, "circular")
    kw = dict(prior=GaussianModelDenoiser(), noise_sigma=0.01, boundary="circular", seeds=1)
    out, info = pigdm(y, psf, t_start=50, steps=10, **kw)
    assert out.shape == img.shape and info["nfe"] == 10
    assert psnr(out, img) > psnr(y, img) + 0.5, (psnr(out, img), psnr(y, img))
    # the start is used: a late t_start (little noise) from the truth returns close to it
    out, info = pigdm(y, psf, start=img, t_start=3, consistency_tau=0.0, **kw)
    assert psnr(out, img) > 30 and info["start"] == "array"
