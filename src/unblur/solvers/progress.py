"""Progress reporting and stopping rules shared by the iterative solvers (no solver loop lives here)."""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from ..errors import require


class Progress:
    """A tqdm bar (when ``show``) plus an optional ``callback(iteration, x, info)`` per iteration."""

    def __init__(self, total: int, desc: str, show: bool = False, callback=None):
        self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True) if show else None
        self.callback = callback
        self.t0 = time.perf_counter()

    def update(self, it: int, x: torch.Tensor, **info) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if info:
                self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items()}, refresh=False)
        if self.callback is not None:
            self.callback(it, x, info)

    def close(self) -> float:
        if self.bar is not None:
            self.bar.close()
        return time.perf_counter() - self.t0


class StoppingRule:
    """Stop iterating when the relative change or the discrepancy principle says so.

    * ``"relative-change"``: ``||x_k - x_{k-1}|| / ||x_{k-1}|| < tol``.
    * ``"discrepancy"`` (Gaussian noise): ``mean((A x - y)^2) <= tau * sigma^2``.
    * ``"poisson-discrepancy"`` (Bertero et al. 2010, data in photon counts):
      ``(2/N) * KL(y, A x) <= tau``.
    * ``None``: run ``num_iter`` iterations.
    """

    RULES = (None, "none", "relative-change", "discrepancy", "poisson-discrepancy")

    def __init__(self, rule=None, tol: float = 1e-4, sigma: float | None = None, tau: float = 1.0):
        require(rule in self.RULES, f"unknown stopping rule {rule!r}",
                "use relative-change, discrepancy, poisson-discrepancy or none")
        require(tol > 0, f"tol must be > 0, got {tol}")
        require(rule != "discrepancy" or (sigma is not None and sigma > 0),
                "the discrepancy rule needs the noise sigma", "pass noise_sigma (or let the solver estimate it)")
        self.rule = None if rule == "none" else rule
        self.tol, self.sigma, self.tau = tol, sigma, tau
        self.value = math.nan

    def __call__(self, x_new, x_old, Ax=None, y=None) -> str | None:
        if self.rule is None:
            return None
        if self.rule == "relative-change":
            self.value = float((x_new - x_old).norm() / x_old.norm().clamp_min(1e-30))
            return "relative-change" if self.value < self.tol else None
        if self.rule == "discrepancy":
            self.value = float(((Ax - y) ** 2).mean() / self.sigma**2)
            return "discrepancy" if self.value <= self.tau else None
        Ax = Ax.clamp_min(1e-12)
        kl = torch.where(y > 0, y * torch.log(y.clamp_min(1e-12) / Ax), torch.zeros_like(y)) + Ax - y
        self.value = float(2 * kl.sum() / y.numel())
        return "poisson-discrepancy" if self.value <= self.tau else None
