"""Registry entries of the non-blind learned solvers (PnP-ADMM, Poisson PnP, DPIR, DPS, PiGDM, RL-diffusion).

All take ``prior`` (omitted: the embedded unblur network; or a checkpoint path such as the DPS
``ffhq_10m.pt``), ``seed``, ``noise_sigma`` in [0, 1] image units and ``device``, and report ``nfe``
(network evaluations) and ``time_s``.
"""

from __future__ import annotations

from ..registry import Capabilities, Method, register

_PNP = Capabilities(prior=True, device=True, tileable=True)
_DIFFUSION = Capabilities(prior=True, stochastic=True, device=True)

register(Method(
    "pnp-admm", "nonblind", "unblur.algorithms.pnp:pnp_admm",
    "plug-and-play ADMM with a denoiser prior (exact Fourier data step for circular blur, CG otherwise)",
    "Venkatakrishnan et al. 2013; Chan et al. 2017", _PNP))

register(Method(
    "dpir", "nonblind", "unblur.algorithms.pnp:dpir",
    "DPIR: half-quadratic splitting with a decreasing denoiser sigma schedule", "Zhang et al., TPAMI 2021", _PNP))

register(Method(
    "dps", "nonblind", "unblur.algorithms.dps:dps",
    "diffusion posterior sampling: ancestral DDPM guided by grad ||y - A x0_hat||, from a forward-diffused "
    "Richardson-Lucy estimate (CCDF) or from noise", "Chung et al., ICLR 2023; Chung, Sim, Ye, CVPR 2022 (CCDF)",
    _DIFFUSION))

register(Method(
    "pigdm", "nonblind", "unblur.algorithms.pigdm:pigdm",
    "pseudoinverse-guided diffusion: (r_t^2 H H^T + sigma^2 I)^-1 guidance, from a forward-diffused "
    "Richardson-Lucy estimate (CCDF) or from noise", "Song et al., ICLR 2023; Chung, Sim, Ye, CVPR 2022 (CCDF)",
    _DIFFUSION))

register(Method(
    "rl-diffusion", "nonblind", "unblur.algorithms.rl_diffusion:rl_diffusion",
    "Richardson-Lucy iterations regularised by a diffusion prior, then DPS refinement (N + M network evaluations)",
    "Modrzyk, Etxebeste, Bretin, Maxim, EUSIPCO 2024", _DIFFUSION))

register(Method(
    "poisson-pnp", "nonblind", "unblur.algorithms.pnp:poisson_pnp",
    "Poisson plug-and-play ADMM (PIDAL splitting, closed-form KL prox) with a denoiser prior",
    "Figueiredo & Bioucas-Dias 2010; Rond, Giryes, Elad 2016", _PNP))
