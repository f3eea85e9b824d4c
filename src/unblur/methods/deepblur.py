"""Registry entry ``deepblur``: learned PSF identification + unrolled DR deblurring (Debarnot & Weiss 2024)."""

from __future__ import annotations

from ..blind.deepblur.api import deepblur
from ..registry import Method, Param, register


def _deepblur(image, optics=None, tile=None, identify_weights=None, deblur_weights=None):
    r = deepblur(image, optics=optics, tile=tile, identify_weights=identify_weights, deblur_weights=deblur_weights)
    psf = r["psf"]
    if psf.ndim == 4:  # product-convolution model: control-point PSFs (gy, gx, k, k) -> a (gy*gx, k, k) stack
        psf = psf.reshape(-1, *psf.shape[-2:])
    info = {"time_s": r["time_s"], "gamma": [float(v) for v in r["gamma"]], "noll": r["noll"], "nfe": 2,
            "kernel": psf}
    return r["image"], info


register(Method(
    "deepblur", "blind", _deepblur,
    "deep-blur: a ResNet reads Zernike coefficients off the image, an unrolled Douglas-Rachford network deblurs (gray, fast)",
    (Param("optics", str, None, "NA,wavelength_um,pixel_um of the PSF model (default: the training optics)"),
     Param("tile", int, None, "identification tile size (default: the training crop size)"),
     Param("identify_weights", str, None, "IN weights file from `python -m unblur.blind.deepblur.train --stage identify "
           "--export` (default: the shipped Zernike model); the PSF model (Zernike, eigen, product-convolution) is "
           "stored in it"),
     Param("deblur_weights", str, None, "DN weights file (--stage deblur --export; default: the shipped one)")),
    "Debarnot & Weiss, Biological Imaging 2024"))
