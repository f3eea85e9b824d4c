"""Linear operators with exact adjoints (the forward models of deconvolution) and their one contract.

An operator maps an object ``x`` of shape ``(B, C, *in_shape)`` to data ``y`` of shape
``(B, C, *out_shape)``.  Subclasses implement :meth:`~LinearOperator.A` and
:meth:`~LinearOperator.A_adjoint` (and :meth:`~LinearOperator.update_kernel` when they have a kernel);
everything the algorithms need is declared here once:

* ``A``, ``A_adjoint``, ``AtA``, ``A^T 1`` (:meth:`~LinearOperator.adjoint_of_ones`), ``||A||^2``;
* :meth:`~LinearOperator.crop_object` (object grid -> field of view; identity by default) and
  :meth:`~LinearOperator.initial_object` (an object-shaped start from the data);
* the quadratic solves of every splitting method:

  - :meth:`~LinearOperator.solve_normal`: ``(A^T A + mu L^T L) x = rhs`` with ``L = I`` or the
    forward-difference gradient ``D`` (circular wrap on the object grid, :func:`gradient_normal`);
  - :meth:`~LinearOperator.prox_l2`: ``argmin_x 1/2 ||A x - y||^2 + mu/2 ||x - v||^2
    = (A^T A + mu I)^-1 (A^T y + mu v)``;
  - :meth:`~LinearOperator.regularized_inverse`: ``(A^T A + mu L^T L)^-1 A^T y`` (Tikhonov);
  - :meth:`~LinearOperator.solve_gram`: ``(w A A^T + c I) u = r`` in data space.

The base class solves them by conjugate gradient (:func:`unblur.solvers.cg.conjugate_gradient`);
an operator that is diagonal in some basis (a circular convolution is diagonal in Fourier) overrides
them with the exact solve.  The choice is made here, once, not by the algorithms (the design of
scico's ``SubproblemSolver`` and DeepInverse's ``LinearPhysics.prox_l2``).
"""

from __future__ import annotations

import torch

from ..errors import require

REGULARISERS = ("identity", "gradient")
SOLVE_METHODS = ("auto", "cg", "fourier")


def gradient_normal(x: torch.Tensor) -> torch.Tensor:
    """``D^T D x`` for the forward-difference gradient ``D`` with circular wrap (a discrete negative
    Laplacian over the spatial axes ``2:``); its Fourier symbol is ``sum_axes (2 - 2 cos(2 pi f))``."""
    out = torch.zeros_like(x)
    for ax in range(2, x.ndim):
        out = out + 2 * x - torch.roll(x, 1, ax) - torch.roll(x, -1, ax)
    return out


def regulariser_normal(reg: str):
    """``L^T L`` as a function for ``reg="identity"`` (``L = I``) or ``"gradient"`` (``L = D``)."""
    require(reg in REGULARISERS, f"unknown regulariser {reg!r}", f"use one of {', '.join(REGULARISERS)}")
    return (lambda v: v) if reg == "identity" else gradient_normal


