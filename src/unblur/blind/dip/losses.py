"""Losses of the deep-image-prior blind methods (torch, differentiable).

* :func:`mse` -- ``mean((y - k * x)^2)``, SelfDeblur's first 1000 iterations.
* :func:`ssim_loss` -- ``1 - SSIM(y, k * x)`` with the 11x11 Gaussian window (sigma 1.5) of Wang et al.
  (2004), computed on the valid part of the window filtering (no padding), SelfDeblur after 1000
  iterations.
* :func:`elbo` -- VDIP's negative evidence lower bound (Huo et al. 2023).  The image posterior is a
  per-pixel Gaussian ``q(x) = N(mu, diag(s^2))`` given by the image network; with one reparameterised
  sample ``x = mu + s * eps`` (eps ~ N(0, 1)) the loss per pixel is::

      E_q[ ||y - k*x||^2 + w_d sum_{d in {h, v}} ||D_d y - k*D_d x||^2 ] / (2 sigma_n^2)
        + lambda * E_q[ prior(x) ]  -  mean(log s)

  multiplied through by ``2 sigma_n^2`` so that it is on the scale of the MSE (``lambda`` absorbs the factor) (``sigma_n`` is the
  noise standard deviation, estimated from the image).  The last term is the Gaussian entropy (up to
  a constant).  Priors (negative log, per pixel):

  - ``"sparse"`` (VDIP-Sparse): hyper-Laplacian on the gradients, ``|D_h x|^0.8 + |D_v x|^0.8``
    (``eps``-smoothed);
  - ``"extreme"`` (VDIP-Extreme): extreme-channel sparsity, ``|dark(x)| + |1 - bright(x)|`` with the
    dark/bright channels the minimum/maximum over ``patch x patch`` windows (Pan et al. 2016, Yan et
    al. 2017), plus the sparse gradient term at a tenth of the weight.

  The weights ``lambda`` and ``w_d`` are this implementation's choices (the paper's exact constants are
  not reproduced); they are parameters of :class:`ELBO`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRIORS = ("sparse", "extreme")


def blur_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid convolution (not correlation) of ``x (B, C, H+k-1, W+k-1)`` with a 2-D ``kernel``.

    ``y[i] = sum_m k[m] x[i + (k - 1) - m]``, which is :class:`unblur.physics.convolution.Convolution`
    with ``boundary="valid"`` (object pixel ``i + k - 1 - k//2`` is aligned with image pixel ``i``).
    """
    w = torch.flip(kernel, dims=(-2, -1))[None, None].to(x.dtype)
    if x.shape[1] > 1:
        return F.conv2d(x, w.expand(x.shape[1], 1, *w.shape[-2:]), groups=x.shape[1])
    return F.conv2d(x, w)


