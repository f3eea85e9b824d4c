"""Adapter: an epsilon-prediction VP network (DDPM / guided-diffusion) seen as a ``D(x, sigma)`` denoiser.

:class:`EpsilonDenoiser` maps the denoiser call to the network's own conventions and back:

* [0, 1] image units -> DDPM's [-1, 1]: ``x' = 2 x - 1`` and ``sigma' = 2 sigma``;
* the variance-exploding input ``x' = x0' + sigma' n`` -> the VP state ``x_t = sqrt(abar) x'`` with
  ``abar = 1 / (1 + sigma'^2)`` (so that ``sigma' = sqrt((1 - abar) / abar)``, as in
  :mod:`unblur.diffusion.schedule`);
* the (continuous) timestep ``t`` whose schedule sigma equals ``sigma'``, found by interpolating
  ``log sigma_t`` over the integer steps (the time embedding accepts fractional timesteps; at the
  schedule's own timesteps this is exactly that ``t``);
* Tweedie: ``x0' = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``, returned as ``(x0' + 1) / 2``.

Only the first ``channels`` output channels are epsilon (``learn_sigma`` networks append the variance).
Samplers that work in VP time directly can call ``eps(x_t, t)`` instead.
"""

from __future__ import annotations

import torch

from ..models.base import Denoiser
from .schedule import VPSchedule


class EpsilonDenoiser(Denoiser):
    name = "epsilon-denoiser"

    def __init__(self, network: torch.nn.Module, schedule: VPSchedule | None = None, channels: int = 3):
        super().__init__()
        self.network = network
        self.schedule = schedule or VPSchedule()
        self.channels = (channels,)
        sig = torch.sqrt((1 - self.schedule.alphas_cumprod) / self.schedule.alphas_cumprod)
        self.register_buffer("_log_sigmas", sig.log().float(), persistent=False)
        self.sigma_max = float(sig[-1]) / 2
        self.sigma_min = float(sig[0]) / 2

    def t_continuous(self, sigma_vp: torch.Tensor) -> torch.Tensor:
        """Fractional timestep with ``sigma_t == sigma_vp`` ([-1, 1] units), clamped to [0, T-1]."""
        ls = self._log_sigmas.to(sigma_vp.device)
        s = sigma_vp.clamp(float(ls[0].exp()), float(ls[-1].exp())).log()
        i = torch.searchsorted(ls, s.contiguous()).clamp(1, len(ls) - 1)
        lo, hi = ls[i - 1], ls[i]
        return (i - 1).to(s) + (s - lo) / (hi - lo)

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """The network's epsilon prediction at VP state ``x_t`` ([-1, 1] units) and timestep(s) ``t``."""
        return self.network(x_t, t)[:, : x_t.shape[1]]

    def forward(self, x, sigma):
        s = 2 * sigma.reshape(-1)
        ab = (1 / (1 + s * s)).view(-1, 1, 1, 1)
        x_t = ab.sqrt() * (2 * x - 1)
        eps = self.eps(x_t, self.t_continuous(s))
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return (x0 + 1) / 2
