"""Registry entries of the non-blind learned solvers (PnP-ADMM, DPIR, DPS, PiGDM, RL-diffusion).

All take ``--prior`` (omitted: the embedded unblur network; or a checkpoint path such as the DPS
``ffhq_10m.pt``), ``--seed``, ``--noise-sigma`` in [0, 1] image units and report ``nfe`` (network
evaluations) and ``time_s``.
"""

from __future__ import annotations

from ..algorithms import dpir, dps, pigdm, pnp_admm, rl_diffusion
from ..algorithms.guidance import R_CHOICES, ZETA_SCHEDULES
from ..algorithms.rl_diffusion import REFINE_FROM
from ..physics.convolution import BOUNDARIES
from ..registry import Method, Param, register

_COMMON = (
    Param("prior", str, None, "denoiser prior: omitted = embedded unblur network; or a checkpoint path (e.g. DPS ffhq_10m.pt)"),
    Param("noise_sigma", float, None, "Gaussian noise sigma in [0, 1] image units (a [-1, 1] value / 2); estimated if omitted"),
    Param("seed", int, 0, "random seed (same seed, same device: same result)"),
    Param("boundary", str, "replicate", "blur boundary model (replicate = padding k//2, as the RL-diffusion paper)", BOUNDARIES),
    Param("device", str, None, "torch device (cpu, cuda, ...); default cpu"),
    Param("progress", bool, True, "show a progress bar"),
)
_ZETA = Param("zeta", float, 0.3, "DPS step: x -= zeta * grad ||y - A x0_hat|| ([-1, 1] units; 0.3 = DPS reference for deblurring)")
_SQUARED = Param("squared", bool, False, "DPS guidance on the squared norm instead of the norm")
_ZETA_SCHEDULE = Param("zeta_schedule", str, "constant",
                       "DPS step schedule: constant = zeta (DPS paper); sqrt_abar = zeta sqrt(abar_t) (BlindDPS / Fast EM code)",
                       ZETA_SCHEDULES)

register(Method(
    "pnp-admm", "nonblind", pnp_admm, "plug-and-play ADMM with a denoiser prior (exact Fourier data step for circular blur, CG otherwise)",
    (Param("rho", float, 0.2, "ADMM penalty"),
     Param("num_iter", int, 12, "ADMM iterations (= network evaluations)"),
     Param("denoiser_sigma", float, None, "denoiser sigma in [0, 1] units; default noise_sigma / sqrt(rho)"),
     Param("cg_iter", int, 50, "conjugate-gradient iterations per data step (non-circular boundaries)")) + _COMMON,
    "Venkatakrishnan et al. 2013; Chan et al. 2017"))

register(Method(
    "dpir", "nonblind", dpir, "DPIR: half-quadratic splitting with a decreasing denoiser sigma schedule",
    (Param("num_iter", int, 8, "HQS iterations (= network evaluations)"),
     Param("lam", float, 0.23, "DPIR lambda (data-step weight lam sigma^2 / sigma_k^2)"),
     Param("sigma_start", float, 49 / 255, "first denoiser sigma ([0, 1] units)"),
     Param("cg_iter", int, 50, "conjugate-gradient iterations per data step (non-circular boundaries)")) + _COMMON,
    "Zhang et al., TPAMI 2021"))

register(Method(
    "dps", "nonblind", dps, "diffusion posterior sampling: ancestral DDPM guided by grad ||y - A x0_hat||",
    (Param("steps", int, 1000, "diffusion steps (1000 = full schedule; fewer = respaced)"), _ZETA, _SQUARED, _ZETA_SCHEDULE) + _COMMON,
    "Chung et al., ICLR 2023"))

register(Method(
    "pigdm", "nonblind", pigdm, "pseudoinverse-guided diffusion: (r_t^2 H H^T + sigma^2 I)^-1 guidance",
    (Param("steps", int, 100, "diffusion steps (respaced)"),
     Param("r_choice", str, "paper",
           "r_t^2 and step: paper = 1 - abar_t with Tweedie step; fastem = Fast EM code (4v/(1+v), v = step variance)", R_CHOICES),
     Param("weight", float, 1.0, "guidance weight"),
     Param("cg_iter", int, 50, "conjugate-gradient iterations for the inverse (non-circular boundaries)")) + _COMMON,
    "Song et al., ICLR 2023"))

register(Method(
    "rl-diffusion", "nonblind", rl_diffusion,
    "Richardson-Lucy iterations regularised by a diffusion prior, then DPS refinement (N + M network evaluations)",
    (Param("N", int, 20, "outer RL + renoise/Tweedie steps (t = M+N-1 .. M)"),
     Param("L", int, 20, "Richardson-Lucy iterations per outer step"),
     Param("M", int, 80, "DPS refinement steps (t = M-1 .. 0)"),
     _ZETA, _SQUARED, _ZETA_SCHEDULE,
     Param("refine_from", str, "rl-diffusion", "start of the DPS refinement (paper's Table II ablation)", REFINE_FROM)) + _COMMON,
    "Modrzyk, Etxebeste, Bretin, Maxim, EUSIPCO 2024"))
