"""Deep-blur deblurring network DN: unrolled Douglas-Rachford (Debarnot & Weiss 2024, Algorithm 1).

For the data term ``f(x) = 1/2 ||A x - y||^2`` and a learned prior, Douglas-Rachford splitting with
step ``1/lambda`` reads

    z_0     = R_0(y)                         = (A^T A + lambda I)^-1 A^T y
    x_{t+1} = PN_t(z_t)                                          (learned proximal network)
    z_{t+1} = z_t + R_t(2 x_{t+1} - z_t) - x_{t+1},   t = 0 .. T-1
    output  = x_T

with ``R_t(v) = prox_{f/lambda_t}(v) = (A^T A + lambda_t I)^-1 (A^T y + lambda_t v)`` the data
proximal map -- the paper's "regularised inverse", which for ``v = 0`` is exactly
``(A^T A + lambda I)^-1 A^T y``.  Each solve is the operator's ``solve_normal``: ``cg_iters`` (20)
conjugate-gradient steps (differentiable), or the exact Fourier solve for a circular blur, so any
linear operator with an adjoint can be plugged in at run time: the :class:`~unblur.physics.convolution.Convolution` of the PSF
``h(gamma)`` identified by IN, or a product-convolution operator.  ``lambda_t`` are learned (one per
step, stored as logs).

With identity proximal networks the iteration is the proximal-point method on ``f``:
``x_T = prox^T(0)``, i.e. iterated Tikhonov of order T; in Fourier (circular boundary) its filter is
``(1 - (lambda / (|H|^2 + lambda))^T) / H`` (tested).

Boundary: the operator decides.  Training and inference use ``boundary="valid"``: the observed
image is the valid part of the blur of an object larger by ``k - 1`` pixels, the iterates live on
that larger grid (PN_t see it whole) and the result is cropped to the field of view
(``A.crop_object``), which avoids edge ringing.

PN_t are small DRUNet-style U-Nets (Zhang et al. 2021: residual blocks without batch-norm, strided
conv down, transposed conv up, additive skips), one per step (untied weights), predicting a residual
whose last layer starts at zero, so that an untrained DN is iterated Tikhonov.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from ...physics.operator import LinearOperator


def data_prox(op: LinearOperator, Aty: torch.Tensor, v: torch.Tensor | None, lam, cg_iters: int = 20,
              tol: float = 1e-6) -> torch.Tensor:
    """``(A^T A + lam I)^-1 (A^T y + lam v)`` (``v=None``: the regularised inverse of ``y``).

    The operator's ``solve_normal`` (differentiable; ``cg_iters`` conjugate-gradient steps warm-started
    at ``v``, or the exact Fourier solve for a circular blur).  ``lam`` is a float or a tensor
    broadcastable to ``(B, 1, 1, 1)``.
    """
    rhs = Aty if v is None else Aty + lam * v
    return op.solve_normal(rhs, lam, x0=v, max_iter=cg_iters, tol=tol)


class _ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x):
        return x + self.body(x)


class ProxNet(nn.Module):
    """DRUNet-style residual U-Net with ``len(widths)`` scales: ``x = z + net(z)``."""

    def __init__(self, widths=(16, 32, 64), blocks: int = 1, channels: int = 1):
        super().__init__()
        self.head = nn.Conv2d(channels, widths[0], 3, 1, 1)
        self.down = nn.ModuleList(
            nn.Sequential(*[_ResBlock(a) for _ in range(blocks)], nn.Conv2d(a, b, 2, 2))
            for a, b in pairwise(widths))
        self.body = nn.Sequential(*[_ResBlock(widths[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, 2) for a, b in pairwise(widths))
        self.up_body = nn.ModuleList(nn.Sequential(*[_ResBlock(a) for _ in range(blocks)]) for a in widths[:-1])
        self.tail = nn.Conv2d(widths[0], channels, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)  # start as the identity: untrained DN = iterated Tikhonov
        nn.init.zeros_(self.tail.bias)
        self.factor = 2 ** (len(widths) - 1)

    def forward(self, z):
        H, W = z.shape[-2:]
        ph, pw = (-H) % self.factor, (-W) % self.factor
        zp = nn.functional.pad(z, (0, pw, 0, ph), mode="replicate") if ph or pw else z
        h = self.head(zp)
        skips = []
        for d in self.down:
            skips.append(h)
            h = d(h)
        h = self.body(h)
        for up, body, skip in zip(reversed(self.up), reversed(self.up_body), reversed(skips)):
            h = body(up(h) + skip)
        out = zp + self.tail(h)
        return out[..., :H, :W]


class DeblurNet(nn.Module):
    """DN: ``forward(y, op) -> x`` (field of view), T unrolled DR steps with untied ``PN_t``."""

    def __init__(self, steps: int = 4, lam: float = 0.01, cg_iters: int = 20, widths=(16, 32, 64), blocks: int = 1):
        super().__init__()
        self.config = {"steps": int(steps), "lam": float(lam), "cg_iters": int(cg_iters),
                       "widths": list(widths), "blocks": int(blocks)}
        self.cg_iters = cg_iters
        self.prox = nn.ModuleList(ProxNet(widths, blocks) for _ in range(steps))
        self.log_lam = nn.Parameter(torch.full((steps + 1,), math.log(lam)))

    def forward(self, y: torch.Tensor, op: LinearOperator, prox=None) -> torch.Tensor:
        """Algorithm 1; ``prox`` overrides the networks (a list of callables, e.g. identities, for tests)."""
        prox = list(self.prox) if prox is None else prox
        lam = self.log_lam.exp()
        Aty = op.A_adjoint(y)
        z = data_prox(op, Aty, None, lam[0], self.cg_iters)
        x = z
        for t, pn in enumerate(prox):
            x = pn(z)
            z = z + data_prox(op, Aty, 2 * x - z, lam[t + 1], self.cg_iters) - x
        return op.crop_object(x)
