"""Shared entry-point plumbing of the learned solvers: input checks, problem set-up, prior, seed, result info."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..diffusion.schedule import VPSchedule
from ..errors import require
from ..optim.driver import Progress
from ..physics.noise import estimate_noise_sigma
from ..solvers.problem import Problem, setup_problem
from .prior import CountedPrior, resolve_prior


@dataclass
class Run:
    problem: Problem
    prior: CountedPrior | None
    sigma: float  # noise std in [0, 1] units
    generator: torch.Generator
    sigma_estimate: float | None = None  # the image's own noise estimate ([0, 1] units)
    schedule: VPSchedule = field(default_factory=VPSchedule)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def y(self) -> torch.Tensor:
        return self.problem.y

    @property
    def op(self):
        return self.problem.op

    def require_noise_levels(self, t_max: int) -> None:
        """Refuse to sample from timestep ``t_max`` if the prior was not trained up to its noise level."""
        need = float(self.schedule.sigma(t_max)) / 2  # [0, 1] units
        have = float(getattr(self.prior.denoiser, "sigma_max", float("inf")))
        require(need <= have * 1.0001,
                f"the prior handles noise up to sigma {have:g} ([0, 1] units) but timestep {t_max} needs {need:.3g}",
                "use a diffusion prior (e.g. the DPS ffhq_10m.pt) or fewer high-noise steps (rl-diffusion needs "
                "only t < M + N)")

    def progress(self, total: int, desc: str, show: bool, callback=None) -> Progress:
        return Progress(total, desc, show, callback)

    def finish(self, x01: torch.Tensor, info: dict, clip: bool = True):
        """Crop/convert the [0, 1] estimate to the caller's layout and add ``nfe``, ``time_s``, ``noise_sigma``."""
        x01 = x01.clamp(0, 1) if clip else x01
        info.update(nfe=self.prior.nfe if self.prior is not None else 0, time_s=time.perf_counter() - self.t0,
                    noise_sigma=self.sigma, boundary=self.op.boundary, notes=self.problem.notes)
        if self.sigma_estimate is not None:
            info["noise_sigma_estimate"] = self.sigma_estimate
        return self.problem.output(x01.detach()), info


#: noise floor in [0, 1] units: the rounding noise of 8-bit data, ``1 / (255 sqrt(12))``
QUANTISATION_SIGMA = 1 / (255 * 12**0.5)
#: a given noise sigma is raised to at least this fraction of the image's own estimate
SIGMA_FLOOR = 0.8


def robust_noise_sigma(y: torch.Tensor, given: float | None, notes: list | None = None) -> tuple[float, float]:
    """The noise sigma the learned solvers use, and the image's own estimate (both in [0, 1] units).

    Rule: ``s_hat`` = the wavelet-MAD estimate (:func:`unblur.physics.noise.estimate_noise_sigma`).
    Omitted sigma: ``max(s_hat, QUANTISATION_SIGMA)``.  Given sigma: ``max(given, SIGMA_FLOOR * s_hat)``;
    a value below that floor is raised to it (with a note).  On a blurred image the finest wavelet band
    holds little signal, so ``s_hat`` is close to the true sigma and rarely below it.  The error is
    asymmetric: an underestimated sigma makes the last data steps of DPIR / PnP (weight ``~ 1 / sigma^2``)
    and the guidance of the diffusion samplers fit the noise and amplify it (half the true sigma costs
    DPIR several dB), while an overestimate only smooths a little; hence a floor close to the estimate.
    """
    est = float(estimate_noise_sigma(y))
    if given is None:
        return max(est, QUANTISATION_SIGMA), est
    given = float(given)
    floor = SIGMA_FLOOR * est
    if given < floor:
        if notes is not None:
            notes.append(f"noise_sigma {given:.3g} is below {SIGMA_FLOOR:g} x the image's own estimate {est:.3g}; "
                         f"using {floor:.3g} (an underestimated sigma amplifies noise)")
        return floor, est
    return given, est


def start(image, psf, *, boundary: str, noise_sigma, prior, seed: int | None, device=None,
          need_prior: bool = True, floor_sigma: bool = True, saturation=None) -> Run:
    """Validate the inputs and build the problem (data in [0, 1] units), prior and random generator.

    The noise sigma follows :func:`robust_noise_sigma` (``floor_sigma=False``: the given value as it is,
    or the plain estimate); the image's own estimate is kept in ``Run.sigma_estimate``.  ``saturation``: clipped
    pixels (:mod:`unblur.physics.saturation`), in ``Run.problem.clipped``."""
    t0 = time.perf_counter()
    require(noise_sigma is None or noise_sigma >= 0, f"noise sigma must be >= 0, got {noise_sigma}",
            "give the noise standard deviation in [0, 1] image units (divide a [-1, 1] value by 2)")
    require(seed is None or int(seed) == seed, f"seed must be an integer, got {seed!r}")
    # these solvers are 2-D: a 3-axis numpy image is (H, W, C) whatever the PSF's shape
    channel_axis = -1 if not isinstance(image, torch.Tensor) and np.ndim(image) == 3 else None
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device, negative_image="keep",
                            saturation=saturation)
    require(problem.y.ndim == 4, "the learned solvers work on 2-D images (gray or colour)",
            "deconvolve 3-D stacks with rl or tikhonov")
    if floor_sigma:
        sigma, est = robust_noise_sigma(problem.y, noise_sigma, problem.notes)
    else:
        est = None
        sigma = float(noise_sigma) if noise_sigma is not None else estimate_noise_sigma(problem.y)
    den = resolve_prior(prior, problem.y.shape[1], device=problem.y.device) if need_prior else None
    gen = torch.Generator(device=problem.y.device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed() % (2**63))
    return Run(problem=problem, prior=den, sigma=sigma, generator=gen, t0=t0, sigma_estimate=est)
