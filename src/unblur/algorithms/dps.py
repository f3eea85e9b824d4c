"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky, Ye, ICLR 2023) for deblurring.

Ancestral DDPM from pure noise (``x_T ~ N(0, I)`` in [-1, 1] units) over ``steps`` timesteps of the linear
schedule (1000 = the paper; fewer = evenly respaced), each step followed by the DPS correction
``-zeta grad_{x_t} ||y - A x0_hat(x_t)||`` (:class:`~unblur.algorithms.guidance.DPSGuidance`; the
reference code's unsquared norm and ``zeta = 0.3`` for deblurring by default).  One network
evaluation per step (``nfe = steps``).  Input and output in [0, 1]; ``noise_sigma`` is in [0, 1]
units (DPS papers quote it in [-1, 1] units: 0.05 there is 0.025 here); DPS itself does not use it, the
final data-consistency step (``consistency_tau``, :func:`~unblur.algorithms.guidance.consistency_step`)
and the residual map (``diagnostics``, :mod:`unblur.diagnostics`) do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from ..diagnostics import run_seeds
from ..errors import require
from .common import start
from .ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from .guidance import DPSGuidance, finish_sample

if TYPE_CHECKING:
    from ..models.base import Denoiser


def dps_refine(run, x_start: torch.Tensor, timesteps: list[int], *, zeta: float = 0.3, squared: bool = False,
               zeta_schedule: str = "constant", progress=None) -> torch.Tensor:
    """DPS steps through ``timesteps`` from state ``x_start`` ([-1, 1] units); returns the [0, 1] estimate."""
    guidance = DPSGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, zeta=zeta, squared=squared,
                           zeta_schedule=zeta_schedule, schedule=run.schedule)
    x = guided_ddpm(x_start, timesteps, run.schedule, guidance, run.generator, progress)
    return (x + 1) / 2


def dps(image, psf, *, steps: int = 1000, zeta: float = 0.3, squared: bool = False,
        zeta_schedule: Literal["constant", "sqrt_abar"] = "constant", prior: Denoiser | str | None = None,
        noise_sigma: float | None = None, boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid",
        consistency_tau: float = 0.1, diagnostics: bool = False, seeds: int = 1,
        seed: int | None = 0, device: str | None = None, progress: bool = False, callback=None):
    """DPS deblurring of a gray ``(H, W)`` or colour ``(H, W, C)`` image in [0, 1] (module docstring).

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    steps : int
        Diffusion steps (1000 = the full schedule; fewer = respaced).
    zeta : float
        DPS step: ``x -= zeta * grad ||y - A x0_hat||`` ([-1, 1] units; 0.3 = the DPS reference for deblurring).
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
    consistency_tau : float
        Final data-consistency step ``argmin ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2`` around the sample
        ``x_s`` with this ``tau`` ([0, 1] units); 0 = off (the plain DPS sample).
    diagnostics : bool
        Add the re-blur residual map ``(A x - y) / sigma`` and its summary to ``info`` (:mod:`unblur.diagnostics`).
    seeds : int
        Number of samples, drawn with the seeds ``seed``, ``seed + 1``, and so on; 2 or more adds the per-pixel
        ``seed_spread`` to ``info`` (the image returned is the sample of ``seed``).
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
        ``nfe``, ``time_s``, ``steps``; with ``diagnostics``: ``residual_map``, ``residual_outlier_share``,
        ``residual_mean_abs``; with ``seeds >= 2``: ``seed_spread``, ``seed_spread_mean``, ``seeds``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.models import GaussianSmoother
    >>> y = np.full((16, 16), 0.5, np.float32)
    >>> restored, info = dps(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), steps=4)
    >>> restored.shape, info["nfe"]
    ((16, 16), 4)
    """
    kwargs = dict(locals())  # the parameters, for the other seeds
    for k in ("image", "psf", "seed", "seeds", "diagnostics"):
        kwargs.pop(k)
    require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}")
    if seeds > 1:
        return run_seeds(dps, image, psf, seed=seed, seeds=seeds, diagnostics=diagnostics, kwargs=kwargs)
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    ts = respaced_timesteps(run.schedule, steps)
    run.require_noise_levels(ts[0])
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    bar = run.progress(len(ts), "DPS", progress, callback)
    x = dps_refine(run, x_T, ts, zeta=zeta, squared=squared, zeta_schedule=zeta_schedule, progress=bar)
    bar.close()
    info = {"method": "dps", "steps": len(ts), "zeta": zeta, "squared_norm": squared, "zeta_schedule": zeta_schedule}
    return finish_sample(run, x, consistency_tau, info, diagnostics)
