"""Turn user input (numpy or torch image + PSF) into a solver problem: data tensor and operator.

This is the one place where the numpy API's layout rules are applied (see :mod:`unblur.arrays`):

* the PSF's number of axes decides the spatial dimensionality;
* ``channel_axis=-1`` (or an image with one more axis than the PSF) means a trailing colour axis;
  a PSF with the same number of axes as such an image is one PSF per channel (last axis, 1 or C);
* torch input is ``(B, C, *spatial)`` with a PSF ``(*k)``, ``(C, *k)`` or ``(B, C, *k)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..arrays import Layout, to_batch
from ..errors import require
from ..physics.convolution import BOUNDARIES, Convolution
from ..physics.operator import LinearOperator, Masked
from ..psf.core import prepare_psf


@dataclass
class Problem:
    y: torch.Tensor
    op: LinearOperator
    layout: Layout
    psf: torch.Tensor | None  # None when the caller gave an operator instead of a PSF
    notes: list[str] = field(default_factory=list)
    #: 1 at saturated pixels (their value is a lower bound of the blur), 0 elsewhere; None when there are none
    clipped: torch.Tensor | None = None

    def _valued(self) -> torch.Tensor | None:
        """0/1 mask of the pixels observed with a value (not missing, not clipped); None when all are."""
        seen = self.op.mask if isinstance(self.op, Masked) else None
        if self.clipped is not None:
            seen = (1 - self.clipped) if seen is None else seen * (1 - self.clipped)
        return seen

    def noise_sigma(self) -> float:
        """The noise level of the data (wavelet MAD, :func:`unblur.physics.noise_level.estimate_noise_sigma`),
        from the observed, unsaturated pixels only when some are missing or clipped."""
        from ..physics.noise_level import estimate_noise_sigma, estimate_noise_sigma_observed
        seen = self._valued()
        return estimate_noise_sigma(self.y) if seen is None else estimate_noise_sigma_observed(self.y, seen)

    def observed_share(self) -> float:
        """The share of observed, unclipped pixels (1 without missing or clipped data): a mean over all pixels of
        a residual that is 0 at the others (a clipped pixel whose model is above its ceiling has residual 0) is
        this share times the mean over the observed."""
        seen = self._valued()
        return 1.0 if seen is None else float(seen.expand_as(self.y).mean())

    def output(self, x: torch.Tensor):
        """Crop the object estimate to the image field of view and return it in the caller's layout; with
        missing data (a :class:`Masked` operator) NaN where no observed pixel constrains the estimate."""
        crop = getattr(self.op, "crop_object", None)
        if isinstance(self.op, Masked):
            x = x.masked_fill(self.op.unobserved(x), float("nan"))
        return self.layout.to_output(crop(x) if crop is not None else x)


def _clip_negative(y: torch.Tensor, notes: list) -> torch.Tensor:
    """Set negative pixels to 0; note it unless they are FFT round-off (above -1e-6 of the maximum).

    Data without negative pixels are returned as they are (no copy; one min/max reduction)."""
    lo = float(y.min())
    if lo >= 0:
        return y
    tiny = 1e-6 * max(float(y.max()), -lo)
    if lo < -tiny:
        n = int((y < -tiny).sum())
        notes.append(f"image: {n} negative pixel(s) (min {lo:.3g}) set to 0 for this positivity-preserving method")
    return y.clamp_min(0)


def _operator_problem(image, op: LinearOperator, channel_axis, device, negative_image, dtype) -> Problem:
    """Problem for a user-built operator (e.g. product-convolution): the image must match ``op.out_shape``.

    A numpy image with one axis more than the operator has a trailing channel axis (as with a PSF);
    ``channel_axis``, when given, must say the same.
    """
    d = len(op.out_shape)
    if channel_axis is not None and not isinstance(image, torch.Tensor):
        nd = np.ndim(image)
        require(channel_axis in (-1, nd - 1), "only a trailing channel axis is supported",
                "move the channel axis last (channel_axis=-1)")
        require(nd == d + 1, f"channel_axis={channel_axis} given, but the image has {nd} axes for a {d}-D operator",
                f"give a {d}-D image with a trailing channel axis, or omit channel_axis")
    y, layout = to_batch(image, d, dtype=dtype, device=device)
    require(tuple(y.shape[2:]) == tuple(op.out_shape),
            f"image of spatial shape {tuple(y.shape[2:])} does not match the operator's output {tuple(op.out_shape)}",
            "build the operator for this image size")
    notes: list[str] = []
    if negative_image == "clip":
        y = _clip_negative(y, notes)
    for n in notes:
        warnings.warn(n, stacklevel=4)
    return Problem(y=y, op=op, layout=layout, psf=None, notes=notes)


def _psf_array(psf, spatial_ndim, channels, name="PSF", notes=None, negative="clip"):
    """Normalise a PSF given as (*k) or (*k, C) numpy / (*k), (C,*k), (B,C,*k) torch -> torch (Bk, Ck, *k)."""
    if isinstance(psf, torch.Tensor) and psf.ndim > spatial_ndim:
        p = psf.detach().cpu().numpy()
        lead = p.shape[: p.ndim - spatial_ndim]
        flat = p.reshape((-1,) + p.shape[-spatial_ndim:])
        flat = np.stack([prepare_psf(f, spatial_ndim, name=name, report=notes, negative=negative) for f in flat])
        out = torch.from_numpy(flat.reshape(lead + flat.shape[1:]))
    else:
        p = psf.detach().cpu().numpy() if isinstance(psf, torch.Tensor) else np.asarray(psf)
        if p.ndim == spatial_ndim + 1:  # per-channel PSF, channel axis last
            require(p.shape[-1] in (1, channels),
                    f"channel count mismatch: the PSF has {p.shape[-1]} channels, the image {channels}",
                    "give one PSF for all channels or one per channel")
            chans = [prepare_psf(p[..., c], spatial_ndim, name=f"{name} channel {c}", report=notes, negative=negative)
                     for c in range(p.shape[-1])]
            out = torch.from_numpy(np.stack(chans))
        else:
            require(p.ndim == spatial_ndim, f"{name} has {p.ndim} axes, expected {spatial_ndim}",
                    f"give a {spatial_ndim}-D PSF for a {spatial_ndim}-D image")
            out = torch.from_numpy(prepare_psf(p, spatial_ndim, name=name, report=notes, negative=negative))
    return out


def _mask_missing(y: torch.Tensor, notes: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(y with its NaN/Inf set to 0, 0/1 mask of the observed pixels)``; the mask is None when every pixel is
    finite.  With the masked operator the zeros are never compared with the model (``M A x = 0`` there)."""
    finite = torch.isfinite(y)
    if bool(finite.all()):
        return y, None
    n = int((~finite).sum())
    require(bool(finite.flatten(2).any(-1).all()), "the image has no finite pixel in some channel",
            "give data with observed pixels")
    notes.append(f"image: {n} NaN/Inf pixel(s) ({100 * n / y.numel():.3g}%) left out of the fit as missing data; "
                 "the result is NaN where no observed pixel constrains it")
    return torch.where(finite, y, 0.0), finite.to(y.dtype)


