"""unblur's own noise-conditional denoiser: a small DRUNet-style residual UNet with EDM preconditioning.

Karras et al. 2022 ("Elucidating the design space of diffusion-based generative models", EDM)
write the denoiser as

    D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = log(sigma) / 4

so that the network ``F`` sees unit-variance inputs and targets at every noise level: at small
sigma ``D ~ x + sigma F`` (a residual denoiser, as DnCNN/DRUNet), at large sigma ``D ~ sd F`` (a
prediction of the clean image from almost pure noise).  Here images are in [0, 1]; they are centred
(``x - 0.5``) and ``sd = sigma_data = 0.25`` (about the std of natural images in [0, 1]).  The noise
level enters ``F`` as a constant input channel holding ``c_noise`` (DRUNet's noise-level map).

One network thus serves PnP (sigma 0..0.3) and diffusion sampling (sigma up to ``sigma_max = 80``).
Training: :mod:`unblur.training.denoiser` (loss weighted so that ``F`` regresses
``(x0 - c_skip x) / c_out``).
"""

from __future__ import annotations

import math

import torch

from .base import Denoiser
from .drunet import ResUNet

SIGMA_DATA = 0.25
SIGMA_MIN = 1e-4


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """``(c_skip, c_out, c_in, c_noise)`` for sigma (any shape; sigma clamped to >= 1e-4 for the log)."""
    s = sigma.clamp_min(SIGMA_MIN)
    s2, d2 = s * s, sigma_data * sigma_data
    c_skip = d2 / (s2 + d2)
    c_out = s * sigma_data / torch.sqrt(s2 + d2)
    c_in = 1 / torch.sqrt(s2 + d2)
    c_noise = torch.log(s) / 4
    return c_skip, c_out, c_in, c_noise


class UnblurDenoiser(Denoiser):
    """EDM-preconditioned ResUNet for gray (1) or colour (3) images; see the module docstring."""

    name = "unblur-denoiser"
    sigma_max = 80.0

    def __init__(self, channels: int = 1, nc=(32, 64, 128, 128), nb: int = 1, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.channels = (channels,)
        self.config = {"channels": channels, "nc": list(nc), "nb": nb, "sigma_data": sigma_data}
        self.sigma_data = sigma_data
        self.net = ResUNet(channels + 1, channels, nc, nb, bias=True)

    def raw(self, x: torch.Tensor, sigma: torch.Tensor):
        """``(F output, c_skip, c_out, centred x)`` - the pieces the training loss needs."""
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        xc = x - 0.5
        inp = torch.cat([c_in * xc, c_noise.expand(-1, 1, *x.shape[-2:])], 1)
        return self.net(inp), c_skip, c_out, xc

    def forward(self, x, sigma):
        f, c_skip, c_out, xc = self.raw(x, sigma)
        return 0.5 + c_skip * xc + c_out * f

    @staticmethod
    def loss_target(x0: torch.Tensor, x: torch.Tensor, c_skip, c_out):
        """EDM's effective regression target for ``F``: ``((x0 - 0.5) - c_skip (x - 0.5)) / c_out``."""
        return ((x0 - 0.5) - c_skip * (x - 0.5)) / c_out


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["UnblurDenoiser", "edm_coefficients", "SIGMA_DATA", "parameter_count", "math"]
