"""Where a restoration disagrees with the data, and where samplers disagree with each other.

Diffusion samplers (DPS, PiGDM, RL-diffusion, the blind EM samplers) can invent detail that the data
do not support.  Two maps show where:

**Re-blur residual** (:func:`residual_map`).  With the blur model ``A``, data ``y`` and noise standard
deviation ``sigma`` (the image's units), the per-pixel residual of a restoration ``x`` is

    r = (A x - y) / sigma,

which is white ``N(0, 1)`` for the true image under additive Gaussian noise.  Single pixels are too
noisy to read, so the map shows the window sum of ``r`` over a ``w x w`` window (``w = window``),
divided by ``w``:

    r_w(i) = (1 / w) sum_{j in window(i)} r(j),

still ``N(0, 1)`` per pixel when ``r`` is white (the sum of ``w^2`` unit variances, divided by ``w``),
while a systematic disagreement ``b`` (in units of ``sigma``) over the window grows to ``w b``.  A value
of ``|r_w| > 3`` (probability 0.27 % for the true image) marks a region where the restoration is not
what the data say: invented or removed structure, shifted edges, off-colour patches.  Colour images
get one map per channel (an off-colour patch has opposite signs in two channels).

**Seed spread** (:func:`seed_spread`).  The per-pixel standard deviation over samples drawn with
different seeds (same data, same parameters): large where the prior, not the data, decides.

Methods that sample (``dps``, ``pigdm``, ``rl-diffusion``; the blind ``fast-em`` and ``diffusion-em``, whose
map is that of the returned image and kernel, :func:`blind_residual_info`) return both on request:
``diagnostics=True`` adds ``info["residual_map"]`` and its summary numbers; ``seeds=S`` (S >= 2) also runs the seeds
``seed + 1 .. seed + S - 1`` and adds ``info["seed_spread"]`` and its mean (the returned image is the
sample of ``seed``, the same as with ``seeds=1``; with ``average=True`` the mean of the ``S`` samples, a
Monte-Carlo estimate of the posterior mean: details that the samples do not share average out).  Summary
numbers: :func:`summarize`.

Example
-------
>>> import numpy as np
>>> from unblur.physics.convolution import convolve
>>> import torch
>>> rng = np.random.default_rng(0)
>>> x = rng.random((64, 64)).astype(np.float32)
>>> psf = np.ones((5, 5), np.float32) / 25
>>> y = convolve(torch.from_numpy(x)[None, None], torch.from_numpy(psf), "replicate")[0, 0].numpy()
>>> y = y + 0.01 * rng.standard_normal(y.shape).astype(np.float32)
>>> r = residual_map(y, x, psf, 0.01, boundary="replicate")
>>> bool(abs(r.mean()) < 0.2 and 0.7 < r.std() < 1.3)
True
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import require

#: threshold on ``|r_w|`` that counts a pixel as disagreeing with the data (3 standard deviations)
OUTLIER_LEVEL = 3.0


def _box_mean(r: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window x window`` neighbourhood (replicate-padded) of a ``(B, C, H, W)`` tensor."""
    if window <= 1:
        return r
    lo, hi = (window - 1) // 2, window // 2
    rp = torch.nn.functional.pad(r, (lo, hi, lo, hi), mode="replicate")
    return torch.nn.functional.avg_pool2d(rp, window, stride=1)


def residual_tensor(y: torch.Tensor, op, x: torch.Tensor, sigma: float, window: int = 7) -> torch.Tensor:
    """``r_w`` (module docstring) for data ``y`` ``(B, C, H, W)``, operator ``op`` and object ``x``.

    ``x`` is on the operator's object grid (larger than ``y`` for ``boundary="valid"``), in ``y``'s units.
    """
    require(sigma > 0, f"the residual map needs a noise sigma > 0, got {sigma}",
            "give noise_sigma (image units) or use data with noise")
    require(window >= 1, f"window must be >= 1, got {window}")
    with torch.no_grad():
        r = (op.A(x.to(y)) - y) / sigma
        return _box_mean(r, window) * window


