"""PSF models and PSF utilities.

* ``unblur.psf.core``: validation/normalisation (``prepare_psf``) and centring.
* ``unblur.psf.kernels``: Gaussian (anisotropic, rotated), disk, box, line motion; path rasterisation.
* ``unblur.psf.motion``: random camera-shake kernels (Gaussian-process and physiological
  trajectories), ``random_motion_kernels`` / ``MotionKernelSampler`` for training.
* ``unblur.psf.zernike``: pupil/Zernike diffraction PSFs, 2-D and 3-D widefield, differentiable
  ``PupilPSF`` (``gamma (B, K) -> (B, 1, k, k)``), deep-blur preset.
* ``unblur.psf.eigen``: eigen-PSF (PCA) bases.
* ``unblur.psf.beads``: PSF measured from bead images.
"""

from .beads import psf_from_beads
from .core import center_of_mass, prepare_psf, shift_to_center
from .eigen import EigenPSFBasis, eigen_psf_basis
from .kernels import box_kernel, disk_kernel, gaussian_kernel, line_motion_kernel, rasterize_paths
from .motion import MotionKernelSampler, motion_kernel, random_motion_kernels
from .zernike import (DEEPBLUR_NOLL, PupilPSF, diffraction_psf, random_zernike_psfs, sample_zernike_coefficients,
                      widefield_psf, zernike, zernike_psf)

__all__ = ["center_of_mass", "prepare_psf", "shift_to_center",
           "gaussian_kernel", "disk_kernel", "box_kernel", "line_motion_kernel", "rasterize_paths",
           "random_motion_kernels", "motion_kernel", "MotionKernelSampler",
           "PupilPSF", "zernike_psf", "random_zernike_psfs", "sample_zernike_coefficients", "diffraction_psf",
           "widefield_psf", "zernike", "DEEPBLUR_NOLL",
           "EigenPSFBasis", "eigen_psf_basis", "psf_from_beads"]
