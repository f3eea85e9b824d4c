"""Registry entry ``deepblur``: learned PSF identification + unrolled DR deblurring (Debarnot & Weiss 2024)."""

from __future__ import annotations

import time

import numpy as np

from ..blind.deepblur.api import deepblur, identify_psf
from ..errors import require
from ..registry import Method, Param, register
from ..solvers.richardson_lucy import richardson_lucy

DEBLURRERS = ("dn", "rl")


def _identify_then_rl(image, optics, tile, identify_weights, rl_iters):
    """IN's PSF, then Richardson-Lucy (``valid`` boundary) instead of the DN."""
    t0 = time.time()
    gamma, psf, noll = identify_psf(image, optics=optics, weights=identify_weights, tile=tile)
    require(psf.ndim == 2, "deblur='rl' needs a convolution PSF model; this IN identifies a product-convolution "
            "model", "use deblur='dn' with these weights")
    img = np.asarray(image, np.float32)
    out = richardson_lucy(img, psf, num_iter=rl_iters, boundary="valid", channel_axis=-1 if img.ndim == 3 else None)
    return {"image": out, "gamma": gamma, "psf": psf, "noll": list(noll), "time_s": time.time() - t0}


def _deepblur(image, optics=None, tile=None, identify_weights=None, deblur_weights=None, deblur="dn", rl_iters=30):
    require(deblur in DEBLURRERS, f"unknown deblur {deblur!r}", f"use one of {', '.join(DEBLURRERS)}")
    if deblur == "rl":
        r = _identify_then_rl(image, optics, tile, identify_weights, rl_iters)
    else:
        r = deepblur(image, optics=optics, tile=tile, identify_weights=identify_weights, deblur_weights=deblur_weights)
    psf = r["psf"]
    if psf.ndim == 4:  # product-convolution model: control-point PSFs (gy, gx, k, k) -> a (gy*gx, k, k) stack
        psf = psf.reshape(-1, *psf.shape[-2:])
    info = {"time_s": r["time_s"], "gamma": [float(v) for v in r["gamma"]], "noll": r["noll"],
            "nfe": 2 if deblur == "dn" else 1, "deblur": deblur, "kernel": psf}
    return r["image"], info


register(Method(
    "deepblur", "blind", _deepblur,
    "deep-blur: a ResNet reads Zernike coefficients off the image, an unrolled Douglas-Rachford network deblurs (gray, fast)",
    (Param("optics", str, None, "NA,wavelength_um,pixel_um of the PSF model (default: the training optics)"),
     Param("tile", int, None, "identification tile size (default: the training crop size)"),
     Param("identify_weights", str, None, "IN weights file from `python -m unblur.blind.deepblur.train --stage identify "
           "--export` (default: the shipped Zernike model); the PSF model (Zernike, eigen, product-convolution) is "
           "stored in it"),
     Param("deblur_weights", str, None, "DN weights file (--stage deblur --export; default: the shipped one)"),
     Param("deblur", str, "dn", "second stage: dn = the unrolled Douglas-Rachford network (the paper); rl = "
           "Richardson-Lucy with the identified PSF (valid boundary), which kept fine structure better on the "
           "microscopy slices of BENCHMARKS.md", DEBLURRERS),
     Param("rl_iters", int, 30, "Richardson-Lucy iterations for deblur=rl")),
    "Debarnot & Weiss, Biological Imaging 2024"))
