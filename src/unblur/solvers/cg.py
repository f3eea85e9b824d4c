"""Conjugate gradient for symmetric positive-definite systems given as a function (torch, batched).

Solves ``M x = b`` independently for each item of the batch (inner products are taken per item).
Used by Tikhonov (non-circulant boundaries), PnP-ADMM, PiGDM and deep-blur's regularised inverse.
"""

from __future__ import annotations

import torch


def _dot(a, b):
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.ndim - 1)))


def conjugate_gradient(matvec, b: torch.Tensor, x0: torch.Tensor | None = None, max_iter: int = 50,
                       tol: float = 1e-6) -> torch.Tensor:
    """Solve ``matvec(x) = b``; stops when every item's relative residual is below ``tol``.

    Differentiable (autograd flows through the iterations), so it can sit inside unrolled networks.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = _dot(r, r)
    bnorm = _dot(b, b).clamp_min(1e-30)
    for _ in range(max_iter):
        if bool((rs / bnorm).max() < tol**2):
            break
        Mp = matvec(p)
        alpha = rs / _dot(p, Mp).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * Mp
        rs_new = _dot(r, r)
        p = r + (rs_new / rs.clamp_min(1e-30)) * p
        rs = rs_new
    return x