def residual_map(y, restored, psf_or_operator, noise_sigma: float | None = None, *,
                 boundary: str = "replicate", window: int = 7) -> np.ndarray:
    """Re-blur residual ``(A x - y) / sigma``, window-summed (module docstring), in the image's layout.

    Parameters
    ----------
    y : array
        Blurred data, gray ``(H, W)`` or colour ``(H, W, C)``, in the image's units.
    restored : array
        The restoration ``x``, same layout as ``y`` (for ``boundary="valid"`` the larger object that
        the method estimated; a cropped restoration cannot be re-blurred exactly there).
    psf_or_operator : array or LinearOperator
        The PSF used for the restoration (normalised to sum 1) or the blur operator itself.
    noise_sigma : float, optional
        Noise standard deviation in the image's units; estimated from ``y`` if omitted
        (:func:`unblur.physics.noise.estimate_noise_sigma`).
    boundary : str
        Blur boundary model of ``A`` (as the restoration's ``boundary``); ignored for an operator.
    window : int
        Side of the smoothing window in pixels (1: the raw per-pixel residual).

    Returns
    -------
    array
        ``r_w`` in ``y``'s layout (float32): ~N(0, 1) per pixel where the restoration agrees with the data.
    """
    from .physics.noise import estimate_noise_sigma
    from .solvers.problem import setup_problem

    y_np = np.asarray(y, dtype=np.float32)
    x_np = np.asarray(restored, dtype=np.float32)
    require(x_np.ndim == y_np.ndim, f"restored has {x_np.ndim} axes, the data {y_np.ndim}",
            "give the restoration in the data's layout")
    channel_axis = -1 if y_np.ndim == 3 else None
    problem = setup_problem(y_np, psf_or_operator, boundary, channel_axis=channel_axis, negative_image="keep")
    op = problem.op
    xb = torch.from_numpy(np.moveaxis(x_np, -1, 0)[None] if x_np.ndim == 3 else x_np[None, None].copy())
    require(tuple(xb.shape[2:]) == tuple(op.in_shape),
            f"restored has spatial shape {tuple(xb.shape[2:])}, the blur model's object is {tuple(op.in_shape)}",
            "with boundary='valid' pass the method's own map (diagnostics=True) or use another boundary")
    sigma = float(noise_sigma) if noise_sigma is not None else estimate_noise_sigma(y_np, channel_axis=channel_axis)
    r = residual_tensor(problem.y, op, xb.contiguous(), sigma, window)
    return problem.layout.to_output(r)


def seed_spread(samples) -> np.ndarray:
    """Per-pixel standard deviation over samples (axis 0), with ``ddof=1``.

    Parameters
    ----------
    samples : array or sequence of arrays
        ``S >= 2`` restorations of the same data (different seeds), each of the same shape.

    Returns
    -------
    array
        Standard deviation per pixel, the shape of one sample (float32): 0 where all samples agree.
    """
    s = np.stack([np.asarray(a, dtype=np.float64) for a in samples])
    require(s.shape[0] >= 2, f"the seed spread needs at least 2 samples, got {s.shape[0]}", "run with seeds >= 2")
    return s.std(axis=0, ddof=1).astype(np.float32)


def summarize(residual: np.ndarray | None = None, spread: np.ndarray | None = None) -> dict:
    """Summary numbers of the maps.

    ``residual_outlier_share``: share of pixels (all channels) with ``|r_w| > 3`` (0.0027 expected for
    the true image); ``residual_mean_abs``: mean ``|r_w|`` (0.80 expected for the true image, the mean of
    ``|N(0, 1)|``); ``seed_spread_mean``: mean per-pixel spread (image units).
    """
    out = {}
    if residual is not None:
        a = np.abs(np.asarray(residual, dtype=np.float64))
        out["residual_outlier_share"] = float((a > OUTLIER_LEVEL).mean())
        out["residual_mean_abs"] = float(a.mean())
    if spread is not None:
        out["seed_spread_mean"] = float(np.mean(spread))
    return out


