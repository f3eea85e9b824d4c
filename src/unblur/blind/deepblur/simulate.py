"""Training/evaluation pairs for deep-blur: random gray crops, random gamma, valid blur, Poisson-Gaussian noise.

Forward model (paper section 2): ``y = A(gamma) x + sqrt(alpha A(gamma) x + beta) * n``, ``n ~ N(0, I)``,
images in [0, 1], ``A(gamma)`` the PSF model's operator with the *valid* boundary (the object crop is
larger than ``y`` by ``k - 1`` pixels, so there is no artificial boundary), ``gamma ~ U[-eta, eta]^K``.
For a convolution model ``A(gamma)`` is the convolution by ``h(gamma)``; for a product-convolution
model every control point draws its own coefficients, so each image gets its own space-varying blur
(PSFs interpolated between the control points, :meth:`.psf_model.PSFModel.operator`).

Noise units -- our interpretation: ``alpha`` is the Poisson gain term of the variance (``alpha`` in
[0, 0.05] gives a shot-noise standard deviation up to 0.22 at intensity 1), as in
:class:`unblur.physics.noise.PoissonGaussianNoise`.  For the Gaussian part the paper quotes
``beta`` in [0, 0.15]; read as a *variance* that is a standard deviation of 0.39 on [0, 1] images, which
drowns most structure, so we read 0.15 as the largest Gaussian *standard deviation*: ``beta = s^2``
with ``s ~ U[0, sqrt(beta_max)]`` and ``beta_max = 0.15^2 = 0.0225`` by default.  Both maxima are
options; ``alpha`` is drawn uniformly in [0, alpha_max].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import require
from ...io import read_image


def load_gray_images(folder, min_size: int) -> list[torch.Tensor]:
    """All images of ``folder`` as gray float32 tensors in [0, 1] (colour averaged), at least ``min_size``."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".bmp"))
    out = []
    for f in files:
        im = np.asarray(read_image(f), dtype=np.float32)
        if im.ndim == 3:
            im = im.mean(-1)
        if min(im.shape) >= min_size:
            out.append(torch.from_numpy(np.ascontiguousarray(im)))
    require(len(out) > 0, f"no gray image of at least {min_size} px in {folder}", "use smaller crops or another folder")
    return out


def random_crops(images, n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 1, size, size)`` random crops with random flips/90-degree rotations."""
    crops = []
    for _ in range(n):
        im = images[int(torch.randint(len(images), (1,), generator=g))]
        i = int(torch.randint(im.shape[0] - size + 1, (1,), generator=g))
        j = int(torch.randint(im.shape[1] - size + 1, (1,), generator=g))
        c = im[i:i + size, j:j + size]
        c = torch.rot90(c, int(torch.randint(4, (1,), generator=g)))
        crops.append(c.flip(-1) if bool(torch.randint(2, (1,), generator=g)) else c)
    return torch.stack(crops)[:, None]


def sample_gamma(n: int, k: int, eta: float, g: torch.Generator) -> torch.Tensor:
    return (2 * torch.rand(n, k, generator=g) - 1) * eta


def add_noise(z: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``z + sqrt(alpha z + beta) n`` with per-image ``alpha, beta`` of shape ``(B,)``."""
    var = (alpha.view(-1, 1, 1, 1) * z).clamp_min(0) + beta.view(-1, 1, 1, 1)
    return z + var.sqrt() * torch.randn(z.shape, generator=g, dtype=z.dtype).to(z.device)


def sample_noise_levels(n: int, alpha_max: float, beta_max: float, g: torch.Generator):
    alpha = torch.rand(n, generator=g) * alpha_max
    beta = (torch.rand(n, generator=g) * beta_max**0.5) ** 2
    return alpha, beta


def make_batch(images, psf_model, n: int, size: int, eta: float, alpha_max: float, beta_max: float,
               g: torch.Generator, device="cpu") -> dict:
    """A batch: object ``x`` (size + k - 1), data ``y`` (size), ``gamma``, ``psf`` ``(n, M, k, k)``, ``alpha``, ``beta``."""
    k = psf_model.psf_size
    x = random_crops(images, n, size + k - 1, g).to(device)
    gamma = sample_gamma(n, psf_model.n_params, eta, g).to(device)
    with torch.no_grad():
        psf = psf_model(gamma)
        z = psf_model.operator(psf, (size, size), "valid").A(x)
    alpha, beta = sample_noise_levels(n, alpha_max, beta_max, g)
    y = add_noise(z, alpha.to(device), beta.to(device), g)
    return {"x": x, "y": y, "gamma": gamma, "psf": psf, "alpha": alpha, "beta": beta}
