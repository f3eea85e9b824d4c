"""DnCNN (Zhang et al. 2017, "Beyond a Gaussian denoiser") in the layouts of two public checkpoint sets.

* :class:`KairDnCNN` - the layout of KAIR's ``network_dncnn.DnCNN`` (``model.0.weight`` ..
  ``model.{2*depth-2}.bias``; batch norm merged into the convolutions, so every conv has a bias).
  ``dncnn_25.pth`` is the gray, 17-layer, sigma = 25/255 model.  Residual learning: ``x - net(x)``.
* :class:`ScicoDnCNN` - scico's flax ``DnCNNNet`` (``conv_start``, ``ConvBNBlock_i`` with a bias-free
  conv + BatchNorm, ``conv_end``; no conv biases), read from the flax msgpack files.  The ``N``
  variants take a noise-level map as a second input channel and predict the residual of both
  channels; the image channel of ``input - net(input)`` is the estimate.

Both are fixed-noise-level denoisers (except scico ``N``): the ``sigma`` argument is ignored by the
fixed ones, as a PnP prox at the trained level (their ``trained_sigma`` attribute).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Denoiser


class KairDnCNN(Denoiser):
    """KAIR DnCNN: conv+ReLU, (depth-2) x (conv+ReLU) (BN merged), conv; output ``x - net(x)``."""

    name = "kair-dncnn"

    def __init__(self, channels: int = 1, depth: int = 17, features: int = 64, trained_sigma: float = 25 / 255):
        super().__init__()
        self.channels = (channels,)
        self.trained_sigma = trained_sigma
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x, sigma):
        return x - self.model(x)


class _ConvBN(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(features, eps=1e-5)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ScicoDnCNN(Denoiser):
    """scico flax DnCNN (``dncnn{6,17}{L,M,H,N}.mpk``); ``noise_input`` for the ``N`` variants.

    Convolutions use zero padding, as flax ``nn.Conv`` does by default ("SAME").
    """

    name = "scico-dncnn"

    def __init__(self, channels: int = 1, depth: int = 17, features: int = 64, noise_input: bool = False,
                 trained_sigma: float | None = None):
        super().__init__()
        self.channels = (channels,)
        self.noise_input = noise_input
        self.trained_sigma = trained_sigma
        cin = channels * (2 if noise_input else 1)
        self.conv_start = nn.Conv2d(cin, features, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList(_ConvBN(features) for _ in range(depth - 2))
        self.conv_end = nn.Conv2d(features, cin, 3, padding=1, bias=False)

    def forward(self, x, sigma):
        c = x.shape[1]
        inp = torch.cat([x, sigma.expand_as(x)], 1) if self.noise_input else x
        h = F.relu(self.conv_start(inp))
        for b in self.blocks:
            h = b(h)
        return (inp - self.conv_end(h))[:, :c]

    def load_flax(self, tree: dict) -> None:
        """Copy a flax variables dict ``{params, batch_stats}`` (numpy arrays, HWIO kernels) into this module."""
        p, s = tree["params"], tree["batch_stats"]

        def kernel(a):  # HWIO -> OIHW
            return torch.from_numpy(a.copy()).permute(3, 2, 0, 1).contiguous()

        with torch.no_grad():
            self.conv_start.weight.copy_(kernel(p["conv_start"]["kernel"]))
            self.conv_end.weight.copy_(kernel(p["conv_end"]["kernel"]))
            for i, b in enumerate(self.blocks):
                blk, st = p[f"ConvBNBlock_{i}"], s[f"ConvBNBlock_{i}"]["BatchNorm_0"]
                b.conv.weight.copy_(kernel(blk["Conv_0"]["kernel"]))
                b.bn.weight.copy_(torch.from_numpy(blk["BatchNorm_0"]["scale"].copy()))
                b.bn.bias.copy_(torch.from_numpy(blk["BatchNorm_0"]["bias"].copy()))
                b.bn.running_mean.copy_(torch.from_numpy(st["mean"].copy()))
                b.bn.running_var.copy_(torch.from_numpy(st["var"].copy()))
        self.eval()
