"""Priors (regularisers) as objects: a denoiser used as a proximal map, total variation, Tikhonov.

Every prior ``phi`` offers ``prox(v, gamma) = argmin_x 1/2 ||x - v||^2 + gamma phi(x)`` over tensors
``(B, C, *spatial)`` (2-D or 3-D); those with a value and a gradient offer them too.

* :class:`DenoiserPrior` -- any denoiser ``D(x, sigma)`` (plug-and-play, Venkatakrishnan et al. 2013).
  Convention: a MMSE/MAP denoiser at noise level ``sigma`` is read as the proximal map of
  ``sigma^2 phi``, so ``prox(v, gamma) = D(v, sqrt(gamma))``; ``sigma`` and ``sqrt(gamma)`` are in the
  image's [0, 1] units.
* :class:`TotalVariation` -- isotropic TV ``TV(x) = sum_i |(D x)_i|`` with forward differences and a
  zero difference at the last pixel of each axis (Neumann boundary).  ``prox`` is the exact proximal
  map computed on the dual by the fast gradient projection (FGP) of Beck & Teboulle (2009):
  ``x = v - gamma D^T p`` with ``p`` maximising the dual over ``|p_i| <= 1``; ``gradient`` is the
  gradient of the smoothed ``sum sqrt(|D x|^2 + eps^2)``, the term of RL-TV (Dey et al. 2006).
* :class:`TikhonovPrior` -- ``1/2 ||L x||^2`` with ``L = I`` or ``L = D`` (circular differences), whose
  prox is exact in Fourier.
"""

from __future__ import annotations

import torch

from ..errors import require
from ..physics.operator import gradient_normal, regulariser_normal


# -- finite differences (Neumann boundary) -----------------------------------------------------------
def forward_differences(x: torch.Tensor) -> list[torch.Tensor]:
    """``D x``: one forward difference per spatial axis (``2:``), 0 at the last pixel of each axis."""
    return [torch.diff(x, dim=ax, append=x.narrow(ax, x.shape[ax] - 1, 1)) for ax in range(2, x.ndim)]


def differences_adjoint(p: list[torch.Tensor]) -> torch.Tensor:
    """``D^T p`` (the negative divergence) for the differences of :func:`forward_differences`:
    ``(D^T p)_i = p_{i-1} - p_i`` per axis, where D's zero last row makes ``p``'s last entries unused."""
    out = torch.zeros_like(p[0])
    for ax, q in zip(range(2, 2 + len(p)), p):
        n = q.shape[ax]
        head = q.narrow(ax, 0, n - 1)
        out.narrow(ax, 1, n - 1).add_(head)
        out.narrow(ax, 0, n - 1).sub_(head)
    return out


def tv_prox(v: torch.Tensor, gamma: float, n_iter: int = 50, p0: list[torch.Tensor] | None = None):
    """``argmin_x 1/2 ||x - v||^2 + gamma TV(x)`` (isotropic TV, FGP of Beck & Teboulle 2009).

    Returns ``(x, p)``; pass ``p`` back as ``p0`` to warm-start the next call (ADMM does).
    """
    require(gamma >= 0, f"the TV prox weight must be >= 0, got {gamma}")
    if gamma == 0:
        return v.clone(), p0
    d = v.ndim - 2
    step = 1.0 / (4.0 * d * gamma)           # 1 / (gamma ||D||^2), ||D||^2 <= 4 d
    p = [torch.zeros_like(v) for _ in range(d)] if p0 is None else p0
    r, t = p, 1.0
    for _ in range(n_iter):
        grads = forward_differences(v - gamma * differences_adjoint(r))
        q = [a + step * g for a, g in zip(r, grads)]
        norm = torch.sqrt(sum(c * c for c in q)).clamp_min(1.0)
        p_new = [c / norm for c in q]
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        r = [a + ((t - 1) / t_new) * (a - b) for a, b in zip(p_new, p)]
        p, t = p_new, t_new
    return v - gamma * differences_adjoint(p), p


