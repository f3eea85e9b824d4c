"""Pseudoinverse-guided diffusion (PiGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023) for noisy deblurring.

Ancestral DDPM from pure noise over ``steps`` respaced timesteps (default 100, the RL-diffusion paper's
baseline), with the guidance ``+ weight c_t g`` of :class:`~unblur.algorithms.guidance.PiGDMGuidance`
(``r_t^2`` and ``c_t`` from ``r_choice``;
``(r_t^2 H H^T + sigma_y^2 I)^{-1}`` exact in Fourier for ``boundary="circular"``, CG otherwise).  The
paper uses a DDIM step; unblur shares the DDPM ancestral step with DPS and RL-diffusion.  ``noise_sigma``
in [0, 1] units (estimated from the image if omitted); states in [-1, 1] units internally.  ``nfe = steps``.
"""

from __future__ import annotations

from .common import start
from .ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from .guidance import PiGDMGuidance


def pigdm(image, psf, *, steps: int = 100, r_choice: str = "paper", weight: float = 1.0, prior=None,
          noise_sigma: float | None = None, boundary: str = "replicate", cg_iter: int = 50, seed: int | None = 0,
          device=None, progress: bool = False, callback=None):
    """PiGDM deblurring of a gray or colour image in [0, 1]; returns ``(restored, info)``.

    ``r_choice``: ``"paper"`` (default; ``r_t^2 = 1 - abar_t``, Tweedie step) or ``"fastem"`` (``r_t^2`` and
    step of the Fast Diffusion EM code; better at 100 steps on the benchmark crops, unstable with fewer
    steps), see :mod:`unblur.algorithms.guidance`; ``weight`` scales the step.
    """
    run = start(image, psf, boundary=boundary, noise_sigma=noise_sigma, prior=prior, seed=seed, device=device)
    ts = respaced_timesteps(run.schedule, steps)
    run.require_noise_levels(ts[0])
    guidance = PiGDMGuidance(make_x0_predictor(run.prior, run.schedule), run.y, run.op, run.sigma, run.schedule,
                             r_choice=r_choice, weight=weight, cg_iter=cg_iter)
    x_T = randn(run.y.shape[:2] + tuple(run.op.in_shape), run.y, run.generator)
    bar = run.progress(len(ts), "PiGDM", progress, callback)
    x = guided_ddpm(x_T, ts, run.schedule, guidance, run.generator, bar)
    bar.close()
    return run.finish((x + 1) / 2, {"method": "pigdm", "steps": len(ts), "r_choice": r_choice, "weight": weight})
