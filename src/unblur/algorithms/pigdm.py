"""Pseudoinverse-guided diffusion (PiGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023) for noisy deblurring.

Ancestral DDPM from pure noise over ``steps`` respaced timesteps (default 100, the RL-diffusion paper's
baseline), with the guidance ``+ weight c_t g`` of :class:`~unblur.algorithms.guidance.PiGDMGuidance`
(``r_t^2`` and ``c_t`` from ``r_choice``;
``(r_t^2 H H^T + sigma_y^2 I)^{-1}`` exact in Fourier for ``boundary="circular"``, CG otherwise).  The
paper uses a DDIM step; unblur shares the DDPM ancestral step with DPS and RL-diffusion.  ``noise_sigma``
in [0, 1] units (estimated from the image if omitted); states in [-1, 1] units internally.  ``nfe = steps``.
The sample then goes through the final data-consistency step shared with DPS and RL-diffusion
(``consistency_tau``, :func:`~unblur.algorithms.guidance.consistency_step`; the paper has none).  Default
``tau = 0.02``: of 0, 0.02, 0.05 and 0.1 the best mean PSNR on the tuning images (Set12 ``01``, ``02``,
``05`` with camera-shake kernels, CBSD68 ``101085`` with the RL-diffusion protocol).  ``tau`` is the assumed
deviation of the sample from the truth, and the best value grew with the sample's own error: the smallest
for the sharpest samples, 0.05-0.1 for the others.

By default the result is the mean of 2 samples (``seeds = 2, average = True``; 200 network evaluations): one
sample is one posterior draw, whose expected squared error adds the posterior variance to the posterior mean's;
the mean of ``S`` samples removes ``(S - 1) / S`` of that term.  With kernels of 70 px and more on small fields
one sample fell up to 2.5 dB below Richardson-Lucy on the tuning images, the mean of two 0.56 dB at worst
(BENCHMARKS.md, "PiGDM: the mean of two samples").  ``seeds=1`` is the paper's sampler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..diagnostics import run_seeds
from ..errors import require
from .common import start
from .ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from .guidance import PiGDMGuidance, finish_sample

if TYPE_CHECKING:
    from ..models.base import Denoiser


def pigdm(image, psf, *, steps: int = 100, r_choice: Literal["paper", "fastem"] = "paper", weight: float = 1.0,
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
    steps : int
        Diffusion steps (respaced).
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
    >>> restored.shape, info["nfe"], info["averaged"]  # the mean of 2 samples of 4 steps
    ((16, 16), 8, 2)
    """
    kwargs = dict(locals())  # the parameters, for the other seeds
    for k in ("image", "psf", "seed", "seeds", "average", "diagnostics"):
        kwargs.pop(k)
    require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
    require(consistency_tau >= 0, f"consistency_tau must be >= 0, got {consistency_tau}")
    if seeds > 1:
        return run_seeds(pigdm, image, psf, seed=seed, seeds=seeds, diagnostics=diagnostics, kwargs=kwargs,
                         average=average)
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    ts = respaced_timesteps(run.schedule, steps)
    run.require_noise_levels(ts[0])
    guidance = PiGDMGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, run.sigma, run.schedule,
                             r_choice=r_choice, weight=weight, cg_iter=cg_iter)
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    bar = run.progress(len(ts), "PiGDM", progress, callback)
    x = guided_ddpm(x_T, ts, run.schedule, guidance, run.generator, bar)
    bar.close()
    info = {"method": "pigdm", "steps": len(ts), "r_choice": r_choice, "weight": weight}
    return finish_sample(run, (x + 1) / 2, consistency_tau, info, diagnostics)
