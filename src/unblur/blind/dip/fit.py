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
``channels_last`` memory format (faster convolutions on CPU; per-iteration costs are in
BENCHMARKS.md, "Blind deconvolution with deep image priors"); the ``FAST`` generator; presets
:data:`PRESETS`; coarse to fine (``pyramid``, ``pyramid_iters``, ``warmup_iters``): the blind fit
runs first on antialiased downsampled copies of the image with proportionally smaller kernels (an
iteration at scale ``s`` costs about ``s**2`` of one at full resolution), each level's kernel is
upsampled (:func:`upsample_kernel`) to pre-fit the next level's kernel network, and the next level's
fresh image network is warmed up with that kernel fixed before both are fitted together; VDIP's
ELBO at a coarse level uses that level's noise sigma (the full-resolution one times
:func:`downsample_noise_gain`, about ``2 s / 3``).  On a CPU shared with other jobs, one torch thread
per process can be much faster than two (threads wait for each other): the API's ``threads`` argument
sets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import require
from ...optim import Progress
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
    pyramid: tuple[float, ...] = ()       # coarse to fine: image scales fitted before full resolution
    pyramid_iters: tuple[int, ...] = ()   # blind iterations at each of those scales
    warmup_iters: int = 0                 # per finer level: image-net iterations with the kernel fixed


#: ``full``: the published recipe.  ``fast``: the CPU recipe (small generator, 1500 iterations at
#: most with the kernel-change stopping rule, SSIM from iteration 500, 200 refinement iterations).
#: ``fast-c2f``: the small generator coarse to fine -- 1000 blind iterations at 1/4 scale (7x7 kernel
#: for a 25x25 one), 1000 at 1/2, then at most 600 at full resolution (stopping rule after 300) and
#: 150 refinement iterations; each finer level starts from the upsampled kernel with 50 image-only
#: warm-up iterations; kernel learning rate 2e-4 (with the paper's 1e-4 the kernel at full resolution
#: stayed blurred).
PRESETS = {
    "full": FitConfig(),
    "fast": FitConfig(iterations=1500, generator=FAST, switch_iter=500, refine_iters=200,
                      stop_tol=2e-3, min_iters=800),
    "fast-c2f": FitConfig(iterations=600, generator=FAST, switch_iter=200, refine_iters=150, lr_kernel=2e-4,
                          stop_tol=2e-3, min_iters=300, pyramid=(0.25, 0.5), pyramid_iters=(1000, 1000),
                          warmup_iters=50),
}

#: The stabilised variant of the benchmark: kernel network pre-fitted to a flat kernel and
#: beta1 = 0.5 (the SSIM switch kept).  The no-blur (Dirac) start is not used here: with the paper's
#: kernel learning rate, a fit started there stayed at the no-blur solution on a small test crop.
STABILISED = {"kernel_init": "uniform", "beta1": 0.5}


# -- objectives: the only part that differs between the methods ----------------------------------
class SelfDeblurObjective:
    """MSE, then ``1 - SSIM`` from ``switch_iter`` on (``switch_iter=None``: MSE throughout)."""

    out_channels = 1

    def __init__(self, switch_iter: int | None):
        self.switch_iter = switch_iter

    def image(self, out):
        return torch.sigmoid(out)

    def for_downsampled(self, noise_gain: float):
        """The objective for a downsampled copy of the image whose noise std is ``noise_gain`` times
        the original's (coarse-to-fine levels; :func:`downsample_noise_gain`).  MSE/SSIM need no change."""
        return self

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

    def for_downsampled(self, noise_gain: float):
        """Coarse levels see less noise: the ELBO's noise sigma is multiplied by ``noise_gain``."""
        return VDIPObjective(self.elbo.with_noise(self.elbo.noise_sigma * noise_gain), self.pretrain, self.switch_iter)

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
    kernel_changes: list = field(default_factory=list)   # at full resolution
    level_iterations: list = field(default_factory=list)  # blind iterations per level, coarse to fine


def _kernel_prefit(knet, zk, target, iters):
    """Fit the kernel network's output to ``target`` (MSE, Adam 1e-3): the kernel initialisation."""
    opt = torch.optim.Adam(knet.parameters(), lr=1e-3)
    for _ in range(iters):
        opt.zero_grad()
        loss = torch.sum((knet(zk) - target) ** 2)
        loss.backward()
        opt.step()


