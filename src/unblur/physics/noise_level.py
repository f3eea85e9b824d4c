"""Noise level of an image without a model of its content: the wavelet MAD estimate of a Gaussian sigma.

numpy only (no torch import), so that numpy methods such as ``l0`` start quickly; also available as
:func:`unblur.physics.noise.estimate_noise_sigma`.
"""

from __future__ import annotations

import numpy as np

from ..errors import require


def _finest_detail(a: np.ndarray, axes) -> np.ndarray:
    """Finest Haar detail in every one of ``axes``: ``(a[0::2] - a[1::2]) / sqrt(2)`` along each axis."""
    for ax in axes:
        n = a.shape[ax] // 2 * 2
        if n < 2:
            continue
        even = np.take(a, np.arange(0, n, 2), axis=ax)
        odd = np.take(a, np.arange(1, n, 2), axis=ax)
        a = (even - odd) / np.sqrt(2.0)
    return a


def estimate_noise_sigma(image, *, channel_axis: int | None = None,
                         spatial_axes: tuple[int, ...] | None = None) -> float:
    """Standard deviation of additive white Gaussian noise, in the image's units.

    Wavelet MAD estimator (Donoho 1995; Donoho & Johnstone 1994): ``sigma = median(|d - median(d)|) /
    0.6745`` over the coefficients ``d`` of the finest orthonormal Haar detail subband that is
    high-pass in *every* spatial axis -- HH (diagonal) for an image, HHH for a stack.  Orthonormality
    keeps white noise at ``sigma`` in that band, while smooth image content mostly cancels.

    Parameters
    ----------
    image : ndarray or Tensor
        numpy (or a torch tensor of fewer than 4 axes): 2-D gray ``(H, W)``; a 3-D array is a stack
        ``(Z, Y, X)`` with all axes spatial unless ``channel_axis`` is given (colour ``(H, W, C)``:
        ``channel_axis=-1``).  torch tensors of 4 or more axes are ``(B, C, *spatial)``.
    channel_axis : int, optional
        numpy: the channel axis; every other axis is spatial.
    spatial_axes : tuple of int, optional
        numpy: the spatial axes explicitly; every other axis indexes separate images.

    Returns
    -------
    float
        The mean of the sigmas estimated on each channel (each ``(b, c)`` for torch) separately.  The
        mean of per-channel estimates, not an estimate on the channel mean, which would shrink
        independent noise by ``sqrt(C)``.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.full((128, 128, 3), 0.5) + 0.03 * np.random.default_rng(0).standard_normal((128, 128, 3))
    >>> round(estimate_noise_sigma(rgb, channel_axis=-1), 2)
    0.03
    """
    is_tensor = hasattr(image, "detach")  # a torch tensor, recognised without importing torch
    torch_batch = is_tensor and image.ndim >= 4
    a = image.detach().cpu().double().numpy() if is_tensor else image
    a = np.asarray(a, dtype=np.float64)
    require(channel_axis is None or spatial_axes is None, "both channel_axis and spatial_axes given",
            "give one of them")
    require(a.ndim >= 1, "cannot estimate noise on a scalar", "give an image")
    if torch_batch:
        require(channel_axis is None and spatial_axes is None, "torch tensors are (B, C, *spatial)",
                "do not pass channel_axis or spatial_axes with a (B, C, ...) tensor")
        spatial = tuple(range(2, a.ndim))
    elif spatial_axes is not None:
        spatial = tuple(sorted({int(ax) % a.ndim for ax in spatial_axes}))
    elif channel_axis is not None:
        require(a.ndim >= 2, f"channel_axis given for a {a.ndim}-D array", "give a (H, W, C) image")
        ca = int(channel_axis) % a.ndim
        spatial = tuple(ax for ax in range(a.ndim) if ax != ca)
    else:
        spatial = tuple(range(a.ndim))
    require(any(a.shape[ax] >= 2 for ax in spatial), f"no spatial axis of length >= 2 in shape {a.shape}",
            "give an image of at least 2 pixels")
    other = tuple(ax for ax in range(a.ndim) if ax not in spatial)
    a = np.moveaxis(a, other + spatial, range(a.ndim))
    d = _finest_detail(a, range(len(other), a.ndim)).reshape(int(np.prod(a.shape[:len(other)])), -1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return float(np.mean(mad / 0.6745))


def estimate_noise_sigma_observed(y, mask) -> float:
    """:func:`estimate_noise_sigma` of a torch batch ``y`` ``(B, C, *spatial)`` over the observed pixels only:
    the finest Haar detail cells whose pixels all have ``mask`` 1 (missing data, NaN borders), mean over
    ``(B, C)``."""
    a = y.detach().cpu().double().numpy()
    m = np.broadcast_to(mask.detach().cpu().numpy() > 0, a.shape)
    axes = range(2, a.ndim)
    d = _finest_detail(a, axes)
    for ax in axes:  # a cell is observed when every pixel in it is
        n = m.shape[ax] // 2 * 2
        if n >= 2:
            m = np.take(m, np.arange(0, n, 2), axis=ax) & np.take(m, np.arange(1, n, 2), axis=ax)
    sigmas = []
    for dv, mv in zip(d.reshape(-1, *d.shape[2:]), m.reshape(-1, *m.shape[2:])):
        v = dv[mv]
        if v.size >= 16:
            sigmas.append(np.median(np.abs(v - np.median(v))) / 0.6745)
    require(bool(sigmas), "too few observed pixels to estimate the noise level", "give noise_sigma")
    return float(np.mean(sigmas))

