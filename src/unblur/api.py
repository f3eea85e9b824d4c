"""High-level entry points over the registry: ``deconvolve`` (PSF known) and ``blind_deconvolve``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, require
from .registry import DEFAULT_BLIND_METHOD, DEFAULT_METHOD, get_method


@dataclass
class Restoration:
    """A restored image with what produced it.

    ``info`` holds ``time_s``, ``method``, ``params`` (every parameter's value) and what the method
    reports (iterations, ``nfe``, notes...).  ``kernel`` is the PSF estimated by a blind method.
    """

    image: Any
    info: dict = field(default_factory=dict)
    kernel: Any = None


def _as_float(image):
    """Integer arrays (numpy or torch) as float32 divided by their type's maximum (uint8: /255,
    uint16: /65535), the rule for integer files (:func:`unblur.arrays.integer_scale`); others unchanged."""
    dtype = getattr(image, "dtype", None)
    if dtype is None:
        return image
    if hasattr(image, "detach"):
        from .arrays import integer_scale  # torch input: torch is loaded already
    else:
        from .io import integer_scale  # numpy input: no torch import (numpy methods start faster)
    try:
        scale = integer_scale(dtype)
    except TypeError:  # not a numeric dtype: the method refuses it with its own message
        return image
    if scale is None:
        return image
    if hasattr(image, "detach"):
        import torch
        return image.to(torch.float32) / scale
    import numpy as np
    return np.asarray(image, dtype=np.float32) / np.float32(scale)


def _in_light(image, transfer: str):
    """The float image decoded to linear light (:mod:`unblur.physics.transfer`); numpy only when decoding."""
    from .physics.transfer import check_transfer, decode
    img = _as_float(image)
    if check_transfer(transfer) == "linear":
        return img
    require(not hasattr(img, "detach"), f"transfer={transfer!r} takes a numpy image, got a torch tensor",
            "pass image.cpu().numpy(), or decode it yourself (unblur.physics.transfer.srgb_to_linear)")
    return decode(img, transfer)


def _encoded(restored, info: dict, transfer: str):
    from .physics.transfer import encode
    info["transfer"] = transfer
    return encode(restored, transfer)


def deconvolve(image, psf, method: str = DEFAULT_METHOD, *, transfer: str = "linear", **params) -> Restoration:
    """Restore ``image`` blurred by ``psf`` with a registered non-blind method.

    Parameters
    ----------
    image : array
        Blurred image: numpy ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)`` (with a 3-D PSF), or torch
        ``(B, C, ...)``; units as in ``docs/conventions.md``.  Integer arrays are scaled like
        integer files: divided by their type's maximum (uint8 by 255, uint16 by 65535).
    psf : array
        The PSF (centre at ``n // 2``, normalised to sum 1 by the method).
    method : str
        A non-blind method (``unblur methods``); default ``"rl"`` (Richardson-Lucy).
    transfer : {"linear", "srgb"}
        Transfer curve of the values: ``"linear"`` (default) takes them as proportional to light; ``"srgb"``
        decodes an sRGB-encoded photograph (camera JPEG/PNG) to linear light, where the blur happened, and
        encodes the result after the restoration (:mod:`unblur.physics.transfer`; numpy images).
    **params
        The method's parameters (``unblur methods NAME``), e.g. ``num_iter=30``; objects are accepted
        where the method takes them (a Denoiser as ``prior``, a ``torch.device`` as ``device``).

    Returns
    -------
    Restoration
        ``.image`` (same layout as ``image``; float32 for integer or float32 input, float64 for
        float64 input, values in the scaled units) and ``.info``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.ndimage import convolve
    >>> import unblur
    >>> x = np.zeros((32, 32), np.float32); x[12:20, 12:20] = 1
    >>> psf = np.ones((5, 5), np.float32) / 25
    >>> y = convolve(x, psf, mode="reflect")
    >>> result = unblur.deconvolve(y, psf, method="rl", num_iter=20)
    >>> result.image.shape, result.info["method"], result.info["params"]["num_iter"]
    ((32, 32), 'rl', 20)
    >>> bool(np.abs(result.image - x).mean() < np.abs(y - x).mean())
    True
    """
    m = get_method(method)
    if m.kind != "nonblind":
        raise InputError(f"{method!r} is a blind method", "use blind_deconvolve (no PSF) for it")
    restored, info = m.run(_in_light(image, transfer), psf, **params)
    return Restoration(_encoded(restored, info, transfer), info)


def blind_deconvolve(image, method: str = DEFAULT_BLIND_METHOD, *, transfer: str = "linear", **params) -> Restoration:
    """Estimate the blur and the sharp image with a registered blind method.

    Parameters
    ----------
    image : array
        Blurred image, gray ``(H, W)`` or colour ``(H, W, C)``, in [0, 1].  Integer arrays are
        divided by their type's maximum (uint8 by 255, uint16 by 65535), as integer files are.
    method : str
        A blind method (``unblur methods``); default ``"l0"`` (L0 gradient prior, for photographs).
    transfer : {"linear", "srgb"}
        As in :func:`deconvolve`: ``"srgb"`` estimates and restores in linear light.
    **params
        The method's parameters (``unblur methods NAME``).

    Returns
    -------
    Restoration
        ``.image`` (float32 for integer input), ``.kernel`` (the estimated PSF, sums to 1) and ``.info``.

    Examples
    --------
    >>> import numpy as np
    >>> import unblur
    >>> y = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    >>> r = unblur.blind_deconvolve(y, method="selfdeblur", kernel_size=7, iterations=4, refine_iters=2)
    >>> r.image.shape, r.kernel.shape, round(float(r.kernel.sum()), 4)
    ((40, 40), (7, 7), 1.0)
    """
    m = get_method(method)
    if m.kind != "blind":
        raise InputError(f"{method!r} needs a PSF", "use deconvolve(image, psf, method=...)")
    restored, info = m.run(_in_light(image, transfer), **params)
    return Restoration(_encoded(restored, info, transfer), info, info.pop("kernel", None))


__all__ = ["Restoration", "blind_deconvolve", "deconvolve"]
