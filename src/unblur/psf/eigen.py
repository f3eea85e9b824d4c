"""Eigen-PSF bases (deep-blur Model 2.1): low-rank approximation of a family of PSFs.

Given ``N`` PSFs ``h_n`` (a sampled model family, or PSFs measured across the field), the
eigen-PSFs ``E_1..E_K`` are the leading left singular vectors of the matrix whose columns are the
flattened PSFs (PCA **without** mean removal by default, so that every PSF is a plain linear
combination ``h_n ~ sum_k alpha_{n,k} E_k`` -- the form product-convolution needs).  With
``center=True`` the mean PSF is removed first and kept as ``basis.mean`` (classical PCA).

Captured energy of ``K`` components: ``sum_{k<=K} s_k^2 / sum_k s_k^2`` (``s`` the singular values),
i.e. one minus the mean relative squared reconstruction error over the family, ``1 - sum_n ||h_n -
P_K h_n||^2 / sum_n ||h_n||^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import require


@dataclass
class EigenPSFBasis:
    """``components``: ``(K, *k)`` orthonormal eigen-PSFs; ``singular_values``: all of them (descending);
    ``mean``: ``(*k)`` mean PSF (zeros unless built with ``center=True``)."""

    components: np.ndarray
    singular_values: np.ndarray
    mean: np.ndarray

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    def captured_energy(self, k: int | None = None) -> float:
        """Fraction of the family's energy (sum of squared singular values) in the first ``k`` components."""
        k = self.n_components if k is None else int(k)
        s2 = self.singular_values.astype(np.float64) ** 2
        return float(s2[:k].sum() / max(s2.sum(), 1e-300))

    def project(self, psfs) -> np.ndarray:
        """Coefficients ``(N, K)`` of PSFs ``(N, *k)`` (or one PSF ``(*k)`` -> ``(K,)``)."""
        p = np.asarray(psfs, dtype=np.float64)
        single = p.shape == self.components.shape[1:]
        p = p[None] if single else p
        require(p.shape[1:] == self.components.shape[1:],
                f"PSFs of shape {p.shape[1:]} do not match the basis {self.components.shape[1:]}")
        flat = (p - self.mean).reshape(len(p), -1)
        c = flat @ self.components.reshape(self.n_components, -1).T.astype(np.float64)
        return c[0] if single else c

    def reconstruct(self, coefficients) -> np.ndarray:
        """PSFs ``(N, *k)`` from coefficients ``(N, K)`` (or ``(K,)`` -> ``(*k)``); not renormalised."""
        c = np.asarray(coefficients, dtype=np.float64)
        single = c.ndim == 1
        c = c[None] if single else c
        out = c @ self.components.reshape(self.n_components, -1).astype(np.float64)
        out = out.reshape((len(c),) + self.components.shape[1:]) + self.mean
        return out[0] if single else out

    def relative_error(self, psfs) -> np.ndarray:
        """``||h - P_K h|| / ||h||`` per PSF."""
        p = np.asarray(psfs, dtype=np.float64)
        r = self.reconstruct(self.project(p))
        axes = tuple(range(1, p.ndim))
        return np.sqrt(((r - p) ** 2).sum(axes) / (p**2).sum(axes))


def eigen_psf_basis(psfs, n_components: int, center: bool = False) -> EigenPSFBasis:
    """PCA basis of ``psfs`` (numpy or torch, ``(N, *k)`` with ``N >= n_components``).

    Signs are fixed so that each component has a positive sum (the first one then looks like a PSF).
    """
    if isinstance(psfs, torch.Tensor):
        psfs = psfs.detach().cpu().numpy()
    p = np.asarray(psfs, dtype=np.float64)
    require(p.ndim >= 3, f"give a stack of PSFs (N, *k), got shape {p.shape}", "stack the PSFs on a first axis")
    require(np.isfinite(p).all(), "PSF family contains NaN or Inf")
    n = p.shape[0]
    require(isinstance(n_components, (int, np.integer)) and 1 <= n_components <= n,
            f"n_components must be in [1, {n}] (the number of PSFs), got {n_components!r}")
    mean = p.mean(0) if center else np.zeros(p.shape[1:])
    M = (p - mean).reshape(n, -1)
    # right singular vectors of M (N x P) are the eigen-PSFs; N is usually << P
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    comps = vt[:n_components]
    comps *= np.where(comps.sum(1, keepdims=True) < 0, -1.0, 1.0)
    return EigenPSFBasis(comps.reshape((n_components,) + p.shape[1:]).astype(np.float32), s, mean)


__all__ = ["EigenPSFBasis", "eigen_psf_basis"]
