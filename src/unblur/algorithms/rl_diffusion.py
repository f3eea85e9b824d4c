"""RL-diffusion: Richardson-Lucy iterations regularised by a diffusion prior, then DPS refinement.

Modrzyk, Etxebeste, Bretin, Maxim, "Fast deconvolution using a combination of Richardson-Lucy iterations
and diffusion regularization", EUSIPCO 2024, Algorithm 1:

1. ``x = y`` (the blurred image, [0, 1], negative values set to 0 for RL).
2. For ``i = 0 .. N-1`` with ``t_i = M + N - 1 - i`` (timesteps of the linear T = 1000 schedule; with the
   paper's N = 20, M = 80 the RL phase spans ``t = 99 .. 80``: its "start at t = 100, beta = 0.002"):
   ``x' = RL^L(x)`` (``L`` Richardson-Lucy iterations on [0, 1] data, :func:`rl_iterations`), renoise
   ``x_t = sqrt(abar_t) x' + sqrt(1 - abar_t) z`` (in [-1, 1] units) and take the Tweedie estimate
   ``x = x0_hat(x_t)`` (one network evaluation; clipped to [0, 1] so that RL stays positive).
3. Renoise the result to ``t = M - 1`` and run ``M`` DPS steps ``t = M-1 .. 0``
   (:func:`unblur.algorithms.dps.dps_refine`; same zeta/norm/``zeta_schedule`` conventions as DPS; the
   paper uses a constant ``zeta``).
4. Optionally (``consistency_tau > 0``) a final data-consistency step around the result
   (:func:`unblur.algorithms.guidance.consistency_step`): ``argmin ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2``.

Network evaluations: ``N + M``.  Default ``M`` (``M=None``): 20 when the noise sigma (given or estimated)
is at most 0.025 (RL phase ``t = 39 .. 20``, 40 evaluations), else 80, the paper's (``t = 99 .. 80``, 100
evaluations): with unblur's embedded prior, on non-face images, the shorter schedule is better at low
noise and worse at sigma 0.05, where the RL phase needs the higher noise levels of the later start.  The
default ``consistency_tau = 0.05`` adds step 4 (the paper has none): the DPS refinement drifts away from
the data (the re-blur residual shows where) and step 4 brings it back.  Measurements: BENCHMARKS.md,
"Diffusion methods on non-face images".  The paper's blur model is
replicate padding by ``k // 2`` (``boundary="replicate"``); the default is ``"valid"``, as for every learned
non-blind method (:mod:`unblur.algorithms.pnp`: padding models ring from the borders with long kernels).  ``refine_from`` starts
step 3 from another reconstruction instead (the paper's Table II ablation): ``"y"`` (the data),
``"rl-tv"`` (25 RL-TV iterations, lambda 0.005), ``"pnp-admm"`` (default PnP-ADMM, 12 network
evaluations more) or an array in the image's layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from ..diagnostics import run_seeds
from ..diffusion.schedule import x0_from_denoiser
from ..errors import require
from ..solvers.problem import setup_problem
from ..solvers.richardson_lucy import rl_iterations
from .common import start
from .ddpm import randn
from .dps import dps_refine
from .guidance import finish_sample
from .pnp import admm_iterations

if TYPE_CHECKING:
    from ..models.base import Denoiser


REFINE_FROM = ("rl-diffusion", "y", "rl-tv", "pnp-admm")
M_PAPER, M_LOW_NOISE, LOW_NOISE = 80, 20, 0.025  # default M: 20 up to noise sigma 0.025 ([0, 1] units), else 80
_RL_FLOOR = 1e-6  # keeps the multiplicative RL update able to leave pixels the prior set to 0


def rl_diffusion_schedule(N: int, M: int, T: int = 1000) -> tuple[list[int], list[int]]:
    """Timesteps of Algorithm 1: RL phase ``[M+N-1, ..., M]`` and DPS refinement ``[M-1, ..., 0]``."""
    require(N >= 0 and M >= 1, f"need N >= 0 and M >= 1, got N={N}, M={M}")
    require(M + N <= T, f"M + N = {M + N} exceeds the schedule length {T}")
    return list(range(M + N - 1, M - 1, -1)), list(range(M - 1, -1, -1))


def rl_diffusion(image, psf, *, N: int = 20, L: int = 20, M: int | None = None, zeta: float = 0.3, squared: bool = False,
                 zeta_schedule: Literal["constant", "sqrt_abar"] = "constant",
                 refine_from: Literal["rl-diffusion", "y", "rl-tv", "pnp-admm"] = "rl-diffusion",
                 prior: Denoiser | str | None = None, noise_sigma: float | None = None,
                 boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid",
                 consistency_tau: float = 0.05, diagnostics: bool = False, seeds: int = 1, average: bool = False,
                 seed: int | None = 0, device: str | None = None, progress: bool = False, callback=None):
    """RL-diffusion deblurring (module docstring) of a gray or colour image in [0, 1].

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    N : int
        Outer RL + renoise/Tweedie steps (t = M+N-1 .. M).
    L : int
        Richardson-Lucy iterations per outer step.
    M : int, optional
        DPS refinement steps (t = M-1 .. 0); default 20 when the noise sigma is at most 0.025, else 80 (the paper's).
    zeta : float
        DPS step: ``x -= zeta * grad ||y - A x0_hat||`` ([-1, 1] units; 0.3 = the DPS reference for deblurring).
    squared : bool
        DPS guidance on the squared norm instead of the norm.
    zeta_schedule : {"constant", "sqrt_abar"}
        DPS step schedule: constant = zeta (DPS paper); sqrt_abar = zeta sqrt(abar_t) (BlindDPS / Fast EM code).
    refine_from : {"rl-diffusion", "y", "rl-tv", "pnp-admm"} or array
        Start of the DPS refinement (the paper's Table II ablation; module docstring).
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec (e.g. the DPS ``ffhq_10m.pt``) or a Denoiser; default: the
        embedded unblur network (``unblur.models.load_prior``).
    noise_sigma : float, optional
        Gaussian noise sigma in [0, 1] image units (a [-1, 1] value / 2); estimated if omitted.  Neither RL nor DPS
        uses it; the final data-consistency step and the residual map do.
    boundary : {"valid", "replicate", "circular", "zero", "reflect"}
        Blur boundary model; ``"valid"`` (default) does not ring from the borders (:mod:`unblur.algorithms.pnp`);
        ``"replicate"`` = padding by k // 2, as the RL-diffusion paper.
    consistency_tau : float
        Final data-consistency step ``argmin ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2`` around the result
        ``x_s`` with this ``tau`` ([0, 1] units); 0 = off (the paper's algorithm).
    diagnostics : bool
        Add the re-blur residual map ``(A x - y) / sigma`` and its summary to ``info`` (:mod:`unblur.diagnostics`).
    seeds : int
        Number of samples, drawn with the seeds ``seed``, ``seed + 1``, and so on; 2 or more adds the per-pixel
        ``seed_spread`` to ``info`` (the image returned is the sample of ``seed``, or their mean with ``average``).
    average : bool
        Return the per-pixel mean of the ``seeds`` samples (a Monte-Carlo estimate of the posterior mean:
        details that the samples do not share average out) instead of the sample of ``seed``.
    seed : int, optional
        Random seed (same seed, same device: same result).
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(step, x, info)`` after each step.

    Returns
    -------
    restored : array
        Same layout as ``image``.
    info : dict
        ``nfe`` (N + M), ``time_s``, ``rl_timesteps``, ``dps_timesteps``; with ``diagnostics``: ``residual_map``,
        ``residual_outlier_share``, ``residual_mean_abs``; with ``seeds >= 2``: ``seed_spread``,
        ``seed_spread_mean``, ``seeds``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.models import GaussianSmoother
    >>> y = np.full((16, 16), 0.5, np.float32)
    >>> restored, info = rl_diffusion(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), N=2, L=2, M=2)
    >>> restored.shape, info["nfe"]
    ((16, 16), 4)
    """
    kwargs = dict(locals())  # the parameters, for the other seeds
    for k in ("image", "psf", "seed", "seeds", "average", "diagnostics"):
        kwargs.pop(k)
    require(L >= 0, f"L must be >= 0, got {L}")
    require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}")
    if seeds > 1:
        return run_seeds(rl_diffusion, image, psf, seed=seed, seeds=seeds, diagnostics=diagnostics, kwargs=kwargs,
                         average=average)
    custom = not isinstance(refine_from, str)
    require(custom or refine_from in REFINE_FROM, f"unknown refine_from {refine_from!r}",
            f"use one of {', '.join(REFINE_FROM)} or an array")
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    y, op, sched = run.y, run.op, run.schedule
    y_pos = y.clamp_min(0)
    if M is None:
        M = M_LOW_NOISE if run.sigma <= LOW_NOISE else M_PAPER
    rl_ts, dps_ts = rl_diffusion_schedule(N, M, sched.T)
    run.require_noise_levels((rl_ts + dps_ts)[0])
    if refine_from != "rl-diffusion":
        rl_ts = []
    bar = run.progress(len(rl_ts) + len(dps_ts), "RL-diffusion", progress, callback)
    with torch.no_grad():
        if custom:
            init = setup_problem(np.asarray(refine_from) if not isinstance(refine_from, torch.Tensor) else refine_from,
                                 run.problem.psf[0, 0].cpu().numpy(), boundary).y.to(y)
            require(init.shape == y.shape, f"refine_from has shape {tuple(init.shape)}, expected {tuple(y.shape)}")
            x = init
        elif refine_from == "rl-tv":
            x, _ = rl_iterations(op, y_pos, op.initial_object(y_pos) + 1e-6, 25, lambda_tv=0.005)
        elif refine_from == "pnp-admm":
            x = admm_iterations(op, y, run.prior, [0.2] * 12, max(run.sigma, 1e-3))
        else:
            x = op.initial_object(y_pos)
        for i, t in enumerate(rl_ts):
            x, _ = rl_iterations(op, y_pos, x.clamp_min(_RL_FLOOR), L)
            x_t = sched.q_sample(2 * x - 1, t, randn(x.shape, x, run.generator))
            x = (x0_from_denoiser(run.prior, x_t, t, sched).clamp(-1, 1) + 1) / 2
            bar.update(i, x, t=t)
        x_start = sched.q_sample(2 * x.clamp(0, 1) - 1, dps_ts[0], randn(x.shape, x, run.generator))
    x = dps_refine(run, x_start, dps_ts, zeta=zeta, squared=squared, zeta_schedule=zeta_schedule,
                   progress=_Offset(bar, len(rl_ts)))
    bar.close()
    info = {"method": "rl-diffusion", "N": N, "L": L, "M": M, "zeta": zeta, "zeta_schedule": zeta_schedule,
            "refine_from": "array" if custom else refine_from, "rl_timesteps": rl_ts, "dps_timesteps": dps_ts}
    return finish_sample(run, x, consistency_tau, info, diagnostics)


class _Offset:
    """Continue a progress bar's iteration count after the RL phase."""

    def __init__(self, bar, offset):
        self.bar, self.offset = bar, offset

    def update(self, it, x, **info):
        self.bar.update(it + self.offset, x, **info)
