"""Networks and denoisers.  Every prior is a :class:`~unblur.models.base.Denoiser` ``D(x, sigma)``.

Entry points: :func:`load_prior` (image priors: shipped unblur network or a checkpoint path) and
:func:`load_kernel_prior` (blur-kernel prior for Fast Diffusion EM).
"""

from .base import Denoiser, GaussianSmoother, as_sigma
from .checkpoints import load_kernel_prior, load_prior, save_unblur
from .dncnn import KairDnCNN, ScicoDnCNN
from .drunet import DRUNet
from .kernel_prior import KernelDenoiser
from .unblur_net import UnblurDenoiser

__all__ = ["Denoiser", "GaussianSmoother", "as_sigma", "load_prior", "load_kernel_prior", "save_unblur",
           "KairDnCNN", "ScicoDnCNN", "DRUNet", "KernelDenoiser", "UnblurDenoiser"]
