"""Diffusion EM (Laroche, Almansa, Coupete, WACV 2024, Algorithm A.1): the slow, exact-EM version.

``em_iters`` (L, paper: 10) EM iterations, each

* E-step: a full non-blind diffusion posterior run (DPS or PiGDM, ``steps`` steps, the shared
  :func:`unblur.algorithms.ddpm.guided_ddpm` loop) of n particles with the current kernel;
* M-step: :func:`~unblur.blind.diffusion_em.mstep.m_step` on the n samples (no PiGDM variance term:
  the samples are finished images), warm-started from the previous kernel.

Starts from a Dirac kernel.  ``nfe = em_iters * steps``; the image returned is the mean of the last
E-step's particles (restored with the kernel *before* the last M-step, as in the algorithm), and the
kernel is the final one.  [0, 1] image units; states in [-1, 1] inside the sampler.
"""

from __future__ import annotations

from ...algorithms.ddpm import guided_ddpm, randn, respaced_timesteps
from ...errors import require
from .em_run import finish_blind, start_blind
from .fast_em import make_guidance


def diffusion_em(image, *, guidance: str = "pigdm", particles: int = 1, kernel_size: int = 33, steps: int = 100,
                 em_iters: int = 10, noise_sigma: float | None = None, seed: int | None = 0, prior=None,
                 kernel_prior=None, regularizer: str = "denoiser", lam: float | None = None, beta: float = 1e5,
                 hqs_iters: int = 10, zeta: float = 0.3, weight: float = 1.0, r_choice: str = "fastem",
                 even_rule: str = "refuse", init_kernel=None, device=None, progress: bool = False, callback=None):
    """Diffusion EM on a gray or colour image in [0, 1]; returns ``(restored, info)`` like
    :func:`~unblur.blind.diffusion_em.fast_em.fast_diffusion_em` (``kernel_history`` has one kernel per EM
    iteration)."""
    require(isinstance(em_iters, int) and em_iters >= 1, f"em_iters must be an integer >= 1, got {em_iters!r}")
    run, state = start_blind(image, guidance=guidance, particles=particles, kernel_size=kernel_size, steps=steps,
                             noise_sigma=noise_sigma, seed=seed, prior=prior, kernel_prior=kernel_prior,
                             regularizer=regularizer, lam=lam, beta=beta, hqs_iters=hqs_iters,
                             even_rule=even_rule, init_kernel=init_kernel, device=device)
    ts = respaced_timesteps(run.schedule, steps)
    bar = run.progress(em_iters * len(ts), f"Diffusion EM ({guidance}, n={particles})", progress, callback)
    x01 = None
    for _ in range(em_iters):
        g = make_guidance(run, state, guidance, zeta=zeta, weight=weight, r_choice=r_choice)
        x_T = randn((particles,) + tuple(run.y.shape[1:]), run.y, run.generator)
        x01 = ((guided_ddpm(x_T, ts, run.schedule, g, run.generator, bar) + 1) / 2).clamp(0, 1)
        state.update(x01)
    bar.close()
    info = {"method": "diffusion-em", "guidance": guidance, "steps": len(ts), "em_iters": em_iters}
    return finish_blind(run, state, x01, info, sigma_given=noise_sigma is not None)


__all__ = ["diffusion_em"]
