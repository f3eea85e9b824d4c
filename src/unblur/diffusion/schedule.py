"""Variance-preserving (DDPM) noise schedule and the conversions every sampler needs.

DDPM (Ho et al. 2020) works on images in [-1, 1]: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
Dividing by ``sqrt(abar_t)`` gives the variance-exploding view ``x_t / sqrt(abar_t) = x0 + sigma_t eps``
with ``sigma_t = sqrt((1 - abar_t) / abar_t)``, so a denoiser ``D(x, sigma)`` trained on [0, 1]
images serves as the x0-predictor:

    x0_hat([-1,1]) = 2 * D((x_t / sqrt(abar_t) + 1) / 2, sigma_t / 2) - 1

(the factor 2 maps [-1, 1] to [0, 1] units, halving the noise std).  Timesteps are integers
``t = 0 .. T-1`` (``t = 0`` is the least noisy), as in the DDPM/DPS reference code.
"""

from __future__ import annotations

import torch

from ..errors import require


class VPSchedule:
    """Linear-beta VP schedule (``beta`` from ``beta_start`` to ``beta_end`` over ``T`` steps)."""

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        require(T >= 1 and 0 < beta_start <= beta_end < 1, "invalid schedule parameters",
                "use T >= 1 and 0 < beta_start <= beta_end < 1")
        self.T = T
        self.betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)

    def alpha_bar(self, t) -> torch.Tensor:
        return self.alphas_cumprod[torch.as_tensor(t, dtype=torch.long)]

    def sigma(self, t) -> torch.Tensor:
        """``sigma_t = sqrt((1 - abar_t) / abar_t)`` (variance-exploding noise level, [-1,1] units)."""
        ab = self.alpha_bar(t)
        return torch.sqrt((1 - ab) / ab)

    def respace(self, steps: int) -> list[int]:
        """``steps`` timesteps evenly spaced over ``[0, T-1]``, in decreasing order (sampler order)."""
        require(1 <= steps <= self.T, f"steps must be in [1, {self.T}], got {steps}")
        ts = torch.linspace(0, self.T - 1, steps).round().long().unique()
        return [int(t) for t in ts.flip(0)]

    def q_sample(self, x0, t, noise):
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``."""
        ab = self.alpha_bar(t).to(x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def x0_from_denoiser(denoiser, x_t: torch.Tensor, t: int, schedule: VPSchedule) -> torch.Tensor:
    """Tweedie x0-estimate in [-1, 1] from a [0, 1] denoiser ``D(x, sigma)`` at VP timestep ``t``."""
    ab = schedule.alpha_bar(t).to(x_t)
    sigma_t = float(schedule.sigma(t))
    return 2 * denoiser((x_t / ab.sqrt() + 1) / 2, sigma_t / 2) - 1


# An epsilon-prediction network (guided-diffusion's ffhq_10m.pt, any DDPM UNet) becomes a [0, 1]
# denoiser D(x, sigma) through unblur.diffusion.epsilon.EpsilonDenoiser (mapping sigma <-> t and
# [0, 1] <-> [-1, 1]); unblur.models.load_prior(path) wraps such checkpoints automatically.
