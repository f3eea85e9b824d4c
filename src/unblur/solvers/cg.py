"""Conjugate gradient for symmetric positive-definite systems given as a function (torch, batched).

Solves ``M x = b`` independently for each item of the batch (inner products are taken per item;
Hestenes & Stiefel 1952)::

    r_0 = b - M x_0,  p_0 = r_0
    alpha_k = <r_k, r_k> / <p_k, M p_k>,  x_{k+1} = x_k + alpha_k p_k,  r_{k+1} = r_k - alpha_k M p_k
    p_{k+1} = r_{k+1} + (<r_{k+1}, r_{k+1}> / <r_k, r_k>) p_k

The iteration runs on :func:`unblur.optim.iterate` (one CG step with its state ``r, p, <r, r>``)
with the relative-residual rule ``max_items ||r_k|| / ||b|| < tol`` as its stopping rule
(:class:`unblur.optim.driver.StoppingRule`), so progress bars and callbacks work as for the
other iterative solvers.  Used by Tikhonov and Wiener (non-circulant boundaries), PnP-ADMM, PiGDM
and deep-blur's regularised inverse.
"""

from __future__ import annotations

import torch

from ..optim.driver import Progress, StoppingRule, iterate


def _dot(a, b):
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.ndim - 1)))


def cg_step(matvec, b: torch.Tensor, x0: torch.Tensor | None = None):
    """The conjugate-gradient step ``x_k -> x_{k+1}`` for :func:`unblur.optim.iterate`, and the
    squared relative residuals ``<r, r> / <b, b>`` per item (a function of the step's state).

    Returns ``(x, step, residual)``: the starting iterate, the step and the residual function.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    state = {"r": r, "p": r.clone(), "rs": _dot(r, r)}
    bnorm = _dot(b, b).clamp_min(1e-30)

    def step(x, it):
        r, p, rs = state["r"], state["p"], state["rs"]
        Mp = matvec(p)
        alpha = rs / _dot(p, Mp).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * Mp
        rs_new = _dot(r, r)
        state.update(r=r, p=r + (rs_new / rs.clamp_min(1e-30)) * p, rs=rs_new)
        return x, None

    return x, step, lambda: state["rs"] / bnorm


def conjugate_gradient(matvec, b: torch.Tensor, x0: torch.Tensor | None = None, max_iter: int = 50,
                       tol: float = 1e-6, progress: Progress | None = None) -> torch.Tensor:
    """Solve ``matvec(x) = b``; stops when every item's relative residual is below ``tol``.

    Differentiable (autograd flows through the iterations), so it can sit inside unrolled networks.

    Parameters
    ----------
    matvec : callable
        ``v -> M v`` for a symmetric positive-definite ``M`` (batched over the first axis).
    b : tensor
        Right-hand side.
    x0 : tensor, optional
        Starting point (default 0).
    max_iter : int
        Maximum number of iterations.
    tol : float
        Relative-residual tolerance ``||b - M x|| / ||b||`` (every item).
    progress : Progress, optional
        Progress bar and callback (:class:`unblur.optim.driver.Progress`), called after each iteration.

    Examples
    --------
    >>> import torch
    >>> M = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
    >>> x = conjugate_gradient(lambda v: v @ M, torch.tensor([[1.0, 2.0]]), tol=1e-8)
    >>> torch.allclose(x @ M, torch.tensor([[1.0, 2.0]]), atol=1e-5)
    True
    """
    x, step, residual = cg_step(matvec, b, x0)
    rule = StoppingRule("relative-residual", tol=tol, residual=residual)
    if rule.reached():  # already solved (e.g. a warm start)
        return x
    x, _ = iterate(step, x, max_iter, stop=rule, progress=progress)
    return x
