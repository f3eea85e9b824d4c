"""unblur: non-blind and blind deconvolution of images and stacks.

Conventions are stated once in ``docs/conventions.md`` (value range, sigma units, convolution,
PSF centre, axes).  Simple entry points take and return numpy arrays::

    from unblur import richardson_lucy, wiener, deconvolve
    restored = richardson_lucy(image, psf, num_iter=30)
    result = deconvolve(image, psf, method="rl-tv")   # any registered method; result.info has timings
"""

from .api import Restoration, blind_deconvolve, deconvolve
from .errors import InputError
from .io import read_image, read_psf, write_image
from .registry import get_method, list_methods
from .solvers import richardson_lucy, rl_tv, tikhonov, wiener

__version__ = "0.1.0"

__all__ = [
    "Restoration", "blind_deconvolve", "deconvolve", "InputError", "read_image", "read_psf", "write_image",
    "get_method", "list_methods", "richardson_lucy", "rl_tv", "tikhonov", "wiener", "__version__",
]
