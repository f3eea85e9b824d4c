"""Random camera-shake kernels, reproducible from a seed (sizes 13 to 75 px).

Two trajectory generators, both rasterised with sub-pixel accuracy by
:func:`unblur.psf.kernels.rasterize_paths` (bilinear splatting, non-negative, sum 1, centre of mass
exactly at ``k // 2``):

``"gp"`` -- Gaussian-process trajectory (Schuler et al. 2016, "Learning to Deblur", TPAMI, the
    generator of many synthetic blind benchmarks).  The camera position ``(x(t), y(t))``, ``t`` in
    [0, 1], is two independent zero-mean GPs with a Matern-3/2 covariance
    ``k(t, t') = (1 + sqrt(3) r / l) exp(-sqrt(3) r / l)``, ``r = |t - t'|``; the length scale ``l`` is
    drawn per kernel in [0.3, 1.0] (short scales: curly paths, long scales: near-linear strokes).
    Sampled with a cached Cholesky factor, batched.

``"physiological"`` -- hand-tremor model after Gavant et al. 2011 ("A physiological camera shake
    model for image stabilization systems").  The angular camera motion during an exposure
    ``T`` (drawn in [1/30, 1/4] s) is the sum of (i) a slow *drift*: integrated Ornstein-Uhlenbeck
    velocity (time constant 0.1 s), and (ii) *physiological tremor*: 4 sinusoids per axis with
    frequencies uniform in the 7-13 Hz tremor band, random phases and Rayleigh amplitudes.  This is a
    re-implementation from the paper's description (drift + band-limited tremor), not its fitted
    spectra; it produces the jittery, partly oscillating paths typical of hand-held shots.

**Intensity.** Every trajectory is rescaled so that its largest extent (max over x and y of the
peak-to-peak displacement) is ``intensity * (k - 3)`` pixels (less where a lopsided path would
otherwise leave the kernel once centred on its centre of mass): ``intensity`` in ``(0, 1]`` is the
blur strength relative to the kernel size (1 = the path spans the kernel).  A pair ``(lo, hi)``
draws it uniformly per kernel.

Entry points
------------
* :func:`motion_kernel` -- one numpy ``(k, k)`` kernel (seeded).
* :func:`random_motion_kernels` -- **the function trainers call**:
  ``random_motion_kernels(size, batch, seed=None, generator=None, model="mixed", intensity=(0.25, 1.0))``
  returns a ``(B, 1, k, k)`` float32 torch tensor.
* :class:`MotionKernelSampler` -- an endless iterator of such batches (seeded once, reproducible).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..errors import require
from .kernels import rasterize_paths

MODELS = ("gp", "physiological", "mixed")
MIN_SIZE, MAX_SIZE = 13, 75


def _generator(seed=None, generator: torch.Generator | None = None) -> torch.Generator:
    if generator is not None:
        require(isinstance(generator, torch.Generator), "generator must be a torch.Generator")
        return generator
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


@functools.lru_cache(maxsize=8)
def _matern_cholesky(n: int, n_scales: int) -> torch.Tensor:
    """Cholesky factors ``(S, n, n)`` of Matern-3/2 covariances on ``t = linspace(0, 1, n)`` for S length scales."""
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    r = (t[:, None] - t[None, :]).abs()
    scales = torch.linspace(0.3, 1.0, n_scales, dtype=torch.float64)
    a = math.sqrt(3) * r[None] / scales[:, None, None]
    K = (1 + a) * torch.exp(-a) + 1e-8 * torch.eye(n, dtype=torch.float64)
    return torch.linalg.cholesky(K)


def gp_trajectories(batch: int, n_points: int, gen: torch.Generator) -> torch.Tensor:
    """``(B, T, 2)`` Matern-3/2 Gaussian-process camera paths (arbitrary scale; see module docstring)."""
    L = _matern_cholesky(n_points, 8)
    idx = torch.randint(0, L.shape[0], (batch,), generator=gen)
    z = torch.randn(batch, n_points, 2, generator=gen, dtype=torch.float64)
    out = torch.empty_like(z)
    for s in range(L.shape[0]):  # one matrix product per length scale (8), batched over kernels
        sel = idx == s
        if bool(sel.any()):
            out[sel] = L[s] @ z[sel]
    return out


def physiological_trajectories(batch: int, n_points: int, gen: torch.Generator) -> torch.Tensor:
    """``(B, T, 2)`` drift + tremor camera paths after Gavant et al. 2011 (arbitrary scale)."""
    f64 = torch.float64
    T = 1 / 30 + (1 / 4 - 1 / 30) * torch.rand(batch, 1, 1, generator=gen, dtype=f64)   # exposure (s)
    t = torch.linspace(0, 1, n_points, dtype=f64)[None, :, None] * T                   # (B, T, 1)
    dt = T / (n_points - 1)
    # drift: Ornstein-Uhlenbeck velocity (tau = 0.1 s, stationary start), integrated
    tau = 0.1
    rho = torch.exp(-dt / tau)
    noise = torch.randn(batch, n_points, 2, generator=gen, dtype=f64)
    v = torch.empty_like(noise)
    v[:, 0] = noise[:, 0]
    innov = torch.sqrt(1 - rho**2)
    for i in range(1, n_points):  # recursion over time samples (not pixels); vectorised over the batch
        v[:, i] = rho[:, 0] * v[:, i - 1] + innov[:, 0] * noise[:, i]
    drift = torch.cumsum(v * dt, 1) / tau  # ~ unit velocity x time / tau
    # tremor: 4 sinusoids per axis in the 7-13 Hz band
    nf = 4
    freq = 7 + 6 * torch.rand(batch, 1, nf, 2, generator=gen, dtype=f64)
    phase = 2 * math.pi * torch.rand(batch, 1, nf, 2, generator=gen, dtype=f64)
    amp = torch.sqrt(-2 * torch.log(torch.rand(batch, 1, nf, 2, generator=gen, dtype=f64).clamp_min(1e-12)))
    tremor_gain = 0.3 + 1.2 * torch.rand(batch, 1, 1, 1, generator=gen, dtype=f64)  # tremor vs drift balance
    tremor = (amp * torch.sin(2 * math.pi * freq * t[..., None] + phase)).sum(2) * tremor_gain[..., 0] * 0.05
    return drift + tremor


def _fit_to_kernel(paths: torch.Tensor, size: int, intensity: torch.Tensor) -> torch.Tensor:
    """Scale each path so that its largest peak-to-peak extent is ``intensity * (size - 3)`` px.

    The scale is reduced where needed so that the path, centred on its mean point (the kernel's
    centre of mass), stays inside the kernel: ``max |p - mean| <= (size - 1) // 2 - 0.01``.
    """
    extent = (paths.amax(1) - paths.amin(1)).amax(1).clamp_min(1e-12)  # (B,)
    dev = (paths - paths.mean(1, keepdim=True)).abs().amax(dim=(1, 2)).clamp_min(1e-12)
    scale = torch.minimum(intensity * (size - 3) / extent, ((size - 1) // 2 - 0.01) / dev)
    return paths * scale[:, None, None]


def random_motion_kernels(size: int, batch: int, seed: int | None = None, generator: torch.Generator | None = None,
                          model: str = "mixed", intensity=(0.25, 1.0), n_points: int | None = None) -> torch.Tensor:
    """Random camera-shake kernels as a ``(batch, 1, size, size)`` float32 tensor (CPU).

    Parameters
    ----------
    size : int
        Kernel side in pixels, 13 to 75.
    batch : int
        Number of kernels.
    seed, generator
        Reproducibility: the same ``seed`` gives the same kernels; a ``torch.Generator`` is advanced
        (use it for successive batches).  ``seed=None`` and no generator means seed 0.
    model : {"gp", "physiological", "mixed"}
        Trajectory generator (see module docstring); ``"mixed"`` draws each kernel from either with
        probability 1/2.
    intensity : float or (lo, hi)
        Blur extent relative to the kernel (see module docstring), in (0, 1].
    n_points : int, optional
        Samples per trajectory (default ``8 * size``: several samples per pixel of path).
    """
    require(isinstance(size, (int, np.integer)) and MIN_SIZE <= size <= MAX_SIZE,
            f"motion kernel size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}",
            "give e.g. size=33")
    require(isinstance(batch, (int, np.integer)) and batch >= 1, f"batch must be a positive integer, got {batch!r}")
    require(model in MODELS, f"unknown motion model {model!r}", f"use one of {', '.join(MODELS)}")
    lo, hi = (intensity, intensity) if np.isscalar(intensity) else tuple(intensity)
    require(0 < lo <= hi <= 1, f"intensity must lie in (0, 1] (got {intensity})",
            "give a float such as 0.5 or a range such as (0.25, 1.0)")
    gen = _generator(seed, generator)
    n = int(n_points or 8 * size)
    inten = lo + (hi - lo) * torch.rand(batch, generator=gen, dtype=torch.float64)
    if model == "gp":
        paths = gp_trajectories(batch, n, gen)
    elif model == "physiological":
        paths = physiological_trajectories(batch, n, gen)
    else:
        pick = torch.rand(batch, generator=gen) < 0.5
        a = gp_trajectories(batch, n, gen)
        b = physiological_trajectories(batch, n, gen)
        paths = torch.where(pick[:, None, None], a, b)
    return rasterize_paths(_fit_to_kernel(paths, size, inten), size)


def motion_kernel(size: int = 33, seed: int = 0, model: str = "gp", intensity: float = 0.7) -> np.ndarray:
    """One random camera-shake kernel as a numpy ``(size, size)`` float32 array (see :func:`random_motion_kernels`)."""
    return random_motion_kernels(size, 1, seed=seed, model=model, intensity=intensity)[0, 0].numpy()


class MotionKernelSampler:
    """Endless iterator of ``(batch, 1, size, size)`` camera-shake kernel batches.

    ``sampler = MotionKernelSampler(33, 64, seed=0); k = next(sampler)``.  One generator is seeded
    once, so the sequence of batches is reproducible; ``size`` may be a list of sizes, one drawn per
    batch (kernels in a batch share a size).
    """

    def __init__(self, size=33, batch: int = 32, seed: int = 0, model: str = "mixed", intensity=(0.25, 1.0)):
        self.sizes = [size] if np.isscalar(size) else list(size)
        self.batch, self.model, self.intensity = batch, model, intensity
        self.gen = torch.Generator().manual_seed(int(seed))
        random_motion_kernels(self.sizes[0], 1, model=model, intensity=intensity)  # validate now

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        i = int(torch.randint(0, len(self.sizes), (1,), generator=self.gen)) if len(self.sizes) > 1 else 0
        return random_motion_kernels(self.sizes[i], self.batch, generator=self.gen, model=self.model,
                                     intensity=self.intensity)


__all__ = ["random_motion_kernels", "motion_kernel", "MotionKernelSampler", "gp_trajectories",
           "physiological_trajectories", "MODELS"]
