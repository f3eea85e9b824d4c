"""The parametric blur models A(gamma) that deep-blur identifies (paper section 2).

Deep-blur only needs a differentiable batched map ``gamma (B, K) -> PSFs (B, M, k, k)`` (each PSF
non-negative, sum 1, centre at ``k // 2``) and a way to turn those PSFs into the forward operator.
:class:`PSFModel` holds both with a description that a checkpoint stores, so that the weights say
which model their gamma belongs to (:func:`psf_model_from_description` rebuilds it).  Three kinds:

* ``"zernike"`` (Model 2.3, :func:`zernike_psf_model`): gamma are Zernike coefficients in waves of the
  pupil model ``unblur.psf.zernike.PupilPSF`` (not implemented here); ``M = 1``, a convolution.
* ``"eigen"`` (Model 2.1, :func:`eigen_psf_model`): ``h(gamma) = P(h_0 + sum_k gamma_k e_k)`` with
  ``h_0`` the mean and ``e_k`` the leading principal components (``unblur.psf.eigen``) of a sampled
  family of Zernike PSFs, and ``P`` the projection on PSFs (negative values set to 0, rescaled to
  sum 1).  Units of gamma: ``e_k`` is the unit component times ``sigma_k / (eta_f / sqrt 3)``, with
  ``sigma_k`` the standard deviation of the family's coefficient on it and ``eta_f`` the family's
  Zernike amplitude -- so ``gamma ~ U[-eta_f, eta_f]^K`` has the family's variance on every
  component and the training default ``eta`` fits both models.  ``h_0`` and ``e_k`` are stored in
  the description (the basis travels with the checkpoint; it is never re-sampled at load).
  ``M = 1``, a convolution.
* ``"product-convolution"`` (Model 2.2, :func:`product_convolution_model`): a ``gy x gx`` grid of
  control points (tile centres), each with its own PSF from a *local* model (eigen or Zernike).
  ``gamma`` concatenates the local coefficients point by point, row-major over the grid
  (``gamma[g * K_local + j]``), so ``K = gy * gx * K_local``; ``M = gy * gx``.  The operator is
  :class:`unblur.physics.product_convolution.ProductConvolution` in the convolve-after-weighting
  order (``sum_i h_i * (w_i x)``, flux-preserving) with bilinear tent weights on the object grid.

Sign convention: each model carries ``canonical`` (maps gamma to its canonical representative) and
``gamma_loss`` (the identification loss, invariant to the model's ambiguities).  Only the Zernike
model has an ambiguity (:mod:`.identify`); the product-convolution model applies its local model's
convention point by point; the eigen model has none (distinct gamma give distinct PSFs before ``P``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from ...errors import InputError, require
from ...physics.convolution import Convolution
from ...physics.operator import LinearOperator
from ...physics.product_convolution import ProductConvolution
from .identify import canonical_sign, sign_invariant_mse

#: Deep-blur's preset: Noll 4..11 (defocus, astigmatism x2, coma x2, trefoil x2, spherical).
DEEPBLUR_NOLL = (4, 5, 6, 7, 8, 9, 10, 11)
#: Default optics (numerical aperture, emission wavelength in um, pixel size in um): pupil cut-off
#: f_c = NA / wavelength * pixel = 0.2 cycles/pixel, the preset of ``unblur.psf.zernike``.
DEFAULT_OPTICS = (1.2, 0.6, 0.1)
#: Immersion index used only to check NA < n (oil).
REFRACTIVE_INDEX = 1.518
MODEL_KINDS = ("zernike", "eigen", "product-convolution")


def _no_ambiguity(gamma: torch.Tensor) -> torch.Tensor:
    return gamma


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean()


@dataclass
class PSFModel:
    """``fn(gamma (B, K)) -> (B, M, k, k)`` plus its description (stored in checkpoints).

    ``grid``: ``(gy, gx)`` control points of a product-convolution model (``M = gy * gx``), ``None``
    for a convolution (``M = 1``).  ``canonical`` and ``gamma_loss``: see the module docstring.
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    n_params: int
    psf_size: int
    noll: tuple[int, ...] = ()
    description: dict = field(default_factory=dict)
    canonical: Callable[[torch.Tensor], torch.Tensor] = _no_ambiguity
    gamma_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _mse
    grid: tuple[int, int] | None = None

    def __call__(self, gamma: torch.Tensor) -> torch.Tensor:
        require(gamma.ndim == 2 and gamma.shape[1] == self.n_params,
                f"gamma must have shape (B, {self.n_params}), got {tuple(gamma.shape)}")
        h = self.fn(gamma)
        if h.ndim == 3:
            h = h[:, None]
        return h

    @property
    def space_varying(self) -> bool:
        return self.grid is not None

    def operator(self, psf: torch.Tensor, image_shape, boundary: str = "valid",
                 out: LinearOperator | None = None) -> LinearOperator:
        """The forward operator of PSFs ``psf (B, M, k, k)`` (from :meth:`__call__`) for images ``image_shape``.

        A :class:`Convolution` for ``M = 1``; for a grid, one :class:`ProductConvolution` (``B = 1``)
        or an :class:`OperatorBatch` of them (one per image).

        ``out``: an operator from an earlier call with the same image shape, boundary, batch size and
        PSF size.  Its kernel is replaced in place (``update_kernel``: the same operator as a new one,
        and gradients reach ``psf`` through it as well) and it is returned, which spares a training
        loop rebuilding the grid and its weight maps at every step; whoever else holds ``out`` sees
        the new PSFs.  An ``out`` of another layout is left alone and a new operator is returned.
        """
        image_shape = tuple(int(n) for n in image_shape)
        if out is not None and self._fits(out, psf, image_shape, boundary):
            out.update_kernel(psf if self.grid is None or isinstance(out, OperatorBatch) else psf[0])
            return out
        if self.grid is None:
            return Convolution(psf, image_shape, boundary)
        k = psf.shape[-1]
        ops = [ProductConvolution.from_psf_grid(p.reshape(*self.grid, k, k), image_shape,
                                                "convolve-after-weighting", boundary) for p in psf]
        return ops[0] if len(ops) == 1 else OperatorBatch(ops)

    def _fits(self, op: LinearOperator, psf: torch.Tensor, image_shape: tuple, boundary: str) -> bool:
        """True when :meth:`operator` would build ``op``'s kind, shapes and boundary for ``psf``."""
        ops = op.ops if isinstance(op, OperatorBatch) else [op]
        kind = Convolution if self.grid is None else ProductConvolution
        if not all(type(o) is kind and o.out_shape == image_shape and o.boundary == boundary for o in ops):
            return False
        if self.grid is None:
            return tuple(op.kernel_shape) == tuple(psf.shape[-2:])
        return len(ops) == len(psf) and tuple(ops[0].psfs.shape) == tuple(psf.shape[1:])

    def psf_array(self, psf: torch.Tensor) -> torch.Tensor:
        """One image's PSFs ``(M, k, k)`` as given to users: ``(k, k)``, or ``(gy, gx, k, k)`` for a grid."""
        return psf[0] if self.grid is None else psf.reshape(*self.grid, *psf.shape[-2:])


