"""Product-convolution operators for space-varying blur (deep-blur Model 2.2).

A space-varying blur is approximated by ``M`` PSFs ``h_i`` and weight maps ``w_i``, in one of two
orders, named explicitly because mixing them up is a classic bug:

``"convolve-after-weighting"`` (``order="caw"``)::

    A x = sum_i h_i * (w_i . x)         A^T y = sum_i w_i . (h_i^T * y)

    The weights live on the *object* grid (``in_shape``); the PSF "emitted" by object point ``u`` is
    ``sum_i w_i(u) h_i``.  Flux is preserved pointwise when ``sum_i w_i = 1`` (each object point's
    light is spread by a normalised PSF), which is the natural model for a microscope.

``"weight-after-convolving"`` (``order="wac"``)::

    A x = sum_i w_i . (h_i * x)         A^T y = sum_i h_i^T * (w_i . y)

    The weights live on the *image* grid (``out_shape``); image pixel ``v`` sees the PSF
    ``sum_i w_i(v) h_i`` (a locally convolutional "observed through" model).

``*`` is the convolution of :class:`unblur.physics.convolution.Convolution` with the chosen
boundary model (circular, zero, replicate, reflect or valid), ``.`` the pixelwise product and
``h^T *`` its exact adjoint.  All ``M`` components are processed in one batched FFT (the component
axis is carried as the channel axis of a single :class:`Convolution`), never with a loop over
pixels or components.  Each application costs ``M + 1`` FFTs: where the components are summed
after convolving, the sum is taken in Fourier before one inverse FFT; where one input feeds all
components, it is transformed once.  With constant weights ``w_i = c_i`` both orders equal a plain convolution by
``sum_i c_i h_i``.

Builders:

* :meth:`ProductConvolution.from_psf_grid` -- PSFs measured or modelled at the centres of a
  ``gy x gx`` grid of tiles; weight maps are the bilinear (tent) interpolation functions of the
  grid, which are continuous, non-negative and sum to 1 everywhere (constant beyond the outer
  centres).  Optionally the grid PSFs are first compressed on ``n_components`` eigen-PSFs.
* :meth:`ProductConvolution.from_eigen_psfs` -- eigen-PSFs ``E_k`` and coefficient maps ``alpha_k``
  (Model 2.1: ``h(., u) = sum_k alpha_k(u) E_k``).

Solvers: pass the operator in place of the PSF to :func:`unblur.richardson_lucy`, :func:`unblur.rl_tv`,
:func:`unblur.tikhonov` or :func:`unblur.solvers.tv.tv_admm` (numpy in/out), or use the torch cores
(:func:`unblur.solvers.rl_iterations`, the operator's ``solve_normal`` / ``prox_l2``, solved by
conjugate gradient: the operator is not diagonal in Fourier).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import require
from .convolution import BOUNDARIES, Convolution
from .operator import LinearOperator

ORDERS = {"convolve-after-weighting": "caw", "caw": "caw", "weight-after-convolving": "wac", "wac": "wac"}


def _tensor(a, dtype=torch.float32):
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def tent_weights(n: int, g: int) -> torch.Tensor:
    """``(g, n)`` bilinear interpolation weights on ``n`` pixels for ``g`` grid centres at ``(j + 0.5) n / g``.

    Non-negative, sum to 1 at every pixel, piecewise linear between centres, constant beyond the
    outer ones.
    """
    u = ((torch.arange(n, dtype=torch.float64) + 0.5) * g / n - 0.5).clamp(0, g - 1)
    j = torch.arange(g, dtype=torch.float64)[:, None]
    return (1 - (u[None] - j).abs()).clamp_min(0).float()


def grid_weight_maps(image_shape, grid) -> torch.Tensor:
    """``(gy * gx, H, W)`` tent weight maps (row-major over the grid) for a 2-D image."""
    (h, w), (gy, gx) = image_shape, grid
    wy, wx = tent_weights(h, gy), tent_weights(w, gx)
    return (wy[:, None, :, None] * wx[None, :, None, :]).reshape(gy * gx, h, w)


class ProductConvolution(LinearOperator):
    """``sum_i`` of ``M`` PSF/weight pairs in a named order (see module docstring).

    Parameters
    ----------
    psfs : tensor/array ``(M, *k)``
        Component PSFs (2-D or 3-D, used as given; eigen-PSFs may be signed).
    weights : tensor/array ``(M, *spatial)``
        Weight maps: on ``in_shape`` for ``"convolve-after-weighting"`` and on ``out_shape`` (the
        image) for ``"weight-after-convolving"``.  For ``boundary="valid"`` and CAW that is the
        larger object grid ``image_shape + k - 1``.
    image_shape : tuple
        Spatial shape of the observed image ``y``.
    order : {"convolve-after-weighting", "weight-after-convolving"} (or "caw"/"wac")
    boundary : str
        As in :class:`unblur.physics.convolution.Convolution`.
    """

    def __init__(self, psfs, weights, image_shape, order: str = "convolve-after-weighting",
                 boundary: str = "circular"):
        require(order in ORDERS, f"unknown product-convolution order {order!r}",
                "use 'convolve-after-weighting' (sum_i h_i * (w_i x)) or 'weight-after-convolving' (sum_i w_i (h_i * x))")
        require(boundary in BOUNDARIES, f"unknown boundary {boundary!r}", f"use one of {', '.join(BOUNDARIES)}")
        self.order = ORDERS[order]
        d = len(image_shape)
        psfs, weights = _tensor(psfs), _tensor(weights)
        require(psfs.ndim == d + 1, f"psfs must have shape (M, *k) with {d} spatial axes, got {tuple(psfs.shape)}")
        self.n_components = m = psfs.shape[0]
        require(weights.ndim == d + 1 and weights.shape[0] == m,
                f"weights must have shape ({m}, *spatial), got {tuple(weights.shape)}",
                "give one weight map per PSF")
        self.conv = Convolution(psfs[None], tuple(image_shape), boundary)  # components on the channel axis
        self.in_shape, self.out_shape = self.conv.in_shape, self.conv.out_shape
        self.spatial_ndim, self.boundary, self.kernel_shape = d, boundary, self.conv.kernel_shape
        need = self.in_shape if self.order == "caw" else self.out_shape
        require(tuple(weights.shape[1:]) == tuple(need),
                f"weight maps have shape {tuple(weights.shape[1:])}, expected {tuple(need)} for order "
                f"{'convolve-after-weighting (object grid)' if self.order == 'caw' else 'weight-after-convolving (image grid)'}")
        self.psfs, self.weights = psfs, weights

    # -- builders ---------------------------------------------------------------------------------
    @classmethod
    def from_psf_grid(cls, psf_grid, image_shape, order: str = "convolve-after-weighting", boundary: str = "circular",
                      n_components: int | None = None):
        """From PSFs ``(gy, gx, kh, kw)`` at the centres of a ``gy x gx`` tiling of a 2-D image.

        Weight maps: bilinear tent functions (:func:`grid_weight_maps`), built on the grid the
        order needs (object grid for CAW, image grid for WAC).  ``n_components``: compress the
        ``gy * gx`` PSFs on that many eigen-PSFs first; the coefficient maps are then the tent
        interpolation of the PSFs' coefficients (``M = n_components`` FFT components instead of
        ``gy * gx``).
        """
        g = _tensor(psf_grid)
        require(g.ndim == 4, f"psf_grid must have shape (gy, gx, kh, kw), got {tuple(g.shape)}")
        require(len(image_shape) == 2, "PSF grids are for 2-D images")
        gy, gx = g.shape[:2]
        conv_shape = Convolution(g[0, 0], tuple(image_shape), boundary)
        grid_shape = conv_shape.in_shape if ORDERS.get(order) == "caw" else conv_shape.out_shape
        w = grid_weight_maps(grid_shape, (gy, gx))
        psfs = g.reshape(gy * gx, *g.shape[2:])
        if n_components is not None:
            from ..psf.eigen import eigen_psf_basis
            basis = eigen_psf_basis(psfs.numpy(), n_components)
            coef = torch.from_numpy(basis.project(psfs.numpy())).float()  # (gy*gx, K)
            w = torch.einsum("nk,nyx->kyx", coef, w)
            psfs = torch.from_numpy(basis.components)
        return cls(psfs, w, image_shape, order, boundary)

    @classmethod
    def from_eigen_psfs(cls, eigen_psfs, coefficient_maps, image_shape, order: str = "convolve-after-weighting",
                        boundary: str = "circular"):
        """From eigen-PSFs ``(K, *k)`` and coefficient maps ``(K, *spatial)`` (Model 2.1 + 2.2)."""
        return cls(eigen_psfs, coefficient_maps, image_shape, order, boundary)

    # -- operator ---------------------------------------------------------------------------------
    def _flat(self, x):
        b, c = x.shape[:2]
        return x.reshape(b * c, 1, *x.shape[2:]), (b, c)

    def _check(self, x, shape, what):
        require(tuple(x.shape[2:]) == tuple(shape), f"{what} has spatial shape {tuple(x.shape[2:])}, expected {tuple(shape)}",
                "build the operator for this image size")

    def _sum_of_convolutions(self, z: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
        """``sum_i F^-1(otf_i F(z_i))`` for ``z`` of shape ``(BC, M, *fft-grid)``, summed in Fourier:
        ``M`` forward FFTs and a single inverse FFT (a loop of convolutions needs ``2 M``)."""
        dims, shape = self.conv._dims, self.conv.fft_shape
        Z = torch.fft.rfftn(z, s=shape, dim=dims)
        return torch.fft.irfftn((Z * otf).sum(1, keepdim=True), s=shape, dim=dims)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_shape, "object")
        xf, (b, c) = self._flat(x)
        w = self.weights.to(x)
        conv = self.conv
        if self.order == "caw":   # sum_i h_i * (w_i x)
            out = conv._crop(self._sum_of_convolutions(conv._extend(xf * w[None]), conv.otf))
        else:                     # sum_i w_i (h_i * x): one FFT of x broadcast against the M OTFs
            out = (w[None] * conv.A(xf)).sum(1)
        return out.reshape(b, c, *self.out_shape)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, self.out_shape, "data")
        yf, (b, c) = self._flat(y)
        w = self.weights.to(y)
        conv = self.conv
        if self.order == "caw":   # sum_i w_i (h_i^T * y): one FFT of y broadcast against the M OTFs
            out = (w[None] * conv.A_adjoint(yf)).sum(1)
        else:                     # sum_i h_i^T * (w_i y)
            out = conv._extend_adjoint(self._sum_of_convolutions(conv._embed(yf * w[None]), conv._otf_conj))
        return out.reshape(b, c, *self.in_shape)

    def local_psf(self, position) -> torch.Tensor:
        """The PSF ``sum_i w_i(position) h_i`` at a pixel (object pixel for CAW, image pixel for WAC)."""
        idx = (slice(None),) + tuple(int(p) for p in position)
        return torch.einsum("m,m...->...", self.weights[idx], self.psfs)

    def update_kernel(self, psfs) -> None:
        """Use new component PSFs ``(M, *k)`` (same ``M`` and size; the weight maps stay)."""
        psfs = _tensor(psfs)
        require(tuple(psfs.shape) == tuple(self.psfs.shape),
                f"new PSFs have shape {tuple(psfs.shape)}, expected {tuple(self.psfs.shape)}",
                "keep the number and size of the components (build a new operator otherwise)")
        self.conv.update_kernel(psfs[None])
        self.psfs = psfs
        self._clear_cache()

    # -- object grid (same as the underlying Convolution); solves: conjugate gradient (base class) --
    def crop_object(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv.crop_object(x)

    def initial_object(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv.initial_object(y)


__all__ = ["ProductConvolution", "grid_weight_maps", "tent_weights", "ORDERS"]