class TotalVariation:
    """Isotropic total variation ``weight * TV(x)`` (module docstring).

    Parameters
    ----------
    weight : float
        Multiplies TV in :meth:`value`, :meth:`gradient` and :meth:`prox`.
    eps : float
        Smoothing of :meth:`gradient` (``sqrt(|D x|^2 + eps^2)``).
    prox_iter : int
        FGP iterations of :meth:`prox`.
    """

    def __init__(self, weight: float = 1.0, eps: float = 1e-3, prox_iter: int = 50):
        require(weight >= 0, f"the TV weight must be >= 0, got {weight}")
        self.weight, self.eps, self.prox_iter = weight, eps, prox_iter
        self._dual = None

    def value(self, x: torch.Tensor) -> float:
        return self.weight * float(torch.sqrt(sum(g * g for g in forward_differences(x))).sum())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``weight * D^T (D x / sqrt(|D x|^2 + eps^2))`` (``-div(grad x / |grad x|_eps)``)."""
        grads = forward_differences(x)
        norm = torch.sqrt(sum(g * g for g in grads) + self.eps**2)
        div = torch.zeros_like(x)  # div(n) with backward differences; D^T n = -div(n)
        for ax, g in zip(range(2, x.ndim), grads):
            n = g / norm
            div = div + n - torch.cat([torch.zeros_like(n.narrow(ax, 0, 1)), n.narrow(ax, 0, n.shape[ax] - 1)], dim=ax)
        return -div if self.weight == 1 else -self.weight * div

    def prox(self, v: torch.Tensor, gamma: float, warm_start: bool = False) -> torch.Tensor:
        """``argmin_x 1/2 ||x - v||^2 + gamma weight TV(x)``; ``warm_start`` reuses the last dual."""
        p0 = self._dual if warm_start and self._dual is not None and self._dual[0].shape == v.shape else None
        x, self._dual = tv_prox(v, gamma * self.weight, self.prox_iter, p0)
        return x


class DenoiserPrior:
    """A denoiser ``D(x, sigma)`` as the prox of a prior: ``prox(v, gamma) = D(v, sqrt(gamma))`` ([0, 1] units)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    def prox(self, v: torch.Tensor, gamma: float) -> torch.Tensor:
        require(gamma > 0, f"the denoiser prox needs gamma > 0, got {gamma}")
        return self.denoiser(v, float(gamma) ** 0.5)

    def denoise(self, v: torch.Tensor, sigma: float) -> torch.Tensor:
        """``D(v, sigma)`` (the same map, parametrised by the noise level)."""
        return self.denoiser(v, sigma)


class TikhonovPrior:
    """``weight/2 ||L x||^2`` with ``L = I`` (``reg="identity"``) or circular differences (``"gradient"``)."""

    def __init__(self, weight: float = 1.0, reg: str = "gradient"):
        regulariser_normal(reg)
        self.weight, self.reg = weight, reg

    def value(self, x: torch.Tensor) -> float:
        return 0.5 * self.weight * float((x * regulariser_normal(self.reg)(x)).sum())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * regulariser_normal(self.reg)(x)

    def prox(self, v: torch.Tensor, gamma: float) -> torch.Tensor:
        """``(I + gamma weight L^T L)^-1 v``: a scaling, or a Fourier filter for the gradient."""
        g = gamma * self.weight
        if self.reg == "identity":
            return v / (1 + g)
        from ..physics.convolution import gradient_symbol

        shape = tuple(v.shape[2:])
        dims = tuple(range(-len(shape), 0))
        sym = gradient_symbol(shape, v.dtype, v.device)
        return torch.fft.irfftn(torch.fft.rfftn(v, dim=dims) / (1 + g * sym), s=shape, dim=dims)


__all__ = ["TotalVariation", "DenoiserPrior", "TikhonovPrior", "tv_prox", "forward_differences",
           "differences_adjoint", "gradient_normal"]
