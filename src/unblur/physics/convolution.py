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

The PSF transform is computed on first use (and again after ``update_kernel``) on an FFT grid
chosen by a measured cost model of pocketfft (:func:`fft_grid_shape`: 11-smooth sizes, traded
against their number of points) for the non-circular modes; ``"zero"`` needs only ``n + k // 2``
per axis (the object sits at the grid origin), the others ``n + k - 1``.

FFT backend: on the CPU, when no gradient has to flow through the operator, the transforms run in
``scipy.fft`` (pocketfft, ``workers = torch.get_num_threads()``) on zero-copy numpy views; it is
as fast as torch's FFT on an idle machine and does not collapse when the cores are shared (torch's
OpenMP threads spin-wait).  Otherwise (GPU, autograd) ``torch.fft`` is used.  ``UNBLUR_FFT=torch``
forces torch everywhere (``"scipy"``/``"auto"``: the rule above).  The in-place 3-D grid of the
Richardson-Lucy loop (:class:`FFTGrid`) transforms each plane with torch's 2-D real FFT and the
first axis with scipy.

Solves: with ``boundary="circular"`` the operator is diagonal in Fourier, so ``solve_normal``,
``prox_l2``, ``regularized_inverse`` and ``solve_gram`` (see :mod:`unblur.physics.operator`) are exact
one-pass Fourier filters, e.g. ``(A^T A + mu D^T D)^-1 A^T y = F^-1[conj(H) Y / (|H|^2 + mu |D|^2)]``;
the other boundaries use the base class's conjugate gradient.

PSFs are tensors of shape ``(*k)``, ``(C, *k)`` (one per channel) or ``(B, C, *k)`` (one per image
and channel); size-1 axes broadcast (an image batch of 1 with B PSFs gives B blurred images).
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import scipy.fft as _sfft
import torch
import torch.nn.functional as F

from ..errors import InputError, require
from .operator import SOLVE_METHODS, LinearOperator, regulariser_normal

BOUNDARIES = ("circular", "zero", "replicate", "reflect", "valid")


#: Cost model of pocketfft's 1-D transforms, per point: a constant plus a weight per prime factor
#: (fitted to timings of every 11-smooth length 16-1200 on one core: ``benchmarks/rl_memory.py
#: --fft-sizes``; BENCHMARKS.md).  Per grid point and per convolution the elementwise passes add
#: about ``_ELEMENTWISE`` in the same units.
_FFT_BASE, _RADIX_COST, _ELEMENTWISE = 0.78, {2: 0.096, 3: 0.226, 5: 0.309, 7: 0.416, 11: 0.617}, 4.0


def _length_cost(n: int) -> float | None:
    """Modelled cost per point of a length-``n`` FFT, or None when ``n`` is not 11-smooth."""
    cost, m = _FFT_BASE, int(n)
    for p, w in _RADIX_COST.items():
        while m % p == 0:
            m //= p
            cost += w
    return cost if m == 1 else None


def _fast_len(n: int) -> int:
    """Cheapest length >= ``n`` for a 1-D transform under the cost model (``n * cost(n)`` minimal)."""
    return fft_grid_shape((n,))[0]


def fft_grid_shape(minimum: tuple[int, ...]) -> tuple[int, ...]:
    """FFT grid >= ``minimum`` on every axis with the lowest modelled cost of one convolution.

    ``cost = prod(n) * (2 sum_a c(n_a) + E)`` with ``c`` the per-point cost of a length-``n``
    transform (:func:`_length_cost`; the last, real axis counts half) and ``E`` the elementwise
    work: the size is traded against how well it factorises (11-smooth sizes such as 1056 can beat
    the next 5-smooth size, 1080).  Candidates: the 8 cheapest-per-point smooth sizes within 30%.
    """
    cands = []
    for a, m in enumerate(minimum):
        m = max(1, int(m))
        sizes = [n for n in range(m, int(1.3 * m) + 12) if _length_cost(n) is not None]
        weight = 0.5 if a == len(minimum) - 1 else 1.0
        sizes.sort(key=lambda n: n * _length_cost(n))
        cands.append([(n, weight * _length_cost(n)) for n in sizes[:8]])
    best, best_cost = None, np.inf
    for combo in itertools.product(*cands):
        cost = float(np.prod([n for n, _ in combo])) * (2 * sum(c for _, c in combo) + _ELEMENTWISE)
        if cost < best_cost:
            best, best_cost = tuple(n for n, _ in combo), cost
    return best


