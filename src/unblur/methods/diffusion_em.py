"""Registry entries ``fast-em`` and ``diffusion-em`` (Laroche, Almansa, Coupete, WACV 2024)."""

from __future__ import annotations

from ..registry import Capabilities, Method, register

_REF = "Laroche, Almansa, Coupete, Fast Diffusion EM, WACV 2024"
_EM = Capabilities(prior=True, stochastic=True, device=True)

register(Method(
    "fast-em", "blind", "unblur.blind.diffusion_em.fast_em:fast_diffusion_em",
    "Fast Diffusion EM: kernel M-step inside one DPS/PiGDM diffusion run (valid model, l0 start, safeguard)", _REF, _EM,
    skip=("init_kernel",)))

register(Method(
    "diffusion-em", "blind", "unblur.blind.diffusion_em.diffusion_em:diffusion_em",
    "Diffusion EM: em_iters full diffusion runs, each followed by the kernel M-step (slow)", _REF, _EM,
    skip=("init_kernel",)))