def mse(y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    return torch.mean((y - y_hat) ** 2)


def _gauss_window(size=11, sigma=1.5, dtype=torch.float32):
    r = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of two ``(B, C, H, W)`` tensors, differentiable.

    Gaussian window (``size`` taps, standard deviation ``sigma`` pixels), population covariance,
    ``C1 = (0.01 data_range)^2``, ``C2 = (0.03 data_range)^2``, averaged over the positions where the
    window fits (valid filtering) and over channels: the value of
    ``skimage.metrics.structural_similarity(a, b, data_range=data_range, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`` (and ``channel_axis`` for colour) with the defaults.
    """
    g = _gauss_window(size, sigma, a.dtype).to(a.device)
    c = a.shape[1]
    gh = g.view(1, 1, 1, -1).expand(c, 1, 1, size)
    gv = g.view(1, 1, -1, 1).expand(c, 1, size, 1)

    def filt(t):
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    C1, C2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ua, ub = filt(a), filt(b)
    vaa, vbb, vab = filt(a * a) - ua**2, filt(b * b) - ub**2, filt(a * b) - ua * ub
    s = ((2 * ua * ub + C1) * (2 * vab + C2)) / ((ua**2 + ub**2 + C1) * (vaa + vbb + C2))
    return s.mean()


def ssim_loss(y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    return 1 - ssim(y_hat, y)


def grad_h(x):
    return x[..., :, 1:] - x[..., :, :-1]


def grad_v(x):
    return x[..., 1:, :] - x[..., :-1, :]


def sparse_prior(x: torch.Tensor, p: float = 0.8, eps: float = 1e-4) -> torch.Tensor:
    """Mean hyper-Laplacian penalty ``|D x|^p`` over both gradient directions."""
    return ((grad_h(x) ** 2 + eps) ** (p / 2)).mean() + ((grad_v(x) ** 2 + eps) ** (p / 2)).mean()


def dark_channel(x: torch.Tensor, patch: int = 15) -> torch.Tensor:
    """Minimum over channels and ``patch x patch`` windows (``-maxpool(-x)``, same size, replicate edges)."""
    m = x.amin(dim=1, keepdim=True)
    p = patch // 2
    return -F.max_pool2d(F.pad(-m, (p, p, p, p), mode="replicate"), patch, stride=1)


def bright_channel(x: torch.Tensor, patch: int = 15) -> torch.Tensor:
    m = x.amax(dim=1, keepdim=True)
    p = patch // 2
    return F.max_pool2d(F.pad(m, (p, p, p, p), mode="replicate"), patch, stride=1)


def extreme_prior(x: torch.Tensor, patch: int = 15) -> torch.Tensor:
    """Extreme-channel sparsity: mean ``|dark(x)| + |1 - bright(x)|`` plus a tenth of :func:`sparse_prior`."""
    return dark_channel(x, patch).abs().mean() + (1 - bright_channel(x, patch)).abs().mean() + 0.1 * sparse_prior(x)


class ELBO:
    """VDIP's negative ELBO (see module docstring) for a network output ``(1, 2, H', W')``.

    Channel 0 is the mean through a sigmoid, channel 1 the standard deviation through
    ``softplus(raw - 4)`` (starts near 0.018).  ``noise_sigma`` is the image-noise sigma in [0, 1]
    units (floored at 0.005 so the entropy term cannot dominate on clean images).
    """

    def __init__(self, prior: str = "sparse", noise_sigma: float = 0.01, prior_weight: float | None = None,
                 grad_weight: float = 1.0, patch: int = 15):
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}")
        self.prior = prior
        self.noise_sigma = float(noise_sigma)
        self.var2 = 2 * max(float(noise_sigma), 0.005) ** 2
        self.prior_weight = prior_weight if prior_weight is not None else (2e-3 if prior == "sparse" else 5e-3)
        self.grad_weight = grad_weight
        self.patch = patch

    def with_noise(self, noise_sigma: float) -> "ELBO":
        """The same ELBO for another noise level (e.g. a downsampled copy of the image)."""
        return ELBO(self.prior, noise_sigma, self.prior_weight, self.grad_weight, self.patch)

    @staticmethod
    def mean_std(out: torch.Tensor):
        return torch.sigmoid(out[:, :1]), F.softplus(out[:, 1:2] - 4.0)

    def __call__(self, out: torch.Tensor, kernel: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        mu, s = self.mean_std(out)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        x = mu + s * eps
        r = blur_valid(x, kernel)
        data = mse(y, r) + self.grad_weight * (mse(grad_h(y), grad_h(r)) + mse(grad_v(y), grad_v(r)))
        pr = sparse_prior(x) if self.prior == "sparse" else extreme_prior(x, self.patch)
        entropy = torch.log(s + 1e-8).mean()
        return data + self.prior_weight * pr - self.var2 * entropy


__all__ = [
    "ELBO",
    "PRIORS",
    "blur_valid",
    "bright_channel",
    "dark_channel",
    "extreme_prior",
    "mse",
    "sparse_prior",
    "ssim",
    "ssim_loss",
]
