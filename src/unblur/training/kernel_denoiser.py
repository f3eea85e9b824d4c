"""Training the blur-kernel denoiser of Fast Diffusion EM (Laroche et al. 2024, Sec. 3.2).

Training pairs are random camera-shake kernels from :func:`unblur.psf.motion.random_motion_kernels`
(non-negative, sum 1, ``size`` x ``size``) plus white Gaussian noise of std ``sigma`` drawn
log-uniformly in ``[sigma_min, sigma_max]`` (default 5e-4 .. 5e-2, around the EM's
``sqrt(lambda / beta) ~ 3e-3`` and above).  Loss: MSE of the denoised kernel divided by ``sigma^2``
(every noise level weighs the same).  Adam + cosine decay.  Validation: mean kernel PSNR on 32 fixed
kernels at sigma 3e-3 and 1e-2, PSNR with the kernel's own peak as the data range,
``10 log10(max(k)^2 / mse)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import require
from ..models.checkpoints import save_unblur
from ..models.kernel_prior import KernelDenoiser
from ..psf.motion import random_motion_kernels
from .state import atomic_save, cosine_lr, load_training_checkpoint, training_checkpoint

VAL_SIGMAS = (3e-3, 1e-2)


@dataclass
class KernelTrainConfig:
    out: str
    size: int = 33
    blocks: int = 5
    features: int = 32
    batch: int = 32
    steps: int = 5000
    lr: float = 1e-3
    lr_min: float = 1e-5
    sigma_min: float = 5e-4
    sigma_max: float = 5e-2
    val_every: int = 250
    ckpt_minutes: float = 5.0
    max_minutes: float | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True


def kernel_psnr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-kernel PSNR (dB) with the reference kernel's peak as data range; shapes ``(B, 1, K, K)``."""
    mse = ((est - ref) ** 2).flatten(1).mean(1)
    peak = ref.flatten(1).amax(1)
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-30))


@torch.no_grad()
def validate_kernels(model, size: int, device, n: int = 32, seed: int = 999) -> dict:
    """``{sigma: (noisy PSNR, denoised PSNR)}`` averaged over ``n`` fixed kernels."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    k = random_motion_kernels(size, n, generator=gen)
    out = {}
    for s in VAL_SIGMAS:
        y = k + s * torch.randn(k.shape, generator=gen)
        e = model(y.to(device), s).cpu()
        out[s] = (float(kernel_psnr(y, k).mean()), float(kernel_psnr(e, k).mean()))
    model.train()
    return out


def train_kernel_denoiser(cfg: KernelTrainConfig, resume: str | None = None, log=print) -> dict:
    require(13 <= cfg.size <= 75, f"--size must be in [13, 75], got {cfg.size}")
    require(0 < cfg.sigma_min <= cfg.sigma_max, "need 0 < --sigma-min <= --sigma-max")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = KernelDenoiser(cfg.size, cfg.blocks, cfg.features).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, history, wall0, best = 0, [], 0.0, None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        ck = load_training_checkpoint(resume)
        require(ck.get("kind") == "kernel-denoiser" and ck["config"] == model.config,
                f"{resume}: checkpoint is for a different network", "resume with the same --size/--blocks/--features")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        step, history, wall0, best = ck["step"], ck["history"], ck["wall_s"], ck["best"]
        log(f"resumed from {resume} at step {step}")
    conf = asdict(cfg)
    lo, hi = math.log(cfg.sigma_min), math.log(cfg.sigma_max)
    t0 = last_ckpt = time.time()

    def save():
        atomic_save(training_checkpoint("kernel-denoiser", model, opt, step, gen, conf, history,
                                        wall0 + time.time() - t0, best), out / "last.pt")

    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=f"train kernel-denoiser {cfg.size}", mininterval=5)
    run_loss = None
    model.train()
    try:
        while step < cfg.steps:
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.lr_min, 100)
            k = random_motion_kernels(cfg.size, cfg.batch, generator=gen)
            s = torch.exp(lo + (hi - lo) * torch.rand(cfg.batch, generator=gen)).view(-1, 1, 1, 1)
            y = k + s * torch.randn(k.shape, generator=gen)
            k, s, y = k.to(device), s.to(device), y.to(device)
            loss = (((model(y, s.view(-1)) - k) / s) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            lv = float(loss.detach())
            run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{run_loss:.4f}", refresh=False)
            if step % cfg.val_every == 0 or step == cfg.steps:
                v = validate_kernels(model, cfg.size, device)
                history.append({"step": step, "loss": run_loss, "psnr": {str(a): b for a, b in v.items()}})
                log(f"step {step}: loss {run_loss:.4f}  " + "  ".join(
                    f"sigma {a:g}: {b[0]:.2f} -> {b[1]:.2f} dB" for a, b in v.items()))
                score = sum(b[1] for b in v.values()) / len(v)
                if best is None or score > best:
                    best = score
                    save_unblur(model, out / "best.pt", "kernel-denoiser",
                                {"steps": step, "val_psnr": {str(a): b for a, b in v.items()},
                                 "wall_s": round(wall0 + time.time() - t0, 1), "train_config": conf})
            if time.time() - last_ckpt > 60 * cfg.ckpt_minutes:
                save()
                last_ckpt = time.time()
            if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
                log(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                break
    finally:
        if bar:
            bar.close()
        save()
    return {"steps": step, "wall_s": wall0 + time.time() - t0, "loss": run_loss, "best": best}
