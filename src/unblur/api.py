"""High-level entry points over the registry: ``deconvolve`` (PSF known) and ``blind_deconvolve``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .registry import get_method


@dataclass
class Restoration:
    """A restored image with what produced it.  ``kernel`` is set by blind methods."""

    image: np.ndarray
    info: dict = field(default_factory=dict)
    kernel: np.ndarray | None = None


def deconvolve(image, psf, method: str = "rl", **params) -> Restoration:
    """Restore ``image`` blurred by ``psf`` with a registered non-blind method (see ``unblur methods``)."""
    m = get_method(method)
    if m.kind != "nonblind":
        from .errors import InputError
        raise InputError(f"{method!r} is a blind method", "use blind_deconvolve (no PSF) for it")
    resolved = m.resolve(params)
    restored, info = m.func(image, psf, **dict(resolved))
    info = dict(info, method=method, params=resolved)
    return Restoration(restored, info)


def blind_deconvolve(image, method: str, **params) -> Restoration:
    """Estimate the blur and the sharp image with a registered blind method."""
    m = get_method(method)
    if m.kind != "blind":
        from .errors import InputError
        raise InputError(f"{method!r} needs a PSF", "use deconvolve(image, psf, method=...)")
    resolved = m.resolve(params)
    restored, info = m.func(image, **dict(resolved))
    kernel = info.pop("kernel", None)
    info = dict(info, method=method, params=resolved)
    return Restoration(restored, info, kernel)
