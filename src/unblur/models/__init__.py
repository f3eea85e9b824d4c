"""Networks and denoisers.  Every prior is a :class:`~unblur.models.base.Denoiser` ``D(x, sigma)``."""

from .base import Denoiser, as_sigma

__all__ = ["Denoiser", "as_sigma"]
