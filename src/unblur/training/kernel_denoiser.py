"""Training the blur-kernel denoiser of Fast Diffusion EM (Laroche et al. 2024, Sec. 3.2).

Training pairs are random camera-shake kernels from :func:`unblur.psf.motion.random_motion_kernels`
(non-negative, sum 1, ``size`` x ``size``) plus white Gaussian noise of std ``sigma`` drawn
log-uniformly in ``[sigma_min, sigma_max]`` (default 5e-4 .. 5e-2, around the EM's
``sqrt(lambda / beta) ~ 3e-3`` and above).  Loss: MSE of the denoised kernel divided by ``sigma^2``
(every noise level weighs the same).  Optimiser, schedule and checkpoints: the one loop
(:mod:`.loop`); options: :class:`.config.KernelTrainConfig`.  Validation: mean kernel PSNR on 32 fixed
kernels at sigma 3e-3 and 1e-2, PSNR with the kernel's own peak as the data range,
``10 log10(max(k)^2 / mse)``.
"""

from __future__ import annotations

import math

import torch

from ..errors import require
from ..models.kernel_prior import KernelDenoiser
from ..psf.motion import random_motion_kernels
from .config import KernelTrainConfig
from .loop import run_training, setup_torch

VAL_SIGMAS = (3e-3, 1e-2)


def kernel_psnr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-kernel PSNR (dB) with the reference kernel's peak as data range; shapes ``(B, 1, K, K)``."""
    mse = ((est - ref) ** 2).flatten(1).mean(1)
    peak = ref.flatten(1).amax(1)
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-30))


@torch.no_grad()
def validate_kernels(model, size: int, device, n: int = 32, seed: int = 999) -> dict:
    """``{sigma: (noisy PSNR, denoised PSNR)}`` averaged over ``n`` fixed kernels."""
    gen = torch.Generator().manual_seed(seed)
    k = random_motion_kernels(size, n, generator=gen)
    out = {}
    for s in VAL_SIGMAS:
        y = k + s * torch.randn(k.shape, generator=gen)
        e = model(y.to(device), s).cpu()
        out[s] = (float(kernel_psnr(y, k).mean()), float(kernel_psnr(e, k).mean()))
    return out


def train_kernel_denoiser(cfg: KernelTrainConfig, resume=None, log=print) -> dict:
    """Train (or resume from a ``last.pt`` or run folder) and return the loop's summary dict."""
    require(13 <= cfg.size <= 75, f"--size must be in [13, 75], got {cfg.size}")
    require(0 < cfg.sigma_min <= cfg.sigma_max, "need 0 < --sigma-min <= --sigma-max")
    device = setup_torch(cfg)
    model = KernelDenoiser(cfg.size, cfg.blocks, cfg.features).to(device)
    lo, hi = math.log(cfg.sigma_min), math.log(cfg.sigma_max)

    def batch_loss(gen):
        k = random_motion_kernels(cfg.size, cfg.batch, generator=gen)
        s = torch.exp(lo + (hi - lo) * torch.rand(cfg.batch, generator=gen)).view(-1, 1, 1, 1)
        y = k + s * torch.randn(k.shape, generator=gen)
        k, s, y = k.to(device), s.to(device), y.to(device)
        return (((model(y, s.view(-1)) - k) / s) ** 2).mean()

    def validate():
        return {str(a): b for a, b in validate_kernels(model, cfg.size, device).items()}

    return run_training(
        "kernel-denoiser", model, cfg, batch_loss=batch_loss, validate=validate,
        score=lambda v: sum(b[1] for b in v.values()) / len(v),
        describe=lambda v: "  ".join(f"sigma {a}: {b[0]:.2f} -> {b[1]:.2f} dB" for a, b in v.items()),
        desc=f"train kernel-denoiser {cfg.size}", resume=resume, log=log)
