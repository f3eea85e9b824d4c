"""FFT convolution operators in 2-D and 3-D, with boundary models.

Model (convolution, PSF centre ``c = n // 2`` per axis)::

    y[i] = sum_m psf[m] * x[i + c - m]

Boundaries (``boundary=``):

``"circular"``
    ``x`` and ``y`` have the same shape and the image wraps around (exact for FFT solvers,
    rings at edges of real images).
``"zero"``, ``"replicate"``, ``"reflect"``
    ``x`` and ``y`` have the same shape; ``x`` is extended outside its support by zeros /
    edge values / mirror images before the (linear) convolution.  ``"zero"`` is
    ``scipy.signal.convolve(x, psf, mode="same")``.  The RL-diffusion paper's model is
    ``"replicate"`` (padding ``k // 2``).
``"valid"``
    The non-circulant model: ``y`` is the *valid* part of the linear blur of a larger unknown
    object ``x`` of shape ``y.shape + k - 1``.  Solvers that use it estimate the object
    beyond the image edge and crop it at the end, which removes edge ringing
    (Bertero & Boccacci 2005; the masked update of scikit-image#3859).

The PSF transform is computed once (at construction, and again by ``update_kernel``) on an FFT grid of "fast" size (products
of 2, 3, 5: ``scipy.fft.next_fast_len(n, real=True)``) for the non-circular modes; ``"zero"``
needs only ``n + k // 2`` per axis (the object sits at the grid origin), the others ``n + k - 1``.

FFT backend: on the CPU, when no gradient has to flow through the operator, the transforms run in
``scipy.fft`` (pocketfft, ``workers = torch.get_num_threads()``) on zero-copy numpy views; it is
as fast as torch's FFT on an idle machine and does not collapse when the cores are shared (torch's
OpenMP threads spin-wait).  Otherwise (GPU, autograd) ``torch.fft`` is used.  ``UNBLUR_FFT=torch``
forces torch everywhere (``"scipy"``/``"auto"``: the rule above).

Solves: with ``boundary="circular"`` the operator is diagonal in Fourier, so ``solve_normal``,
``prox_l2``, ``regularized_inverse`` and ``solve_gram`` (see :mod:`unblur.physics.operator`) are exact
one-pass Fourier filters, e.g. ``(A^T A + mu D^T D)^-1 A^T y = F^-1[conj(H) Y / (|H|^2 + mu |D|^2)]``;
the other boundaries use the base class's conjugate gradient.

PSFs are tensors of shape ``(*k)``, ``(C, *k)`` (one per channel) or ``(B, C, *k)`` (one per image
and channel); size-1 axes broadcast (an image batch of 1 with B PSFs gives B blurred images).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft as _sfft
import torch
import torch.nn.functional as F

from ..errors import InputError, require
from .operator import SOLVE_METHODS, LinearOperator, regulariser_normal

BOUNDARIES = ("circular", "zero", "replicate", "reflect", "valid")


def _fast_len(n: int) -> int:
    """FFT length used by :class:`Convolution`: scipy's fast real-FFT size (5-smooth) >= n."""
    return int(_sfft.next_fast_len(int(n), real=True))


