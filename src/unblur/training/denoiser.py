"""Training unblur's EDM-preconditioned denoiser (:class:`unblur.models.UnblurDenoiser`).

Each step draws ``batch`` random ``patch`` x ``patch`` crops (random flips/rotations) and one noise
level per crop from a mixture serving both uses of the network:

* with probability ``1 - p_diffusion``: uniform in ``[0, sigma_denoise]`` (PnP / denoising range,
  default 0..0.2 = 0..51/255);
* with probability ``p_diffusion``: EDM's log-normal, ``ln(2 sigma) ~ N(P_mean, P_std)`` with
  ``P_mean = -1.2``, ``P_std = 1.2`` (EDM's values, given there in [-1, 1] units, hence the 2).

The loss is EDM's: ``|| F(c_in x, c_noise) - (x0 - c_skip x) / c_out ||^2``, i.e. the MSE of ``D``
weighted by ``1 / c_out^2`` (Karras et al. 2022, "Elucidating the design space of diffusion-based
generative models", Sec. 5).  Validation: PSNR at sigma 15/25/50 (/255) on held-out images with fixed
noise.  Optimiser, schedule, checkpoints and resume: the one loop (:mod:`.loop`).  Deterministic for
a given seed on a given device and thread count (all randomness comes from one ``torch.Generator``;
resuming restores it).  Options: :class:`.config.DenoiserTrainConfig`.
"""

from __future__ import annotations

import torch

from ..errors import require
from ..metrics import psnr
from ..models.unblur_net import UnblurDenoiser
from .config import DenoiserTrainConfig
from .data import list_image_files, load_images, random_patches
from .loop import run_training, setup_torch

VAL_SIGMAS = (15 / 255, 25 / 255, 50 / 255)


def sample_sigmas(n: int, gen: torch.Generator, sigma_denoise: float, p_diffusion: float) -> torch.Tensor:
    """Noise levels ([0, 1] units) from the denoising/diffusion mixture described in the module docstring."""
    u = torch.rand(n, generator=gen) * sigma_denoise
    ln = torch.randn(n, generator=gen) * 1.2 - 1.2
    pick = torch.rand(n, generator=gen) < p_diffusion
    return torch.where(pick, torch.exp(ln) / 2, u)


def edm_loss(model: UnblurDenoiser, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    s = sigma.view(-1, 1, 1, 1)
    x = x0 + s * noise
    f, c_skip, c_out, _ = model.raw(x, s)
    return ((f - UnblurDenoiser.loss_target(x0, x, c_skip, c_out)) ** 2).mean()


@torch.no_grad()
def validate(model, images, device, seed: int = 12345) -> dict:
    """Mean PSNR (dB) at the sigmas of VAL_SIGMAS on ``images`` (noise from a fixed generator, clipped output)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for s in VAL_SIGMAS:
        vals = []
        for img in images:
            x0 = img[None]
            y = x0 + s * torch.randn(x0.shape, generator=gen)
            e = model(y.to(device), s).clamp(0, 1).cpu()
            vals.append(psnr(e[0].numpy(), x0[0].numpy()))
        out[round(s * 255)] = sum(vals) / len(vals)
    return out


def train_denoiser(cfg: DenoiserTrainConfig, resume=None, log=print) -> dict:
    """Train (or resume from a ``last.pt`` or run folder) and return the loop's summary dict."""
    require(cfg.channels in (1, 3), f"--channels must be 1 or 3, got {cfg.channels}")
    require(len(cfg.nc) == 4, f"--nc needs 4 comma-separated integers, got {cfg.nc}", "e.g. --nc 32,64,128,128")
    require(cfg.patch % 8 == 0 and cfg.patch >= 16, f"--patch must be a multiple of 8, >= 16 (got {cfg.patch})")
    require(cfg.batch >= 1 and cfg.steps >= 1, "--batch and --steps must be positive")
    device = setup_torch(cfg)
    files = list_image_files(cfg.data)
    if cfg.val_dir:
        val_files, train_files = list_image_files(cfg.val_dir)[: cfg.val_images], files
    else:
        require(len(files) > cfg.val_images, f"{len(files)} image(s) in {cfg.data}: too few to hold out "
                f"{cfg.val_images} for validation", "add images or lower --val-images")
        val_files, train_files = files[-cfg.val_images:] if cfg.val_images else [], files[: len(files) - cfg.val_images]
    train_imgs = load_images(train_files, cfg.channels)
    val_imgs = load_images(val_files, cfg.channels)

    model = UnblurDenoiser(cfg.channels, cfg.nc, cfg.nb).to(device)

    def batch_loss(gen):
        x0 = random_patches(train_imgs, cfg.batch, cfg.patch, gen)
        sig = sample_sigmas(cfg.batch, gen, cfg.sigma_denoise, cfg.p_diffusion)
        noise = torch.randn(x0.shape, generator=gen)
        return edm_loss(model, x0.to(device), sig.to(device), noise.to(device))

    return run_training(
        "denoiser", model, cfg, batch_loss=batch_loss,
        validate=lambda: validate(model, val_imgs, device) if val_imgs else {},
        score=lambda v: sum(v.values()) / len(v),
        describe=lambda v: "val PSNR " + "  ".join(f"{k}: {p:.2f}" for k, p in v.items()),
        desc="train denoiser", resume=resume, log=log)