class OperatorBatch(LinearOperator):
    """Item ``b`` of a batch goes through ``ops[b]`` (operators of equal shapes, e.g. one blur per image)."""

    def __init__(self, ops):
        self.ops = list(ops)
        self.in_shape, self.out_shape = self.ops[0].in_shape, self.ops[0].out_shape
        require(all(op.in_shape == self.in_shape and op.out_shape == self.out_shape for op in self.ops),
                "the operators of a batch must have the same shapes")

    def _map(self, fn, x: torch.Tensor) -> torch.Tensor:
        require(len(x) == len(self.ops), f"batch of {len(x)} for {len(self.ops)} operators")
        return torch.cat([fn(op, x[b:b + 1]) for b, op in enumerate(self.ops)])

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(lambda op, v: op.A(v), x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._map(lambda op, v: op.A_adjoint(v), y)

    def update_kernel(self, psf) -> None:
        """Give ``ops[b]`` the PSFs ``psf[b]`` (one item per operator, each as its ``update_kernel`` takes them)."""
        require(len(psf) == len(self.ops), f"{len(psf)} PSF sets for {len(self.ops)} operators")
        for op, p in zip(self.ops, psf):
            op.update_kernel(p)
        self._clear_cache()

    def crop_object(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops[0].crop_object(x)

    def initial_object(self, y: torch.Tensor) -> torch.Tensor:
        return self.ops[0].initial_object(y)


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


def model_optics(desc: dict) -> tuple[float, float, float] | None:
    """``(NA, wavelength_um, pixel_um)`` of a stored model description: a Zernike model's optics, an eigen
    model's Zernike family's, a product-convolution model's local model's; None when not recorded."""
    kind = desc.get("kind")
    if kind == "zernike" and desc.get("optics") is not None:
        return tuple(float(v) for v in desc["optics"])
    if kind == "eigen":
        return model_optics(desc.get("family") or {})
    if kind == "product-convolution":
        return model_optics(desc.get("local") or {})
    return None


def parse_grid(grid) -> tuple[int, int]:
    """``(gy, gx)`` from a pair or a ``"GYxGX"`` string (e.g. ``"2x2"``)."""
    if isinstance(grid, str):
        try:
            grid = tuple(int(v) for v in grid.lower().split("x"))
        except ValueError:
            raise InputError(f"cannot read grid {grid!r}", "give GYxGX, e.g. 2x2") from None
    require(len(grid) == 2 and all(int(v) >= 1 for v in grid), f"grid needs two integers >= 1, got {grid}",
            "give GYxGX, e.g. 2x2")
    return int(grid[0]), int(grid[1])


def zernike_psf_model(optics=None, noll=DEEPBLUR_NOLL, psf_size: int = 31) -> PSFModel:
    """The Zernike-pupil PSF model of ``unblur.psf.zernike`` for ``optics = (NA, wavelength, pixel)``."""
    from ...psf.zernike import PupilPSF

    na, wl, px = parse_optics(optics)
    noll = tuple(int(j) for j in noll)
    fn = PupilPSF(psf_size, noll, na=na, wavelength=wl, pixel_size=px, refractive_index=REFRACTIVE_INDEX)
    return PSFModel(fn, len(noll), psf_size, noll,
                    {"kind": "zernike", "noll": list(noll), "optics": [na, wl, px], "psf_size": psf_size},
                    partial(canonical_sign, noll=noll), partial(sign_invariant_mse, noll=noll))


class EigenPSF(torch.nn.Module):
    """``gamma (B, K) -> P(h_0 + sum_k gamma_k e_k)`` of shape ``(B, 1, k, k)`` (differentiable)."""

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor):
        super().__init__()
        require(basis.ndim == 3 and tuple(mean.shape) == tuple(basis.shape[1:]),
                f"eigen basis (K, k, k) and mean (k, k) do not match: {tuple(basis.shape)}, {tuple(mean.shape)}")
        self.register_buffer("mean", mean.float())
        self.register_buffer("basis", basis.float())

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        h = (self.mean + torch.einsum("bk,kyx->byx", gamma.to(self.basis), self.basis)).clamp_min(0)
        return (h / h.sum((-2, -1), keepdim=True).clamp_min(1e-30))[:, None]

    def project(self, psf: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(B, K)`` of PSFs ``(B, [1,] k, k)``: ``<h - h_0, e_k> / ||e_k||^2`` (the ``e_k`` are orthogonal)."""
        d = (psf.reshape(len(psf), -1).to(self.basis) - self.mean.flatten())
        e = self.basis.flatten(1)
        return d @ e.T / (e**2).sum(1)


def zernike_eigen_basis(rank: int, optics=None, noll=DEEPBLUR_NOLL, psf_size: int = 31, eta: float = 0.15,
                        n_samples: int = 1000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(h_0, e, captured energy)`` of ``n_samples`` Zernike PSFs with coefficients ``U[-eta, eta]``.

    ``e (rank, k, k)``: centred principal components (:func:`unblur.psf.eigen.eigen_psf_basis`)
    scaled to the gamma units of the module docstring.
    """
    from ...psf.eigen import eigen_psf_basis
    from ...psf.zernike import sample_zernike_coefficients

    require(eta > 0, f"the family's amplitude eta must be > 0, got {eta}")
    family = zernike_psf_model(optics, noll, psf_size)
    with torch.no_grad():
        psfs = family(sample_zernike_coefficients(n_samples, family.n_params, eta, seed=seed))[:, 0]
    basis = eigen_psf_basis(psfs, rank, center=True)
    sigma = basis.singular_values[:rank] / math.sqrt(n_samples)
    scale = torch.from_numpy(sigma / (eta / math.sqrt(3))).float()
    e = torch.from_numpy(basis.components) * scale[:, None, None]
    return torch.from_numpy(basis.mean).float(), e, basis.captured_energy(rank)


def eigen_psf_model(rank: int = 8, optics=None, noll=DEEPBLUR_NOLL, psf_size: int = 31, eta: float = 0.15,
                    n_samples: int = 1000, seed: int = 0) -> PSFModel:
    """Model 2.1 over the Zernike family (``optics``, ``noll``, amplitude ``eta``): see the module docstring."""
    mean, e, energy = zernike_eigen_basis(rank, optics, noll, psf_size, eta, n_samples, seed)
    na, wl, px = parse_optics(optics)
    desc = {"kind": "eigen", "rank": int(rank), "psf_size": int(psf_size), "captured_energy": energy,
            "family": {"kind": "zernike", "optics": [na, wl, px], "noll": [int(j) for j in noll], "eta": float(eta),
                       "n_samples": int(n_samples), "seed": int(seed)},
            "mean": mean, "basis": e}
    return _eigen_from_description(desc)


def _eigen_from_description(desc: dict) -> PSFModel:
    fn = EigenPSF(torch.as_tensor(desc["mean"]), torch.as_tensor(desc["basis"]))
    return PSFModel(fn, fn.basis.shape[0], int(desc["psf_size"]), description=desc)


def product_convolution_model(local: PSFModel, grid=(2, 2)) -> PSFModel:
    """Model 2.2: a ``grid`` of control points, each with its own PSF ``local(gamma_g)`` (module docstring)."""
    require(not local.space_varying, "the local model of a product-convolution must be a convolution model")
    gy, gx = parse_grid(grid)
    n_points, k_local = gy * gx, local.n_params

    def per_point(gamma: torch.Tensor) -> torch.Tensor:
        return gamma.reshape(-1, k_local)

    def fn(gamma: torch.Tensor) -> torch.Tensor:
        return local(per_point(gamma)).reshape(len(gamma), n_points, local.psf_size, local.psf_size)

    def canonical(gamma: torch.Tensor) -> torch.Tensor:
        return local.canonical(per_point(gamma)).reshape(gamma.shape)

    def gamma_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return local.gamma_loss(per_point(pred), per_point(target))

    desc = {"kind": "product-convolution", "grid": [gy, gx], "order": "convolve-after-weighting",
            "psf_size": local.psf_size, "local": local.description}
    return PSFModel(fn, n_points * k_local, local.psf_size, (), desc, canonical, gamma_loss, (gy, gx))


def psf_model_from_description(desc: dict) -> PSFModel:
    """Rebuild the model stored in a checkpoint (the eigen basis is read from it, not re-sampled)."""
    kind = desc.get("kind")
    if kind == "zernike":
        return zernike_psf_model(desc["optics"], desc["noll"], desc["psf_size"])
    if kind == "eigen":
        return _eigen_from_description(desc)
    if kind == "product-convolution":
        return product_convolution_model(psf_model_from_description(desc["local"]), desc["grid"])
    raise InputError(f"unknown PSF model {kind!r} in checkpoint", f"known models: {', '.join(MODEL_KINDS)}")
