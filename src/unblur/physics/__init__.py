"""Forward models: linear operators (blur) and noise models.  Torch tensors ``(B, C, *spatial)``."""

from .convolution import BOUNDARIES, Convolution, convolve, psf_to_otf
from .noise import GaussianNoise, PoissonGaussianNoise, PoissonNoise, estimate_noise_sigma, make_noise
from .operator import LinearOperator

__all__ = [
    "BOUNDARIES", "Convolution", "convolve", "psf_to_otf", "GaussianNoise",
    "PoissonNoise", "PoissonGaussianNoise", "make_noise", "estimate_noise_sigma", "LinearOperator",
]
