"""Fast Diffusion EM and Diffusion EM (Laroche, Almansa, Coupete, WACV 2024): blind deblurring by EM
with a diffusion prior for the image (E-step) and a kernel M-step (:mod:`.mstep`)."""

from .kernel_metrics import reblur_loss
from .mstep import dirac_kernel, m_step

__all__ = ["m_step", "dirac_kernel", "reblur_loss"]
