"""The DDPM ancestral step and the guided sampling loop shared by DPS, PiGDM and RL-diffusion.

States ``x_t`` live in [-1, 1] units (DDPM/DPS convention); the prior is a [0, 1] denoiser used as the
x0-predictor through :func:`unblur.diffusion.schedule.x0_from_denoiser`.

Ancestral step (Ho et al. 2020, eq. 6-7), written for any pair of timesteps ``t > s`` so that it also
serves respaced schedules (``s = -1`` means "after the last step", with ``abar_{-1} = 1``)::

    alpha = abar_t / abar_s,   beta = 1 - alpha
    mean  = sqrt(abar_s) beta / (1 - abar_t) * x0_hat  +  sqrt(alpha) (1 - abar_s) / (1 - abar_t) * x_t
    var   = beta (1 - abar_s) / (1 - abar_t)                       (the fixed "small" posterior variance)
    x_s   = mean + sqrt(var) * z

At ``s = -1`` the step returns ``x0_hat`` itself.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.schedule import VPSchedule, x0_from_denoiser
from ..optim import Progress


def _abar(schedule: VPSchedule, t: int) -> float:
    return 1.0 if t < 0 else float(schedule.alpha_bar(t))


def ddpm_posterior_step(schedule: VPSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: int, s: int,
                        noise: torch.Tensor | None) -> torch.Tensor:
    """Sample ``q(x_s | x_t, x0)`` (module docstring); ``noise`` ~ N(0, I) (ignored when ``s < 0``)."""
    ab_t, ab_s = _abar(schedule, t), _abar(schedule, s)
    alpha = ab_t / ab_s
    beta = 1.0 - alpha
    c0 = math.sqrt(ab_s) * beta / (1.0 - ab_t)
    ct = math.sqrt(alpha) * (1.0 - ab_s) / (1.0 - ab_t)
    mean = c0 * x0 + ct * x_t
    if s < 0 or noise is None:
        return mean
    var = beta * (1.0 - ab_s) / (1.0 - ab_t)
    return mean + math.sqrt(var) * noise


def posterior_variance(schedule: VPSchedule, t: int, s: int) -> float:
    """Variance of ``q(x_s | x_t, x0)`` (0 for ``s < 0``)."""
    ab_t, ab_s = _abar(schedule, t), _abar(schedule, s)
    return 0.0 if s < 0 else (1.0 - ab_t / ab_s) * (1.0 - ab_s) / (1.0 - ab_t)


def respaced_timesteps(schedule: VPSchedule, steps: int) -> list[int]:
    """``steps`` timesteps evenly spaced over the schedule, decreasing (``steps = T`` is plain DDPM)."""
    return schedule.respace(steps)


def make_x0_predictor(prior, schedule: VPSchedule):
    """``predict(x_t, t) -> x0_hat`` in [-1, 1] from a [0, 1] denoiser (differentiable in ``x_t``)."""
    def predict(x_t: torch.Tensor, t: int) -> torch.Tensor:
        return x0_from_denoiser(prior, x_t, t, schedule)
    return predict


def randn(shape, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``like``'s device/dtype."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32).to(like)


def guided_ddpm(x: torch.Tensor, timesteps: list[int], schedule: VPSchedule, guidance, generator: torch.Generator,
                progress: Progress | None = None, clip_x0: bool = True) -> torch.Tensor:
    """Ancestral DDPM from state ``x`` (at ``timesteps[0]``) through ``timesteps`` (decreasing) to t = -1.

    ``guidance(x_t, t, s) -> (x0_hat, update)`` gives the x0-prediction (one network evaluation) and an
    additive correction of the next state (DPS: ``-zeta grad||.||``; PiGDM: ``w (1 - alpha) / sqrt(alpha) g``; zero
    for unconditional sampling).  ``x0_hat`` is clipped to [-1, 1] in the posterior mean (as the DPS
    reference code's ``clip_denoised``) when ``clip_x0``.  Returns the final state (an image in [-1, 1]).
    """
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, update = guidance(x, t, s)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        noise = randn(x.shape, x, generator) if s >= 0 else None
        x = (ddpm_posterior_step(schedule, x, x0, t, s, noise) + update).detach()
        if progress is not None:
            progress.update(i, x, t=t)
    return x


class Unconditional:
    """Guidance that does nothing: plain (unconditional) ancestral sampling with ``predict``."""

    def __init__(self, predict):
        self.predict = predict

    def __call__(self, x_t, t, s):
        with torch.no_grad():
            return self.predict(x_t, t), 0.0
