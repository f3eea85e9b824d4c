"""The denoiser interface ``D(x, sigma)`` shared by PnP solvers, diffusion samplers and unrolled networks.

* ``x``: tensor ``(B, C, H, W)`` in [0, 1] units (noisy image ``clean + sigma * n``); C is 1 or 3.
* ``sigma``: noise standard deviation in [0, 1] units; a float or a tensor of shape ``(B,)`` (one per
  image).  Diffusion samplers pass large values (up to ~80) when a network supports them.
* returns the MMSE estimate of the clean image, same shape (the "x0-prediction" / Tweedie estimate).

Subclasses implement :meth:`forward`.  ``channels`` says which channel counts a denoiser accepts;
``sigma_max`` the largest sigma it was trained for (samplers refuse to start above it).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError, require


def as_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """Broadcast ``sigma`` (float, 0-d, (B,) or (B,1,1,1)) to shape ``(B, 1, 1, 1)`` on x's device/dtype."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    s = s.reshape(-1)
    require(s.shape[0] in (1, x.shape[0]), f"sigma has {s.shape[0]} values for a batch of {x.shape[0]}",
            "give one sigma or one per image")
    require(bool((s >= 0).all()), "noise sigma must be >= 0", "give a standard deviation in [0, 1] image units")
    return s.expand(x.shape[0]).reshape(-1, 1, 1, 1)


class Denoiser(nn.Module):
    """Base class of all denoisers: ``D(x, sigma) -> x0_hat``."""

    channels: tuple[int, ...] = (1, 3)
    sigma_max: float = 1.0
    name: str = "denoiser"

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.ndim != 4:
            raise InputError(f"denoiser input must be (B, C, H, W), got shape {tuple(x.shape)}", "add batch/channel axes")
        if x.shape[1] not in self.channels:
            raise InputError(f"{self.name} takes {'/'.join(map(str, self.channels))} channel(s), got {x.shape[1]}",
                             "use a gray model for gray images and a colour model for RGB")
        return super().__call__(x, as_sigma(sigma, x))


class GaussianSmoother(Denoiser):
    """A training-free reference denoiser: Wiener shrinkage in Fourier under a 1/f^2 image model.

    Useful as a tiny, deterministic prior for tests and as a sanity baseline; not a good image prior.
    """

    name = "gaussian-smoother"
    sigma_max = 1e3

    def __init__(self, strength: float = 1.0):
        super().__init__()
        self.strength = strength

    def forward(self, x, sigma):
        H, W = x.shape[-2:]
        fy = torch.fft.fftfreq(H, device=x.device, dtype=x.dtype).view(-1, 1)
        fx = torch.fft.rfftfreq(W, device=x.device, dtype=x.dtype).view(1, -1)
        f2 = fy**2 + fx**2
        signal = 1e-3 / (f2 + 1e-4)
        gain = signal / (signal + self.strength * sigma**2)
        return torch.fft.irfftn(torch.fft.rfftn(x, dim=(-2, -1)) * gain, s=(H, W), dim=(-2, -1))
