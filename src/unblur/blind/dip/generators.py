"""The two untrained generators of SelfDeblur (Ren et al., CVPR 2020), written from the paper.

* :class:`ImageGenerator` -- the deep-image-prior encoder-decoder with skip connections (Ulyanov et
  al. 2018, "skip" architecture): ``scales`` levels; each encoder level is two 3x3 convolutions (the
  first with stride 2) with batch norm and LeakyReLU(0.2); each skip is a 1x1 convolution to
  ``skip`` channels; each decoder level concatenates skip and bilinearly upsampled deeper features,
  then batch norm, a 3x3 and a 1x1 convolution.  All 3x3 convolutions use reflection padding.  A final
  1x1 convolution and a sigmoid give values in (0, 1).  SelfDeblur: 5 scales, 128 channels down and
  up, 16 skip channels, 8 noise input channels.  Upsampling goes to the exact size of the level above,
  so any input size works (no size multiple of 32 is needed).
* :class:`KernelGenerator` -- a fully connected net ``n_in -> hidden -> k*k`` (200 -> 1000 -> k*k in
  the paper) with a ReLU6 hidden layer and a softmax output, so the kernel is non-negative and sums
  to one by construction.  Its input is a fixed random vector.

The image generator is fed a fixed noise tensor of the size of the *object*, i.e. the image plus the
kernel support minus one per axis (the "valid" forward model), see :func:`noise_input`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    """Channel widths of the image generator (one value per scale) and the kernel generator's sizes."""

    down: tuple[int, ...] = (128, 128, 128, 128, 128)
    up: tuple[int, ...] = (128, 128, 128, 128, 128)
    skip: tuple[int, ...] = (16, 16, 16, 16, 16)
    in_channels: int = 8
    kernel_in: int = 200
    kernel_hidden: int = 1000


#: SelfDeblur's generators as published.
FULL = GeneratorConfig()
#: The CPU variant: same depth (5 scales); 16 channels at the finest scale, 32 below, 4 skip channels
#: (about 1/18 of the parameters; its cost per iteration against :data:`FULL` is in BENCHMARKS.md,
#: "Blind deconvolution with deep image priors").
FAST = GeneratorConfig(down=(16, 32, 32, 32, 32), up=(16, 32, 32, 32, 32), skip=(4,) * 5)


def _conv(cin, cout, k, stride=1):
    pad = (k - 1) // 2
    layers = [nn.ReflectionPad2d(pad)] if pad else []
    return layers + [nn.Conv2d(cin, cout, k, stride=stride)]


class _Level(nn.Module):
    def __init__(self, cin, down, up, skip, deeper: nn.Module | None, deeper_out: int):
        super().__init__()
        self.down = nn.Sequential(*_conv(cin, down, 3, 2), nn.BatchNorm2d(down), nn.LeakyReLU(0.2),
                                  *_conv(down, down, 3), nn.BatchNorm2d(down), nn.LeakyReLU(0.2))
        self.skip = nn.Sequential(nn.Conv2d(cin, skip, 1), nn.BatchNorm2d(skip), nn.LeakyReLU(0.2)) if skip else None
        self.deeper = deeper
        cat = skip + deeper_out
        self.up = nn.Sequential(nn.BatchNorm2d(cat), *_conv(cat, up, 3), nn.BatchNorm2d(up), nn.LeakyReLU(0.2),
                                nn.Conv2d(up, up, 1), nn.BatchNorm2d(up), nn.LeakyReLU(0.2))

    def forward(self, x):
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.up(d)


class ImageGenerator(nn.Module):
    """Encoder-decoder with skip connections, sigmoid output (see module docstring).

    ``out_channels=1`` for SelfDeblur; VDIP uses 2 (mean and a raw standard-deviation channel), so the
    sigmoid is applied by the caller through :meth:`forward`'s ``sigmoid`` argument.
    """

    def __init__(self, config: GeneratorConfig = FULL, out_channels: int = 1):
        super().__init__()
        c = config
        assert len(c.down) == len(c.up) == len(c.skip)
        self.config, self.out_channels = c, out_channels
        level = None
        for i in reversed(range(len(c.down))):
            cin = c.in_channels if i == 0 else c.down[i - 1]
            deeper_out = c.up[i + 1] if i + 1 < len(c.down) else c.down[i]
            level = _Level(cin, c.down[i], c.up[i], c.skip[i], level, deeper_out)
        self.body = level
        self.head = nn.Conv2d(c.up[0], out_channels, 1)

    def forward(self, z: torch.Tensor, sigmoid: bool = True) -> torch.Tensor:
        out = self.head(self.body(z))
        return torch.sigmoid(out) if sigmoid else out


class KernelGenerator(nn.Module):
    """``k*k`` softmax output of a one-hidden-layer perceptron fed a fixed input (see module docstring)."""

    def __init__(self, kernel_size: int, config: GeneratorConfig = FULL):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.net = nn.Sequential(nn.Linear(config.kernel_in, config.kernel_hidden), nn.ReLU6(),
                                 nn.Linear(config.kernel_hidden, self.kernel_size**2))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = torch.softmax(self.net(z).reshape(-1), dim=0)
        return k.view(self.kernel_size, self.kernel_size)


def noise_input(image_shape, kernel_size: int, channels: int, generator: torch.Generator, scale: float = 0.1):
    """Fixed uniform noise ``U(0, scale)`` of shape ``(1, channels, H + k - 1, W + k - 1)``."""
    h, w = (int(n) + kernel_size - 1 for n in image_shape)
    return torch.rand((1, channels, h, w), generator=generator, device=generator.device) * scale


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
