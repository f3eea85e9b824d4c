"""``unblur train denoiser|kernel-denoiser``: train unblur's learned priors (see unblur.training)."""

from __future__ import annotations

from ..training.denoiser import DenoiserTrainConfig, train_denoiser
from ..training.kernel_denoiser import KernelTrainConfig, train_kernel_denoiser

HELP = "train unblur's image denoiser / diffusion prior or the blur-kernel prior"


def _common(p, steps, ckpt=5.0):
    p.add_argument("--out", required=True, help="run folder: last.pt (training state), best.pt (best validation)")
    p.add_argument("--steps", type=int, default=steps, help=f"total optimiser steps (default {steps})")
    p.add_argument("--batch", type=int, help="batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine decay to 1e-5)")
    p.add_argument("--ckpt-minutes", type=float, default=ckpt, help="write last.pt every N minutes (atomic)")
    p.add_argument("--max-minutes", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--val-every", type=int, help="validate every N steps")
    p.add_argument("--resume", nargs="?", const="auto", help="continue from OUT/last.pt (or the path given)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and data (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    tsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    d = tsub.add_parser("denoiser", help="EDM-preconditioned ResUNet (image prior) on a folder of clean images")
    d.add_argument("--data", required=True, help="folder of clean training images")
    d.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 = gray, 3 = colour")
    d.add_argument("--nc", default="32,64,128,128", help="channels per UNet level (4 values)")
    d.add_argument("--nb", type=int, default=1, help="residual blocks per level")
    d.add_argument("--patch", type=int, default=64, help="patch size (multiple of 8)")
    d.add_argument("--p-diffusion", type=float, default=0.2, help="share of EDM log-normal (large) noise levels")
    d.add_argument("--sigma-denoise", type=float, default=0.2, help="uniform denoising range [0, S] ([0,1] units)")
    d.add_argument("--val-dir", help="validation folder (default: hold out the last --val-images training images)")
    d.add_argument("--val-images", type=int, default=4, help="number of validation images")
    _common(d, 100_000)
    k = tsub.add_parser("kernel-denoiser", help="Fast Diffusion EM kernel prior on random camera-shake kernels")
    k.add_argument("--size", type=int, default=33, help="kernel size (33 or 64 in the paper)")
    k.add_argument("--sigma-min", type=float, default=5e-4)
    k.add_argument("--sigma-max", type=float, default=5e-2)
    _common(k, 5000)
    from ..blind.deepblur.train import add_parser as add_deepblur  # unblur train deepblur (issue 8)
    add_deepblur(tsub)


def run(args) -> int:
    if args.what == "deepblur":
        return args._run(args)
    resume = None
    if args.resume:
        resume = args.out if args.resume == "auto" else args.resume
    opt = {k: v for k, v in dict(steps=args.steps, batch=args.batch, lr=args.lr, ckpt_minutes=args.ckpt_minutes,
                                 max_minutes=args.max_minutes, val_every=args.val_every, seed=args.seed,
                                 device=args.device, threads=args.threads).items() if v is not None}
    opt["progress"] = not args.no_progress
    if args.what == "denoiser":
        try:
            nc = [int(v) for v in args.nc.split(",")]
        except ValueError:
            nc = []
        if len(nc) != 4:
            from ..errors import InputError
            raise InputError(f"--nc needs 4 comma-separated integers, got {args.nc!r}", "e.g. --nc 32,64,128,128")
        cfg = DenoiserTrainConfig(data=args.data, out=args.out, channels=args.channels, nc=nc, nb=args.nb,
                                  patch=args.patch, p_diffusion=args.p_diffusion, sigma_denoise=args.sigma_denoise,
                                  val_dir=args.val_dir, val_images=args.val_images, **opt)
        res = train_denoiser(cfg, resume)
    else:
        cfg = KernelTrainConfig(out=args.out, size=args.size, sigma_min=args.sigma_min, sigma_max=args.sigma_max, **opt)
        res = train_kernel_denoiser(cfg, resume)
    print(f"done: {res['steps']} steps in {res['wall_s'] / 60:.1f} min; checkpoints in {args.out} (last.pt, best.pt)")
    return 0
