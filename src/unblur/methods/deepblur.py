"""Registry entry ``deepblur``: learned PSF identification + unrolled DR deblurring (Debarnot & Weiss 2024)."""

from __future__ import annotations

from ..blind.deepblur.api import deepblur
from ..registry import Method, Param, register


def _deepblur(image, optics=None, tile=None):
    r = deepblur(image, optics=optics, tile=tile)
    info = {"time_s": r["time_s"], "gamma": [float(v) for v in r["gamma"]], "noll": r["noll"], "nfe": 2,
            "kernel": r["psf"]}
    return r["image"], info


register(Method(
    "deepblur", "blind", _deepblur,
    "deep-blur: a ResNet reads Zernike coefficients off the image, an unrolled Douglas-Rachford network deblurs (gray, fast)",
    (Param("optics", str, None, "NA,wavelength_um,pixel_um of the PSF model (default: the training optics)"),
     Param("tile", int, None, "identification tile size (default: the training crop size)")),
    "Debarnot & Weiss, Biological Imaging 2024"))
