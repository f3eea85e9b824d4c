"""PSF validation and normalisation (used by every solver and by PSF loading).

Convention: a PSF is a non-negative array that sums to 1 and whose centre is the pixel
``n // 2`` along each axis (for odd ``n`` the middle pixel; for even ``n`` the pixel just right
of the middle, as ``numpy.fft.fftshift`` places it).  Convolution (not correlation) is used
throughout: ``y[i] = sum_m psf[m] * x[i + c - m]`` with ``c = n // 2``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import InputError, require


#: largest negative mass, as a fraction of the positive mass, that :func:`prepare_psf` clips (10 %)
MAX_NEGATIVE_FRACTION = 0.10


def center_of_mass(psf) -> np.ndarray:
    """Centre of mass (in pixels, per axis) of a non-negative array (numpy or torch, spatial axes only)."""
    p = psf.detach().cpu().numpy() if isinstance(psf, torch.Tensor) else np.asarray(psf, dtype=np.float64)
    p = np.clip(p, 0, None)
    total = p.sum()
    if total <= 0:
        return np.array([(n - 1) / 2 for n in p.shape])
    grids = np.meshgrid(*[np.arange(n) for n in p.shape], indexing="ij")
    return np.array([(g * p).sum() / total for g in grids])


def shift_to_center(psf: np.ndarray, subpixel: bool = False) -> np.ndarray:
    """Shift a PSF so that its centre of mass lands on ``n // 2`` (integer shift by default, circular).

    With ``subpixel=True`` the residual fractional shift is applied in Fourier, then negatives are
    clipped and the sum restored.
    """
    p = np.asarray(psf, dtype=np.float64)
    com = center_of_mass(p)
    target = np.array([n // 2 for n in p.shape])
    shift = target - com
    ishift = np.round(shift).astype(int)
    out = np.roll(p, tuple(ishift), axis=tuple(range(p.ndim)))
    if subpixel:
        frac = shift - ishift
        if np.any(np.abs(frac) > 1e-6):
            from scipy.ndimage import fourier_shift
            out = np.real(np.fft.ifftn(fourier_shift(np.fft.fftn(out), frac)))
            out = np.clip(out, 0, None)
    s = out.sum()
    return out / s if s > 0 else out


def prepare_psf(psf, spatial_ndim: int | None = None, image_shape=None, negative: str = "clip",
                center: str = "none", name: str = "PSF", report: list | None = None) -> np.ndarray:
    """Validate and normalise a PSF; return float32, non-negative, sum 1.

    Parameters
    ----------
    psf : array
        The PSF (2-D or 3-D; a trailing channel axis is allowed when ``spatial_ndim`` says so).
    spatial_ndim : int, optional
        Expected number of spatial axes (2 or 3).
    image_shape : tuple, optional
        Spatial shape of the image; the PSF may not be larger than it on any axis.
    negative : {"clip", "refuse"}
        What to do with negative values: clip them to 0 with a note, or raise.  Clipping is refused
        (whatever ``negative`` says) when the negative mass exceeds :data:`MAX_NEGATIVE_FRACTION` of
        the positive mass: such a PSF is mostly noise or background, and clipping would change its shape.
    center : {"none", "integer", "subpixel"}
        Re-centre the centre of mass on ``n // 2`` (a warning is given when the centre moves).
    report : list, optional
        Human-readable notes of what was changed are appended to it (also issued as warnings).
    """
    notes = [] if report is None else report
    if isinstance(psf, torch.Tensor):
        psf = psf.detach().cpu().numpy()
    p = np.asarray(psf)
    require(p.dtype.kind in "biuf", f"{name} dtype {p.dtype} is not numeric", "give a real-valued PSF")
    p = p.astype(np.float64)
    if spatial_ndim is not None:
        require(p.ndim in (spatial_ndim, spatial_ndim + 1),
                f"{name} has {p.ndim} axes, expected {spatial_ndim}",
                f"give a {spatial_ndim}-D PSF for a {spatial_ndim}-D image")
    else:
        require(p.ndim in (1, 2, 3, 4), f"{name} has {p.ndim} axes", "give a 2-D or 3-D PSF")
    require(p.size > 0, f"{name} is empty", "give a non-empty PSF")
    bad = int(p.size - np.count_nonzero(np.isfinite(p)))
    require(bad == 0, f"{name} contains {bad} NaN or Inf value(s)", "fix the PSF file")
    if image_shape is not None:
        sp = p.shape[: len(image_shape)]
        require(all(a <= b for a, b in zip(sp, image_shape)),
                f"{name} of shape {tuple(sp)} is larger than the image {tuple(image_shape)}",
                "crop the PSF to its support (it must not exceed the image on any axis)")
    if p.min() < 0:
        neg_mass = -p[p < 0].sum()
        pos_mass = p[p > 0].sum()
        rel = neg_mass / max(np.abs(p).sum(), 1e-300)
        if negative == "refuse":
            raise InputError(f"{name} has negative values (min {p.min():.3g})",
                             "clip them to 0 or pass negative='clip'")
        require(pos_mass > 0, f"{name} has no positive values (min {p.min():.3g})", "give a PSF with positive values")
        require(neg_mass <= MAX_NEGATIVE_FRACTION * pos_mass,
                f"{name} has a negative mass of {100 * neg_mass / pos_mass:.3g}% of its positive mass "
                f"(more than {100 * MAX_NEGATIVE_FRACTION:.0f}% is not clipped)",
                "subtract less background from the PSF, or threshold its noise to 0 first")
        min_value = float(p.min())
        p = np.clip(p, 0, None)
        notes.append(f"{name}: clipped negative values (min was {min_value:.3g}, {100 * rel:.2f}% of |mass|) to 0")
    total = p.sum()
    require(total > 0, f"{name} sums to zero", "give a PSF with positive total intensity")
    if abs(total - 1) > 1e-6:
        notes.append(f"{name}: normalised to sum 1 (sum was {total:.6g})")
    p = p / total
    if center != "none":
        sp_axes = p.ndim if spatial_ndim is None else spatial_ndim
        if p.ndim == sp_axes:
            before = center_of_mass(p)
            p = shift_to_center(p, subpixel=(center == "subpixel"))
            after = center_of_mass(p)
            if np.max(np.abs(before - after)) > 0.5:
                notes.append(f"{name}: re-centred (centre of mass {np.round(before, 2).tolist()} -> {np.round(after, 2).tolist()})")
    if report is None:
        for note in notes:
            warnings.warn(note, stacklevel=2)
    return p.astype(np.float32)
