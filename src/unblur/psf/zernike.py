"""Diffraction-limited PSFs from a scalar pupil with Zernike aberrations (deep-blur Model 2.3).

Model (Fourier optics, scalar, incoherent imaging)::

    pupil(f)  = disc(|f| <= f_c) * exp(2 i pi * sum_k gamma_k Z_k(f / f_c))
    PSF       = |F^{-1}(pupil)|^2, normalised to sum 1

* ``f`` is the spatial frequency in cycles per pixel; the cut-off of the *amplitude* transfer is
  ``f_c = NA / wavelength * pixel_size`` (``NA``, ``wavelength`` and ``pixel_size`` in the same
  length unit, e.g. micrometres); the intensity PSF is band-limited to ``2 f_c``.  ``f_c`` must be
  at most 0.5 (the pupil must fit in the sampled band); pick a smaller pixel otherwise.
* ``Z_k`` are Zernike polynomials with **Noll's** single index ``j >= 1`` (Noll 1976): ``j = 1``
  piston, 2/3 tilts, 4 defocus, 5/6 astigmatism, 7/8 coma, 9/10 trefoil, 11 primary spherical.
  They are orthonormal for the *mean* over the unit disc, ``(1/pi) int Z_i Z_j = delta_ij``, so the
  RMS wavefront error in waves is ``sqrt(sum_k gamma_k^2)`` (piston excluded) and, for small values,
  the Strehl ratio is ``exp(-(2 pi sigma_w)^2)`` (Marechal / Mahajan).
* Coefficients ``gamma_k`` are in **waves** (multiply by the wavelength for a length).
* Pupil oversampling ``q``: the pupil is sampled on an ``(q k) x (q k)`` frequency grid, i.e. the
  PSF is computed on a field ``q`` times wider than the returned ``k x k`` window, and cropped (this
  reduces the wrap-around of the PSF's tails).  The disc edge is anti-aliased (area fraction).
* 3-D widefield stacks (:func:`widefield_psf`): the defocus at ``z`` (same length unit) multiplies the
  pupil by ``exp(2 i pi z (sqrt((n/lambda)^2 - |f/p|^2) - n/lambda))`` with ``n`` the immersion
  refractive index (``NA < n`` is required); each plane is computed like the 2-D PSF and the stack is
  normalised to sum 1.

Torch and batched: :class:`PupilPSF` maps coefficients ``gamma`` of shape ``(B, K)`` to PSFs of
shape ``(B, 1, k, k)``, differentiably (autograd flows to ``gamma``).  Deep-blur and blind fitting
use it as::

    model = PupilPSF(size=31, noll=DEEPBLUR_NOLL, cutoff=0.2)       # or na=, wavelength=, pixel_size=
    psf = model(gamma)                                               # gamma (B, K) torch tensor
    gamma = sample_zernike_coefficients(B, len(model.noll), seed=0)  # uniform in [-0.15, 0.15] waves

``zernike_psf(gamma, ...)`` is the one-shot functional form.  The numpy entry points are
:func:`diffraction_psf` (2-D) and :func:`widefield_psf` (3-D).

**Deep-blur preset** (Debarnot & Weiss, "Deep-blur"): Noll indices 4..11 (``DEEPBLUR_NOLL``;
``DEEPBLUR_NOLL_10`` for 4..10), coefficients uniform in ``[-0.15, 0.15]`` waves.  The cut-off of
the preset, 0.2 cycles/pixel, is this library's default choice (not taken from the paper).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..errors import require

DEEPBLUR_NOLL = tuple(range(4, 12))
DEEPBLUR_NOLL_10 = tuple(range(4, 11))
DEEPBLUR_RANGE = 0.15


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal frequency ``m`` of Noll index ``j >= 1``.

    Noll's rule: within radial order ``n`` indices increase with ``|m|``; even ``j`` carry
    ``cos(m theta)`` (``m > 0`` here), odd ``j`` carry ``sin(|m| theta)`` (``m < 0``).
    """
    require(isinstance(j, (int, np.integer)) and j >= 1, f"Noll index must be an integer >= 1, got {j!r}")
    n = int((math.sqrt(8 * j - 7) - 1) // 2)
    while (n + 1) * (n + 2) // 2 < j:  # guard against float rounding
        n += 1
    while n * (n + 1) // 2 >= j:
        n -= 1
    k = j - n * (n + 1) // 2  # 1..n+1: position within the order
    # |m| values in order n, in Noll order: (n % 2), then pairs
    if n % 2 == 0:
        m_abs = 2 * (k // 2)
    else:
        m_abs = 2 * ((k - 1) // 2) + 1
    if m_abs == 0:
        return n, 0
    return n, (m_abs if j % 2 == 0 else -m_abs)


def zernike_radial(n: int, m_abs: int, rho: np.ndarray) -> np.ndarray:
    """Radial polynomial ``R_n^m(rho) = sum_s (-1)^s (n-s)! / (s! ((n+m)/2-s)! ((n-m)/2-s)!) rho^(n-2s)``."""
    out = np.zeros_like(rho, dtype=np.float64)
    for s in range((n - m_abs) // 2 + 1):
        c = (-1) ** s * math.factorial(n - s) / (
            math.factorial(s) * math.factorial((n + m_abs) // 2 - s) * math.factorial((n - m_abs) // 2 - s))
        out += c * rho ** (n - 2 * s)
    return out


def zernike(j: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Noll-indexed Zernike polynomial, orthonormal for the mean over the unit disc (0 outside it)."""
    n, m = noll_to_nm(j)
    rho = np.asarray(rho, dtype=np.float64)
    r = zernike_radial(n, abs(m), rho)
    if m == 0:
        z = math.sqrt(n + 1) * r
    elif m > 0:
        z = math.sqrt(2 * (n + 1)) * r * np.cos(m * theta)
    else:
        z = math.sqrt(2 * (n + 1)) * r * np.sin(-m * theta)
    return np.where(rho <= 1, z, 0.0)


def cutoff_frequency(na: float, wavelength: float, pixel_size: float, refractive_index: float = 1.0) -> float:
    """``f_c = NA / wavelength * pixel_size`` (cycles/pixel), with the physical parameters checked."""
    for name, v in (("na", na), ("wavelength", wavelength), ("pixel_size", pixel_size),
                    ("refractive_index", refractive_index)):
        require(np.isfinite(v) and v > 0, f"{name} must be > 0, got {v}", "give a positive value")
    require(na < refractive_index, f"NA {na} must be smaller than the refractive index {refractive_index}",
            "lower the NA or set the immersion refractive index (e.g. 1.518 for oil)")
    return na / wavelength * pixel_size


def _check_cutoff(fc: float) -> None:
    require(np.isfinite(fc) and 0 < fc <= 0.5,
            f"pupil cut-off f_c = NA/wavelength*pixel_size = {fc:.4g} cycles/pixel is outside (0, 0.5]",
            "use smaller pixels (or a lower NA) so that the pupil fits in the sampled band")


@lru_cache(maxsize=16)
def _pupil_grid(n_grid: int, fc: float, noll: tuple[int, ...], supersample: int = 4):
    """Anti-aliased disc ``(N, N)``, Zernike basis ``(K, N, N)`` on it, and |f| grid (fftfreq order)."""
    f = np.fft.fftfreq(n_grid)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    # disc: area fraction of each frequency cell inside |f| <= fc (supersampled)
    d = 1.0 / n_grid
    offs = ((np.arange(supersample) + 0.5) / supersample - 0.5) * d
    disc = np.zeros_like(fx)
    for oy in offs:
        for ox in offs:
            disc += ((fy + oy) ** 2 + (fx + ox) ** 2) <= fc**2
    disc /= supersample**2
    rho = np.sqrt(fx**2 + fy**2) / fc
    theta = np.arctan2(fy, fx)
    rho_c = np.minimum(rho, 1.0)  # evaluate on the clipped radius so edge cells get edge values
    basis = np.stack([zernike(j, rho_c, theta) for j in noll]) if noll else np.zeros((0,) + fx.shape)
    return disc, basis, np.sqrt(fx**2 + fy**2)


class PupilPSF(torch.nn.Module):
    """Differentiable, batched map ``gamma (B, K) -> PSF (B, 1, k, k)`` (see module docstring).

    Give either ``cutoff`` (``f_c`` in cycles/pixel) or ``na``, ``wavelength`` and ``pixel_size``
    (same length unit; ``refractive_index`` only checks ``NA < n`` here).  ``noll``: the Noll indices
    of the ``K`` coefficients.  ``oversampling``: pupil oversampling ``q`` (integer >= 1).
    ``defocus_z``: optional tuple of defocus distances (same length unit as the wavelength;
    needs ``na``/``wavelength``/``pixel_size``) -- the output is then ``(B, 1, Z, k, k)``.
    """

    def __init__(self, size: int = 31, noll=DEEPBLUR_NOLL, cutoff: float | None = None, *, na=None,
                 wavelength=None, pixel_size=None, refractive_index: float = 1.0, oversampling: int = 2,
                 defocus_z=None):
        super().__init__()
        require(isinstance(size, (int, np.integer)) and size >= 3, f"PSF size must be an integer >= 3, got {size!r}")
        require(isinstance(oversampling, (int, np.integer)) and oversampling >= 1,
                f"oversampling must be an integer >= 1, got {oversampling!r}")
        if cutoff is None:
            require(None not in (na, wavelength, pixel_size), "give either cutoff or na, wavelength and pixel_size",
                    "e.g. na=1.4, wavelength=0.52, pixel_size=0.065 (micrometres), refractive_index=1.518")
            cutoff = cutoff_frequency(na, wavelength, pixel_size, refractive_index)
        _check_cutoff(cutoff)
        noll = tuple(int(j) for j in noll)
        for j in noll:
            noll_to_nm(j)
        self.size, self.noll, self.cutoff, self.oversampling = int(size), noll, float(cutoff), int(oversampling)
        n_grid = self.size * self.oversampling
        disc, basis, fabs = _pupil_grid(n_grid, self.cutoff, noll)
        self.register_buffer("disc", torch.from_numpy(disc).float())
        self.register_buffer("basis", torch.from_numpy(basis).float())
        if defocus_z is not None:
            require(None not in (na, wavelength, pixel_size), "a defocus stack needs na, wavelength and pixel_size")
            k_n = refractive_index / wavelength
            fphys = fabs / pixel_size
            kz = np.sqrt(np.maximum(k_n**2 - fphys**2, 0.0)) - k_n  # cycles per length unit (0 at f = 0)
            z = np.asarray(defocus_z, dtype=np.float64)
            self.register_buffer("defocus", torch.from_numpy(2 * np.pi * z[:, None, None] * kz[None]).float())
        else:
            self.defocus = None

    def amplitude_pupil(self, gamma: torch.Tensor) -> torch.Tensor:
        """Complex pupil ``(B, [Z,] N, N)`` in fftfreq order."""
        require(gamma.ndim == 2 and gamma.shape[1] == len(self.noll),
                f"gamma must have shape (B, {len(self.noll)}), got {tuple(gamma.shape)}",
                "give one coefficient (in waves) per Noll index of the model")
        phase = 2 * math.pi * torch.einsum("bk,kyx->byx", gamma.to(self.basis), self.basis)
        if self.defocus is not None:
            phase = phase[:, None] + self.defocus[None]
        return self.disc * torch.polar(torch.ones_like(phase), phase)

    def intensity(self, gamma: torch.Tensor) -> torch.Tensor:
        """Uncropped, unnormalised PSF on the ``(q k)^2`` grid, centre at ``N // 2``; its sum equals
        ``sum |pupil|^2`` for every ``gamma`` (Parseval), so peak ratios are Strehl ratios."""
        h = torch.fft.ifft2(self.amplitude_pupil(gamma), norm="ortho")
        return torch.fft.fftshift(h.real**2 + h.imag**2, dim=(-2, -1))

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        full = self.intensity(gamma)
        n_grid, k = full.shape[-1], self.size
        s = n_grid // 2 - k // 2
        crop = full[..., s:s + k, s:s + k]
        dims = tuple(range(1, crop.ndim))
        crop = crop / crop.sum(dim=dims, keepdim=True).clamp_min(1e-30)
        return crop[:, None]


def zernike_psf(gamma: torch.Tensor, size: int = 31, noll=DEEPBLUR_NOLL, cutoff: float | None = 0.2, **kw) -> torch.Tensor:
    """Functional form of :class:`PupilPSF`: ``gamma (B, K)`` in waves -> ``(B, 1, size, size)`` (differentiable)."""
    if "na" in kw:
        cutoff = None
    return PupilPSF(size, noll, cutoff, **kw).to(gamma.device)(gamma)


def sample_zernike_coefficients(batch: int, n_coefficients: int = len(DEEPBLUR_NOLL), amplitude: float = DEEPBLUR_RANGE,
                                seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Coefficients uniform in ``[-amplitude, amplitude]`` waves, ``(batch, n_coefficients)`` float32 (deep-blur preset)."""
    require(amplitude >= 0, f"amplitude must be >= 0 waves, got {amplitude}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else int(seed))
    return (2 * torch.rand(batch, n_coefficients, generator=gen) - 1) * amplitude


def random_zernike_psfs(size: int, batch: int, seed: int | None = None, generator: torch.Generator | None = None,
                        noll=DEEPBLUR_NOLL, amplitude: float = DEEPBLUR_RANGE, cutoff: float = 0.2, **kw) -> torch.Tensor:
    """Random diffraction PSFs ``(batch, 1, size, size)`` with the deep-blur preset (by default)."""
    gamma = sample_zernike_coefficients(batch, len(tuple(noll)), amplitude, seed, generator)
    return zernike_psf(gamma, size, noll, cutoff, **kw)


def _coefficients(coefficients) -> tuple[tuple[int, ...], np.ndarray]:
    if coefficients is None:
        return (), np.zeros(0)
    if isinstance(coefficients, dict):
        noll = tuple(int(j) for j in coefficients)
        return noll, np.array([float(coefficients[j]) for j in coefficients])
    c = np.asarray(coefficients, dtype=np.float64).ravel()
    return tuple(range(1, len(c) + 1)), c


def diffraction_psf(size: int, *, na=None, wavelength=None, pixel_size=None, cutoff=None, refractive_index: float = 1.0,
                    coefficients=None, oversampling: int = 2) -> np.ndarray:
    """2-D in-focus diffraction PSF (numpy float32 ``(size, size)``, sum 1, centre ``size // 2``).

    ``coefficients``: ``{noll_index: waves}`` or a sequence for Noll 1, 2, 3, ...; None = aberration-free.
    """
    noll, c = _coefficients(coefficients)
    model = PupilPSF(size, noll, cutoff, na=na, wavelength=wavelength, pixel_size=pixel_size,
                     refractive_index=refractive_index, oversampling=oversampling)
    with torch.no_grad():
        return model(torch.tensor(c, dtype=torch.float32)[None])[0, 0].numpy()


def widefield_psf(size: int, n_z: int, z_step: float, *, na, wavelength, pixel_size, refractive_index: float = 1.0,
                  coefficients=None, oversampling: int = 2) -> np.ndarray:
    """3-D widefield PSF stack ``(n_z, size, size)`` (numpy float32, sum 1, focus at plane ``n_z // 2``).

    Planes are at ``z = (i - n_z // 2) * z_step`` (same length unit as ``wavelength`` and
    ``pixel_size``), defocus by angular-spectrum propagation in a medium of ``refractive_index``.
    """
    require(isinstance(n_z, (int, np.integer)) and n_z >= 1, f"n_z must be an integer >= 1, got {n_z!r}")
    require(np.isfinite(z_step) and z_step > 0, f"z_step must be > 0, got {z_step}")
    noll, c = _coefficients(coefficients)
    z = (np.arange(n_z) - n_z // 2) * float(z_step)
    model = PupilPSF(size, noll, None, na=na, wavelength=wavelength, pixel_size=pixel_size,
                     refractive_index=refractive_index, oversampling=oversampling, defocus_z=tuple(z))
    with torch.no_grad():
        return model(torch.tensor(c, dtype=torch.float32)[None])[0, 0].numpy()


__all__ = ["PupilPSF", "zernike_psf", "random_zernike_psfs", "sample_zernike_coefficients", "diffraction_psf",
           "widefield_psf", "zernike", "zernike_radial", "noll_to_nm", "cutoff_frequency", "DEEPBLUR_NOLL",
           "DEEPBLUR_NOLL_10", "DEEPBLUR_RANGE"]
