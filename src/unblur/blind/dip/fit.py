"""The one fitting loop of the deep-image-prior blind methods, its stabilisers and its presets.

SelfDeblur (Ren et al. 2020) and VDIP (Huo et al. 2023) differ only in the *objective* (the loss
computed from the image network's output, the kernel and the data, and how the image is read from
the output); everything else is :func:`fit`:

* forward model: ``y = k * x`` on the *valid* part (``x`` is the object, ``k - 1`` pixels larger);
* Adam, learning rate 1e-2 for the image network and 1e-4 for the kernel network, step decay by 0.5
  at 40 %, 60 % and 80 % of the iterations (SelfDeblur: 2000/3000/4000 of 5000);
* the noise input is perturbed by ``N(0, 0.001^2)`` at every iteration (deep-image-prior practice);
* after the blind stage, a non-blind second pass re-fits the image network with the kernel fixed
  (``refine_iters``) -- the same loop with a constant kernel.

Stabilisers (Brozova & Smidl 2024, "Avoiding undesirable solutions of deep blind image
deconvolution"), as options of :class:`FitConfig`:

* ``kernel_init``: ``"random"`` (the default PyTorch initialisation: a near-uniform softmax, as in
  SelfDeblur), ``"uniform"`` (the kernel network pre-fitted to a flat kernel) or ``"no-blur"``
  (pre-fitted to a Dirac, i.e. the no-blur solution's kernel);
* ``ssim_switch``: the MSE -> 1-SSIM switch on or off;
* ``beta1``: the image optimiser's first-moment coefficient (Adam's default 0.9);
* several seeds with a consistency report (in :mod:`.api`).

Cost control: ``stop_tol`` stops the blind stage once the relative kernel change over ``stop_check``
iterations stays below ``stop_tol`` for ``stop_patience`` checks (after ``min_iters``);
``channels_last`` memory format (forward + backward at 279x279 on this project's shared 2-core
CPU: 0.51 -> 0.31 s for :data:`~.generators.FAST` on one thread; 7.8 -> 4.6 s for ``FULL`` and
1.08 -> 0.72 s for ``FAST`` with two threads, measured together); the ``FAST`` generator; presets
:data:`PRESETS`.  On a shared CPU, one torch
thread per process can be much faster than two (a tiny generator measured 0.03 s vs 1.8 s per
iteration with two threads on a machine with other jobs): the API's ``threads`` argument sets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...errors import require
from ...solvers.progress import Progress
from .generators import (
    FAST,
    FULL,
    GeneratorConfig,
    ImageGenerator,
    KernelGenerator,
    noise_input,
)
from .losses import ELBO, blur_valid, mse, ssim_loss

KERNEL_INITS = ("random", "uniform", "no-blur")


@dataclass(frozen=True)
class FitConfig:
    iterations: int = 5000
    generator: GeneratorConfig = FULL
    lr_image: float = 1e-2
    lr_kernel: float = 1e-4
    beta1: float = 0.9
    decay_at: tuple[float, ...] = (0.4, 0.6, 0.8)
    decay_gamma: float = 0.5
    ssim_switch: bool = True
    switch_iter: int = 1000
    pretrain_iters: int = 0          # VDIP: MSE on the mean before the ELBO stage
    kernel_init: str = "random"
    init_iters: int = 300
    refine_iters: int = 500
    stop_tol: float | None = None
    stop_check: int = 50
    stop_patience: int = 3
    min_iters: int = 0
    reg_noise_std: float = 1e-3
    channels_last: bool = True


#: ``full``: the published recipe.  ``fast``: the CPU recipe (small generator, 1500 iterations at
#: most with the kernel-change stopping rule, SSIM from iteration 500, 200 refinement iterations).
PRESETS = {
    "full": FitConfig(),
    "fast": FitConfig(iterations=1500, generator=FAST, switch_iter=500, refine_iters=200,
                      stop_tol=2e-3, min_iters=800),
}

#: The stabilised variant measured in the benchmark: kernel network pre-fitted to a flat kernel and
#: beta1 = 0.5 (the SSIM switch kept).  The no-blur (Dirac) start is not used here: on a 64x64
#: camera-man crop with a 7x7 motion kernel and the paper's kernel learning rate (1e-4) it stayed at
#: the no-blur solution for 300 iterations (relative kernel error without shift search 2.44, a
#: Dirac's 2.45; the random start reached 0.77).
STABILISED = {"kernel_init": "uniform", "beta1": 0.5}


# -- objectives: the only part that differs between the methods ----------------------------------
class SelfDeblurObjective:
    """MSE, then ``1 - SSIM`` from ``switch_iter`` on (``switch_iter=None``: MSE throughout)."""

    out_channels = 1

    def __init__(self, switch_iter: int | None):
        self.switch_iter = switch_iter

    def image(self, out):
        return torch.sigmoid(out)

    def loss(self, out, kernel, y, it, generator):
        r = blur_valid(self.image(out), kernel)
        if self.switch_iter is not None and it >= self.switch_iter:
            return ssim_loss(y, r)
        return mse(y, r)


class VDIPObjective(SelfDeblurObjective):
    """MSE on the mean for ``pretrain`` iterations, then the ELBO, then ``1 - SSIM`` on the mean."""

    out_channels = 2

    def __init__(self, elbo: ELBO, pretrain: int, switch_iter: int | None):
        super().__init__(switch_iter)
        self.elbo, self.pretrain = elbo, pretrain

    def image(self, out):
        return torch.sigmoid(out[:, :1])

    def loss(self, out, kernel, y, it, generator):
        if it < self.pretrain or (self.switch_iter is not None and it >= self.switch_iter):
            return super().loss(out, kernel, y, it, generator)
        return self.elbo(out, kernel, y, generator)


@dataclass
class FitResult:
    image: np.ndarray            # (H, W): the object cropped to the image's field of view
    kernel: np.ndarray           # (k, k), non-negative, sums to 1
    data_mse: float              # mean((y - k * x)^2) at the end
    iterations: int              # blind iterations run (the stopping rule may end early)
    refine_iterations: int
    time_s: float
    kernel_changes: list = field(default_factory=list)


def _kernel_prefit(knet, zk, target, iters, seed):
    """Fit the kernel network's output to ``target`` (MSE, Adam 1e-3): the kernel initialisation."""
    opt = torch.optim.Adam(knet.parameters(), lr=1e-3)
    for _ in range(iters):
        opt.zero_grad()
        loss = torch.sum((knet(zk) - target) ** 2)
        loss.backward()
        opt.step()


