"""Registry entry ``deepblur``: learned PSF identification + unrolled DR deblurring (Debarnot & Weiss 2024).

:func:`deepblur` adds a choice of second stage to :func:`unblur.blind.deepblur.api.deepblur`: the
paper's unrolled Douglas-Rachford network, or Richardson-Lucy with the identified PSF.
"""

from __future__ import annotations

import time
from typing import Literal

from ..registry import Capabilities, Method, register


def deepblur(image, *, optics: str | None = None, tile: int | None = None, identify_weights: str | None = None,
             deblur_weights: str | None = None, deblur: Literal["dn", "rl"] = "dn", rl_iters: int = 30,
             device: str | None = None):
    """Identify the PSF of ``image`` with deep-blur's network, then deblur with DN or Richardson-Lucy.

    Parameters
    ----------
    image : array
        Blurred image, gray ``(H, W)`` or colour ``(H, W, C)`` (channels restored one by one).
    optics : str, optional
        NA,wavelength_um,pixel_um of the PSF model (default: the training optics).
    tile : int, optional
        Identification tile size in pixels (default: the training crop size).
    identify_weights : str, optional
        IN weights file from ``unblur train deepblur --stage identify --export`` (default: the shipped
        Zernike model). The PSF model (Zernike, eigen, product-convolution) is stored in it.
    deblur_weights : str, optional
        DN weights file (``--stage deblur --export``; default: the shipped one).
    deblur : {"dn", "rl"}
        Second stage: dn = the unrolled Douglas-Rachford network (the paper), rl = Richardson-Lucy with
        the identified PSF (``valid`` boundary), which keeps fine structure better on microscopy data
        (BENCHMARKS.md).
    rl_iters : int
        Richardson-Lucy iterations for ``deblur="rl"``.
    device : str, optional
        Torch device of the networks and of Richardson-Lucy (cpu, cuda, cuda:N, mps, auto; default cpu).

    Returns
    -------
    restored : array
        Same layout as ``image``, non-negative: the DN network's output can dip below 0 near dark
        edges; those pixels are set to 0 and counted in ``info["notes"]``.
    info : dict
        ``kernel`` (the identified PSF; a product-convolution model gives its control-point PSFs as a
        ``(gy * gx, k, k)`` stack), ``gamma`` (PSF parameters), ``noll`` (Zernike indices), ``nfe``,
        ``deblur``, ``notes``, ``checks`` (:func:`unblur.blind.checks.blind_checks`; for a
        product-convolution model, of the mean PSF), ``time_s``.
    """
    import numpy as np

    from ..blind.deepblur import api
    from ..errors import require

    from ..blind.checks import attach_checks, check_blind_input

    require(deblur in ("dn", "rl"), f"unknown deblur {deblur!r}", "use dn or rl")
    notes = check_blind_input(image, None, method="deepblur", stacklevel=3)
    t0 = time.perf_counter()
    if deblur == "rl":
        from ..solvers.richardson_lucy import richardson_lucy

        gamma, psf, noll = api.identify_psf(image, optics=optics, weights=identify_weights, tile=tile, device=device)
        require(psf.ndim == 2, "deblur='rl' needs a convolution PSF model; this IN identifies a product-convolution "
                "model", "use deblur='dn' with these weights")
        img = np.asarray(image, np.float32)
        restored = richardson_lucy(img, psf, num_iter=rl_iters, boundary="valid", channel_axis=-1 if img.ndim == 3 else None,
                                   device=device)
    else:
        r = api.deepblur(image, optics=optics, tile=tile, identify_weights=identify_weights, deblur_weights=deblur_weights,
                         device=device)
        restored, gamma, psf, noll = r["image"], r["gamma"], r["psf"], r["noll"]
        neg = int(np.count_nonzero(restored < 0))
        if neg:
            notes.append(f"{neg} negative pixel(s) of the deblurring network's output (min {float(restored.min()):.3g}) set to 0")
            restored = np.maximum(restored, 0)
    if psf.ndim == 4:  # product-convolution model: control-point PSFs (gy, gx, k, k) -> a (gy*gx, k, k) stack
        psf = psf.reshape(-1, *psf.shape[-2:])
    info = {"time_s": time.perf_counter() - t0, "gamma": [float(v) for v in gamma], "noll": list(noll),
            "nfe": 2 if deblur == "dn" else 1, "deblur": deblur, "kernel": psf, "notes": notes}
    attach_checks(info, image, restored, psf)
    return restored, info


register(Method(
    "deepblur", "blind", "unblur.methods.deepblur:deepblur",
    "deep-blur: a ResNet reads Zernike coefficients off the image, an unrolled Douglas-Rachford network deblurs (fast)",
    "Debarnot & Weiss, Biological Imaging 2024", Capabilities(prior=True, device=True)))
