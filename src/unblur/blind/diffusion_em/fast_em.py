"""Fast Diffusion EM (Laroche, Almansa, Coupete, WACV 2024, Algorithm 2): blind deblurring in one diffusion run.

n particles are sampled as one batch by the shared ancestral DDPM loop
(:func:`unblur.algorithms.ddpm.guided_ddpm`).  At every step, for the current states ``x_t``:

1. ``x0_hat_i = E[x0 | x_t^i]`` (Tweedie, one batched network evaluation);
2. M-step (:func:`~unblur.blind.diffusion_em.mstep.m_step`, eqs. 21-25) on the n estimates ``x0_hat_i``,
   warm-started from the previous kernel;
3. the guidance term of DPS or PiGDM (:mod:`unblur.algorithms.guidance`) with the *new* kernel, then
   the DDPM step.

``mstep_variance=True`` (PiGDM only) is the paper's PiGDM M-step (Sec. 3.3 eq. 33, Appendix D eq. D.9):
under PiGDM's ``x0 | x_t ~ N(x0_hat, r_t^2 I)`` the expected data term adds ``r_t^2 M ||k||^2``, i.e.
``M r_t^2`` per particle and channel in the Fourier denominator of the data step (see :mod:`.mstep`),
with the guidance's own ``r_t^2`` (``r_choice``) converted from [-1, 1] to [0, 1] units (``/ 4``).  It is
off by default: the authors' public code does not use it, and with unblur's priors it gives lower PSNR
(BENCHMARKS.md, "Blind camera-shake deblurring with diffusion priors"): the white ``r_t^2`` (close to 1
early on) swamps the high frequencies of ``x0_hat``, so the early kernels are broad blobs.  States are in [-1, 1]
units (DPS convention); the M-step works in [0, 1] units; the x0 estimates are clipped to [-1, 1] first.

Defaults follow the paper (and the authors' code): PiGDM guidance, 100 steps, n = 1, 33x33 kernel, HQS with 10 iterations, beta = 1e5, the plug-and-play kernel denoiser, M-step from the first step.
lambda is 0.3, not the paper's 1 (:data:`~unblur.blind.diffusion_em.mstep.DENOISER_LAM`): lambda sets the
noise level ``sqrt(lambda / beta)`` at which the kernel denoiser is called, and the paper's value belongs to
its own denoiser.  With unblur's kernel denoiser, 0.3 gives higher PSNR and a more accurate kernel than 1
at noise 5 and 10/255 and about the same at 20/255 (BENCHMARKS.md, same section: "M-step lambda").
Two choices follow the authors' code rather than the paper's text: ``mstep_variance=False``
(above) and PiGDM's ``r_choice="fastem"`` (the code's ``r_t^2`` and update scale; see
:mod:`unblur.algorithms.guidance`), which with unblur's priors gives higher PSNR and a lower kernel MSE
than the paper's ``r_t^2 = 1 - abar_t`` at noise 5, 10 and 20/255.  Non-blind PiGDM keeps ``"paper"``.
``nfe = steps`` (one batched evaluation per step, whatever n).

Photographs (non-periodic blur), the defaults: ``boundary="valid"`` (the image is the valid part of the
blur of a larger object: the E-step guidance and the M-step see only observed pixels,
:mod:`.em_run`; PiGDM's Gram system ``(r_t^2 H H^T + sigma^2 I) u = m (y - H x0_hat)`` is then solved by
:data:`GUIDANCE_CG_ITER` conjugate-gradient iterations, the masked ``H`` having no Fourier inverse),
``init_kernel="l0"`` (the M-step starts from the kernel of the ``l0`` method, a few seconds) and
``safeguard=True`` (the discrepancy principle: the l0 start is kept when it explains the data at the noise
level better than the EM result, :func:`~unblur.blind.diffusion_em.em_run.safeguard`) and
``final_step=True`` (an EM result is returned as ``l0``'s non-blind final step with the EM kernel, not as the
diffusion sample).  The paper's setting is ``boundary="circular", init_kernel="dirac", safeguard=False,
final_step=False`` (BENCHMARKS.md, "Blind camera-shake deblurring with diffusion priors").
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal

import torch

from ...algorithms.ddpm import guided_ddpm, make_x0_predictor, randn, respaced_timesteps
from ...algorithms.guidance import DPSGuidance, PiGDMGuidance
from ...errors import require
from .em_run import KernelState, MaskedCircularBlur, finish_blind, finish_result, seeded_runs, start_blind

if TYPE_CHECKING:
    from ...models.base import Denoiser


class MStepPredictor:
    """The x0-predictor of Algorithm 2: ``predict(x_t, t)`` then an M-step on the (detached) estimates, which
    updates the kernel of the state's operator in place.

    It is given to :class:`DPSGuidance` / :class:`PiGDMGuidance` as their ``predict``: both compute
    ``x0_hat`` first and use ``self.op`` (the state's operator) only afterwards (residual, Gram solve), so
    the guidance term of the step uses the kernel estimated from this very ``x0_hat``, with the guidance
    classes unchanged.
    ``timesteps`` gives the next timestep ``s`` of ``t`` for PiGDM's ``r_t^2``.
    """

    def __init__(self, predict, state: KernelState, timesteps: list[int], mstep_variance: bool = False,
                 first_mstep: int = 0):
        self.predict, self.state, self.mstep_variance = predict, state, mstep_variance
        self.next_t = {t: (timesteps[i + 1] if i + 1 < len(timesteps) else -1) for i, t in enumerate(timesteps)}
        self.index = {t: i for i, t in enumerate(timesteps)}
        self.first_mstep = int(first_mstep)
        self.guidance = None  # set by make_guidance

    def __call__(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        x0 = self.predict(x_t, t)
        if self.index.get(t, 0) < self.first_mstep:  # the kernel is held at its start until then
            return x0
        x01 = (x0.detach().clamp(-1, 1) + 1) / 2
        r2 = 0.0
        if self.mstep_variance and isinstance(self.guidance, PiGDMGuidance):
            r2 = self.guidance.r_squared(t, self.next_t.get(t, -1)) / 4  # [-1, 1] -> [0, 1] units
        self.state.update(x01, r2)
        return x0


#: Conjugate-gradient iterations of the ``valid`` model's PiGDM Gram solve at each step.
GUIDANCE_CG_ITER = 30


def make_guidance(run, state: KernelState, guidance: str, *, zeta: float, weight: float, r_choice: str,
                  predict=None):
    """The guidance (DPS or PiGDM) with the state's current kernel; ``predict`` defaults to the plain
    x0-predictor (non-blind E-step) and may be an :class:`MStepPredictor` (Fast EM).  With the ``valid``
    model (a masked operator) the guidance compares only the observed pixels."""
    predict = predict if predict is not None else make_x0_predictor(run.prior, run.schedule)
    op = state.operator()
    y = state.observed(run.y)
    if guidance == "dps":
        g = DPSGuidance(predict, y, op, zeta=zeta)
    else:
        # The valid model H = m C: (r^2 H H^T + sigma^2 I)^{-1} is solved exactly, by conjugate gradient.  Its
        # circulant counterpart (r^2 C C^T + sigma^2 I)^{-1}, exact in Fourier, is not a usable surrogate: it
        # deconvolves the residual's step at the window's edge with a gain up to 1 / (2 r sigma), which on
        # low-noise photographs (sigma ~ 0.003) makes the sampler diverge (BENCHMARKS.md, the clock).
        cg = dict(solver="cg", cg_iter=GUIDANCE_CG_ITER) if isinstance(op, MaskedCircularBlur) else {}
        g = PiGDMGuidance(predict, y, op, run.sigma, run.schedule, r_choice=r_choice, weight=weight, **cg)
    if isinstance(predict, MStepPredictor):
        predict.guidance = g
    return g


def resolve_regularizer(regularizer: str, kernel_prior, kernel_size: int, beta: float | None) -> tuple[str, float, list]:
    """``(regularizer, beta, notes)``: ``"auto"`` is the kernel denoiser when its weights load, else ``"l1"``
    (with a warning and a note); ``beta=None`` is 1e5, or 1e3 for ``"l1"`` (threshold ``lam / beta`` = 1e-3
    of the kernel mass per pixel)."""
    notes: list = []
    if regularizer == "auto":
        from ...errors import InputError
        from .em_run import resolve_kernel_prior
        try:
            resolve_kernel_prior(kernel_prior, kernel_size)
            regularizer = "denoiser"
        except InputError as err:
            if kernel_prior is not None:
                raise
            notes.append(f"kernel denoiser unavailable ({err.problem}); using the l1 kernel regulariser")
            warnings.warn(notes[-1], stacklevel=3)
            regularizer = "l1"
    if beta is None:
        beta = 1e3 if regularizer == "l1" else 1e5
    return regularizer, beta, notes


def fast_diffusion_em(image, *, guidance: Literal["pigdm", "dps"] = "pigdm", particles: int = 1, kernel_size: int = 33,
                      steps: int = 100, noise_sigma: float | None = None, seed: int | None = 0,
                      prior: Denoiser | str | None = None, kernel_prior: Denoiser | str | None = None,
                      regularizer: Literal["auto", "denoiser", "l1", "l2", "none"] = "auto", lam: float | None = None,
                      beta: float | None = None, hqs_iters: int = 10, zeta: float = 0.3, weight: float = 1.0,
                      r_choice: Literal["fastem", "paper"] = "fastem", mstep_variance: bool = False,
                      even_rule: Literal["refuse", "fftshift"] = "refuse", init_kernel="l0", mstep_start: float = 0.0,
                      boundary: Literal["valid", "periodize", "circular"] = "valid", safeguard: bool = True, final_step: bool = True,
                      diagnostics: bool = False,
                      seeds: int = 1, device: str | None = None, progress: bool = False, callback=None):
    """Fast Diffusion EM on a gray ``(H, W)`` or colour ``(H, W, 3)`` image in [0, 1].

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
        Diffusion steps (respaced DDPM).
    noise_sigma : float, optional
        Noise sigma in [0, 1] units; estimated (wavelet MAD, Donoho 1995) if omitted.
    seed : int, optional
        Random seed (same seed, same device: same result).
    prior : Denoiser or str, optional
        Image prior: a checkpoint path/spec (default: the embedded unblur network) or a Denoiser
        (``unblur.models.load_prior``).
    kernel_prior : Denoiser or str, optional
        Kernel denoiser checkpoint (default: the shipped one; ``unblur.models.load_kernel_prior``).
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
    mstep_variance : bool
        PiGDM: the paper's M-step with the x0 variance r_t^2 (App. D, eq. D.9); off: it over-smooths the kernel.
    even_rule : {"refuse", "fftshift"}
        Even kernel sizes: refuse, or fftshift (centre pixel ``n // 2``).
    init_kernel : array, "l0" or "dirac", optional
        Starting kernel: ``"l0"`` (default: the kernel of the ``l0`` method on this image, a few seconds),
        ``"dirac"`` (or None: no blur, the paper's start) or an array (resized to ``kernel_size`` with a
        note when its size differs).
    mstep_start : float
        Fraction of the steps run with the kernel held at its start before the first M-step (0: the
        paper's M-step from the first step; with a warm start the early M-steps, made from nearly
        uninformative x0 estimates, would pull the kernel back towards a Dirac).
    boundary : {"valid", "periodize", "circular"}
        valid = the non-circulant model of photographs (the image is the valid part of the blur; E-step and
        M-step use only observed pixels); periodize = circular model on a smooth periodic extension of
        the image; circular = the data as they are (circularly blurred data, the paper's setting).
    safeguard : bool
        Keep the l0 start (its image and kernel) when its re-blur discrepancy is closer to the noise level than
        the EM result's by more than 0.1 noise sigma (discrepancy principle; ``info["safeguard"]``).
    final_step : bool
        When the EM result is returned (not the start), return ``l0``'s non-blind final step with the EM
        kernel (hyper-Laplacian, valid boundary with ``boundary="valid"``) instead of the diffusion sample,
        which stays in ``info["sample"]`` (measured in BENCHMARKS.md, "Blind camera-shake deblurring with
        diffusion priors"); the safeguard decides on the sample.  False: the sample, as in the paper.
    diagnostics : bool
        Add the re-blur residual map ``(k * x - y) / sigma`` of the returned image and kernel (window-summed;
        NaN in the border band of the kernel's radius) and its summary to ``info`` (:mod:`unblur.diagnostics`).
    seeds : int
        Number of runs, with the seeds ``seed``, ``seed + 1``, and so on; 2 or more adds the per-pixel
        ``seed_spread`` of the returned images to ``info`` (the result is that of ``seed``).
    device : str, optional
        Torch device (cpu, cuda, ...); default cpu.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(step, x, info)`` after each step.

    Returns
    -------
    restored : array
        The mean of the particles, or with ``final_step`` the final step on the EM kernel.
    info : dict
        ``kernel`` ``(k, k)``, ``kernel_history`` ``(steps - first_mstep, k, k)`` (the kernel after
        each M-step), ``particles`` (each restored particle), ``nfe``, ``time_s``, ``noise_sigma`` and its
        source, ``regularizer``, ``notes``, ``safeguard`` and ``checks``; with ``diagnostics``
        ``residual_map``, ``residual_outlier_share`` and ``residual_mean_abs``; with ``seeds >= 2``
        ``seed_spread``, ``seed_spread_mean`` and ``seeds``.
    """
    if seeds != 1:
        require(int(seeds) == seeds and seeds >= 1, f"seeds must be an integer >= 1, got {seeds}")
        return seeded_runs(fast_diffusion_em, image, dict(locals()))
    regularizer, beta, notes = resolve_regularizer(regularizer, kernel_prior, kernel_size, beta)
    run, state = start_blind(image, guidance=guidance, particles=particles, kernel_size=kernel_size, steps=steps,
                             noise_sigma=noise_sigma, seed=seed, prior=prior, kernel_prior=kernel_prior,
                             regularizer=regularizer, lam=lam, beta=beta, hqs_iters=hqs_iters,
                             even_rule=even_rule, init_kernel=init_kernel, device=device,
                             boundary=boundary)
    ts = respaced_timesteps(run.schedule, steps)
    require(0 <= mstep_start < 1, f"mstep_start must be in [0, 1), got {mstep_start}", "e.g. 0.25")
    predict = MStepPredictor(make_x0_predictor(run.prior, run.schedule), state, ts, mstep_variance,
                             first_mstep=int(round(mstep_start * len(ts))))
    em_guidance = make_guidance(run, state, guidance, zeta=zeta, weight=weight, r_choice=r_choice, predict=predict)
    x_T = randn((particles,) + tuple(run.y.shape[1:]), run.y, run.generator)
    bar = run.progress(len(ts), f"Fast EM ({guidance}, n={particles})", progress, callback)
    x = guided_ddpm(x_T, ts, run.schedule, em_guidance, run.generator, bar)
    bar.close()
    info = {"method": "fast-em", "guidance": guidance, "steps": len(ts), "mstep_variance": mstep_variance,
            "first_mstep": predict.first_mstep}
    restored, info = finish_blind(run, state, (x + 1) / 2, info, sigma_given=noise_sigma is not None)
    info["notes"] = list(info.get("notes") or []) + notes
    info["init_kernel"] = "dirac" if init_kernel is None else (init_kernel if isinstance(init_kernel, str) else "array")
    return finish_result(image, restored, info, state, run.sigma, safeguard, diagnostics, final_step)


__all__ = ["fast_diffusion_em", "MStepPredictor", "make_guidance", "resolve_regularizer"]
