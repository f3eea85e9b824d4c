"""Numpy entry points: :func:`selfdeblur` and :func:`vdip` (gray or colour images, one kernel).

Both return ``(restored, info)`` with ``info["kernel"]`` the estimated kernel (numpy, sums to 1) and
``info["seeds"]`` a consistency report when several seeds were run.

* Gray ``(H, W)``: fitted directly.
* Colour ``(H, W, 3)``: converted to YCbCr (ITU-R BT.601, full range); the kernel and the sharp
  luminance come from the blind fit on Y; the chroma channels are deconvolved non-blindly with the
  found kernel (Wiener-Hunt, :func:`unblur.solvers.wiener`, reflect boundary); then back to RGB.
* ``kernel_size=None`` uses the stated rule :func:`estimate_kernel_size`.
* Several seeds: every seed is fitted; the result with the lowest final data misfit
  ``mean((y - k * x)^2)`` is returned and ``info["seeds"]`` reports the spread (pairwise kernel error
  up to shift, per-seed misfit) -- Brozova & Smidl's (2024) consistency check: seeds that disagree
  signal an unreliable estimate.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Literal

import numpy as np
import torch

from ...arrays import resolve_device
from ...errors import InputError, require
from ..checks import attach_checks, check_blind_input, initial_kernel
from ...physics.noise import estimate_noise_sigma
from ...solvers import wiener
from .fit import ELBO, KERNEL_INITS, PRESETS, SelfDeblurObjective, VDIPObjective, fit
from .losses import PRIORS
from ...metrics import kernel_error


def estimate_kernel_size(shape) -> int:
    """Rule used when no kernel size is given: ``2 * floor(min(H, W) / 20) + 1`` (about a tenth of the
    shorter side, made odd), clamped to [7, 31].

    Blind deep-prior methods need the support to cover the blur; a support that is too large costs
    little accuracy (the softmax kernel can be near zero there), a too small one fails, so the rule errs
    large for typical camera shake on 256-pixel images (25 px).
    """
    n = 2 * (int(min(shape[:2])) // 20) + 1
    return int(min(max(n, 7), 31))


def _rgb_to_ycbcr(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, 0.5 + 0.564 * (b - y), 0.5 + 0.713 * (r - y)


def _ycbcr_to_rgb(y, cb, cr):
    r = y + (cr - 0.5) / 0.713
    b = y + (cb - 0.5) / 0.564
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], axis=-1)


def _config(preset, iterations, overrides):
    require(preset in PRESETS, f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    if iterations is not None:
        require(iterations >= 1, f"iterations must be >= 1, got {iterations}")
        f = iterations / cfg.iterations
        cfg = replace(cfg, iterations=int(iterations), switch_iter=round(f * cfg.switch_iter),
                      min_iters=min(cfg.min_iters, int(iterations)),
                      pyramid_iters=tuple(max(1, round(f * n)) for n in cfg.pyramid_iters),
                      warmup_iters=round(f * cfg.warmup_iters))
    given = {k: v for k, v in overrides.items() if v is not None}
    if "kernel_init" in given:
        require(given["kernel_init"] in KERNEL_INITS, f"unknown kernel_init {given['kernel_init']!r}",
                f"use one of {', '.join(KERNEL_INITS)}")
    return replace(cfg, **given)


def _check_image(image, kernel_size, name="selfdeblur"):
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    require(a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3),
            f"image has shape {a.shape}", "give a gray (H, W) or colour (H, W, 3) image")
    require(bool(np.isfinite(a).all()), "image contains NaN or infinite values", "clean the input")
    k = estimate_kernel_size(a.shape) if kernel_size in (None, 0) else int(kernel_size)
    require(k >= 3 and k % 2 == 1, f"kernel_size must be odd and >= 3, got {k}", "use e.g. 25 for camera shake")
    require(min(a.shape[:2]) >= 2 * k + 8, f"image {a.shape[:2]} is too small for a {k}-pixel kernel",
            "use a smaller kernel_size or a larger image")
    lo, hi = float(a.min()), float(a.max())
    require(lo >= -0.05 and hi <= 1.05, f"image values span [{lo:.3g}, {hi:.3g}]",
            "the generators output [0, 1]: scale the image to [0, 1] first")
    notes = check_blind_input(a, k, method=name, stacklevel=5)
    return a, k, notes


def _run(image, kernel_size, make_objective, cfg, seed, seeds, progress, threads, name, init_kernel=None, device=None):
    a, k, notes = _check_image(image, kernel_size, name)
    require(seeds >= 1, f"seeds must be >= 1, got {seeds}")
    dev = resolve_device(device)
    k0 = initial_kernel(init_kernel, k, a, notes=notes)
    t0 = time.perf_counter()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        lum = a if a.ndim == 2 else _rgb_to_ycbcr(a)[0]
        y = torch.from_numpy(np.clip(lum, 0, 1).astype(np.float32))[None, None]
        objective = make_objective(lum)
        k0 = torch.from_numpy(k0) if k0 is not None else None
        runs = [fit(y, k, objective, cfg, seed=seed + i, progress=progress, desc=f"{name} seed {seed + i}",
                    init_kernel=k0, device=dev) for i in range(seeds)]
    finally:
        torch.set_num_threads(old_threads)
    best = min(range(seeds), key=lambda i: runs[i].data_mse)
    r = runs[best]
    if a.ndim == 2:
        restored = r.image
    else:
        _, cb, cr = _rgb_to_ycbcr(a)
        chroma = [np.asarray(wiener(c, r.kernel, boundary="reflect"), np.float32) for c in (cb, cr)]
        restored = np.clip(_ycbcr_to_rgb(r.image, *chroma), 0, 1).astype(np.float32)
    info = {"kernel": r.kernel, "kernel_size": k, "kernel_size_rule": "given" if kernel_size else "2*floor(min(H,W)/20)+1",
            "iterations": r.iterations, "level_iterations": r.level_iterations,
            "refine_iterations": r.refine_iterations, "data_mse": r.data_mse,
            "seed": seed + best, "init_kernel": "random" if init_kernel is None else
            (init_kernel if isinstance(init_kernel, str) else "array"), "device": str(dev or "cpu"),
            "notes": notes, "time_s": time.perf_counter() - t0}
    if seeds > 1:
        pairs = [kernel_error(runs[i].kernel, runs[j].kernel) for i, j in itertools.combinations(range(seeds), 2)]
        info["seeds"] = {"seeds": [seed + i for i in range(seeds)], "data_mse": [q.data_mse for q in runs],
                         "kernel_disagreement_mean": float(np.mean(pairs)),
                         "kernel_disagreement_max": float(np.max(pairs)),
                         "consistent": bool(np.max(pairs) < 0.25)}
        info["all_runs"] = runs
    attach_checks(info, a, restored, r.kernel)
    return restored, info


def selfdeblur(image, kernel_size: int | None = None, *, preset: Literal["fast", "full", "fast-c2f"] = "fast",
               iterations: int | None = None, seed: int = 0, seeds: int = 1,
               kernel_init: Literal["random", "uniform", "no-blur"] | None = None, ssim_switch: bool | None = None,
               beta1: float | None = None, refine_iters: int | None = None, stop_tol: float | None = None,
               init_kernel=None, threads: int | None = None, device: str | None = None, progress: bool = False):
    """SelfDeblur (Ren et al., CVPR 2020): image and kernel generators fitted to one blurred image.

    ``iterations`` rescales the preset: the SSIM switch keeps its fraction (1000/5000, 500/1500,
    200/600) and ``fast-c2f``'s coarse levels and warm-ups their iterations in proportion;
    ``kernel_init``, ``ssim_switch``, ``beta1`` are the stabilisers of Brozova & Smidl (2024), :mod:`.fit`.

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, 3)`` (module docstring).
    kernel_size : int, optional
        Odd kernel support in pixels; if omitted: ``2 * floor(min(H, W) / 20) + 1``, clamped to [7, 31]
        (:func:`estimate_kernel_size`).
    preset : {"fast", "full", "fast-c2f"}
        Recipe: full = the published one (5000 iterations, 128-channel generator; GPU-scale cost),
        fast = the CPU one (small generator, at most 1500 iterations with a kernel-change stop),
        fast-c2f = the CPU one coarse to fine (kernel estimated at 1/4, 1/2, then full resolution).
    iterations : int, optional
        Blind iterations at full resolution (default from the preset; the SSIM switch and fast-c2f's
        coarse levels scale with it).
    seed : int
        Random seed (network weights and noise inputs).
    seeds : int
        Number of seeds to run; the best data fit is kept and a consistency report logged.
    kernel_init : {"random", "uniform", "no-blur"}, optional
        Stabiliser: start of the kernel network (default random; no-blur = pre-fitted to a Dirac).
    ssim_switch : bool, optional
        Stabiliser: switch from MSE to 1 - SSIM (default on).
    beta1 : float, optional
        Stabiliser: Adam first-moment coefficient of the image network (default 0.9).
    refine_iters : int, optional
        Iterations of the non-blind second pass with the kernel fixed (default from the preset).
    stop_tol : float, optional
        Relative kernel change below which the blind stage stops (default from the preset; see
        :mod:`unblur.blind.dip.fit`).
    init_kernel : array or "l0", optional
        Warm start: a kernel (resized to ``kernel_size`` with a note when its size differs) or ``"l0"``
        (the kernel of the ``l0`` method on this image); the kernel network is pre-fitted to it and the
        coarse-to-fine levels are skipped (:func:`unblur.blind.dip.fit.fit`).
    threads : int, optional
        CPU threads for torch (default: torch's choice).
    device : str, optional
        Torch device of the networks and random draws (cpu, cuda, cuda:N, mps, auto; default cpu).
    progress : bool
        Show a progress bar.

    Returns
    -------
    restored : array
        The sharp image, same layout as ``image``.
    info : dict
        ``kernel`` (sums to 1), ``kernel_size``, iterations run, ``data_mse``, ``seed``, ``init_kernel``,
        ``device``, ``notes``, ``checks`` (:func:`unblur.blind.checks.blind_checks`), ``time_s``; with
        several seeds ``seeds`` (consistency report) and ``all_runs``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    >>> restored, info = selfdeblur(y, 7, iterations=4, refine_iters=2)
    >>> restored.shape, info["kernel"].shape
    ((40, 40), (7, 7))
    """
    cfg = _config(preset, iterations, {"kernel_init": kernel_init, "ssim_switch": ssim_switch, "beta1": beta1,
                                           "refine_iters": refine_iters, "stop_tol": stop_tol})
    return _run(image, kernel_size, lambda lum: SelfDeblurObjective(cfg.switch_iter if cfg.ssim_switch else None),
                cfg, seed, seeds, progress, threads, "selfdeblur", init_kernel, device)


def vdip(image, kernel_size: int | None = None, *, prior: Literal["sparse", "extreme"] = "sparse",
         preset: Literal["fast", "full", "fast-c2f"] = "fast", iterations: int | None = None, seed: int = 0,
         seeds: int = 1, pretrain: int | None = None, prior_weight: float | None = None,
         kernel_init: Literal["random", "uniform", "no-blur"] | None = None, ssim_switch: bool | None = None,
         beta1: float | None = None, refine_iters: int | None = None, stop_tol: float | None = None,
         init_kernel=None, threads: int | None = None, device: str | None = None, progress: bool = False):
    """VDIP (Huo et al. 2023): variational deep image prior with a sparse or extreme-channel prior.

    Stages: MSE on the mean for ``pretrain`` iterations, the ELBO up to the SSIM switch, then
    ``1 - SSIM`` on the mean, then the non-blind pass.  The noise sigma in the ELBO is estimated from
    the image (wavelet MAD).

    Parameters
    ----------
    image : array
        Blurred image in [0, 1], gray ``(H, W)`` or colour ``(H, W, 3)`` (module docstring).
    prior : {"sparse", "extreme"}
        Image prior of the ELBO: sparse gradients or the extreme (dark and bright) channels (:mod:`.losses`).
    kernel_size : int, optional
        Odd kernel support in pixels; if omitted: ``2 * floor(min(H, W) / 20) + 1``, clamped to [7, 31]
        (:func:`estimate_kernel_size`).
    preset : {"fast", "full", "fast-c2f"}
        Recipe: full = the published one (5000 iterations, 128-channel generator; GPU-scale cost),
        fast = the CPU one (small generator, at most 1500 iterations with a kernel-change stop),
        fast-c2f = the CPU one coarse to fine (kernel estimated at 1/4, 1/2, then full resolution).
    iterations : int, optional
        Blind iterations at full resolution (default from the preset; the SSIM switch and fast-c2f's
        coarse levels scale with it).
    seed : int
        Random seed (network weights and noise inputs).
    seeds : int
        Number of seeds to run; the best data fit is kept and a consistency report logged.
    pretrain : int, optional
        MSE iterations before the ELBO (default 10 % of the iterations).
    prior_weight : float, optional
        Weight of the prior term in the ELBO (default 2e-3 for sparse, 5e-3 for extreme).
    kernel_init : {"random", "uniform", "no-blur"}, optional
        Stabiliser: start of the kernel network (default random; no-blur = pre-fitted to a Dirac).
    ssim_switch : bool, optional
        Stabiliser: switch from MSE to 1 - SSIM (default on).
    beta1 : float, optional
        Stabiliser: Adam first-moment coefficient of the image network (default 0.9).
    refine_iters : int, optional
        Iterations of the non-blind second pass with the kernel fixed (default from the preset).
    stop_tol : float, optional
        Relative kernel change below which the blind stage stops (default from the preset; see
        :mod:`unblur.blind.dip.fit`).
    init_kernel : array or "l0", optional
        Warm start: a kernel (resized to ``kernel_size`` with a note when its size differs) or ``"l0"``
        (the kernel of the ``l0`` method on this image); the kernel network is pre-fitted to it and the
        coarse-to-fine levels are skipped (:func:`unblur.blind.dip.fit.fit`).
    threads : int, optional
        CPU threads for torch (default: torch's choice).
    device : str, optional
        Torch device of the networks and random draws (cpu, cuda, cuda:N, mps, auto; default cpu).
    progress : bool
        Show a progress bar.

    Returns
    -------
    restored : array
        The sharp image, same layout as ``image``.
    info : dict
        ``kernel`` (sums to 1), ``kernel_size``, iterations run, ``data_mse``, ``seed``, ``init_kernel``,
        ``device``, ``notes``, ``checks`` (:func:`unblur.blind.checks.blind_checks`), ``time_s``; with
        several seeds ``seeds`` (consistency report) and ``all_runs``.
    """
    if prior not in PRIORS:
        raise InputError(f"unknown prior {prior!r}", f"use one of {', '.join(PRIORS)}")
    cfg = _config(preset, iterations, {"kernel_init": kernel_init, "ssim_switch": ssim_switch, "beta1": beta1,
                                           "refine_iters": refine_iters, "stop_tol": stop_tol})
    pre = int(pretrain) if pretrain is not None else cfg.iterations // 10

    def objective(lum):
        # luminance on purpose: the blind fit runs on Y, so the ELBO needs the noise of Y itself
        elbo = ELBO(prior, noise_sigma=estimate_noise_sigma(lum), prior_weight=prior_weight)
        return VDIPObjective(elbo, pre, cfg.switch_iter if cfg.ssim_switch else None)

    return _run(image, kernel_size, objective, cfg, seed, seeds, progress, threads, f"vdip-{prior}", init_kernel, device)


__all__ = ["estimate_kernel_size", "selfdeblur", "vdip"]