def psf_to_otf(psf: torch.Tensor, fft_shape: tuple[int, ...]) -> torch.Tensor:
    """Real FFT of ``psf`` zero-padded to ``fft_shape`` with its centre (``n // 2``) moved to the origin.

    On the CPU without autograd the PSF is written once into the wrapped positions of the grid (one
    grid and one spectrum in memory); otherwise pad and roll.
    """
    d = len(fft_shape)
    k = psf.shape[-d:]
    if _scipy_ok(psf):
        big = np.zeros(tuple(psf.shape[:-d]) + tuple(fft_shape), dtype=np.float32 if psf.dtype == torch.float32 else np.float64)
        idx = np.ix_(*[(np.arange(n) - n // 2) % s for n, s in zip(k, fft_shape)])
        big[(Ellipsis,) + idx] = psf.detach().numpy()
        return torch.fft.rfftn(torch.from_numpy(big), dim=tuple(range(-d, 0)))
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


def _workers() -> int:
    return max(1, torch.get_num_threads())


def _scipy_ok(*tensors: torch.Tensor) -> bool:
    """True when the scipy FFT path may be used: CPU tensors and no gradient needed through them."""
    if _fft_backend() == "torch":
        return False
    if any(t.device.type != "cpu" or t.is_complex() and t.is_conj() for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _mul_spectrum(X: np.ndarray, otf: np.ndarray, conj: bool, axis: int) -> None:
    """``X *= otf`` (or ``conj(otf)``) in place, in slabs along ``axis`` (no spectrum-sized temporary)."""
    n = X.shape[axis]
    step = max(1, n * (1 << 18) // max(X.size, 1))
    for i in range(0, n, step):
        sl = (Ellipsis, slice(i, i + step)) + (slice(None),) * (-axis - 1)
        o = otf[sl] if otf.shape[axis] > 1 else otf
        X[sl] *= np.conj(o) if conj else o


def fft_convolve(x: torch.Tensor, otf: torch.Tensor, fft_shape: tuple[int, ...], conj: bool = False) -> torch.Tensor:
    """``irfftn(rfftn(x, s=fft_shape) * otf)`` over the trailing ``len(fft_shape)`` axes (``conj(otf)``
    when ``conj``: the adjoint).

    ``x`` is zero-padded at the end of each axis up to ``fft_shape``.  Uses scipy's pocketfft on
    the CPU when no gradient is needed (see module docstring), torch otherwise.
    """
    d = len(fft_shape)
    dims = tuple(range(-d, 0))
    if _scipy_ok(x, otf):
        workers = _workers()
        o = otf.detach().numpy()
        X = _sfft.rfftn(x.detach().numpy(), s=fft_shape, axes=dims, workers=workers)
        if X.shape == np.broadcast_shapes(X.shape, o.shape):
            _mul_spectrum(X, o, conj, -d)
        else:
            X = X * (np.conj(o) if conj else o)
        return torch.from_numpy(_sfft.irfftn(X, s=fft_shape, axes=dims, workers=workers, overwrite_x=True))
    otf = otf.conj() if conj else otf
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
            self.fft_shape = fft_grid_shape(tuple(n + m // 2 for n, m in zip(self.out_shape, k)))
            self.crop_start = (0,) * d
        elif boundary == "valid":
            self.in_shape = tuple(n + m - 1 for n, m in zip(self.out_shape, k))
            self.fft_shape = fft_grid_shape(self.in_shape)
            self.crop_start = self.pad_before
        else:
            self.in_shape = self.out_shape
            ext = tuple(n + m - 1 for n, m in zip(self.out_shape, k))
            self.fft_shape = fft_grid_shape(ext)
            self.crop_start = self.pad_before
        self._otf = None  # computed on first use (:attr:`otf`); the in-place RL loop may never need it
        self.__dict__.pop("_otf_conj_cache", None)
        self._otf_power = None
        self._clear_cache()

    def update_kernel(self, psf: torch.Tensor) -> None:
        """Use ``psf`` from now on (same shapes rules as the constructor); equals a fresh operator.

        Blind methods call it after each kernel update instead of building a new operator.  With
        ``boundary="valid"`` a kernel of another size changes ``in_shape``.
        """
        self._build(psf)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def otf(self) -> torch.Tensor:
        """The PSF's real-FFT transfer function on ``fft_shape`` (:func:`psf_to_otf`), computed on first use."""
        if self._otf is None:
            self._otf = psf_to_otf(self.psf, self.fft_shape)
        return self._otf

    @property
    def _otf_conj(self) -> torch.Tensor:
        """``conj(otf)`` as a plain tensor, made on first use (the operator's own adjoint does not need it)."""
        if "_otf_conj_cache" not in self.__dict__:
            self._otf_conj_cache = self.otf.conj().resolve_conj()
        return self._otf_conj_cache

    def _fft_conv(self, x: torch.Tensor, conj: bool = False) -> torch.Tensor:
        return fft_convolve(x, self.otf, self.fft_shape, conj=conj)

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
        return self._crop(self._fft_conv(self._extend(x)))

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, self.out_shape, "data")
        return self._extend_adjoint(self._fft_conv(self._embed(y), conj=True))

    def AtA(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T A x``; on the CPU without autograd (``circular``, ``zero``, ``valid``, float32) in one
        in-place FFT buffer (:class:`FFTGrid`) instead of the padded copies of ``A`` then ``A^T``."""
        self._check(x, self.in_shape, "object")
        if not (self.boundary in ("circular", "zero", "valid") and x.dtype == torch.float32 and _scipy_ok(x, self.psf)):
            return super().AtA(x)
        lead = tuple(np.broadcast_shapes(tuple(x.shape[:2]), tuple(self.psf.shape[:2])))
        grid = FFTGrid(self, lead, otf="operator")
        grid.object.copy_(x)
        grid.zero_outside_object()
        grid.convolve(nonzero=grid.object_box(), needed=grid.window_box())
        grid.zero_outside_window()
        grid.convolve(conj=True, nonzero=grid.window_box(), needed=grid.object_box())
        return grid.object.clone()

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
        return self._extend_adjoint(self._fft_conv(grid, conj=True))

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

    def solve_normal(self, rhs, mu, *, reg="identity", x0=None, max_iter=100, tol=1e-5, method="auto", progress=None):
        if not self._fourier(method):
            return super().solve_normal(rhs, mu, reg=reg, x0=x0, max_iter=max_iter, tol=tol, method="cg",
                                        progress=progress)
        den = self.transfer_power() + mu * self.regulariser_symbol(reg)
        return self._filter(torch.fft.rfftn(rhs, dim=self._dims), den)

    def prox_l2(self, v, y, mu, *, x0=None, max_iter=100, tol=1e-5, method="auto"):
        if not self._fourier(method):
            return super().prox_l2(v, y, mu, x0=x0, max_iter=max_iter, tol=tol, method="cg")
        num = self._otf_conj * torch.fft.rfftn(y, dim=self._dims) + mu * torch.fft.rfftn(v, dim=self._dims)
        return self._filter(num, self.transfer_power() + mu)

    def regularized_inverse(self, y, mu, *, reg="identity", x0=None, max_iter=100, tol=1e-5, method="auto",
                            progress=None):
        if not self._fourier(method):
            return super().regularized_inverse(y, mu, reg=reg, x0=x0, max_iter=max_iter, tol=tol, method="cg",
                                               progress=progress)
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


class FFTGrid:
    """One complex64 buffer in which a :class:`Convolution` is applied in place (CPU, no autograd).

    The buffer holds the real FFT spectrum ``(*lead, *fft_shape[:-1], n // 2 + 1)``; its float32
    view ``real`` (last axis ``2 (n // 2 + 1)``, of which the first ``n`` values are used) is the
    real grid, as in FFTW's in-place real transforms.  :meth:`convolve` transforms ``real`` to the
    spectrum in place (real-to-complex along the last axis in slabs, complex FFTs over the other
    axes in place), multiplies by the OTF (or its conjugate) and transforms back, so a convolution
    needs this one buffer, the OTF and slab-sized temporaries.

    ``otf``: ``"stored"`` (written once from :class:`SeparableOTF`), ``"computed"`` (generated block
    by block at each :meth:`convolve`) or ``"operator"`` (the operator's own :attr:`Convolution.otf`).

    Views (torch tensors sharing the buffer): ``grid`` (``fft_shape``), ``object`` (``in_shape`` at
    the origin: where ``x`` goes and where ``A^T`` leaves its result) and ``window`` (``out_shape``
    at ``crop_start``: where ``A x`` is read and where data go before ``A^T``).

    3-D grids are transformed plane by plane along the first spatial axis: each plane's 2-D real
    transform (rows, then columns) goes through torch's FFT into a plane-sized temporary and back
    into the buffer; the first axis is transformed in place (scipy) together with the OTF product.
    Planes known to be zero (``nonzero``) are not transformed, and only the planes and rows that will
    be read (``needed``) are transformed back (pruned transforms: for the ``valid`` model the data
    window is 0.6-0.8 of the grid's rows).
    """

    def __init__(self, op: "Convolution", lead: tuple[int, ...], otf: str = "stored"):
        require(otf in ("stored", "computed", "operator"), f"unknown OTF mode {otf!r}",
                "use 'stored', 'computed' or 'operator'")
        self.op = op
        self.otf = op.otf if otf == "operator" else None   # "operator": share the operator's own OTF
        self.planes = None
        psf = op.psf.detach().double().numpy()
        if otf != "operator":
            self.planes = {(b, c): SeparableOTF(psf[b, c], op.fft_shape)
                           for b in range(psf.shape[0]) for c in range(psf.shape[1])}
        if otf == "stored":  # the OTF written block by block (no real grid of the PSF as a temporary)
            self.otf = torch.empty(tuple(psf.shape[:2]) + tuple(op.fft_shape[:-1]) + (op.fft_shape[-1] // 2 + 1,),
                                   dtype=torch.complex64)
            for (b, c), planes in self.planes.items():
                for i in range(0, op.fft_shape[0], planes.step):
                    blk = planes.block(i)
                    self.otf[b, c, i:i + blk.shape[0]] = blk
            self.planes = None
        fs = op.fft_shape
        nh = fs[-1] // 2 + 1
        self.spectrum = np.zeros(tuple(lead) + tuple(fs[:-1]) + (nh,), np.complex64)
        real = self.spectrum.view(np.float32)[..., : fs[-1]]
        self.grid = torch.from_numpy(real)
        d = op.spatial_ndim
        self.object = self.grid[(Ellipsis,) + tuple(slice(0, n) for n in op.in_shape)]
        self.window = self.grid[(Ellipsis,) + tuple(slice(s, s + n) for s, n in zip(op.crop_start, op.out_shape))]
        self._rows = self.spectrum.reshape(-1, nh)                      # complex rows (a view)
        self._real_rows = self.spectrum.view(np.float32).reshape(-1, 2 * nh)[:, : fs[-1]]
        self._step = max(1, (1 << 18) // nh)                             # rows per slab (~2 MB)
        self._axes = tuple(range(-d, -1))
        self._lead = tuple(lead)
        self._plane_tmp = None                                          # (complex plane, real plane), 3-D only

    def _zero_outside(self, start, size) -> None:
        """Zero the grid outside the box ``[start, start + size)`` (slabs along each axis)."""
        g = self.grid
        for ax, (s, n, f) in enumerate(zip(start, size, self.op.fft_shape)):
            pre = (Ellipsis,) + (slice(None),) * ax
            post = (slice(None),) * (self.op.spatial_ndim - ax - 1)
            if s > 0:
                g[pre + (slice(0, s),) + post].zero_()
            if s + n < f:
                g[pre + (slice(s + n, f),) + post].zero_()

    def zero_outside_object(self) -> None:
        self._zero_outside((0,) * self.op.spatial_ndim, self.op.in_shape)

    def zero_outside_window(self) -> None:
        self._zero_outside(self.op.crop_start, self.op.out_shape)

    def object_box(self) -> tuple:
        """``(start, size)`` of the object view, for :meth:`convolve`."""
        return (0,) * self.op.spatial_ndim, tuple(self.op.in_shape)

    def window_box(self) -> tuple:
        """``(start, size)`` of the data window, for :meth:`convolve`."""
        return tuple(self.op.crop_start), tuple(self.op.out_shape)

    def convolve(self, conj: bool = False, nonzero: tuple | None = None, needed: tuple | None = None,
                 post=None) -> None:
        """``grid <- irfftn(rfftn(grid) * otf)`` in place (``conj(otf)`` when ``conj``: ``A^T``).

        ``nonzero``: a box ``(start, size)`` outside which the grid is zero on entry (its planes and
        rows are not transformed); ``needed``: the box of the result that is read afterwards (outside
        it the grid is left undefined).  Both default to the whole grid; they prune 3-D grids.
        ``post(lead, p, rows)`` (3-D only): called on each transformed-back plane ``p`` of the
        ``needed`` box (``rows``: its rows, all columns, while still in cache) before it is written
        into the grid; it may modify ``rows`` in place (an elementwise step fused with the transform).
        """
        if self.op.spatial_ndim == 3:
            return self._convolve_planes(conj, nonzero, needed, post)
        require(post is None, "post-processing of planes needs a 3-D grid")
        w, n, rows, real_rows = _workers(), self.op.fft_shape[-1], self._rows, self._real_rows
        for i in range(0, rows.shape[0], self._step):
            rows[i:i + self._step] = _sfft.rfft(real_rows[i:i + self._step], axis=-1, workers=w)
        if self._axes:
            _sfft.fftn(self.spectrum, axes=self._axes, overwrite_x=True, workers=w)
        if self.planes is None:
            _mul_spectrum(self.spectrum, self.otf.numpy(), conj, -self.op.spatial_ndim)
        else:
            self._mul_planes(conj)
        if self._axes:
            _sfft.ifftn(self.spectrum, axes=self._axes, overwrite_x=True, workers=w)
        for i in range(0, rows.shape[0], self._step):
            real_rows[i:i + self._step] = _sfft.irfft(rows[i:i + self._step], n=n, axis=-1, workers=w, overwrite_x=True)


    def _convolve_planes(self, conj: bool, nonzero, needed, post=None) -> None:
        """3-D :meth:`convolve`: 2-D transforms plane by plane (torch), the first axis in place (scipy)."""
        n0, n1, n2 = self.op.fft_shape
        full = ((0, 0, 0), (n0, n1, n2))
        if self._plane_tmp is None:
            self._plane_tmp = (torch.empty((n1, n2 // 2 + 1), dtype=torch.complex64), torch.empty((n1, n2)))
        tc, tr = self._plane_tmp
        spec, real = torch.from_numpy(self.spectrum), self.grid
        z0, nz = (nonzero or full)[0][0], (nonzero or full)[1][0]
        for lead in np.ndindex(*self._lead):
            S, R = spec[lead], real[lead]
            for p in range(n0):
                if p < z0 or p >= z0 + nz:
                    S[p].zero_()            # also the row padding of the real view, read as the spectrum
                    continue
                tr.copy_(R[p])                      # contiguous: torch's 2-D real FFT is fastest on it
                torch.fft.rfft2(tr, out=S[p])
        w = _workers()
        _sfft.fft(self.spectrum, axis=-3, overwrite_x=True, workers=w)
        if self.planes is None:
            _mul_spectrum(self.spectrum, self.otf.numpy(), conj, -3)
        else:
            self._mul_planes(conj)
        _sfft.ifft(self.spectrum, axis=-3, overwrite_x=True, workers=w)
        (z0, y0, _), (nz, ny, _) = needed or full
        for lead in np.ndindex(*self._lead):
            S, R = spec[lead], real[lead]
            for p in range(z0, z0 + nz):
                torch.fft.ifft(S[p], dim=0, out=tc)
                torch.fft.irfft(tc[y0:y0 + ny], n=n2, dim=-1, out=tr[:ny])
                if post is not None:
                    post(lead, p, tr[:ny])
                R[p, y0:y0 + ny] = tr[:ny]

    def _mul_planes(self, conj: bool) -> None:
        """Multiply the spectrum by the OTF generated plane by plane (:class:`SeparableOTF`)."""
        spec = torch.from_numpy(self.spectrum)
        kb, kc = self.op.psf.shape[:2]
        for b in range(spec.shape[0]):
            for c in range(spec.shape[1]):
                planes, s = self.planes[(b if kb > 1 else 0, c if kc > 1 else 0)], spec[b, c]
                for i in range(0, s.shape[0], planes.step):
                    o = planes.block(i)
                    s[i:i + o.shape[0]].mul_(o.conj_physical_() if conj else o)


class SeparableOTF:
    """The real-FFT OTF of a small PSF generated block by block instead of stored.

    The DFT of the zero-padded, centred PSF is separable in its axes,
    ``OTF[f] = sum_m psf[m] prod_a E_a[f_a, m_a]`` with ``E_a[f, m] = exp(-2 pi i f (m - k_a // 2) / N_a)``
    (frequencies ``0..N-1`` on the leading axes, ``0..N/2`` on the last).  The PSF is first
    contracted with ``E`` of the first axis (a small ``(N_0, *k[1:])`` array); a block of planes of
    the first axis is then two small matrix products.  Costs ``N k_last (N_last / 2 + 1)`` complex
    multiply-adds per OTF, against storing ``N (N_last / 2 + 1)`` complex values.
    """

    def __init__(self, psf: np.ndarray, fft_shape: tuple[int, ...]):
        k = psf.shape
        d = len(k)

        def dft(n_grid, taps, half=False):
            f = np.arange(n_grid // 2 + 1 if half else n_grid)
            return np.exp(-2j * np.pi * np.outer(f, np.arange(taps) - taps // 2) / n_grid)

        e_first = dft(fft_shape[0], k[0], half=d == 1)
        core = np.tensordot(e_first, psf, axes=(1, 0))                  # (N_0, *k[1:])
        self.core = torch.from_numpy(core.astype(np.complex64))
        # 3-D: the second axis' DFT is applied per block, (N_1, k_1) @ (k_1, k_2), so that only the small
        # (N_0, k_1, k_2) core is kept (not an (N_0, N_1, k_2) array)
        self.middle = torch.from_numpy(dft(fft_shape[1], k[1]).astype(np.complex64)) if d == 3 else None
        self.right = torch.from_numpy(dft(fft_shape[-1], k[-1], half=True).T.astype(np.complex64).copy())
        per_plane = (fft_shape[1] if d == 3 else 1) * self.right.shape[1]
        self.step = max(1, (1 << 18) // per_plane)

    def block(self, i: int) -> torch.Tensor:
        """OTF planes ``i .. i + step`` of the first axis, complex64."""
        core = self.core[i:i + self.step]
        if self.middle is not None:
            core = self.middle @ core
        return core @ self.right


def _window_matrix(n_obj: int, k: int, start: int, n_out: int) -> np.ndarray:
    """``M[i, m] = 1`` when object index ``i`` reaches a window pixel through PSF tap ``m`` (``i + m - k // 2``
    in ``[start, start + n_out)``), else 0; float64 ``(n_obj, k)``."""
    p = np.arange(n_obj)[:, None] + np.arange(k)[None, :] - k // 2
    return ((p >= start) & (p < start + n_out)).astype(np.float64)


class Sensitivity:
    """``A^T 1`` of one PSF, floored at ``floor`` times its maximum, slice by slice along the first axis.

    For the ``valid`` and ``zero`` boundaries the data window is a box, so ``A^T 1`` is the
    multilinear (Tucker) product of the PSF with one 0/1 matrix per axis,
    ``(A^T 1)[i] = sum_m psf[m] prod_a M_a[i_a, m_a]`` with ``M_a[i, m] = 1`` when ``i + m - k_a // 2``
    falls in the window (:func:`_window_matrix`): an exact sum, computed per slice ``i_0`` by two
    small matrix products (the interior slice, shared by most, is kept) instead of an object-sized
    array.  For ``circular`` it is the constant ``sum(psf)``.
    """

    def __init__(self, op: "Convolution", psf: np.ndarray, floor: float = 1e-3):
        self.op = op
        self.psf = np.asarray(psf, np.float64)
        d = op.spatial_ndim
        self.constant = None
        if op.boundary == "circular":
            self.constant = float(self.psf.sum())
            self.constant = max(self.constant, floor * self.constant)
            return
        self.M = [_window_matrix(n, k, s, m) for n, k, s, m in zip(op.in_shape, op.kernel_shape, op.crop_start, op.out_shape)]
        self._right = torch.from_numpy(self.M[-1].T.astype(np.float32).copy())
        self._cache: dict = {}
        self.floor = 0.0
        keys = {self._key(i) for i in range(op.in_shape[0])} if d == 3 else {None}
        self.floor = floor * max(float(self._compute(k).max()) for k in keys)
        counts: dict = {}
        for i in range(op.in_shape[0] if d == 3 else 1):
            counts[self._key(i)] = counts.get(self._key(i), 0) + 1
        common = max(counts, key=counts.get)
        self._cache[common] = self._compute(common)

    def _key(self, i):
        return None if self.op.spatial_ndim == 2 else tuple(np.flatnonzero(self.M[0][i]))

    def _compute(self, key) -> torch.Tensor:
        if self.op.spatial_ndim == 2:
            left = self.M[0] @ self.psf
        else:
            t = self.psf[list(key)].sum(0) if key else np.zeros(self.psf.shape[1:])
            left = self.M[1] @ t
        out = torch.from_numpy(left.astype(np.float32)) @ self._right
        return out.clamp_min_(self.floor)

    def slice(self, i: int | slice) -> torch.Tensor | float:
        """The floored ``A^T 1`` on object slice ``i`` (a scalar for ``circular``; all of it for 2-D with a slice)."""
        if self.constant is not None:
            return self.constant
        key = self._key(i) if self.op.spatial_ndim == 3 else None
        if key in self._cache:
            out = self._cache[key]
        else:
            out = self._compute(key)
        return out if self.op.spatial_ndim == 3 else out[i]


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
