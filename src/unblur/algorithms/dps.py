"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky, Ye, ICLR 2023) for deblurring.

Ancestral DDPM from pure noise (``x_T ~ N(0, I)`` in [-1, 1] units) over ``steps`` timesteps of the linear
schedule (1000 = the paper; fewer = evenly respaced), each step followed by the DPS correction
``-zeta grad_{x_t} ||y - A x0_hat(x_t)||`` (:class:`~unblur.algorithms.guidance.DPSGuidance`; the
reference code's unsquared norm and ``zeta = 0.3`` for deblurring by default).  One network
evaluation per step (``nfe = steps``).  Input and output in [0, 1]; ``noise_sigma`` is in [0, 1]
units (DPS papers quote it in [-1, 1] units: 0.05 there is 0.025 here) and DPS itself does not use it.
"""

from __future__ import annotations

import torch

from .common import start
from .ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from .guidance import DPSGuidance


def dps_refine(run, x_start: torch.Tensor, timesteps: list[int], *, zeta: float = 0.3, squared: bool = False,
               zeta_schedule: str = "constant", progress=None) -> torch.Tensor:
    """DPS steps through ``timesteps`` from state ``x_start`` ([-1, 1] units); returns the [0, 1] estimate."""
    guidance = DPSGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, zeta=zeta, squared=squared,
                           zeta_schedule=zeta_schedule, schedule=run.schedule)
    x = guided_ddpm(x_start, timesteps, run.schedule, guidance, run.generator, progress)
    return (x + 1) / 2


def dps(image, psf, *, steps: int = 1000, zeta: float = 0.3, squared: bool = False, zeta_schedule: str = "constant",
        prior=None, noise_sigma: float | None = None, boundary: str = "replicate", seed: int | None = 0, device=None,
        progress: bool = False, callback=None):
    """DPS deblurring of a gray ``(H, W)`` or colour ``(H, W, C)`` image in [0, 1]; returns ``(restored, info)``.

    ``zeta_schedule``: ``"constant"`` (``zeta_t = zeta``) or ``"sqrt_abar"`` (``zeta_t = zeta sqrt(abar_t)``, the
    BlindDPS / Fast Diffusion EM code's schedule; :mod:`unblur.algorithms.guidance`).
    ``prior``: Denoiser, checkpoint path/spec or None (embedded network).  ``boundary``: the blur model
    (``replicate`` = the RL-diffusion paper's).  ``info``: ``nfe``, ``time_s``, ``timesteps``.
    """
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    ts = respaced_timesteps(run.schedule, steps)
    run.require_noise_levels(ts[0])
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    bar = run.progress(len(ts), "DPS", progress, callback)
    x = dps_refine(run, x_T, ts, zeta=zeta, squared=squared, zeta_schedule=zeta_schedule, progress=bar)
    bar.close()
    return run.finish(x, {"method": "dps", "steps": len(ts), "zeta": zeta, "squared_norm": squared,
                          "zeta_schedule": zeta_schedule})
