"""Training configurations, and the ``unblur train WHAT`` options generated from them (no torch here).

Each trainer has one config dataclass: :class:`LoopConfig` (what the one training loop,
:mod:`unblur.training.loop`, uses) plus the trainer's own fields.  A field's ``metadata`` holds its
help text (and optionally ``choices``, ``aliases``, ``parse``); :func:`add_config_arguments` turns the
fields into command-line options (``--field-name``, the dataclass default shown in ``--help``) and
:func:`config_from_args` builds the config back from the parsed options.  Importing this module does
not import torch, so ``unblur --help`` stays fast; the trainers are imported when a run starts
(:data:`TRAINERS`).
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, dataclass, field, fields

from ..errors import InputError


def opt(default=MISSING, help: str = "", **meta):  # noqa: A002 - the argparse name
    """A config field: ``default`` (a list default is copied per instance) and its command-line ``help``."""
    meta["help"] = help
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


def parse_int_list(text) -> list[int]:
    """``"32,64,128"`` -> ``[32, 64, 128]`` (a list is returned as it is)."""
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    try:
        return [int(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(f"expected comma-separated integers, got {text!r}", "e.g. 32,64,128,128") from None


@dataclass(kw_only=True)
class LoopConfig:
    """Options every trainer shares (each trainer's config adds its own and may change defaults)."""

    out: str = opt(help="run folder: last.pt (training state), best.pt (best validation)")
    steps: int = opt(10_000, "total optimiser steps")
    lr: float = opt(1e-3, "peak learning rate (Adam)")
    lr_min: float = opt(1e-5, "final learning rate of the cosine schedule")
    lr_schedule: str = opt("cosine", "cosine: linear warm-up, then cosine decay from --lr to --lr-min at --steps; "
                           "constant: --lr throughout", choices=("cosine", "constant"))
    warmup: int | None = opt(None, "warm-up steps of the cosine schedule (default: 2%% of --steps)")
    val_every: int = opt(500, "validate every N steps (0: never); the best validated model goes to best.pt")
    ckpt_minutes: float = opt(5.0, "write last.pt every N minutes (atomic; also at the end and on Ctrl-C)",
                              aliases=("--checkpoint-minutes",))
    max_minutes: float | None = opt(None, "stop (and save) after this many minutes of this run")
    grad_clip: float | None = opt(None, "cap the gradient norm at this value (0 or not given: no cap)")
    init: str | None = opt(None, "start a new run from the weights of a checkpoint or exported file of the same "
                           "network kind (strict: same layer names and shapes)")
    export: str | None = opt(None, "at the end, write the final model's inference weights to this file")
    seed: int = opt(0, "seed of the initialisation and of the training data")
    device: str = opt("cpu", "torch device: cpu or cuda")
    precision: str = opt("fp32", "fp32, or bf16: the forward pass and loss under torch.autocast in bfloat16 "
                         "(weights and optimiser state stay float32)", choices=("fp32", "bf16"))
    threads: int | None = opt(None, "torch CPU threads")
    progress: bool = opt(True, "progress bar")


@dataclass(kw_only=True)
class DenoiserTrainConfig(LoopConfig):
    """EDM-preconditioned ResUNet (image prior) on a folder of clean images (see unblur.training.denoiser)."""

    data: str = opt(help="folder of clean training images")
    channels: int = opt(1, "1 = gray, 3 = colour", choices=(1, 3))
    nc: list = opt([32, 64, 128, 128], "channels per UNet level (4 values)", parse=parse_int_list)
    nb: int = opt(1, "residual blocks per level")
    patch: int = opt(64, "patch size (a multiple of 8)")
    batch: int = opt(16, "batch size")
    steps: int = opt(100_000, "total optimiser steps")
    warmup: int | None = opt(200, "warm-up steps of the cosine schedule")
    grad_clip: float | None = opt(1.0, "cap the gradient norm at this value (0: no cap)")
    sigma_denoise: float = opt(0.2, "uniform denoising noise range [0, S] ([0, 1] units)")
    p_diffusion: float = opt(0.2, "share of EDM log-normal (large) noise levels")
    val_images: int = opt(4, "number of validation images")
    val_dir: str | None = opt(None, "validation folder (default: hold out the last --val-images training images)")


@dataclass(kw_only=True)
class KernelTrainConfig(LoopConfig):
    """Fast Diffusion EM's blur-kernel prior on random camera-shake kernels (see unblur.training.kernel_denoiser)."""

    size: int = opt(33, "kernel size (33 or 64 in the paper)")
    blocks: int = opt(5, "residual blocks of the network")
    features: int = opt(32, "feature channels of the network")
    batch: int = opt(32, "batch size")
    steps: int = opt(5000, "total optimiser steps")
    warmup: int | None = opt(100, "warm-up steps of the cosine schedule")
    sigma_min: float = opt(5e-4, "smallest training noise std (kernel units; drawn log-uniformly)")
    sigma_max: float = opt(5e-2, "largest training noise std")
    val_every: int = opt(250, "validate every N steps (0: never); the best validated model goes to best.pt")


DEEPBLUR_MODELS = ("zernike", "eigen", "product-convolution")  # = blind.deepblur.psf_model.MODEL_KINDS
DEEPBLUR_FEATURES = ("image", "image+spectrum", "welch")  # = blind.deepblur.identify.FEATURES
DEEPBLUR_LOSSES = ("gamma", "psf", "both")


@dataclass(kw_only=True)
class DeepblurTrainConfig(LoopConfig):
    """deep-blur's identification network IN (stage identify), then its deblurring network DN (stage deblur).

    The PSF model options (--model, --rank, --family-samples, --grid, --local-model, --optics,
    --psf-size) matter only for a new identification run: the model, eigen basis included, is stored
    in every checkpoint, and stage deblur takes it from --identify-weights.  See
    unblur.blind.deepblur.train for the losses and the data.
    """

    stage: str = opt(help="identify: train IN; deblur: train DN with a frozen IN", choices=("identify", "deblur"))
    out: str | None = opt(None, "run folder (default runs/deepblur_STAGE): last.pt, best.pt")
    data: str | None = opt(None, "folder of training images (default train/train400_gray of the data root)")
    steps: int = opt(20_000, "total optimiser steps")
    batch: int = opt(16, "batch size")
    size: int = opt(64, "crop size of the observed image y")
    psf_size: int = opt(31, "PSF size (pixels)")
    optics: str = opt("1.2,0.6,0.1", "NA,wavelength_um,pixel_um of the Zernike model")
    model: str = opt("zernike", "PSF model that gamma parametrises", choices=DEEPBLUR_MODELS)
    rank: int = opt(8, "number of eigen-PSFs (eigen models)")
    family_samples: int = opt(1000, "Zernike PSFs sampled to compute the eigen-PSFs (eigen models)")
    grid: str = opt("2x2", "GYxGX control points (product-convolution)")
    local_model: str = opt("eigen", "PSF model at each control point (product-convolution)",
                           choices=("eigen", "zernike"))
    eta: float = opt(0.15, "gamma ~ U[-eta, eta] (Zernike: waves)")
    eta_dist: str = opt("fixed", "fixed: gamma ~ U[-eta, eta]; uniform: each image draws eta_i ~ U[0, eta] first "
                        "(all blur levels up to eta are seen)", choices=("fixed", "uniform"))
    alpha_max: float = opt(0.05, "largest Poisson term of the noise variance")
    beta_max: float = opt(0.0225, "largest Gaussian variance (0.0225 = std 0.15)")
    lr_schedule: str = opt("constant", "constant: --lr throughout; cosine: warm-up over --warmup steps, then cosine "
                           "decay to --lr-min at --steps", choices=("cosine", "constant"))
    lr_min: float = opt(0.0, "final learning rate of the cosine schedule")
    loss: str = opt("gamma", "identification loss: gamma MSE (the paper's), relative PSF error, or their sum",
                    choices=DEEPBLUR_LOSSES)
    psf_scales: str = opt("1", "block sizes of the PSF loss pyramid, e.g. 1,2,4 (--loss psf/both)")
    features: str = opt("image", "IN input features (stage identify)", choices=DEEPBLUR_FEATURES)
    width: int = opt(16, "first-stage width of the networks")
    identify_weights: str | None = opt(None, "IN weights (stage deblur)")
    cg_iters: int = opt(20, "CG iterations per data-prox solve (stage deblur)")
    lam: float = opt(0.05, "initial DR weight lambda of every step (learned; stage deblur)")
    ckpt_minutes: float = opt(3.0, "write last.pt every N minutes (atomic; also at the end and on Ctrl-C)",
                              aliases=("--checkpoint-minutes",))


TRAINERS = {
    "denoiser": (DenoiserTrainConfig, "unblur.training.denoiser", "train_denoiser"),
    "kernel-denoiser": (KernelTrainConfig, "unblur.training.kernel_denoiser", "train_kernel_denoiser"),
    "deepblur": (DeepblurTrainConfig, "unblur.blind.deepblur.train", "train_deepblur"),
}
"""``unblur train WHAT`` -> (config class, trainer module, trainer function ``f(cfg, resume=None)``)."""


def _base_type(t):
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if args else t


def add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One option per field of ``cls``: ``--name-with-dashes``, its help and the dataclass default."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        meta, typ = f.metadata, _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        text = meta.get("help", "")
        if typ is bool:
            if default is True:
                parser.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=f"no {text}")
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=text)
            continue
        kw = {"dest": f.name, "help": text}
        if default is MISSING:
            kw["required"] = True
        else:
            kw["default"] = default
            if default is not None:
                shown = ",".join(map(str, default)) if isinstance(default, list) else default
                kw["help"] = f"{text} (default {shown})"
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        kw["type"] = str if "parse" in meta else typ
        parser.add_argument(flag, *meta.get("aliases", ()), **kw)


def config_from_args(cls, args: argparse.Namespace):
    """The config ``cls`` from parsed options (fields with a ``parse`` function are converted here)."""
    values = {}
    for f in fields(cls):
        v = getattr(args, f.name)
        values[f.name] = f.metadata["parse"](v) if "parse" in f.metadata and v is not None else v
    return cls(**values)
