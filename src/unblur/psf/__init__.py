"""PSF models and PSF utilities.

``unblur.psf.core`` holds validation/normalisation (``prepare_psf``) and centring.
"""

from .core import center_of_mass, prepare_psf, shift_to_center

__all__ = ["center_of_mass", "prepare_psf", "shift_to_center"]
