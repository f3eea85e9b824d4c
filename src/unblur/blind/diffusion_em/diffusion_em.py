"""Diffusion EM (Laroche, Almansa, Coupete, WACV 2024, Algorithm A.1): the slow, exact-EM version.

``em_iters`` (L, paper: 10) EM iterations, each

* E-step: a full non-blind diffusion posterior run (DPS or PiGDM, ``steps`` steps, the shared
  :func:`unblur.algorithms.ddpm.guided_ddpm` loop) of n particles with the current kernel;
* M-step: :func:`~unblur.blind.diffusion_em.mstep.m_step` on the n samples (no PiGDM variance term:
  the samples are finished images), warm-started from the previous kernel.

Starts from the ``l0`` kernel (default), a Dirac (``init_kernel="dirac"``, the paper's) or a given kernel;
the blur model and the safeguard are those of Fast EM (:mod:`.em_run`, :mod:`.fast_em`).  ``nfe = em_iters * steps``; the image returned is the mean of the last
E-step's particles (restored with the kernel *before* the last M-step, as in the algorithm), and the
kernel is the final one.  [0, 1] image units; states in [-1, 1] inside the sampler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ...algorithms.ddpm import guided_ddpm, randn, respaced_timesteps
from ...errors import require
from .em_run import finish_blind, finish_result, seeded_runs, start_blind
from .fast_em import make_guidance, resolve_regularizer

if TYPE_CHECKING:
    from ...models.base import Denoiser


def diffusion_em(image, *, guidance: Literal["pigdm", "dps"] = "pigdm", particles: int = 1, kernel_size: int = 33,
                 steps: int = 100, em_iters: int = 10, noise_sigma: float | None = None, seed: int | None = 0,
                 prior: Denoiser | str | None = None, kernel_prior: Denoiser | str | None = None,
                 regularizer: Literal["auto", "denoiser", "l1", "l2", "none"] = "auto", lam: float | None = None,
                 beta: float | None = None, hqs_iters: int = 10, zeta: float = 0.3, weight: float = 1.0,
                 r_choice: Literal["fastem", "paper"] = "fastem", even_rule: Literal["refuse", "fftshift"] = "refuse",
                 init_kernel="l0", boundary: Literal["valid", "periodize", "circular"] = "valid", safeguard: bool = True, final_step: bool = True,
                 diagnostics: bool = False,
                 seeds: int = 1, device: str | None = None, progress: bool = False, callback=None):
    """Diffusion EM on a gray ``(H, W)`` or colour ``(H, W, 3)`` image in [0, 1].

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, 3)``; one kernel for all channels.
    guidance : {"pigdm", "dps"}
        E-step guidance (:mod:`unblur.algorithms.guidance`).
    particles : int
        Number of image particles n (sampled as one batch).
    kernel_size : int
        Kernel support in pixels (odd; even sizes need ``even_rule="fftshift"``).
    steps : int
        Diffusion steps (respaced DDPM) of each E-step.
    em_iters : int
        EM iterations L (each a full diffusion run).
    noise_sigma : float, optional
        Noise sigma in [0, 1] units; estimated (wavelet MAD, Donoho 1995) if omitted.
    seed : int, optional
        Random seed (same seed, same device: same result).
    prior : Denoiser or str, optional
        Image prior: a checkpoint path/spec (default: the embedded unblur network) or a Denoiser.
    kernel_prior : Denoiser or str, optional
        Kernel denoiser checkpoint (default: the shipped one).
    regularizer : {"auto", "denoiser", "l1", "l2", "none"}
        Kernel prior of the M-step: auto = the kernel denoiser if its weights load, else l1 (said in
        ``info["notes"]``).
    lam : float, optional
        M-step regularisation weight lambda (default 0.3 with the kernel denoiser, 1 for l1/l2).
    beta : float, optional
        HQS splitting weight beta (default 1e5; 1e3 for l1).
    hqs_iters : int
        HQS iterations per M-step.
    zeta : float
        DPS step size.
    weight : float
        PiGDM guidance weight.
    r_choice : {"fastem", "paper"}
        PiGDM r_t^2 and step: fastem = the Fast EM authors' code, paper = 1 - abar_t with Tweedie step.
    even_rule : {"refuse", "fftshift"}
        Even kernel sizes: refuse, or fftshift (centre pixel ``n // 2``).
    init_kernel : array, "l0" or "dirac", optional
        Starting kernel: ``"l0"`` (default: the kernel of the ``l0`` method on this image, a few seconds),
        ``"dirac"`` (or None: no blur, the paper's start) or an array (resized to ``kernel_size`` with a
        note when its size differs).
    boundary : {"valid", "periodize", "circular"}
        valid = the non-circulant model of photographs (the image is the valid part of the blur; E-step and
        M-step use only observed pixels); periodize = circular model on a smooth periodic extension of
        the image; circular = the data as they are (circularly blurred data, the paper's setting).
    safeguard : bool
        Keep the l0 start (its image and kernel) when its re-blur discrepancy is closer to the noise level than
        the EM result's by more than 0.1 noise sigma (discrepancy principle; ``info["safeguard"]``).
    final_step : bool
        Return an EM result as ``l0``'s non-blind final step with the EM kernel (as in
        :func:`~unblur.blind.diffusion_em.fast_em.fast_diffusion_em`; the sample in ``info["sample"]``).
    diagnostics : bool
        Add the re-blur residual map of the returned pair to ``info`` (as in :func:`~unblur.blind.diffusion_em.fast_em.fast_diffusion_em`).
    seeds : int
        Number of runs (seeds ``seed``, ``seed + 1``, ...); 2 or more adds their ``seed_spread`` to ``info``.
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(step, x, info)`` after each step.

    Returns
    -------
    restored, info
        As :func:`~unblur.blind.diffusion_em.fast_em.fast_diffusion_em`; ``kernel_history`` has one
        kernel per EM iteration.
    """
    if seeds != 1:
        require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
        return seeded_runs(diffusion_em, image, dict(locals()))
    regularizer, beta, notes = resolve_regularizer(regularizer, kernel_prior, kernel_size, beta)
    require(isinstance(em_iters, int) and em_iters >= 1, f"em_iters must be an integer >= 1, got {em_iters!r}")
    run, state = start_blind(image, guidance=guidance, particles=particles, kernel_size=kernel_size, steps=steps,
                             noise_sigma=noise_sigma, seed=seed, prior=prior, kernel_prior=kernel_prior,
                             regularizer=regularizer, lam=lam, beta=beta, hqs_iters=hqs_iters,
                             even_rule=even_rule, init_kernel=init_kernel, device=device,
                             boundary=boundary)
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
    restored, info = finish_blind(run, state, x01, info, sigma_given=noise_sigma is not None)
    info["notes"] = list(info.get("notes") or []) + notes
    info["init_kernel"] = "dirac" if init_kernel is None else (init_kernel if isinstance(init_kernel, str) else "array")
    return finish_result(image, restored, info, state, run.sigma, safeguard, diagnostics, final_step)


__all__ = ["diffusion_em"]
