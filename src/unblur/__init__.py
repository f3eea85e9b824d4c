"""unblur: non-blind and blind deconvolution of images and stacks.

Conventions are stated once in ``docs/conventions.md`` (value range, sigma units, convolution,
PSF centre, axes).  Simple entry points take and return numpy arrays::

    from unblur import richardson_lucy, wiener, deconvolve
    restored = richardson_lucy(image, psf, num_iter=30)
    result = deconvolve(image, psf, method="rl-tv")   # any registered method; result.info has timings
"""

import os as _os

# torch's OpenMP threads spin-wait by default; when the cores are shared (other jobs running) every
# parallel op becomes 5-10x slower (measured for Richardson-Lucy, see BENCHMARKS.md).  Passive
# waiting avoids that.  Takes effect only if unblur is imported before torch; an explicit
# OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .api import Restoration  # noqa: E402, blind_deconvolve, deconvolve
from .errors import InputError
from .io import read_image, read_psf, write_image
from .registry import get_method, list_methods
from .solvers import richardson_lucy, rl_tv, tikhonov, wiener

__version__ = "0.1.0"

__all__ = [
    "Restoration", "blind_deconvolve", "deconvolve", "InputError", "read_image", "read_psf", "write_image",
    "get_method", "list_methods", "richardson_lucy", "rl_tv", "tikhonov", "wiener", "__version__",
]