def run_seeds(func, image, psf, *, seed: int | None, seeds: int, diagnostics: bool, kwargs: dict,
              average: bool = False):
    """Run a sampling method for ``seeds`` seeds and add the seed spread (module docstring).

    ``func(image, psf, seed=s, seeds=1, diagnostics=..., **kwargs)`` returns ``(restored, info)``; the
    seeds are ``seed, seed + 1, ...`` (random ones when ``seed`` is None).  The returned image and info
    are those of the first seed, with ``seed_spread``, ``seed_spread_mean``, ``seeds`` and the totals
    ``time_s`` and ``nfe`` (network evaluations) over the seeds.  With ``average`` the returned image is
    the per-pixel mean of the samples instead (a Monte-Carlo estimate of the posterior mean,
    ``info["averaged"] = S``); the residual map is then the mean of the samples' maps, which is the map of
    the mean (the residual is linear in the image).
    """
    require(int(seeds) == seeds and seeds >= 2, f"seeds must be an integer >= 2 here, got {seeds}")
    base = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**62))
    used = [base + i for i in range(int(seeds))]
    outs, maps, first, total, nfe = [], [], None, 0.0, 0
    for i, s in enumerate(used):
        out, info = func(image, psf, seed=s, seeds=1, diagnostics=diagnostics and (average or i == 0), **kwargs)
        outs.append(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out)
        if diagnostics and average:
            maps.append(np.asarray(info["residual_map"], np.float64))
        total += float(info.get("time_s", 0.0))
        nfe += int(info.get("nfe", 0))
        if i == 0:
            first = (out, info)
    out, info = first
    spread = seed_spread(outs)
    info.update(seed_spread=spread, seeds=used, time_s=total, **summarize(spread=spread))
    if "nfe" in info:
        info["nfe"] = nfe
    if average:
        mean = np.mean(np.stack([np.asarray(o, np.float64) for o in outs]), axis=0).astype(outs[0].dtype)
        out = torch.from_numpy(mean).to(out) if isinstance(out, torch.Tensor) else mean
        info["averaged"] = len(used)
        if maps:
            r = np.mean(maps, axis=0).astype(np.float32)
            info.update(residual_map=r, **summarize(residual=r))
    return out, info


def residual_info(run, x01: torch.Tensor, window: int = 7, sigma_floor: float = 1e-4) -> dict:
    """``residual_map`` (data layout) and its summary for a learned solver's run (``unblur.algorithms.common.Run``).

    ``x01`` is the [0, 1] estimate on the object grid; it is clipped to [0, 1] as the returned image is.
    ``residual_sigma`` is the sigma used: the run's (given or estimated), at least ``sigma_floor``.
    """
    sigma = max(float(run.sigma), sigma_floor)
    r = run.problem.layout.to_output(residual_tensor(run.y, run.op, x01.detach().clamp(0, 1), sigma, window))
    return {"residual_map": r, "residual_sigma": sigma, "residual_window": window, **summarize(residual=r)}


def blind_residual_info(y, restored, kernel, noise_sigma: float, window: int = 7, sigma_floor: float = 1e-4) -> dict:
    """``residual_map`` and its summary for a blind result ``(restored, kernel)`` of data ``y``.

    The blur model is the ``valid`` one with the estimated kernel: ``restored`` (the image's shape) is the
    object and ``y``'s interior, farther than the kernel's radius from the border, its valid blur.  The map has
    ``y``'s layout; the border band, where no boundary rule is assumed, is NaN (as in the discrepancy of
    :func:`unblur.blind.checks.blind_checks`).  The summary numbers are those of the interior.
    """
    y = np.asarray(y, np.float32)
    k = np.asarray(kernel, np.float32)
    kh, kw = k.shape[:2]
    h, w = y.shape[0] - kh + 1, y.shape[1] - kw + 1
    require(h > 0 and w > 0, f"the image {y.shape[:2]} is smaller than the kernel {k.shape[:2]}")
    sigma = max(float(noise_sigma), sigma_floor)
    r0, c0 = kh // 2, kw // 2
    inner = residual_map(y[r0:r0 + h, c0:c0 + w], restored, k, sigma, boundary="valid", window=window)
    full = np.full(y.shape, np.nan, np.float32)
    full[r0:r0 + h, c0:c0 + w] = inner
    return {"residual_map": full, "residual_sigma": sigma, "residual_window": window, **summarize(residual=inner)}


__all__ = ["residual_map", "residual_tensor", "residual_info", "blind_residual_info", "seed_spread", "summarize", "run_seeds", "OUTLIER_LEVEL"]
