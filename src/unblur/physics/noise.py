"""Noise models.  Sigma values are in the image's units ([0, 1] for normalised images).

To convert a sigma quoted for 8-bit data: ``sigma = sigma_8bit / 255``; for 16-bit:
``sigma_16bit / 65535``.  Papers following DPS quote sigma in [-1, 1] units: halve it.

* :class:`GaussianNoise` ``y = z + sigma * n``.
* :class:`PoissonNoise` ``y = Poisson(gain * z) / gain`` (``gain`` = photons per unit intensity).
* :class:`PoissonGaussianNoise` (deep-blur): ``y = z + sqrt(alpha * z + beta) * n``, the
  Gaussian approximation of mixed shot/read noise used by Debarnot & Weiss (alpha, beta as in their
  paper; ``alpha * z`` is clipped at 0).

All take a ``torch.Generator`` (or seed) so that simulations are reproducible.
:func:`estimate_noise_sigma` (module :mod:`unblur.physics.noise_level`, re-exported here) estimates a
Gaussian sigma from an image (wavelet MAD).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import require
from .noise_level import estimate_noise_sigma  # noqa: F401  (re-exported)


def _generator(seed, device) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    return g


class GaussianNoise:
    def __init__(self, sigma: float):
        require(sigma >= 0, f"noise sigma must be >= 0, got {sigma}", "give a standard deviation in image units")
        self.sigma = float(sigma)

    def __call__(self, z: torch.Tensor, seed=None) -> torch.Tensor:
        g = _generator(seed, z.device)
        return z + self.sigma * torch.randn(z.shape, generator=g, device=z.device, dtype=z.dtype)

    def variance(self, z):
        return torch.full_like(z, self.sigma**2)


class PoissonNoise:
    def __init__(self, gain: float):
        require(gain > 0, f"Poisson gain must be > 0, got {gain}", "gain = expected photon count at intensity 1")
        self.gain = float(gain)

    def __call__(self, z: torch.Tensor, seed=None) -> torch.Tensor:
        # FFT round-off leaves tiny negatives in blurred non-negative images: tolerate those
        tiny = 1e-5 * float(z.abs().max()) if z.numel() else 0.0
        require(bool((z >= -tiny).all()), "Poisson noise needs a non-negative signal", "clip or offset the image first")
        g = _generator(seed, z.device)
        return torch.poisson(z.clamp_min(0) * self.gain, generator=g) / self.gain

    def variance(self, z):
        return z.clamp_min(0) / self.gain


class PoissonGaussianNoise:
    def __init__(self, alpha: float, beta: float):
        require(alpha >= 0 and beta >= 0, f"alpha and beta must be >= 0, got {alpha}, {beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def __call__(self, z: torch.Tensor, seed=None) -> torch.Tensor:
        g = _generator(seed, z.device)
        n = torch.randn(z.shape, generator=g, device=z.device, dtype=z.dtype)
        return z + torch.sqrt(self.variance(z)) * n

    def variance(self, z):
        return (self.alpha * z).clamp_min(0) + self.beta


def make_noise(kind: str, sigma: float = 0.0, gain: float = 1.0, alpha: float = 0.0, beta: float = 0.0):
    """Noise model by name: ``none``, ``gaussian``, ``poisson``, ``poisson-gaussian``."""
    if kind == "none":
        return GaussianNoise(0.0)
    if kind == "gaussian":
        return GaussianNoise(sigma)
    if kind == "poisson":
        return PoissonNoise(gain)
    if kind == "poisson-gaussian":
        return PoissonGaussianNoise(alpha, beta)
    require(False, f"unknown noise model {kind!r}", "use none, gaussian, poisson or poisson-gaussian")
