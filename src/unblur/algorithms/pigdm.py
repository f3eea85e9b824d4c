"""Pseudoinverse-guided diffusion (PiGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023) for noisy deblurring.

Ancestral DDPM over ``steps`` timesteps with the guidance ``+ weight c_t g`` of
:class:`~unblur.algorithms.guidance.PiGDMGuidance` (``r_t^2`` and ``c_t`` from ``r_choice``;
``(r_t^2 H H^T + sigma_y^2 I)^{-1}`` exact in Fourier for ``boundary="circular"``, CG otherwise).  The
paper uses a DDIM step; unblur shares the DDPM ancestral step with DPS and RL-diffusion.  ``noise_sigma``
in [0, 1] units (estimated from the image if omitted); states in [-1, 1] units internally.  ``nfe = steps``
per sample.  The sample then goes through the final data-consistency step shared with DPS and RL-diffusion
(``consistency_tau``, :func:`~unblur.algorithms.guidance.consistency_step`; the paper has none).  Default
``tau = 0.02``: of 0, 0.02, 0.05 and 0.1 the best mean PSNR on the tuning images (Set12 ``01``, ``02``,
``05`` with camera-shake kernels, CBSD68 ``101085`` with the RL-diffusion protocol).  ``tau`` is the assumed
deviation of the sample from the truth, and the best value grew with the sample's own error: the smallest
for the sharpest samples, 0.05-0.1 for the others.

Start.  The paper starts from pure noise (``start="noise"``: 100 steps respaced over the schedule, the
RL-diffusion paper's baseline).  By default PiGDM starts as DPS does (CCDF, :mod:`unblur.algorithms.dps`):
Richardson-Lucy (50 iterations) forward-diffused to ``t_start = 200``, then 40 steps over ``[0, 200]``.  The
result is the mean of 2 samples (``seeds = 2, average = True``; 80 network evaluations): one sample is one
posterior draw, whose expected squared error adds the posterior variance to the posterior mean's; the mean of
``S`` samples removes ``(S - 1) / S`` of that term.  On the tuning images (Set12 ``01``, ``02``, ``05``, ``09``,
``10``, ``11``, camera-shake kernels of 15-75 px and a 70 px KAIR kernel) one sample from noise fell up to
2.5 dB below Richardson-Lucy with the largest kernels, the mean of two from noise 0.56 dB, the mean of two from
RL 0.05 dB, with the same mean gain at 40% of the network evaluations (BENCHMARKS.md, "PiGDM: the mean of two
samples" and "PiGDM's start").  ``start="noise", seeds=1`` is the paper's sampler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..diagnostics import run_seeds
from ..diffusion.schedule import VPSchedule
from ..errors import require
from .common import start as begin
from .ddpm import guided_ddpm, make_x0_predictor
from .dps import start_mode, start_state, start_timesteps
from .guidance import PiGDMGuidance, finish_sample

if TYPE_CHECKING:
    from ..models.base import Denoiser

STEPS_NOISE = 100  # respaced steps from pure noise (the RL-diffusion paper's PiGDM baseline)
T_START, STEPS_START = 200, 40  # first timestep and steps from an estimate (BENCHMARKS.md, "PiGDM's start")


def pigdm(image, psf, *, start: Literal["noise", "rl", "y"] = "rl", t_start: int | None = None,
          steps: int | None = None, r_choice: Literal["paper", "fastem"] = "paper", weight: float = 1.0,
          prior: Denoiser | str | None = None, noise_sigma: float | None = None,
          boundary: Literal["valid", "replicate", "circular", "zero", "reflect"] = "valid", cg_iter: int = 50,
          consistency_tau: float = 0.02, diagnostics: bool = False, seeds: int = 2, average: bool = True,
          seed: int | None = 0, device: str | None = None, progress: bool = False, callback=None):
    """PiGDM deblurring of a gray or colour image in [0, 1] (module docstring).

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, C)``.
    psf : array or LinearOperator
        The PSF (normalised to sum 1) or a linear blur operator.
    start : {"noise", "rl", "y"} or array
        Where the reverse process starts, as for :func:`~unblur.algorithms.dps.dps`: ``"noise"`` = pure noise
        at ``t = 999`` (the paper); ``"rl"`` = Richardson-Lucy (50 iterations, the operator's boundary)
        forward-diffused to ``t_start`` (CCDF); ``"y"`` = the blurred image forward-diffused; an array in the
        image's layout ([0, 1]) = that estimate forward-diffused.
    t_start : int, optional
        Timestep of the 1000-step schedule the reverse process starts from; default 999 for ``start="noise"``
        (the only value it takes) and 200 otherwise.
    steps : int, optional
        Reverse steps (network evaluations per sample), evenly spaced over ``[0, t_start]``; default
        100 from noise (respaced over the whole schedule) and 40 from an estimate.
    r_choice : {"paper", "fastem"}
        r_t^2 and step: paper = 1 - abar_t with Tweedie step; fastem = the Fast EM code's (4v/(1+v), v = the
        step variance; better with many steps, unstable with few), see :mod:`unblur.algorithms.guidance`.
    weight : float
        Guidance weight (scales the step).
    cg_iter : int
        Conjugate-gradient iterations for the inverse (non-circular boundaries).
    prior : Denoiser or str, optional
        Denoiser prior: a checkpoint path/spec (e.g. the DPS ``ffhq_10m.pt``) or a Denoiser; default: the
        embedded unblur network (``unblur.models.load_prior``).
    noise_sigma : float, optional
        Gaussian noise sigma in [0, 1] image units (a [-1, 1] value / 2); estimated if omitted.
    boundary : {"valid", "replicate", "circular", "zero", "reflect"}
        Blur boundary model; ``"valid"`` (default) does not ring from the borders (:mod:`unblur.algorithms.pnp`);
        ``"replicate"`` = padding by k // 2, as the RL-diffusion paper.
    consistency_tau : float
        Final data-consistency step ``argmin ||A x - y||^2 / sigma^2 + ||x - x_s||^2 / tau^2`` around the sample
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
        ``nfe``, ``time_s``, ``steps``, ``r_choice``, ``weight``, ``consistency_tau``; with ``diagnostics``: ``residual_map``,
        ``residual_outlier_share``, ``residual_mean_abs``; with ``seeds >= 2``: ``seed_spread``,
        ``seed_spread_mean``, ``seeds``.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.models import GaussianSmoother
    >>> y = np.full((16, 16), 0.5, np.float32)
    >>> restored, info = pigdm(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), steps=4)
    >>> restored.shape, info["nfe"], info["averaged"], info["start"], info["t_start"]  # 2 samples of 4 steps
    ((16, 16), 8, 2, 'rl', 200)
    >>> restored, info = pigdm(y, np.ones((3, 3)) / 9, prior=GaussianSmoother(), start="noise", seeds=1, steps=4)
    >>> info["nfe"], info["t_start"]  # the paper's sampler: one sample from pure noise, 4 respaced steps
    (4, 999)
    """
    kwargs = dict(locals())  # the parameters, for the other seeds
    for k in ("image", "psf", "seed", "seeds", "average", "diagnostics"):
        kwargs.pop(k)
    require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}")
    if seeds > 1:
        return run_seeds(pigdm, image, psf, seed=seed, seeds=seeds, diagnostics=diagnostics, kwargs=kwargs,
                         average=average)
    mode, t_start = start_mode(start, t_start, T_START)
    if steps is None:
        steps = STEPS_NOISE if mode == "noise" else min(STEPS_START, t_start + 1)
    ts = start_timesteps(VPSchedule(), t_start, steps)
    run = begin(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    run.require_noise_levels(ts[0])
    guidance = PiGDMGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, run.sigma, run.schedule,
                             r_choice=r_choice, weight=weight, cg_iter=cg_iter)
    x_start = start_state(run, start, ts)
    bar = run.progress(len(ts), "PiGDM", progress, callback)
    x = guided_ddpm(x_start, ts, run.schedule, guidance, run.generator, bar)
    bar.close()
    info = {"method": "pigdm", "steps": len(ts), "r_choice": r_choice, "weight": weight, "start": mode,
            "t_start": ts[0]}
    return finish_sample(run, (x + 1) / 2, consistency_tau, info, diagnostics)
