"""Forward models: linear operators (blur) and noise models.  Torch tensors ``(B, C, *spatial)``.

The names below load their module on first use (PEP 562), so that numpy code importing
:mod:`unblur.physics.noise_level` does not import torch.
"""

import importlib

_EXPORTS = {
    "BOUNDARIES": "convolution", "Convolution": "convolution", "convolve": "convolution", "psf_to_otf": "convolution",
    "GaussianNoise": "noise", "PoissonNoise": "noise", "PoissonGaussianNoise": "noise", "make_noise": "noise",
    "estimate_noise_sigma": "noise_level", "LinearOperator": "operator",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
