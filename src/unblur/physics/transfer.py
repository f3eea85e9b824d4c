"""Transfer functions: blur adds light, so it is linear in light, not in the encoded values of a photograph.

A camera's raw values are proportional to light; a JPEG or PNG from a camera or a phone stores them encoded by a
transfer curve, almost always sRGB (IEC 61966-2-1), which lifts the shadows (about ``v^(1/2.4)``). A blur
recorded by the sensor is a convolution of the *linear* values; deconvolving the encoded ones fits a model that
does not hold there: edges between bright and dark regions are blurred asymmetrically in the encoded values,
which leaves halos and a wrong kernel. ``transfer="srgb"`` decodes the image to linear light before the
restoration and encodes the result after it (``unblur deconvolve|blind --transfer srgb``; in Python
``unblur.deconvolve(image, psf, transfer="srgb")`` and ``unblur.blind_deconvolve(image, transfer="srgb")``). Microscopy, astronomy
and raw camera data are linear already (``"linear"``, the default: the values are used as given).

sRGB, for ``v`` in [0, 1] (IEC 61966-2-1)::

    decode: l = v / 12.92                      for v <= 0.04045
            l = ((v + 0.055) / 1.055)^2.4      otherwise
    encode: v = 12.92 l                        for l <= 0.0031308
            v = 1.055 l^(1/2.4) - 0.055        otherwise

Values outside [0, 1] (overshoot of a restoration) are mapped by the same formulas, odd-symmetric below 0, so that
encoding inverts decoding everywhere.

Example
-------
>>> import numpy as np
>>> v = np.array([0.0, 0.02, 0.5, 1.0])
>>> np.round(srgb_to_linear(v), 4)
array([0.    , 0.0015, 0.214 , 1.    ])
>>> bool(np.allclose(linear_to_srgb(srgb_to_linear(v)), v))
True
"""

from __future__ import annotations

import numpy as np

from ..errors import require

TRANSFERS = ("linear", "srgb")


def srgb_to_linear(v):
    """Decode sRGB-encoded values to linear light (module docstring); keeps a floating dtype."""
    v = np.asarray(v)
    v = v if np.issubdtype(v.dtype, np.floating) else v.astype(np.float32)
    a = np.abs(v)
    out = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return (np.sign(v) * out).astype(v.dtype, copy=False)


def linear_to_srgb(v):
    """Encode linear light to sRGB values (module docstring); keeps a floating dtype."""
    v = np.asarray(v)
    v = v if np.issubdtype(v.dtype, np.floating) else v.astype(np.float32)
    a = np.abs(v)
    out = np.where(a <= 0.0031308, 12.92 * a, 1.055 * a ** (1 / 2.4) - 0.055)
    return (np.sign(v) * out).astype(v.dtype, copy=False)


def check_transfer(transfer: str) -> str:
    """``transfer`` checked: one of :data:`TRANSFERS`."""
    require(transfer in TRANSFERS, f"unknown transfer {transfer!r}",
            "use 'srgb' for JPEG/PNG photographs or 'linear' for data proportional to light")
    return transfer


def decode(image, transfer: str):
    """The image in linear light (a copy when decoded, the image itself for ``"linear"``)."""
    return srgb_to_linear(image) if check_transfer(transfer) == "srgb" else image


def encode(image, transfer: str):
    """The inverse of :func:`decode`."""
    return linear_to_srgb(image) if check_transfer(transfer) == "srgb" else image


__all__ = ["TRANSFERS", "check_transfer", "decode", "encode", "linear_to_srgb", "srgb_to_linear"]
