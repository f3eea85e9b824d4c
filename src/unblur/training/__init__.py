"""Training unblur's networks: one loop (:mod:`.loop`), one config per trainer (:mod:`.config`).

Trainers: :func:`train_denoiser` (image prior), :func:`train_kernel_denoiser` (blur-kernel prior) and
``unblur.blind.deepblur.train.train_deepblur`` (deep-blur's IN and DN).  Importing this package does
not import torch; the trainers are loaded on first use.
"""

from .config import DeepblurTrainConfig, DenoiserTrainConfig, KernelTrainConfig, LoopConfig

__all__ = ["DeepblurTrainConfig", "DenoiserTrainConfig", "KernelTrainConfig", "LoopConfig", "train_denoiser",
           "train_kernel_denoiser"]


def __getattr__(name):
    if name == "train_denoiser":
        from .denoiser import train_denoiser
        return train_denoiser
    if name == "train_kernel_denoiser":
        from .kernel_denoiser import train_kernel_denoiser
        return train_kernel_denoiser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
