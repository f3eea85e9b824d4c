"""DRUNet (Zhang et al. 2021, "Plug-and-play image restoration with deep denoiser prior").

A residual UNet: head conv, three levels of ``nb`` residual blocks each followed by a strided 2x2
conv (down), ``nb`` residual blocks at the bottom, transposed 2x2 convs (up) each followed by
``nb`` residual blocks, additive skip connections, tail conv.  The noise level enters as a constant
map concatenated to the image as the last input channel.  No biases, ReLU.

Parameter names follow KAIR's ``network_unet.UNetRes`` (``m_head``, ``m_down1.0.res.0.weight``,
``m_down1.4.weight``, ``m_body``, ``m_up3.0.weight``, ``m_tail``), so KAIR/DPIR DRUNet state dicts
(``drunet_gray.pth``: 1+1 channels in, ``drunet_color.pth``: 3+1) load directly.  The same
backbone, smaller, is the core of unblur's own denoiser (:mod:`unblur.models.unblur_net`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Denoiser


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` (KAIR ``ResBlock`` with mode 'CRC')."""

    def __init__(self, ch: int, bias: bool = False):
        super().__init__()
        self.res = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=bias), nn.ReLU(inplace=True),
                                 nn.Conv2d(ch, ch, 3, padding=1, bias=bias))

    def forward(self, x):
        return x + self.res(x)


class ResUNet(nn.Module):
    """The DRUNet backbone; ``in_ch`` includes the noise-map channel(s)."""

    def __init__(self, in_ch: int, out_ch: int, nc=(64, 128, 256, 512), nb: int = 4, bias: bool = False):
        super().__init__()
        self.nc, self.nb = tuple(nc), nb
        self.m_head = nn.Conv2d(in_ch, nc[0], 3, padding=1, bias=bias)
        for i in range(3):
            setattr(self, f"m_down{i + 1}", nn.Sequential(*[ResBlock(nc[i], bias) for _ in range(nb)],
                                                          nn.Conv2d(nc[i], nc[i + 1], 2, stride=2, bias=bias)))
        self.m_body = nn.Sequential(*[ResBlock(nc[3], bias) for _ in range(nb)])
        for i in (3, 2, 1):
            setattr(self, f"m_up{i}", nn.Sequential(nn.ConvTranspose2d(nc[i], nc[i - 1], 2, stride=2, bias=bias),
                                                    *[ResBlock(nc[i - 1], bias) for _ in range(nb)]))
        self.m_tail = nn.Conv2d(nc[0], out_ch, 3, padding=1, bias=bias)

    def forward(self, x):
        H, W = x.shape[-2:]
        ph, pw = (-H) % 8, (-W) % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        h = self.m_body(x4)
        h = self.m_up3(h + x4)
        h = self.m_up2(h + x3)
        h = self.m_up1(h + x2)
        h = self.m_tail(h + x1)
        return h[..., :H, :W]


class DRUNet(Denoiser):
    """KAIR DRUNet denoiser: ``net(cat(x, sigma map))`` for sigma in [0, 1] units (trained to 50/255)."""

    name = "drunet"
    sigma_max = 50 / 255

    def __init__(self, channels: int = 1, nc=(64, 128, 256, 512), nb: int = 4):
        super().__init__()
        self.channels = (channels,)
        self.net = ResUNet(channels + 1, channels, nc, nb)

    def forward(self, x, sigma):
        return self.net(torch.cat([x, sigma.expand(-1, 1, *x.shape[-2:])], 1))

    def load_kair(self, state_dict: dict) -> None:
        """Load a KAIR ``drunet_*.pth`` state dict (keys without the ``net.`` prefix)."""
        self.net.load_state_dict(state_dict)
        self.eval()