def _loop(net, z, kernel_fn, params, y, objective, cfg, n_iter, it0, gen, bar, stop=False):
    """The shared optimisation loop.  ``kernel_fn()`` returns the current kernel (network or constant)."""
    groups = [{"params": list(net.parameters()), "lr": cfg.lr_image, "betas": (cfg.beta1, 0.999)}]
    if params:
        groups.append({"params": params, "lr": cfg.lr_kernel})
    opt = torch.optim.Adam(groups)
    miles = sorted({int(f * n_iter) for f in cfg.decay_at if 0 < int(f * n_iter) < n_iter})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, miles, cfg.decay_gamma)
    k_prev, calm, changes, it = None, 0, [], 0
    for it in range(n_iter):
        zin = z + cfg.reg_noise_std * torch.randn(z.shape, generator=gen) if cfg.reg_noise_std else z
        if cfg.channels_last:
            zin = zin.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        out = net(zin, sigmoid=False)
        k = kernel_fn()
        loss = objective.loss(out, k, y, it0 + it, gen)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(it, None, loss=float(loss.detach()))
        if stop and cfg.stop_tol is not None and (it + 1) % cfg.stop_check == 0:
            kd = k.detach()
            if k_prev is not None:
                ch = float((kd - k_prev).norm() / k_prev.norm().clamp_min(1e-12))
                changes.append(ch)
                calm = calm + 1 if ch < cfg.stop_tol else 0
                if calm >= cfg.stop_patience and it + 1 >= cfg.min_iters:
                    break
            k_prev = kd.clone()
    with torch.no_grad():
        zin = z.contiguous(memory_format=torch.channels_last) if cfg.channels_last else z
        out = net(zin, sigmoid=False)
    return out, it + 1, changes


def fit(y: torch.Tensor, kernel_size: int, objective, cfg: FitConfig, seed: int = 0, progress: bool = False,
        kernel: torch.Tensor | None = None, desc: str = "dip") -> FitResult:
    """Fit image and kernel generators to one gray image ``y`` of shape ``(1, 1, H, W)``.

    With ``kernel`` given, only the non-blind pass runs (``cfg.iterations`` iterations with the kernel
    fixed), which is how the benchmark's true-kernel ceiling is computed.
    """
    require(cfg.kernel_init in KERNEL_INITS, f"unknown kernel_init {cfg.kernel_init!r}", f"use {', '.join(KERNEL_INITS)}")
    require(kernel_size % 2 == 1 and kernel_size >= 3, f"kernel_size must be odd and >= 3, got {kernel_size}")
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = ImageGenerator(cfg.generator, objective.out_channels)
        knet = KernelGenerator(kernel_size, cfg.generator)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    z = noise_input(y.shape[-2:], kernel_size, cfg.generator.in_channels, gen)
    zk = torch.rand(cfg.generator.kernel_in, generator=gen) * 0.1
    n_total = (0 if kernel is not None else cfg.iterations) + (cfg.iterations if kernel is not None else cfg.refine_iters)
    bar = Progress(n_total, desc, show=progress)
    blind_iters, changes = 0, []
    if kernel is None:
        if cfg.kernel_init != "random":
            target = torch.full((kernel_size, kernel_size), 1.0 / kernel_size**2)
            if cfg.kernel_init == "no-blur":
                target = torch.zeros_like(target)
                target[kernel_size // 2, kernel_size // 2] = 1.0
            _kernel_prefit(knet, zk, target, cfg.init_iters, seed)
        out, blind_iters, changes = _loop(net, z, lambda: knet(zk), list(knet.parameters()), y, objective, cfg,
                                          cfg.iterations, 0, gen, bar, stop=True)
        with torch.no_grad():
            kernel = knet(zk)
        n_refine, it0 = cfg.refine_iters, cfg.iterations
    else:
        kernel = kernel.to(y.dtype)
        n_refine, it0 = cfg.iterations, 0
    if n_refine:
        out, _, _ = _loop(net, z, lambda: kernel, [], y, objective, replace(cfg, decay_at=(0.6, 0.8)), n_refine, it0,
                          gen, bar)
    with torch.no_grad():
        x = objective.image(out)
        data_mse = float(mse(y, blur_valid(x, kernel)))
    bar.close()
    b = kernel_size - 1 - kernel_size // 2
    h, w = y.shape[-2:]
    img = x[0, 0, b:b + h, b:b + w].contiguous().numpy()
    return FitResult(img, kernel.detach().numpy().astype(np.float32), data_mse, blind_iters, n_refine,
                     time.perf_counter() - t0, changes)


__all__ = [
    "ELBO",
    "FAST",
    "FULL",
    "KERNEL_INITS",
    "PRESETS",
    "STABILISED",
    "FitConfig",
    "FitResult",
    "SelfDeblurObjective",
    "VDIPObjective",
    "fit",
]
