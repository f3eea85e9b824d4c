"""Training loops for unblur's learned priors (``unblur train denoiser`` / ``unblur train kernel-denoiser``)."""

from .denoiser import DenoiserTrainConfig, train_denoiser
from .kernel_denoiser import KernelTrainConfig, train_kernel_denoiser

__all__ = ["DenoiserTrainConfig", "KernelTrainConfig", "train_denoiser", "train_kernel_denoiser"]
