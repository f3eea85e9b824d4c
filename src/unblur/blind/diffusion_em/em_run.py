"""Set-up shared by Fast Diffusion EM and Diffusion EM: input checks, the kernel state and the outputs.

The image is in [0, 1] (gray ``(H, W)`` or colour ``(H, W, C)``, one kernel shared by the channels), the
noise sigma is in [0, 1] units and, when not given, is estimated by
:func:`unblur.physics.noise.estimate_noise_sigma` (the MAD of the finest diagonal Haar wavelet band /
0.6745, Donoho 1995): the mean of the per-channel estimates of the blurred image.

Blur models (``boundary``):

* ``"valid"`` (default): the photograph ``y`` (``H x W``) is the valid part of the blur of a larger
  object.  The object lives on a periodic grid ``(H + b) x (W + b)`` (``b`` = the kernel size >= ``k - 1``)
  and ``y`` is observed on its window ``[:H, :W]``: ``A x = m (k (*) x)`` with ``(*)`` the circular
  convolution on the grid and ``m`` the mask of the window (:class:`MaskedCircularBlur`).  Because the band
  is at least ``k - 1`` wide, no wrap-around reaches the window, so this is exactly the non-circulant
  ``valid`` model; the band's values of the object are estimated, its data are not used (the E-step
  guidance and the M-step see only observed pixels).
* ``"periodize"``: the image is extended to the same grid by a smooth periodic continuation
  (:func:`unblur.blind.l0.periodic_extend`) and the circular model is applied to the whole grid (the
  extension is treated as data).
* ``"circular"``: the data as they are, circular model (the paper's setting, for circularly blurred data).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ...algorithms.common import Run, start
from ...errors import require
from ...physics.convolution import Convolution
from ...physics.operator import LinearOperator
from ..checks import check_blind_input, initial_kernel
from .mstep import REGULARIZERS, check_kernel_size, check_sigma, dirac_kernel, m_step

GUIDANCES = ("pigdm", "dps")
BOUNDARIES = ("valid", "periodize", "circular")


class MaskedCircularBlur(LinearOperator):
    """``A x = m (k (*) x)``: the circular blur on a periodic grid, observed where the mask ``m`` is 1.

    ``in_shape == out_shape`` (the grid); unobserved data entries are 0 after ``A`` and ignored by
    ``A^T`` (``A^T y = k^T (*) (m y)``).  With a band of at least ``k - 1`` unobserved pixels after the
    window, this is the ``valid`` model (module docstring).  The quadratic solves are the base class's
    conjugate gradient (the mask breaks the Fourier diagonalisation); :attr:`circulant` is the unmasked
    circular blur.
    """

    boundary = "valid"

    def __init__(self, psf: torch.Tensor, image_shape, mask: torch.Tensor):
        self.circulant = Convolution(psf, image_shape, "circular")
        self.in_shape = self.out_shape = self.circulant.out_shape
        self.mask = mask

    @property
    def psf(self) -> torch.Tensor:
        return self.circulant.psf

    def update_kernel(self, psf) -> None:
        self.circulant.update_kernel(psf)
        self._clear_cache()

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * self.circulant.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.circulant.A_adjoint(self.mask * y)


def resolve_kernel_prior(kernel_prior, size: int, device=None):
    """The kernel denoiser ``D(k, sigma)``: a Denoiser/callable as given, or ``load_kernel_prior(spec, size)``."""
    if kernel_prior is not None and not isinstance(kernel_prior, str):
        require(callable(kernel_prior), f"kernel_prior must be a denoiser, a spec string or None, got {type(kernel_prior).__name__}")
        return kernel_prior
    from ...models import load_kernel_prior  # local: models imports the diffusion code

    den = load_kernel_prior(kernel_prior, size=size)
    if isinstance(den, torch.nn.Module):
        den = den.to(device) if device is not None else den
        den.eval()
    return den


@dataclass
class KernelState:
    """The current kernel, its circular blur operator and the M-step settings.

    :meth:`update` runs one M-step, records the kernel and updates the one operator in place
    (``update_kernel``), so every holder of :meth:`operator` (the run, the guidance) sees the new kernel.
    """

    y: torch.Tensor                 # (C, H, W), [0, 1] units
    sigma: float
    kernel: torch.Tensor            # (k, k)
    regularizer: str = "denoiser"
    lam: float | None = None       # None: mstep.default_lam(regularizer)
    beta: float = 1e5
    iters: int = 10
    kernel_denoiser: object = None
    history: list = field(default_factory=list)
    crop: tuple | None = None       # (H, W) of the caller's image when the data were periodised
    mask: torch.Tensor | None = None  # (H, W) grid mask of the observed window ("valid"), None: all observed
    op: Convolution = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = tuple(self.y.shape[-2:])
        self.op = (Convolution(self.kernel, shape, "circular") if self.mask is None
                   else MaskedCircularBlur(self.kernel, shape, self.mask))

    def update(self, x01: torch.Tensor, x_variance: float = 0.0) -> torch.Tensor:
        """M-step on particles ``x01`` ``(n, C, H, W)`` in [0, 1] (warm start from the current kernel)."""
        self.kernel = m_step(self.y, x01.detach(), self.kernel, self.sigma, iters=self.iters, lam=self.lam,
                             beta=self.beta, regularizer=self.regularizer, kernel_denoiser=self.kernel_denoiser,
                             x_variance=x_variance, mask=self.mask)
        self.op.update_kernel(self.kernel)
        self.history.append(self.kernel.detach().cpu().numpy().astype(np.float32))
        return self.kernel

    def operator(self) -> Convolution:
        """The blur by the current kernel, circular or masked (the same object after every :meth:`update`)."""
        return self.op

    def observed(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` with its unobserved entries set to 0 (the data the guidance compares with ``A x``)."""
        return y if self.mask is None else self.mask * y