def _init_target(kernel_init, kernel_size):
    """The kernel network's pre-fit target for the ``kernel_init`` stabiliser (``None`` for ``"random"``)."""
    if kernel_init == "random":
        return None
    if kernel_init == "uniform":
        return torch.full((kernel_size, kernel_size), 1.0 / kernel_size**2)
    target = torch.zeros(kernel_size, kernel_size)
    target[kernel_size // 2, kernel_size // 2] = 1.0
    return target


# -- coarse to fine -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    """One resolution of the coarse-to-fine schedule: image scale, kernel size, blind iterations."""

    scale: float
    kernel_size: int
    iterations: int


def scaled_kernel_size(kernel_size: int, scale: float) -> int:
    """The odd kernel support (at least 3) closest to ``kernel_size * scale``."""
    return max(3, 2 * int(round((kernel_size * scale - 1) / 2)) + 1)


def levels(image_shape, kernel_size: int, cfg: FitConfig) -> list[Level]:
    """The coarse levels of ``cfg.pyramid`` followed by full resolution (``cfg.iterations``).

    A coarse level whose object (image plus kernel support) would be narrower than ``2**depth + 1``
    pixels, the least the image generator's ``depth`` stride-2 levels with reflection padding accept,
    is skipped.
    """
    least = 2 ** len(cfg.generator.down) + 1
    out = []
    for s, n in zip(cfg.pyramid, cfg.pyramid_iters):
        ks = scaled_kernel_size(kernel_size, s)
        if min(round(s * d) for d in image_shape) + ks - 1 >= least:
            out.append(Level(s, ks, int(n)))
    return out + [Level(1.0, kernel_size, cfg.iterations)]


def downsample(y: torch.Tensor, scale: float) -> torch.Tensor:
    """Antialiased bilinear resize of ``(1, 1, H, W)`` to ``round(scale * (H, W))``."""
    size = [max(1, round(scale * n)) for n in y.shape[-2:]]
    return F.interpolate(y, size=size, mode="bilinear", antialias=True, align_corners=False)


def downsample_noise_gain(shape, scale: float) -> float:
    """Factor by which :func:`downsample` scales the std of white noise (interior pixels).

    The resize is separable and linear: per axis, the weights ``w_ij`` of output pixel ``i`` give a
    noise std ``sqrt(sum_j w_ij^2)`` times the input's (the antialiasing triangle filter makes this
    about ``2 * scale / 3``, smaller than the ``scale`` of plain block averaging); the median over
    output pixels is taken per axis and the two axes multiply.
    """
    gain = 1.0
    for n in shape:
        eye = torch.eye(int(n), dtype=torch.float64)[:, None, None, :]          # n impulses of length n
        m = max(1, round(scale * n))
        w = F.interpolate(eye, size=(1, m), mode="bilinear", antialias=True, align_corners=False)[:, 0, 0, :]
        gain *= float(w.pow(2).sum(0).sqrt().median())
    return gain


def upsample_kernel(kernel: torch.Tensor, size: int, ratio: float) -> torch.Tensor:
    """Resample a ``(k, k)`` kernel to ``(size, size)``, ``ratio`` = coarse / fine pixel density (< 1).

    Centre pixel ``n // 2`` maps to centre pixel; bilinear interpolation, zero outside the coarse
    support; then clipped at 0 and normalised to sum 1.
    """
    k = kernel.shape[-1]
    u = (torch.arange(size, dtype=torch.float32, device=kernel.device) - size // 2) * ratio + k // 2
    u = 2 * u / (k - 1) - 1                                   # grid_sample's [-1, 1], align_corners=True
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), dim=-1)[None]
    out = F.grid_sample(kernel[None, None].float(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)[0, 0].clamp_min(0)
    return out / out.sum().clamp_min(1e-12)


def _check_pyramid(cfg: FitConfig):
    require(len(cfg.pyramid) == len(cfg.pyramid_iters),
            f"pyramid {cfg.pyramid} and pyramid_iters {cfg.pyramid_iters} differ in length")
    s = list(cfg.pyramid) + [1.0]
    require(all(0 < a < b for a, b in zip(s, s[1:])), f"pyramid scales must increase within (0, 1), got {cfg.pyramid}")
    require(all(n >= 1 for n in cfg.pyramid_iters), f"pyramid_iters must be >= 1, got {cfg.pyramid_iters}")


# -- the loop -------------------------------------------------------------------------------------
def _loop(net, z, kernel_fn, params, y, objective, cfg, n_iter, phase, gen, bar, stop=False):
    """The shared optimisation loop.  ``kernel_fn()`` returns the current kernel (network or constant);
    ``phase(i)`` is the schedule iteration the objective sees at loop iteration ``i``."""
    groups = [{"params": list(net.parameters()), "lr": cfg.lr_image, "betas": (cfg.beta1, 0.999)}]
    if params:
        groups.append({"params": params, "lr": cfg.lr_kernel})
    opt = torch.optim.Adam(groups)
    miles = sorted({int(f * n_iter) for f in cfg.decay_at if 0 < int(f * n_iter) < n_iter})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, miles, cfg.decay_gamma)
    k_prev, calm, changes, it = None, 0, [], 0
    for it in range(n_iter):
        zin = z + cfg.reg_noise_std * torch.randn(z.shape, generator=gen, device=z.device) if cfg.reg_noise_std else z
        if cfg.channels_last:
            zin = zin.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        out = net(zin, sigmoid=False)
        k = kernel_fn()
        loss = objective.loss(out, k, y, phase(it), gen)
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


