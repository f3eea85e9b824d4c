"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky, Ye, ICLR 2023) for deblurring.

Ancestral DDPM over timesteps of the linear 1000-step schedule, each step followed by the DPS correction
``-zeta grad_{x_t} ||y - A x0_hat(x_t)||`` (:class:`~unblur.algorithms.guidance.DPSGuidance`; the
reference code's unsquared norm: the paper's step ``zeta' / ||y - A x0_hat||`` on the squared norm's
gradient is ``2 zeta'`` times this gradient).  States are in [-1, 1] units.  One network evaluation per
step (``nfe = steps``).

Start (``start``, ``t_start``).  The paper starts from pure noise ``x_999 ~ N(0, I)`` (``start="noise"``,
with ``steps=1000`` its Algorithm 1).  The default follows "Come-Closer-Diffuse-Faster" (CCDF; Chung, Sim,
Ye, CVPR 2022): a cheap data-consistent estimate ``x_init`` ([0, 1]) is forward-diffused to an intermediate
timestep ``t0 = t_start``::

    x_t0 = sqrt(abar_t0) (2 x_init - 1) + sqrt(1 - abar_t0) z,      z ~ N(0, I)

and the reverse DPS steps run from ``t0`` only.  A reverse process started close to the data needs fewer
steps (CCDF's contraction argument: the distance to the posterior sample shrinks at each step, so a start
with a smaller error ends with a smaller error) and stays closer to the data.  ``start="rl"`` (default)
takes Richardson-Lucy (50 iterations on the same blur operator, ``"valid"`` boundary by default) as
``x_init``, ``start="y"`` the blurred image, an array a caller's own estimate; ``steps`` timesteps are
evenly spaced over ``[0, t0]`` (default: every one, ``t0 + 1`` network evaluations).

Defaults.  From noise: ``zeta = 0.3``, the reference code's value for deblurring, 1000 steps and a final
data-consistency step with ``tau = 0.1`` (``start="noise", consistency_tau=0``: the paper's sampler).  From
an estimate: ``t0 = 30`` (31 network evaluations), ``zeta = 1.0`` (the DPS step of the Fast Diffusion EM
code, claroche-r/FastDiffusionEM: the guidance acts over a few dozen steps, and a larger step per step keeps
the sample on the data), a final data-consistency step with ``tau = 0.05`` (0.1 from noise) and the mean of
2 samples (``seeds = 2, average = True``: 62 network evaluations; one sample from noise).  A single DPS sample
is one draw from the posterior: it carries detail that the prior, not the data, chose, and its expected
squared error is that of the posterior mean plus the posterior variance; the mean of ``S`` samples removes
``(S - 1) / S`` of that variance term.  They were chosen on tuning images (BENCHMARKS.md, "How DPS's start was
chosen", "A third round on textured tuning images" and "The mean of several samples").

Input and output in [0, 1]; ``noise_sigma`` is in [0, 1] units (DPS papers quote it in [-1, 1] units: 0.05
there is 0.025 here); DPS itself does not use it, the final data-consistency step (``consistency_tau``,
:func:`~unblur.algorithms.guidance.consistency_step`) and the residual map (``diagnostics``,
:mod:`unblur.diagnostics`) do.

References: Chung, Kim, McCann, Klasky, Ye, "Diffusion posterior sampling for general noisy inverse
problems", ICLR 2023; Chung, Sim, Ye, "Come-Closer-Diffuse-Faster: accelerating conditional diffusion
models for inverse problems through stochastic contraction", CVPR 2022.  Measurements: BENCHMARKS.md,
"Non-blind methods per kernel size".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from ..arrays import to_batch
from ..diagnostics import run_seeds
from ..diffusion.schedule import VPSchedule
from ..errors import require
from ..solvers.richardson_lucy import rl_iterations
from .common import start as begin
from .ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from .guidance import DPSGuidance, finish_sample

if TYPE_CHECKING:
    from ..models.base import Denoiser

STARTS = ("noise", "rl", "y")
# defaults of the starts other than "noise" (BENCHMARKS.md, "How DPS's start was chosen")
T_START, ZETA_START, TAU_START, SEEDS_START = 30, 1.0, 0.05, 2
ZETA_NOISE = 0.3  # the DPS reference code's step for deblurring (the start from noise)
TAU_NOISE = 0.1  # final data-consistency tau of the start from noise
RL_START_ITERATIONS = 50  # Richardson-Lucy iterations of start="rl" (unblur's rl default)


def initial_estimate(run, start) -> torch.Tensor:
    """The [0, 1] estimate (object grid, batch layout) that ``start`` names: RL, the data, or a given array."""
    y, op = run.y, run.op
    if isinstance(start, str):
        y_pos = y.clamp_min(0)
        x = op.initial_object(y_pos)
        if start == "y":
            return x
        x = x + 1e-6 * float(y_pos.mean().clamp_min(1e-12))
        with torch.no_grad():
            x, _ = rl_iterations(op, y_pos, x, RL_START_ITERATIONS)
        return x
    x, _ = to_batch(start, 2)
    x = x.to(y)
    want = y.shape[:2] + tuple(op.in_shape)
    if tuple(x.shape) != tuple(want) and tuple(x.shape) == tuple(y.shape):
        x = op.initial_object(x)  # an estimate on the data grid: extended to the object grid as the data are
    require(tuple(x.shape) == tuple(want), f"start has shape {tuple(x.shape)}, expected {tuple(y.shape)}",
            "give an estimate in the image's layout (the same shape as the blurred image)")
    return x


def start_state(run, start, ts: list[int]) -> torch.Tensor:
    """The reverse process's first state at ``ts[0]`` ([-1, 1] units, object grid): pure noise for
    ``start="noise"``, otherwise the estimate of :func:`initial_estimate` forward-diffused to ``ts[0]`` (CCDF)."""
    shape = run.y.shape[:2] + tuple(run.op.in_shape)
    noise = randn(shape, run.y, run.generator)
    if isinstance(start, str) and start == "noise":
        return noise
    x0 = initial_estimate(run, start)
    return run.schedule.q_sample(2 * x0.clamp(0, 1) - 1, ts[0], noise)


def start_mode(start, t_start: int | None, t_default: int) -> tuple[str, int]:
    """Check ``start`` and ``t_start``; returns the start's name (``"array"`` for an estimate) and the first
    timestep (999 from noise, ``t_default`` from an estimate when ``t_start`` is omitted)."""
    custom = not isinstance(start, str)
    require(custom or start in STARTS, f"unknown start {start!r}", f"use one of {', '.join(STARTS)} or an array")
    mode = "array" if custom else start
    T = VPSchedule().T
    if t_start is None:
        t_start = T - 1 if mode == "noise" else t_default
    require(int(t_start) == t_start, f"t_start must be an integer, got {t_start!r}")
    require(mode != "noise" or t_start == T - 1, f"start='noise' begins at pure noise (t_start {T - 1}), "
            f"got t_start={t_start}", "omit t_start, or start from an estimate (start='rl') to begin lower")
    return mode, int(t_start)


def dps_refine(run, x_start: torch.Tensor, timesteps: list[int], *, zeta: float = 0.3, squared: bool = False,
               zeta_schedule: str = "constant", progress=None) -> torch.Tensor:
    """DPS steps through ``timesteps`` from state ``x_start`` ([-1, 1] units); returns the [0, 1] estimate."""
    guidance = DPSGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, zeta=zeta, squared=squared,
                           zeta_schedule=zeta_schedule, schedule=run.schedule)
    x = guided_ddpm(x_start, timesteps, run.schedule, guidance, run.generator, progress)
    return (x + 1) / 2


def start_timesteps(schedule, t_start: int, steps: int) -> list[int]:
    """``steps`` timesteps evenly spaced over ``[0, t_start]``, decreasing (``t_start = T - 1``: the respaced
    schedule of :func:`~unblur.algorithms.ddpm.respaced_timesteps`)."""
    require(0 <= t_start <= schedule.T - 1, f"t_start must be in [0, {schedule.T - 1}], got {t_start}",
            f"give a timestep of the {schedule.T}-step schedule")
    require(int(steps) == steps and 1 <= steps <= t_start + 1,
            f"steps must be an integer in [1, t_start + 1] = [1, {t_start + 1}], got {steps}",
            "use fewer steps or a later t_start (one network evaluation per timestep at most)")
    if t_start == schedule.T - 1:
        return respaced_timesteps(schedule, int(steps))
    ts = torch.linspace(0, t_start, int(steps)).round().long().unique()
    return [int(t) for t in ts.flip(0)]


def dps(image, psf, *, start: Literal["noise", "rl", "y"] = "rl", t_start: int | None = None,
        steps: int | None = None, zeta: float | None = None, squared: bool = False,
        zeta_schedule: Literal["constant", "sqrt_abar"] = "constant", prior: Denoiser | str | None = None,
        noise_sigma: float | None = None, boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid",
        consistency_tau: float | None = None, diagnostics: bool = False, seeds: int | None = None, average: bool = True,
        seed: int | None = 0, device: str | None = None, progress: bool = False, callback=None):
    """DPS deblurring of a gray ``(H, W)`` or colour ``(H, W, C)`` image in [0, 1] (module docstring).

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    start : {"noise", "rl", "y"} or array
        Where the reverse process starts (module docstring): ``"noise"`` = pure noise at ``t = 999`` (the DPS
        paper); ``"rl"`` = Richardson-Lucy (50 iterations, the operator's boundary) forward-diffused to
        ``t_start`` (CCDF); ``"y"`` = the blurred image itself forward-diffused; an array in the image's layout
        ([0, 1]) = that estimate forward-diffused.
    t_start : int, optional
        Timestep of the 1000-step schedule the reverse process starts from (CCDF's ``t0``); default 999 for
        ``start="noise"`` (the only value it takes) and 30 otherwise.
    steps : int, optional
        Reverse steps (network evaluations), evenly spaced over ``[0, t_start]``; default every timestep
        (``t_start + 1``; 1000 from noise: the paper).
    zeta : float, optional
        DPS step: ``x -= zeta * grad ||y - A x0_hat||`` ([-1, 1] units); default 0.3 from noise (the DPS reference
        for deblurring) and 1.0 from an estimate (module docstring).
    squared : bool
        DPS guidance on the squared norm instead of the norm.
    zeta_schedule : {"constant", "sqrt_abar"}
        DPS step schedule: constant = zeta (DPS paper); sqrt_abar = zeta sqrt(abar_t) (BlindDPS / Fast EM code).
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec (e.g. the DPS ``ffhq_10m.pt``) or a Denoiser; default: the
        embedded unblur network (``unblur.models.load_prior``).
    noise_sigma : float, optional
        Gaussian noise sigma in [0, 1] image units (a [-1, 1] value / 2); estimated if omitted.  DPS itself does not use it.
    boundary : {"valid", "replicate", "circular", "zero", "reflect"}
        Blur boundary model; ``"valid"`` (default) does not ring from the borders (:mod:`unblur.algorithms.pnp`);
        ``"replicate"`` = padding by k // 2, as the RL-diffusion paper.
    consistency_tau : float, optional
        Final data-consistency step ``argmin ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2`` around the sample
        ``x_s`` with this ``tau`` ([0, 1] units); 0 = off (the plain DPS sample); default 0.1 from noise and 0.05
        from an estimate.
    diagnostics : bool
        Add the re-blur residual map ``(A x - y) / sigma`` and its summary to ``info`` (:mod:`unblur.diagnostics`).
    seeds : int, optional
        Number of samples, drawn with the seeds ``seed``, ``seed + 1``, and so on; 2 or more adds the per-pixel
        ``seed_spread`` to ``info`` (the image returned is their mean with ``average``, otherwise the sample of
        ``seed``); default 2 from an estimate and 1 from noise.
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
        ``nfe``, ``time_s``, ``steps``, ``start``, ``t_start`` (the first timestep); with ``diagnostics``: ``residual_map``, ``residual_outlier_share``,
        ``residual_mean_abs``; with ``seeds >= 2``: ``seed_spread``, ``seed_spread_mean``, ``seeds``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.models import GaussianSmoother
    >>> y = np.full((16, 16), 0.5, np.float32)
    >>> restored, info = dps(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), steps=4)
    >>> restored.shape, info["nfe"], info["start"], info["t_start"]  # the mean of 2 samples of 4 steps
    ((16, 16), 8, 'rl', 30)
    >>> restored, info = dps(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), start="noise", steps=4)
    >>> info["nfe"], info["t_start"]  # the paper's start (pure noise), 4 respaced steps
    (4, 999)
    """
    kwargs = dict(locals())  # the parameters, for the other seeds
    for k in ("image", "psf", "seed", "seeds", "average", "diagnostics"):
        kwargs.pop(k)
    if seeds is None:
        seeds = 1 if isinstance(start, str) and start == "noise" else SEEDS_START
    require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
    if seeds > 1:
        return run_seeds(dps, image, psf, seed=seed, seeds=seeds, diagnostics=diagnostics, kwargs=kwargs,
                         average=average)
    mode, t_start = start_mode(start, t_start, T_START)
    if zeta is None:
        zeta = ZETA_NOISE if mode == "noise" else ZETA_START
    if consistency_tau is None:
        consistency_tau = TAU_NOISE if mode == "noise" else TAU_START
    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}",
            "use 0 (no final data-consistency step) or a positive tau in [0, 1] image units")
    require(zeta >= 0, f"zeta must be >= 0, got {zeta}", "give a non-negative DPS step (0 = no guidance)")
    ts = start_timesteps(VPSchedule(), t_start, t_start + 1 if steps is None else steps)
    run = begin(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    run.require_noise_levels(ts[0])
    x_start = start_state(run, start, ts)
    bar = run.progress(len(ts), "DPS", progress, callback)
    x = dps_refine(run, x_start, ts, zeta=zeta, squared=squared, zeta_schedule=zeta_schedule, progress=bar)
    bar.close()
    info = {"method": "dps", "steps": len(ts), "zeta": zeta, "squared_norm": squared, "zeta_schedule": zeta_schedule,
            "start": mode, "t_start": ts[0]}
    return finish_sample(run, x, consistency_tau, info, diagnostics)
