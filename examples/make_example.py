"""Regenerate the bundled example (examples/blurred.tif, examples/psf.tif, examples/sharp.png).

The sharp image is scikit-image's ``camera`` test image (public domain, shipped inside the
scikit-image package), cropped to 256x256.  It is blurred with a 25x25 Gaussian PSF (sigma 2.5 px,
reflect boundary) and Gaussian noise of sigma 0.01 (image in [0, 1]) with seed 0.

    python examples/make_example.py
"""

from pathlib import Path

import numpy as np
import torch
from skimage import data

from unblur.io import write_image
from unblur.physics import Convolution, GaussianNoise

here = Path(__file__).parent
sharp = data.camera()[100:356, 130:386].astype(np.float32) / 255.0
r = np.arange(25) - 12
psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 2.5**2))
psf = (psf / psf.sum()).astype(np.float32)
op = Convolution(torch.from_numpy(psf), sharp.shape, "reflect")
blurred = GaussianNoise(0.01)(op.A(torch.from_numpy(sharp)[None, None]), seed=0)[0, 0].numpy()
write_image(here / "blurred.tif", blurred, overwrite=True)
write_image(here / "psf.tif", psf, overwrite=True)
write_image(here / "sharp.png", sharp, overwrite=True)
print("wrote", here / "blurred.tif", here / "psf.tif", here / "sharp.png")