def start_blind(image, *, guidance: str, particles: int, kernel_size: int, steps: int, noise_sigma, seed,
                prior, kernel_prior, regularizer: str, lam: float | None, beta: float, hqs_iters: int,
                even_rule: str = "refuse", init_kernel=None, device=None,
                boundary: str = "valid") -> tuple[Run, KernelState]:
    """Validate the inputs and build the run (data, prior, generator) and the kernel state.

    The state starts from a Dirac, or from ``init_kernel`` (an array, resized to ``kernel_size`` with a
    note, or ``"l0"``: :func:`unblur.blind.checks.initial_kernel`).

    ``boundary="valid"`` and ``"periodize"``: the image is extended by ``kernel_size`` pixels at the end of
    each axis to a smooth periodic image (:func:`unblur.blind.l0.periodic_extend`, a cosine blend of the
    two mirrored ends, Liu & Jia 2008), and :func:`finish_blind` crops the result back; a photograph is
    not periodic, and its wrap-around edges would otherwise be explained by the kernel.  ``"valid"``
    then observes only the window of the image (mask, :class:`MaskedCircularBlur`), ``"periodize"``
    treats the extension as data.  The noise sigma, when not given, is estimated on the image itself.
    ``"circular"``: the data are used as they are (the paper's setting, for circularly blurred data)."""
    require(guidance in GUIDANCES, f"unknown guidance {guidance!r}", f"use one of {', '.join(GUIDANCES)}")
    require(regularizer in REGULARIZERS, f"unknown kernel regularizer {regularizer!r}",
            f"use one of {', '.join(REGULARIZERS)}")
    require(isinstance(particles, (int, np.integer)) and particles >= 1, f"particles must be an integer >= 1, got {particles!r}")
    require(isinstance(steps, (int, np.integer)) and steps >= 1, f"steps must be an integer >= 1, got {steps!r}")
    if noise_sigma is not None:
        check_sigma(noise_sigma)
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    require(img.ndim in (2, 3) and (img.ndim == 2 or img.shape[-1] in (1, 3)),
            f"image of shape {img.shape} is not a gray (H, W) or colour (H, W, C) image",
            "give a 2-D gray or an (H, W, 3) colour image")
    check_kernel_size(kernel_size, img.shape[:2], even_rule)
    notes = check_blind_input(img, kernel_size, method="fast-em/diffusion-em", noise_sigma=noise_sigma, stacklevel=4)
    start_image = None
    if isinstance(init_kernel, str) and init_kernel == "dirac":
        init_kernel = None
    if isinstance(init_kernel, str) and init_kernel == "l0":
        from ..l0 import l0_blind

        size_l0 = int(kernel_size) + (1 - int(kernel_size) % 2)  # l0 takes odd sizes; an even support is cut from it
        start_image, l0_info = l0_blind(np.asarray(img, np.float64), kernel_size=size_l0, noise_sigma=noise_sigma)
        start_image = np.asarray(start_image, np.float32)
        support = l0_info["checks"]["kernel_support"]
        notes.append(f"warm start: kernel estimated by l0 ({kernel_size}x{kernel_size}, support {support[0]}x{support[1]})")
        init_kernel = np.asarray(l0_info["kernel"], np.float32)
    k_init = initial_kernel(init_kernel, kernel_size, img, noise_sigma=noise_sigma, notes=notes)
    require(boundary in BOUNDARIES, f"unknown boundary {boundary!r}", f"use one of {', '.join(BOUNDARIES)}")
    crop = None
    if boundary in ("valid", "periodize"):
        from ...physics.noise import estimate_noise_sigma
        from ..l0 import periodic_extend

        if noise_sigma is None:
            noise_sigma = estimate_noise_sigma(img) if img.ndim == 2 else estimate_noise_sigma(img, channel_axis=-1)
        crop = img.shape[:2]
        a = img.astype(np.float32)
        img = (periodic_extend(a, kernel_size) if a.ndim == 2 else
               np.stack([periodic_extend(a[..., c], kernel_size) for c in range(a.shape[-1])], -1)).astype(np.float32)
    run = start(img, np.ones((1, 1), np.float32), boundary="circular", noise_sigma=noise_sigma, prior=prior,
                seed=seed, device=device)
    run.problem.notes = list(run.problem.notes or []) + notes
    y = run.y[0]
    if k_init is None:
        k0 = dirac_kernel(kernel_size, y.dtype, y.device)
    else:
        k0 = torch.as_tensor(k_init, dtype=y.dtype, device=y.device)
    kden = resolve_kernel_prior(kernel_prior, kernel_size, y.device) if regularizer == "denoiser" else None
    mask = None
    if boundary == "valid":
        mask = torch.zeros(tuple(y.shape[-2:]), dtype=y.dtype, device=y.device)
        mask[:crop[0], :crop[1]] = 1
    state = KernelState(y=y, sigma=run.sigma, kernel=k0, regularizer=regularizer, lam=lam, beta=beta,
                        iters=hqs_iters, kernel_denoiser=kden, crop=crop, mask=mask)
    state.start_image = start_image
    state.start_kernel = None if k_init is None else np.asarray(k_init, np.float32)
    run.problem.op = state.operator()
    return run, state