class LinearOperator:
    """Base class: ``A(x)``, ``A_adjoint(y)``, shapes, and the derived solves (module docstring)."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    #: True when the solves below are exact Fourier filters (a circular convolution); informative only
    diagonal_in_fourier: bool = False

    def A(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_kernel(self, psf) -> None:  # pragma: no cover - abstract
        """Replace the operator's kernel in place (same result as building a fresh operator)."""
        raise NotImplementedError(f"{type(self).__name__} has no kernel to update")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def AtA(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(self.A(x))

    # -- shapes -----------------------------------------------------------------------------------
    def crop_object(self, x: torch.Tensor) -> torch.Tensor:
        """Crop an object estimate to the image's field of view (identity unless the object is larger)."""
        return x

    def initial_object(self, y: torch.Tensor) -> torch.Tensor:
        """An object-shaped start from the data: ``y`` itself when the shapes match, else ``A^T y``."""
        if tuple(self.in_shape) == tuple(self.out_shape):
            return y.clone()
        return self.A_adjoint(y)

    def _clear_cache(self) -> None:
        self.__dict__.pop("_at1_cache", None)

    def adjoint_of_ones(self, like: torch.Tensor) -> torch.Tensor:
        """``A^T 1`` (the sensitivity map that normalises Richardson-Lucy), cached per (B, C, dtype)."""
        key = (tuple(like.shape[:2]), like.dtype, like.device)
        cache = self.__dict__.setdefault("_at1_cache", {})
        if key not in cache:
            ones = torch.ones(like.shape[:2] + tuple(self.out_shape), dtype=like.dtype, device=like.device)
            cache[key] = self.A_adjoint(ones)
        return cache[key]

    def norm_squared(self, like: torch.Tensor, n_iter: int = 30, seed: int = 0) -> float:
        """``||A||^2`` (largest eigenvalue of ``A^T A``) by power iteration."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.rand(like.shape[:2] + tuple(self.in_shape), generator=g).to(like)
        lam = 0.0
        for _ in range(n_iter):
            x = x / x.norm().clamp_min(1e-30)
            z = self.AtA(x)
            lam = float((z * x).sum())
            x = z
        return lam

    # -- quadratic solves ---------------------------------------------------------------------------
    def _check_method(self, method: str) -> str:
        require(method in SOLVE_METHODS, f"unknown solve method {method!r}", f"use one of {', '.join(SOLVE_METHODS)}")
        require(method != "fourier", f"{type(self).__name__} is not diagonal in Fourier",
                "use method='auto' (conjugate gradient)")
        return "cg"

    def solve_normal(self, rhs: torch.Tensor, mu, *, reg: str = "identity", x0: torch.Tensor | None = None,
                     max_iter: int = 100, tol: float = 1e-5, method: str = "auto", progress=None) -> torch.Tensor:
        """Solve ``(A^T A + mu L^T L) x = rhs`` (``L`` per ``reg``: ``"identity"`` or ``"gradient"``).

        Parameters
        ----------
        rhs : tensor ``(B, C, *in_shape)``
        mu : float or tensor broadcastable to ``(B, 1, ...)``
            Weight of the regulariser, > 0 (a tensor keeps autograd through the solve).
        reg : {"identity", "gradient"}
        x0 : tensor, optional
            Warm start of conjugate gradient (ignored by exact solves).
        max_iter, tol : int, float
            Conjugate-gradient iterations and relative-residual tolerance.
        method : {"auto", "cg", "fourier"}
            ``"auto"``: the operator's exact solve when it has one, else CG.
        progress : unblur.optim.driver.Progress, optional
            Progress bar and callback of the CG iterations (unused by exact solves).
        """
        from ..solvers.cg import conjugate_gradient  # solvers import physics: import at call time

        self._check_method(method)
        L = regulariser_normal(reg)
        return conjugate_gradient(lambda v: self.AtA(v) + mu * L(v), rhs, x0=x0, max_iter=max_iter, tol=tol,
                                  progress=progress)

    def prox_l2(self, v: torch.Tensor, y: torch.Tensor, mu, *, x0: torch.Tensor | None = None,
                max_iter: int = 100, tol: float = 1e-5, method: str = "auto") -> torch.Tensor:
        """``argmin_x 1/2 ||A x - y||^2 + mu/2 ||x - v||^2 = (A^T A + mu I)^-1 (A^T y + mu v)``.

        ``v`` on the object grid, ``y`` on the data grid; CG starts from ``x0`` (default ``v``).
        """
        return self.solve_normal(self.A_adjoint(y) + mu * v, mu, reg="identity", x0=v if x0 is None else x0,
                                 max_iter=max_iter, tol=tol, method=method)

    def regularized_inverse(self, y: torch.Tensor, mu, *, reg: str = "identity", x0: torch.Tensor | None = None,
                            max_iter: int = 100, tol: float = 1e-5, method: str = "auto", progress=None) -> torch.Tensor:
        """``argmin_x ||A x - y||^2 + mu ||L x||^2 = (A^T A + mu L^T L)^-1 A^T y`` (Tikhonov).

        CG starts from ``x0`` (default :meth:`initial_object` of ``y``); ``progress`` as in :meth:`solve_normal`.
        """
        x0 = self.initial_object(y) if x0 is None else x0
        return self.solve_normal(self.A_adjoint(y), mu, reg=reg, x0=x0, max_iter=max_iter, tol=tol, method=method,
                                 progress=progress)

    def solve_gram(self, r: torch.Tensor, c: float, *, weight: float = 1.0, max_iter: int = 100,
                   tol: float = 1e-6, method: str = "auto") -> torch.Tensor:
        """Solve ``(weight A A^T + c I) u = r`` in data space (``weight >= 0``, ``c >= 0``, not both 0)."""
        from ..solvers.cg import conjugate_gradient

        require(weight >= 0 and c >= 0 and weight + c > 0, "the Gram system needs weight + c > 0 (both >= 0)")
        self._check_method(method)
        if weight == 0:
            return r / c
        return conjugate_gradient(lambda u: weight * self.A(self.A_adjoint(u)) + c * u, r, max_iter=max_iter, tol=tol)


__all__ = ["LinearOperator", "gradient_normal", "regulariser_normal", "REGULARISERS"]


class Masked(LinearOperator):
    """``M A``: ``op`` observed only where ``mask`` is 1 (missing data: NaN pixels, bad or saturated pixels).

    ``A^T y = op^T (m y)``, so Richardson-Lucy's normaliser ``A^T 1 = op^T m`` counts only the observed
    pixels and the fit leaves the others out; the solves fall back to conjugate gradient (the masked
    operator is not diagonal in Fourier).  ``mask`` is a 0/1 tensor broadcastable to ``(B, C, *out_shape)``.
    """

    def __init__(self, op: LinearOperator, mask: torch.Tensor):
        require(tuple(mask.shape[2:]) == tuple(op.out_shape),
                f"mask of spatial shape {tuple(mask.shape[2:])} does not match the data {tuple(op.out_shape)}")
        self.op, self.mask = op, mask
        self.in_shape, self.out_shape = op.in_shape, op.out_shape

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.A(x) * self.mask

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.A_adjoint(y * self.mask)

    def update_kernel(self, psf) -> None:
        self.op.update_kernel(psf)
        self._clear_cache()

    def crop_object(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.crop_object(x)

    def fill(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` with each missing pixel replaced by the mean of the observed pixels in the 5-pixel box around it,
        or of its channel where the box has none."""
        m = self.mask.expand_as(y)
        pool = torch.nn.functional.avg_pool2d if y.ndim == 4 else torch.nn.functional.avg_pool3d
        seen = y * m
        local, share = pool(seen, 5, 1, 2), pool(m, 5, 1, 2)  # box sums / box size: their ratio is the mean
        mean = seen.flatten(2).sum(-1) / m.flatten(2).sum(-1).clamp_min(1)
        fill = torch.where(share > 0, local / share.clamp_min(1e-12), mean.reshape(mean.shape + (1,) * (y.ndim - 2)))
        return torch.where(m > 0, y, fill)

    def initial_object(self, y: torch.Tensor) -> torch.Tensor:
        """``op``'s start from the data with the missing pixels filled (:meth:`fill`): a multiplicative update
        (Richardson-Lucy) cannot move a pixel that starts at 0."""
        return self.op.initial_object(self.fill(y))

    def unobserved(self, like: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
        """Object pixels that no observed pixel sees (``op^T m`` below ``floor`` times its maximum), per
        ``(B, C)`` of ``like``: the data say nothing there."""
        seen = self.adjoint_of_ones(like)
        top = seen.flatten(2).amax(-1).clamp_min(1e-30)
        return seen <= floor * top.reshape(top.shape + (1,) * (seen.ndim - 2))