def psf_to_otf(psf: torch.Tensor, fft_shape: tuple[int, ...]) -> torch.Tensor:
    """Real FFT of ``psf`` zero-padded to ``fft_shape`` with its centre (``n // 2``) moved to the origin."""
    d = len(fft_shape)
    k = psf.shape[-d:]
    pad = []
    for n, s in zip(reversed(k), reversed(fft_shape)):
        pad += [0, s - n]
    big = F.pad(psf, pad)
    big = torch.roll(big, shifts=tuple(-(n // 2) for n in k), dims=tuple(range(-d, 0)))
    return torch.fft.rfftn(big, dim=tuple(range(-d, 0)))


def gradient_symbol(shape: tuple[int, ...], dtype=torch.float32, device=None) -> torch.Tensor:
    """Fourier symbol of ``D^T D`` (forward differences, circular wrap; :func:`~.operator.gradient_normal`)
    on the rfft grid of ``shape``: ``sum_axes (2 - 2 cos(2 pi f))``."""
    sym = 0
    d = len(shape)
    for ax, n in enumerate(shape):
        freqs = torch.fft.rfftfreq(n) if ax == d - 1 else torch.fft.fftfreq(n)
        w = (2 - 2 * torch.cos(2 * torch.pi * freqs.double())).to(dtype=dtype, device=device)
        view = [1] * d
        view[ax] = -1
        sym = sym + w.view(view)
    return sym


def _fft_backend() -> str:
    mode = os.environ.get("UNBLUR_FFT", "auto").lower()
    return "torch" if mode == "torch" else "auto"


def _scipy_ok(*tensors: torch.Tensor) -> bool:
    """True when the scipy FFT path may be used: CPU tensors and no gradient needed through them."""
    if _fft_backend() == "torch":
        return False
    if any(t.device.type != "cpu" or t.is_complex() and t.is_conj() for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def fft_convolve(x: torch.Tensor, otf: torch.Tensor, fft_shape: tuple[int, ...]) -> torch.Tensor:
    """``irfftn(rfftn(x, s=fft_shape) * otf)`` over the trailing ``len(fft_shape)`` axes.

    ``x`` is zero-padded at the end of each axis up to ``fft_shape``.  Uses scipy's pocketfft on
    the CPU when no gradient is needed (see module docstring), torch otherwise.
    """
    d = len(fft_shape)
    dims = tuple(range(-d, 0))
    if _scipy_ok(x, otf):
        workers = max(1, torch.get_num_threads())
        o = otf.detach().numpy()
        X = _sfft.rfftn(x.detach().numpy(), s=fft_shape, axes=dims, workers=workers)
        X = X * o if X.shape != np.broadcast_shapes(X.shape, o.shape) else X.__imul__(o)  # in place unless broadcasting
        return torch.from_numpy(_sfft.irfftn(X, s=fft_shape, axes=dims, workers=workers, overwrite_x=True))
    X = torch.fft.rfftn(x, s=fft_shape, dim=dims)
    if not torch.is_grad_enabled() and X.dtype == torch.result_type(X, otf) and X.shape == torch.broadcast_shapes(X.shape, otf.shape):
        X.mul_(otf)
    else:
        X = X * otf
    return torch.fft.irfftn(X, s=fft_shape, dim=dims)


def _as_batched_psf(psf: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
    if psf.ndim == spatial_ndim:
        return psf[None, None]
    if psf.ndim == spatial_ndim + 1:
        return psf[None]
    if psf.ndim == spatial_ndim + 2:
        return psf
    raise InputError(f"PSF has shape {tuple(psf.shape)}, which does not fit a {spatial_ndim}-D image",
                     "give the PSF as (*k), (C, *k) or (B, C, *k)")


class Convolution(LinearOperator):
    """Blur by a PSF with a chosen boundary model (see module docstring).

    Parameters
    ----------
    psf : torch.Tensor
        ``(*k)``, ``(C, *k)`` or ``(B, C, *k)``; used as given (normalise it beforehand).
    image_shape : tuple of int
        Spatial shape of the *observed* image ``y``.
    boundary : str
        One of ``"circular", "zero", "replicate", "reflect", "valid"``.
    """

    def __init__(self, psf: torch.Tensor, image_shape, boundary: str = "circular"):
        require(boundary in BOUNDARIES, f"unknown boundary {boundary!r}", f"use one of {', '.join(BOUNDARIES)}")
        self.boundary = boundary
        self.spatial_ndim = d = len(image_shape)
        require(d in (2, 3), f"image must be 2-D or 3-D, got {d} spatial axes")
        self.out_shape = tuple(int(n) for n in image_shape)
        self._dims = tuple(range(-d, 0))
        self._build(psf)

    def _build(self, psf: torch.Tensor) -> None:
        """Grid geometry and OTF for ``psf`` (shared by ``__init__`` and :meth:`update_kernel`)."""
        d, boundary = self.spatial_ndim, self.boundary
        psf = _as_batched_psf(psf, d)
        self.psf = psf
        k = tuple(psf.shape[-d:])
        self.kernel_shape = k
        require(all(a <= b for a, b in zip(k, self.out_shape)) or boundary == "valid",
                f"PSF {k} is larger than the image {self.out_shape}", "crop the PSF or use a larger image")
        # padding before/after so that the linear convolution is exact (see module docstring)
        self.pad_before = tuple(n - 1 - n // 2 for n in k)
        self.pad_after = tuple(n // 2 for n in k)
        if boundary == "circular":
            self.in_shape = self.out_shape
            self.fft_shape = self.out_shape
            self.crop_start = (0,) * d
        elif boundary == "zero":
            # object at the origin of a grid long enough that the circular wrap only reads zeros:
            # outputs [0, n) read inputs [-(k-1-c), n-1+c], so n + max(c, k-1-c) = n + k//2 suffices
            self.in_shape = self.out_shape
            self.fft_shape = tuple(_fast_len(n + m // 2) for n, m in zip(self.out_shape, k))
            self.crop_start = (0,) * d
        elif boundary == "valid":
            self.in_shape = tuple(n + m - 1 for n, m in zip(self.out_shape, k))
            self.fft_shape = tuple(_fast_len(n) for n in self.in_shape)
            self.crop_start = self.pad_before
        else:
            self.in_shape = self.out_shape
            ext = tuple(n + m - 1 for n, m in zip(self.out_shape, k))
            self.fft_shape = tuple(_fast_len(n) for n in ext)
            self.crop_start = self.pad_before
        self.otf = psf_to_otf(psf, self.fft_shape)
        self._otf_conj = self.otf.conj().resolve_conj()
        self._otf_power = None
        self._clear_cache()

    def update_kernel(self, psf: torch.Tensor) -> None:
        """Use ``psf`` from now on (same shapes rules as the constructor); equals a fresh operator.

        Blind methods call it after each kernel update instead of building a new operator.  With
        ``boundary="valid"`` a kernel of another size changes ``in_shape``.
        """
        self._build(psf)

    # -- helpers ---------------------------------------------------------------------------
    def _fft_conv(self, x: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
        return fft_convolve(x, otf, self.fft_shape)

    def _crop(self, z: torch.Tensor) -> torch.Tensor:
        sl = tuple(slice(s, s + n) for s, n in zip(self.crop_start, self.out_shape))
        return z[(Ellipsis,) + sl]

    def _embed(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`_crop`: place ``y`` in a zero array of FFT size."""
        pad = []
        for s, n, f in zip(reversed(self.crop_start), reversed(self.out_shape), reversed(self.fft_shape)):
            pad += [s, f - s - n]
        return F.pad(y, pad)

    def _extend(self, x: torch.Tensor) -> torch.Tensor:
        """Boundary extension of the object, placed so that the output window starts at ``crop_start``."""
        if self.boundary in ("circular", "valid", "zero"):
            return x  # zero: the zero padding is the FFT grid's own (see __init__)
        pad = []
        for b, a in zip(reversed(self.pad_before), reversed(self.pad_after)):
            pad += [b, a]
        if self.boundary == "zero":
            return F.pad(x, pad)
        return _pad_nd(x, pad, self.boundary)

    def _extend_adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`_extend` applied to an FFT-grid array ``z``."""
        ext = tuple(n + b + a for n, b, a in zip(self.in_shape, self.pad_before, self.pad_after))
        if self.boundary in ("circular", "valid", "zero"):
            return z[(Ellipsis,) + tuple(slice(0, n) for n in self.in_shape)]
        z = z[(Ellipsis,) + tuple(slice(0, n) for n in ext)]
        with torch.enable_grad():
            x0 = torch.zeros(z.shape[:2] + self.in_shape, dtype=z.dtype, device=z.device, requires_grad=True)
            (g,) = torch.autograd.grad(self._extend(x0), x0, grad_outputs=z)
        return g

    def _check(self, x, shape, what):
        if tuple(x.shape[-self.spatial_ndim:]) != tuple(shape):
            raise InputError(f"{what} has spatial shape {tuple(x.shape[-self.spatial_ndim:])}, expected {tuple(shape)}",
                             "build the operator for this image size")

    # -- operator ----------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_shape, "object")
        return self._crop(self._fft_conv(self._extend(x), self.otf))

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, self.out_shape, "data")
        return self._extend_adjoint(self._fft_conv(self._embed(y), self._otf_conj))

    def data_grid(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A zero array on the FFT grid shaped like ``like`` (data-shaped, ``(B, C, *out_shape)``) and
        the view of it where data go.  Writing data into the view and calling :meth:`A_adjoint_grid`
        equals :meth:`A_adjoint` of those data without its zero-padding copy; the padding stays zero
        as long as only the view is written (Richardson-Lucy's inner loop reuses one grid)."""
        grid = torch.zeros(tuple(like.shape[:-self.spatial_ndim]) + self.fft_shape, dtype=like.dtype, device=like.device)
        sl = tuple(slice(s, s + n) for s, n in zip(self.crop_start, self.out_shape))
        return grid, grid[(Ellipsis,) + sl]

    def A_adjoint_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """:meth:`A_adjoint` of data already embedded in a grid from :meth:`data_grid`."""
        return self._extend_adjoint(self._fft_conv(grid, self._otf_conj))

    # -- exact solves (circular boundary: A is diagonal in Fourier) ----------------------------------
    @property
    def diagonal_in_fourier(self) -> bool:
        """True for the circular boundary, where ``A = F^-1 diag(otf) F`` and the solves are exact."""
        return self.boundary == "circular"

    def transfer_power(self) -> torch.Tensor:
        """``|otf|^2`` on the rfft grid of ``fft_shape`` (cached until :meth:`update_kernel`)."""
        if self._otf_power is None:
            self._otf_power = self.otf.abs() ** 2
        return self._otf_power

    def regulariser_symbol(self, reg: str, dtype=None) -> torch.Tensor:
        """Fourier symbol of ``L^T L`` on the rfft grid of ``fft_shape`` (``reg`` as in :meth:`solve_normal`)."""
        regulariser_normal(reg)  # validates the name
        dtype = dtype or self.transfer_power().dtype
        if reg == "identity":
            return torch.ones((), dtype=dtype, device=self.otf.device)
        return gradient_symbol(self.fft_shape, dtype, self.otf.device)

    def _fourier(self, method: str) -> bool:
        require(method in SOLVE_METHODS, f"unknown solve method {method!r}", f"use one of {', '.join(SOLVE_METHODS)}")
        require(method != "fourier" or self.diagonal_in_fourier,
                f"the exact Fourier solve needs boundary='circular', not {self.boundary!r}",
                "use method='auto' (conjugate gradient for this boundary)")
        return method != "cg" and self.diagonal_in_fourier

    def _filter(self, X: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(X / den, s=self.fft_shape, dim=self._dims)

    def solve_normal(self, rhs, mu, *, reg="identity", x0=None, max_iter=100, tol=1e-5, method="auto"):
        if not self._fourier(method):
            return super().solve_normal(rhs, mu, reg=reg, x0=x0, max_iter=max_iter, tol=tol, method="cg")
        den = self.transfer_power() + mu * self.regulariser_symbol(reg)
        return self._filter(torch.fft.rfftn(rhs, dim=self._dims), den)

    def prox_l2(self, v, y, mu, *, x0=None, max_iter=100, tol=1e-5, method="auto"):
        if not self._fourier(method):
            return super().prox_l2(v, y, mu, x0=x0, max_iter=max_iter, tol=tol, method="cg")
        num = self._otf_conj * torch.fft.rfftn(y, dim=self._dims) + mu * torch.fft.rfftn(v, dim=self._dims)
        return self._filter(num, self.transfer_power() + mu)

    def regularized_inverse(self, y, mu, *, reg="identity", x0=None, max_iter=100, tol=1e-5, method="auto"):
        if not self._fourier(method):
            return super().regularized_inverse(y, mu, reg=reg, x0=x0, max_iter=max_iter, tol=tol, method="cg")
        num = self._otf_conj * torch.fft.rfftn(y, dim=self._dims)
        return self._filter(num, self.transfer_power() + mu * self.regulariser_symbol(reg))

    def solve_gram(self, r, c, *, weight=1.0, max_iter=100, tol=1e-6, method="auto"):
        if not self._fourier(method):
            return super().solve_gram(r, c, weight=weight, max_iter=max_iter, tol=tol, method="cg")
        require(weight >= 0 and c >= 0 and weight + c > 0, "the Gram system needs weight + c > 0 (both >= 0)")
        return self._filter(torch.fft.rfftn(r, dim=self._dims), weight * self.transfer_power() + c)

    def crop_object(self, x: torch.Tensor) -> torch.Tensor:
        """Crop an object estimate to the image's field of view (identity except for ``valid``)."""
        if self.boundary != "valid":
            return x
        sl = tuple(slice(b, b + n) for b, n in zip(self.pad_before, self.out_shape))
        return x[(Ellipsis,) + sl]

    def initial_object(self, y: torch.Tensor) -> torch.Tensor:
        """An object-shaped starting point built from the data (edge-replicated for ``valid``)."""
        if self.boundary != "valid":
            return y.clone()
        pad = []
        for b, a in zip(reversed(self.pad_before), reversed(self.pad_after)):
            pad += [b, a]
        return _pad_nd(y, pad, "replicate")


def _pad_nd(x: torch.Tensor, pad: list[int], mode: str) -> torch.Tensor:
    """``F.pad`` for replicate/reflect that also works when the pad exceeds the size (reflect) or dims > 3."""
    if mode == "reflect":
        # torch's reflect needs pad < size; fall back to repeated reflection via index arithmetic
        d = len(pad) // 2
        out = x
        for i in range(d):
            before, after = pad[2 * i], pad[2 * i + 1]
            dim = x.ndim - 1 - i
            n = out.shape[dim]
            idx = torch.arange(-before, n + after, device=x.device)
            period = 2 * (n - 1) if n > 1 else 1
            idx = torch.remainder(idx, period)
            idx = torch.where(idx >= n, period - idx, idx)
            out = out.index_select(dim, idx)
        return out
    return F.pad(x, pad, mode=mode)


def convolve(image: torch.Tensor, psf: torch.Tensor, boundary: str = "circular") -> torch.Tensor:
    """One-shot blur of a ``(B, C, *spatial)`` tensor (builds a :class:`Convolution`)."""
    d = image.ndim - 2
    return Convolution(psf.to(image), image.shape[-d:], boundary).A(image)


def crop_valid(n_in, k):
    """Spatial shape of the valid part of the convolution of an ``n_in`` image with a ``k`` kernel."""
    return tuple(a - b + 1 for a, b in zip(n_in, k))


__all__ = ["BOUNDARIES", "Convolution", "convolve", "fft_convolve", "psf_to_otf", "gradient_symbol", "crop_valid"]
