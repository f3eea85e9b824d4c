"""Linear operators with exact adjoints (the forward models of deconvolution).

An operator maps an object ``x`` of shape ``(B, C, *in_shape)`` to data ``y`` of shape
``(B, C, *out_shape)``.  Subclasses implement :meth:`A` and :meth:`A_adjoint`; everything the
solvers need (``A^T A``, ``A^T 1``, the operator norm) is derived here once.
"""

from __future__ import annotations

import torch


class LinearOperator:
    """Base class: ``A(x)``, ``A_adjoint(y)`` and derived quantities."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def A(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def AtA(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(self.A(x))

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


class Identity(LinearOperator):
    """``A = I`` (denoising)."""

    def __init__(self, shape):
        self.in_shape = self.out_shape = tuple(shape)

    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y
