"""unblur: non-blind and blind deconvolution of images and stacks.

Conventions are stated once in ``docs/conventions.md`` (value range, sigma units, convolution,
PSF centre, axes).  Simple entry points take and return numpy arrays::

    from unblur import richardson_lucy, wiener, deconvolve
    restored = richardson_lucy(image, psf, num_iter=30)
    result = deconvolve(image, psf, method="rl-tv")   # any registered method; result.info has timings

The names below are imported on first use (PEP 562), so that ``import unblur`` and the command
line start without loading torch.
"""

import importlib as _importlib
import os as _os

# torch's OpenMP threads spin-wait by default; when the cores are shared (other jobs running) every
# parallel op becomes several times slower (see BENCHMARKS.md).  Passive waiting avoids that.  Takes
# effect only if unblur is imported before torch; an explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "Restoration": "unblur.api", "blind_deconvolve": "unblur.api", "deconvolve": "unblur.api",
    "InputError": "unblur.errors",
    "read_image": "unblur.io", "read_psf": "unblur.io", "write_image": "unblur.io",
    "get_method": "unblur.registry", "list_methods": "unblur.registry",
    "richardson_lucy": "unblur.solvers", "rl_tv": "unblur.solvers", "tikhonov": "unblur.solvers", "wiener": "unblur.solvers",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unblur' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
