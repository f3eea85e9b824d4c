"""The parametric PSF model h(gamma) that deep-blur identifies: an adapter to ``unblur.psf.zernike``.

Deep-blur only needs a differentiable batched map ``gamma (B, K) -> PSF (B, 1, k, k)`` (non-negative,
sum 1, centre at ``k // 2``).  :class:`PSFModel` holds such a map with its description (Noll indices,
optics, PSF size) so that a checkpoint can say which model its gamma belongs to.

The Zernike pupil model itself is *not* implemented here: :func:`zernike_psf_model` wraps
``unblur.psf.zernike`` (issue 3).  Any other parametric family (eigen-PSF or product-convolution
coefficients) plugs in by giving ``PSFModel`` its own ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import InputError, require

#: Deep-blur's preset: Noll 4..11 (defocus, astigmatism x2, coma x2, trefoil x2, spherical).
DEEPBLUR_NOLL = (4, 5, 6, 7, 8, 9, 10, 11)
#: Default optics (numerical aperture, emission wavelength in um, pixel size in um): pupil cut-off
#: f_c = NA / wavelength * pixel = 0.2 cycles/pixel, the preset of ``unblur.psf.zernike``.
DEFAULT_OPTICS = (1.2, 0.6, 0.1)
#: Immersion index used only to check NA < n (oil).
REFRACTIVE_INDEX = 1.518


@dataclass
class PSFModel:
    """``fn(gamma (B, K)) -> (B, 1, k, k)`` plus its description (stored in checkpoints)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    n_params: int
    psf_size: int
    noll: tuple[int, ...] = ()
    description: dict = field(default_factory=dict)

    def __call__(self, gamma: torch.Tensor) -> torch.Tensor:
        require(gamma.ndim == 2 and gamma.shape[1] == self.n_params,
                f"gamma must have shape (B, {self.n_params}), got {tuple(gamma.shape)}")
        h = self.fn(gamma)
        if h.ndim == 3:
            h = h[:, None]
        return h


def parse_optics(optics) -> tuple[float, float, float]:
    """``(NA, wavelength_um, pixel_um)`` from a tuple or a ``"NA,wavelength,pixel"`` string."""
    if optics is None:
        return DEFAULT_OPTICS
    if isinstance(optics, str):
        try:
            optics = tuple(float(v) for v in optics.split(","))
        except ValueError:
            raise InputError(f"cannot read optics {optics!r}", "give NA,wavelength,pixel, e.g. 1.2,0.6,0.1") from None
    require(len(optics) == 3, f"optics needs 3 numbers (NA, wavelength, pixel), got {optics}",
            "give NA,wavelength,pixel in micrometres, e.g. 1.2,0.6,0.1")
    na, wl, px = (float(v) for v in optics)
    require(na > 0 and wl > 0 and px > 0, f"optics values must be > 0, got {optics}")
    return na, wl, px


def zernike_psf_model(optics=None, noll=DEEPBLUR_NOLL, psf_size: int = 31) -> PSFModel:
    """The Zernike-pupil PSF model of ``unblur.psf.zernike`` for ``optics = (NA, wavelength, pixel)``."""
    try:
        from ...psf.zernike import PupilPSF
    except ImportError as e:  # pragma: no cover - depends on issue 3 landing
        raise InputError("the Zernike PSF model (unblur.psf.zernike) is not installed",
                         "update unblur; deep-blur needs it") from e
    na, wl, px = parse_optics(optics)
    noll = tuple(int(j) for j in noll)
    fn = PupilPSF(psf_size, noll, na=na, wavelength=wl, pixel_size=px, refractive_index=REFRACTIVE_INDEX)
    return PSFModel(fn, len(noll), psf_size, noll,
                    {"kind": "zernike", "noll": list(noll), "optics": [na, wl, px], "psf_size": psf_size})


def psf_model_from_description(desc: dict) -> PSFModel:
    """Rebuild the model stored in a checkpoint."""
    require(desc.get("kind") == "zernike", f"unknown PSF model {desc.get('kind')!r} in checkpoint")
    return zernike_psf_model(desc["optics"], desc["noll"], desc["psf_size"])
