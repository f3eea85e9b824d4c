"""Deep-image-prior blind deconvolution: SelfDeblur (Ren et al. 2020) and VDIP (Huo et al. 2023).

Modules: :mod:`.generators` (the two untrained networks), :mod:`.losses` (MSE, 1-SSIM, the VDIP
evidence lower bound), :mod:`.fit` (the one fitting loop shared by every variant, its stabilisers
and presets), :mod:`.metrics` (PSNR-GT, PSNR-NB, ISNR, kernel error up to shift), :mod:`.api`
(numpy entry points :func:`selfdeblur` and :func:`vdip`).
"""

from .api import selfdeblur, vdip

__all__ = ["selfdeblur", "vdip"]
