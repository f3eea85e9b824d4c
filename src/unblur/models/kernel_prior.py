"""Kernel denoiser for Fast Diffusion EM (Laroche et al. 2024, Sec. 3.2): a prior over blur kernels.

DnCNN-like: 5 conv layers of 32 channels (ReLU between), the noise level as an extra constant input
channel, residual output.  Kernels are non-negative and sum to 1, so their values are tiny (a 33x33
kernel peaks around 1e-2..1e-1); the network works on ``KERNEL_SCALE * k`` (and the noise level
scaled alike) so activations are O(1), and returns ``k - net(...) / KERNEL_SCALE``.  It is a
:class:`~unblur.models.base.Denoiser` on 1-channel ``(B, 1, K, K)`` kernels; ``size`` records the
kernel size it was trained for (it runs on any size).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Denoiser

KERNEL_SCALE = 100.0


class KernelDenoiser(Denoiser):
    name = "kernel-denoiser"
    channels = (1,)
    sigma_max = 0.1

    def __init__(self, size: int = 33, blocks: int = 5, features: int = 32):
        super().__init__()
        self.size = size
        self.config = {"size": size, "blocks": blocks, "features": features}
        layers: list[nn.Module] = [nn.Conv2d(2, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(blocks - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, k, sigma):
        inp = torch.cat([KERNEL_SCALE * k, (KERNEL_SCALE * sigma).expand_as(k)], 1)
        return k - self.net(inp) / KERNEL_SCALE