#: The safeguard returns the start when its re-blur discrepancy is closer to the noise level (1) than the EM
#: result's by more than this many noise sigmas.
SAFEGUARD_MARGIN = 0.1


def safeguard(image, restored, info: dict, state: KernelState, sigma: float, enabled: bool = True):
    """The discrepancy principle (Morozov 1966) as a safeguard of the EM result against its start.

    A kernel and image that explain the data leave a re-blur residual at the noise level:
    ``discrepancy = RMS(k * x - y) / sigma`` about 1 (:func:`unblur.blind.checks.blind_checks`, interior
    pixels); more means the pair does not explain the data, less that the image fits the noise.  The start
    (the ``l0`` warm start: its image and kernel) is returned when its discrepancy is closer to 1 than the EM
    result's by more than :data:`SAFEGUARD_MARGIN`: ``|d_em - 1| - |d_start - 1| > 0.1``.  Without a start
    restoration (Dirac or array start) nothing is replaced (the check's warning remains).  Never uses a
    ground truth.  Returns ``(restored, info)``; ``info["safeguard"]`` says what happened.
    """
    from ..checks import blind_checks

    em = blind_checks(image, restored, info["kernel"], sigma)
    report = {"enabled": bool(enabled), "em_discrepancy": em["discrepancy"], "kept_start": False}
    start = getattr(state, "start_image", None)
    if start is not None:
        st = blind_checks(image, start, state.start_kernel, sigma)
        report["start_discrepancy"] = st["discrepancy"]
        closer = abs(em["discrepancy"] - 1) - abs(st["discrepancy"] - 1)
        if enabled and np.isfinite(closer) and closer > SAFEGUARD_MARGIN:
            report["kept_start"] = True
            info["em_kernel"] = info["kernel"]
            info["kernel"] = state.start_kernel
            info["notes"] = list(info.get("notes") or []) + [
                f"safeguard: the EM result leaves {em['discrepancy']:.2f} noise sigmas of re-blur residual, its l0 "
                f"start {st['discrepancy']:.2f} (1 = the noise level): the start's image and kernel are returned"]
            restored = start.astype(np.asarray(restored).dtype, copy=False)
    info["safeguard"] = report
    return restored, info


