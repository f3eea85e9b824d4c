"""Non-blind learned solvers: plug-and-play (PnP-ADMM, DPIR/HQS) and diffusion posterior samplers
(DPS, PiGDM, RL-diffusion), sharing one DDPM ancestral step (:mod:`.ddpm`) and one set of guidance
terms (:mod:`.guidance`).  Entry points take numpy (or torch) images in [0, 1] and return the same type.
"""

from .ddpm import ddpm_posterior_step, guided_ddpm, respaced_timesteps
from .dps import dps
from .guidance import DPSGuidance, PiGDMGuidance, solve_regularized_gram
from .pigdm import pigdm
from .pnp import dpir, pnp_admm
from .rl_diffusion import rl_diffusion, rl_diffusion_schedule

__all__ = ["ddpm_posterior_step", "guided_ddpm", "respaced_timesteps", "DPSGuidance", "PiGDMGuidance",
           "solve_regularized_gram", "dps", "pigdm", "pnp_admm", "dpir", "rl_diffusion", "rl_diffusion_schedule"]