def _networks(lvls, objective, cfg, seed, device=None):
    """One (image, kernel) generator pair per level, all initialised from ``seed`` (on the CPU, then moved
    to ``device``: the same initial weights on every device)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        nets = [(ImageGenerator(cfg.generator, objective.out_channels).to(device),
                 KernelGenerator(lv.kernel_size, cfg.generator).to(device)) for lv in lvls]
    if cfg.channels_last:
        nets = [(net.to(memory_format=torch.channels_last), knet) for net, knet in nets]
    return nets


def _blind_level(y, lv, nets, k_init, objective, cfg, gen, bar, last):
    """Blind fit at one level.  ``k_init``: the previous level's kernel, upsampled (``None`` at the first).

    The kernel network is pre-fitted to ``k_init`` (or to the ``kernel_init`` target), the image network
    warmed up for ``cfg.warmup_iters`` with ``k_init`` fixed, then both are fitted together; the level
    runs the whole schedule (loss switches, learning-rate decay) compressed into its iterations.
    Returns the network output, the kernel, the blind iterations run and the kernel changes.
    """
    net, knet = nets
    z = noise_input(y.shape[-2:], lv.kernel_size, cfg.generator.in_channels, gen)
    zk = torch.rand(cfg.generator.kernel_in, generator=gen, device=y.device) * 0.1
    target = _init_target(cfg.kernel_init, lv.kernel_size) if k_init is None else k_init
    target = target.to(y.device) if target is not None else None
    if target is not None:
        _kernel_prefit(knet, zk, target, cfg.init_iters)
    if k_init is not None and cfg.warmup_iters:
        _loop(net, z, lambda: k_init, [], y, objective, cfg, cfg.warmup_iters, lambda i: 0, gen, bar)
    n = lv.iterations
    out, iters, changes = _loop(net, z, lambda: knet(zk), list(knet.parameters()), y, objective, cfg, n,
                                lambda i: i * cfg.iterations // n, gen, bar, stop=last)
    with torch.no_grad():
        kernel = knet(zk)
    return out, z, kernel, iters, changes


def fit(y: torch.Tensor, kernel_size: int, objective, cfg: FitConfig, seed: int = 0, progress: bool = False,
        kernel: torch.Tensor | None = None, desc: str = "dip", init_kernel: torch.Tensor | None = None,
        device=None) -> FitResult:
    """Fit image and kernel generators to one gray image ``y`` of shape ``(1, 1, H, W)``.

    With ``cfg.pyramid`` set (coarse to fine), the kernel is first estimated on downsampled copies of
    ``y`` with proportionally smaller kernels, each estimate upsampled to start the next level (see
    :func:`_blind_level`); the stopping rule applies at full resolution only.  With ``kernel`` given,
    only the non-blind pass runs (``cfg.iterations`` iterations with the kernel fixed, at full
    resolution), which is how the benchmark's true-kernel ceiling is computed.

    ``init_kernel`` (``(kernel_size, kernel_size)``, sums to 1) is a warm start: the pyramid is skipped
    (the coarse levels exist only to give the full-resolution level a starting kernel), the kernel
    network is pre-fitted to ``init_kernel`` (MSE, ``cfg.init_iters`` Adam steps, as between pyramid
    levels) and the image network warmed up with it fixed for ``cfg.warmup_iters`` (at least 50)
    iterations before both are fitted together.  ``device``: the torch device of the networks, the
    data and every random draw (the generator lives there; the networks' initial weights are drawn on
    the CPU).
    """
    require(cfg.kernel_init in KERNEL_INITS, f"unknown kernel_init {cfg.kernel_init!r}", f"use {', '.join(KERNEL_INITS)}")
    require(kernel_size % 2 == 1 and kernel_size >= 3, f"kernel_size must be odd and >= 3, got {kernel_size}")
    _check_pyramid(cfg)
    t0 = time.perf_counter()
    device = torch.device(device) if device is not None else y.device
    y = y.to(device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    k_init = None
    if kernel is not None:
        lvls = [Level(1.0, kernel_size, 0)]
    elif init_kernel is not None:
        k_init = torch.as_tensor(init_kernel, dtype=y.dtype, device=device)
        require(tuple(k_init.shape) == (kernel_size, kernel_size), f"init_kernel has shape {tuple(k_init.shape)}",
                f"give a {kernel_size}x{kernel_size} kernel")
        cfg = replace(cfg, warmup_iters=max(cfg.warmup_iters, 50))
        lvls = [Level(1.0, kernel_size, cfg.iterations)]
    else:
        lvls = levels(y.shape[-2:], kernel_size, cfg)
    nets = _networks(lvls, objective, cfg, seed, device)
    warm = cfg.warmup_iters * (len(lvls) - 1 + (k_init is not None))
    n_refine = cfg.refine_iters if kernel is None else cfg.iterations
    bar = Progress(sum(lv.iterations for lv in lvls) + warm + n_refine, desc, show=progress)
    level_iters, changes = [], []
    if kernel is None:
        for i, lv in enumerate(lvls):
            last = i == len(lvls) - 1
            y_l = y if last else downsample(y, lv.scale)
            obj = objective if last else objective.for_downsampled(downsample_noise_gain(y.shape[-2:], lv.scale))
            out, z, kernel, n, changes = _blind_level(y_l, lv, nets[i], k_init, obj, cfg, gen, bar, last)
            level_iters.append(n)
            if not last:
                k_init = upsample_kernel(kernel, lvls[i + 1].kernel_size, lv.scale / lvls[i + 1].scale)
        it0 = cfg.iterations
    else:
        kernel, it0 = kernel.to(device=device, dtype=y.dtype), 0
        z = noise_input(y.shape[-2:], kernel_size, cfg.generator.in_channels, gen)
        torch.rand(cfg.generator.kernel_in, generator=gen, device=y.device)  # the kernel input's draw: same stream as blind
    net = nets[-1][0]
    if n_refine:
        out, _, _ = _loop(net, z, lambda: kernel, [], y, objective, replace(cfg, decay_at=(0.6, 0.8)), n_refine,
                          lambda i: it0 + i, gen, bar)
    with torch.no_grad():
        x = objective.image(out)
        data_mse = float(mse(y, blur_valid(x, kernel)))
    bar.close()
    b = kernel_size - 1 - kernel_size // 2
    h, w = y.shape[-2:]
    img = x[0, 0, b:b + h, b:b + w].contiguous().cpu().numpy()
    return FitResult(img, kernel.detach().cpu().numpy().astype(np.float32), data_mse, level_iters[-1] if level_iters else 0,
                     n_refine, time.perf_counter() - t0, changes, level_iters)


__all__ = [
    "ELBO",
    "FAST",
    "FULL",
    "KERNEL_INITS",
    "PRESETS",
    "STABILISED",
    "FitConfig",
    "FitResult",
    "Level",
    "SelfDeblurObjective",
    "VDIPObjective",
    "downsample",
    "downsample_noise_gain",
    "fit",
    "levels",
    "scaled_kernel_size",
    "upsample_kernel",
]