def censored(y: torch.Tensor, clipped: torch.Tensor | None, op: LinearOperator, x: torch.Tensor) -> torch.Tensor:
    """The data of a censored-data step: ``y`` with each clipped pixel raised to the model where the model is
    above it, ``max(y, A x)`` there (a clipped pixel is a lower bound; :mod:`unblur.physics.saturation`);
    ``y`` itself, without computing ``A x``, when nothing is clipped."""
    return y if clipped is None else torch.where(clipped > 0, torch.maximum(y, op.A(x)), y)


def _clipped(y: torch.Tensor, saturation, notes: list) -> torch.Tensor | None:
    """0/1 tensor of the saturated pixels of ``y`` (:mod:`unblur.physics.saturation`, one ceiling per image and
    channel with ``"auto"``), or None."""
    from ..physics.saturation import saturation_mask
    a = y.detach()
    a = a.cpu().numpy() if a.dtype in (torch.float32, torch.float64) else a.float().cpu().numpy()
    mask, note = saturation_mask(a, saturation, channel_axes=(0, 1))
    if mask is None:
        return None
    notes.append(note)
    return torch.from_numpy(mask).to(device=y.device, dtype=y.dtype)


def setup_problem(image, psf, boundary: str = "circular", channel_axis=None, device=None,
                  negative_image: str = "keep", negative_psf: str = "clip", dtype=torch.float32,
                  missing: str = "error", saturation=None) -> Problem:
    """Validate ``image`` and ``psf`` and build the data tensor and blur operator.

    ``psf`` may also be a ready-made :class:`~unblur.physics.operator.LinearOperator` (for instance a
    space-varying :class:`~unblur.physics.product_convolution.ProductConvolution`); ``boundary`` is
    then the operator's own business and is ignored here.

    ``negative_image``: ``"keep"`` (linear methods) or ``"clip"`` (Richardson-Lucy family: negative
    pixels, e.g. from background subtraction, are set to 0 with a warning giving their count).

    ``missing``: ``"error"`` refuses NaN/Inf pixels; ``"mask"`` leaves them out of the fit (the operator
    becomes :class:`~unblur.physics.operator.Masked`, for methods whose solver uses only ``A`` and ``A^T``).

    ``saturation``: None, ``"auto"`` or a ceiling (:mod:`unblur.physics.saturation`); the saturated pixels are
    returned in ``Problem.clipped`` for the solver to treat as lower bounds.
    """
    require(missing in ("error", "mask"), f"unknown missing-data rule {missing!r}", "use 'error' or 'mask'")
    if isinstance(psf, LinearOperator):
        require(missing == "error", "missing='mask' is not available with a user-built operator",
                "wrap it in unblur.physics.operator.Masked yourself, or give a PSF")
        require(saturation is None, "saturation is not available with a user-built operator", "give a PSF")
        return _operator_problem(image, psf, channel_axis, device, negative_image, dtype)
    require(boundary in BOUNDARIES, f"unknown boundary {boundary!r}", f"use one of {', '.join(BOUNDARIES)}")
    notes: list[str] = []
    if isinstance(image, torch.Tensor):
        spatial_ndim = image.ndim - 2
    else:
        img = np.asarray(image)
        p_ndim = psf.ndim if hasattr(psf, "ndim") else np.asarray(psf).ndim
        if channel_axis is None:
            spatial_ndim = p_ndim if img.ndim in (p_ndim, p_ndim + 1) else min(img.ndim, 3)
        else:
            require(channel_axis in (-1, img.ndim - 1), "only a trailing channel axis is supported",
                    "move the channel axis last (channel_axis=-1)")
            spatial_ndim = img.ndim - 1
        require(spatial_ndim in (2, 3), f"image of {img.ndim} axes with a {p_ndim}-D PSF is not supported",
                "give a 2-D (H, W[, C]) or 3-D (Z, Y, X[, C]) image with a PSF of the same dimensionality")
    y, layout = to_batch(image, spatial_ndim, dtype=dtype, device=device, allow_nonfinite=missing == "mask")
    y, mask = _mask_missing(y, notes) if missing == "mask" else (y, None)
    clipped = _clipped(y, saturation, notes) if saturation is not None else None
    if clipped is not None and mask is not None:
        clipped = clipped * mask
    psf_t = _psf_array(psf, spatial_ndim, y.shape[1], notes=notes, negative=negative_psf).to(y)
    k = psf_t.shape[-spatial_ndim:]
    require(all(a <= b for a, b in zip(k, y.shape[2:])),
            f"PSF of shape {tuple(k)} is larger than the image {tuple(y.shape[2:])}",
            "crop the PSF to its support (it must not exceed the image on any axis)")
    if negative_image == "clip":
        y = _clip_negative(y, notes)
    for n in notes:
        warnings.warn(n, stacklevel=3)
    op = Convolution(psf_t, tuple(y.shape[2:]), boundary)
    return Problem(y=y, op=op if mask is None else Masked(op, mask), layout=layout, psf=psf_t, notes=notes,
                   clipped=clipped)