def final_step(image, restored, info: dict, state: KernelState, sigma: float):
    """The non-blind final step of ``l0`` (:func:`unblur.blind.l0.l0_blind` with ``init_kernel``: a
    hyper-Laplacian deconvolution, ``|grad x|^0.8``, weight from the noise level) with the EM kernel, in
    place of the diffusion sample; the sample stays in ``info["sample"]``.  The boundary follows the blur
    model: the valid final step for ``boundary="valid"``, the periodic one otherwise.  Even kernels (no
    centre pixel) keep the sample, with a note."""
    from ..l0 import l0_blind

    kernel = np.asarray(info["kernel"], np.float32)
    if kernel.shape[0] % 2 == 0:
        info["notes"] = list(info.get("notes") or []) + ["final_step: an even kernel has no centre pixel; the sample is returned"]
        return restored, info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its input checks were made (and said) by the EM method
        out, _ = l0_blind(np.asarray(image, np.float32), kernel_size=kernel.shape[0], noise_sigma=sigma, init_kernel=kernel,
                          final_boundary="valid" if state.mask is not None else "periodic")
    info["sample"] = restored
    info["final_step"] = True
    return out.astype(np.asarray(restored).dtype, copy=False), info


def finish_result(image, restored, info: dict, state: KernelState, sigma: float, safeguard_on: bool,
                  diagnostics: bool, final: bool = False):
    """The common end of the EM methods: the safeguard (on the diffusion sample), with ``final`` the
    non-blind :func:`final_step` when the EM result is returned, the checks of the returned pair and, with
    ``diagnostics``, its re-blur residual map (:func:`unblur.diagnostics.blind_residual_info`)."""
    from ..checks import attach_checks

    restored, info = safeguard(image, restored, info, state, sigma, safeguard_on)
    info["final_step"] = False
    if final and not info["safeguard"]["kept_start"]:
        restored, info = final_step(image, restored, info, state, sigma)
    attach_checks(info, image, restored, info["kernel"], sigma)
    if diagnostics:
        from ...diagnostics import blind_residual_info

        info.update(blind_residual_info(image, restored, info["kernel"], sigma))
    return restored, info


def seeded_runs(func, image, kwargs: dict):
    """``func(image, **kwargs)`` for ``kwargs["seeds"]`` seeds (:func:`unblur.diagnostics.run_seeds`): the result
    of the first seed with the per-pixel ``seed_spread`` of the returned images."""
    from ...diagnostics import run_seeds

    kw = dict(kwargs)
    seed, seeds, diagnostics = kw.pop("seed"), kw.pop("seeds"), kw.pop("diagnostics")
    kw.pop("image", None)
    return run_seeds(lambda im, _psf, **k: func(im, **k), image, None, seed=seed, seeds=seeds,
                     diagnostics=diagnostics, kwargs=kw)


def finish_blind(run: Run, state: KernelState, x01: torch.Tensor, info: dict, sigma_given: bool):
    """Mean of the particles (each clipped to [0, 1]) as the image; each particle, the kernel and its history in ``info``."""
    x01 = x01.clamp(0, 1).detach()
    parts = [run.problem.output(x01[i:i + 1]) for i in range(x01.shape[0])]
    restored, info = run.finish(x01.mean(0, keepdim=True), info)
    if state.crop is not None:
        h, w = state.crop
        restored, parts = restored[:h, :w], [p[:h, :w] for p in parts]
        info["boundary"] = "valid" if state.mask is not None else "periodize"

    info.update(kernel=state.kernel.detach().cpu().numpy().astype(np.float32),
                kernel_history=np.stack(state.history) if state.history else np.zeros((0,) + tuple(state.kernel.shape), np.float32),
                particles=parts, particles_n=len(parts), kernel_size=int(state.kernel.shape[-1]),
                regularizer=state.regularizer,
                noise_sigma_source="given" if sigma_given else "estimated (wavelet MAD, Donoho 1995)")
    return restored, info


__all__ = ["GUIDANCES", "BOUNDARIES", "KernelState", "MaskedCircularBlur", "safeguard", "final_step", "start_blind", "finish_blind",
           "finish_result", "seeded_runs", "resolve_kernel_prior"]
