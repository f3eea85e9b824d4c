"""The one iteration driver of unblur's iterative solvers: stopping rules, acceleration, progress.

A solver supplies one step ``step(v, it) -> (x_new, model)``: the new iterate computed at the point
``v`` (the current iterate, or an extrapolated one) and, when a discrepancy rule needs it, the model
``A v`` of the data (else ``None``).  :func:`iterate` owns the rest:

* **stopping** (:class:`StoppingRule`), checked after each step, ``num_iter`` the maximum:

  - ``"relative-change"``: ``||x_k - x_{k-1}|| / ||x_{k-1}|| < tol``;
  - ``"discrepancy"`` (Gaussian noise, Morozov): ``mean((A x - y)^2) <= tau sigma^2``;
  - ``"poisson-discrepancy"`` (Bertero et al. 2010, data in photon counts):
    ``(2 / N) KL(y, A x) <= tau``;
  - ``None`` / ``"none"``: run ``num_iter`` steps.

* **acceleration** (the step is evaluated at ``v`` instead of ``x_k``):

  - ``"biggs-andrews"`` (Biggs & Andrews 1997): ``v = x_k + alpha_k (x_k - x_{k-1})`` with
    ``alpha_k = <g_{k-1}, g_{k-2}> / <g_{k-2}, g_{k-2}>`` clipped to ``[0, 1)``, ``g_k = x_{k+1} - v_k``
    the last steps (vector extrapolation for fixed-point iterations such as Richardson-Lucy);
  - ``"nesterov"`` (FISTA momentum, Beck & Teboulle 2009): ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``,
    ``v = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})`` (for proximal-gradient steps);
  - ``project`` (e.g. ``clamp_min(0)``) keeps an extrapolated point feasible.

* **progress and callbacks** (:class:`Progress`): a tqdm bar and ``callback(iteration, x, info)``.

The driver holds references to ``x_k``, ``x_{k-1}`` and (accelerated runs only) two step vectors; it
allocates no image-sized array of its own in the plain case, so in-place steps keep their speed.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import require

ACCELERATIONS = (None, "none", "biggs-andrews", "nesterov")


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


def poisson_deviance(y: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
    """``KL(y, m) = sum y log(y / m) + m - y`` (the Poisson negative log-likelihood up to a constant;
    ``0 log 0 = 0``, the model floored at 1e-12)."""
    m = model.clamp_min(1e-12)
    kl = torch.where(y > 0, y * torch.log(y.clamp_min(1e-12) / m), torch.zeros_like(y)) + m - y
    return kl.sum()


class StoppingRule:
    """Stop iterating when the relative change or a discrepancy principle says so (module docstring)."""

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

    @property
    def needs_model(self) -> bool:
        """True when the rule reads the model ``A x`` (the discrepancy rules)."""
        return self.rule in ("discrepancy", "poisson-discrepancy")

    def __call__(self, x_new, x_old, Ax=None, y=None) -> str | None:
        if self.rule is None:
            return None
        if self.rule == "relative-change":
            self.value = float((x_new - x_old).norm() / x_old.norm().clamp_min(1e-30))
            return "relative-change" if self.value < self.tol else None
        if self.rule == "discrepancy":
            self.value = float(((Ax - y) ** 2).mean() / self.sigma**2)
            return "discrepancy" if self.value <= self.tau else None
        self.value = float(2 * poisson_deviance(y, Ax) / y.numel())
        return "poisson-discrepancy" if self.value <= self.tau else None


def iterate(step: Callable, x0: torch.Tensor, num_iter: int, *, y: torch.Tensor | None = None,
            stop: StoppingRule | None = None, acceleration: str | None = None, project: Callable | None = None,
            progress: Progress | None = None, info: Callable | None = None):
    """Run ``x_{k+1}, model = step(v_k, k)`` up to ``num_iter`` times (module docstring).

    Parameters
    ----------
    step : callable ``(v, it) -> (x_new, model)``
        One iteration at the point ``v``; ``model`` (``A v``, or ``None``) feeds the discrepancy rules.
    x0 : tensor
        Starting iterate (not modified).
    num_iter : int
        Maximum number of steps (>= 0).
    y : tensor, optional
        The data, for the discrepancy rules.
    stop : StoppingRule, optional
    acceleration : {None, "none", "biggs-andrews", "nesterov"}
    project : callable, optional
        Applied to extrapolated points (e.g. ``lambda v: v.clamp_min(0)``).
    progress : Progress, optional
    info : callable ``(it) -> dict``, optional
        Extra values shown with the progress bar and passed to the callback.

    Returns
    -------
    x : tensor
        The last iterate.
    info : dict
        ``iterations`` run and ``stopped_by`` (``"num_iter"`` or the rule's name).
    """
    require(num_iter >= 0, f"num_iter must be >= 0, got {num_iter}")
    require(acceleration in ACCELERATIONS, f"unknown acceleration {acceleration!r}",
            "use 'biggs-andrews', 'nesterov' or 'none'")
    accel = None if acceleration == "none" else acceleration
    x = x_prev = x0
    g1 = g2 = None          # Biggs-Andrews: the last two steps
    t = 1.0                 # Nesterov: momentum sequence
    stopped, n_done = "num_iter", 0
    for it in range(num_iter):
        v = x
        if accel == "biggs-andrews" and g2 is not None:
            alpha = float((g1 * g2).sum() / (g2 * g2).sum().clamp_min(1e-30))
            v = x + min(max(alpha, 0.0), 0.999) * (x - x_prev)
        elif accel == "nesterov":
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            if it > 0:
                v = x + ((t - 1) / t_next) * (x - x_prev)
            t = t_next
        if v is not x and project is not None:
            v = project(v)
        x_new, model = step(v, it)
        if accel == "biggs-andrews":
            g2, g1 = g1, x_new - v
        x_prev, x = x, x_new
        n_done = it + 1
        reason = stop(x, x_prev, model, y) if stop is not None else None
        if progress is not None:
            extra = dict(info(it)) if info is not None else {}
            if stop is not None and stop.rule:
                extra["stop_value"] = stop.value
            progress.update(it, x, **extra)
        if reason:
            stopped = reason
            break
    return x, {"iterations": n_done, "stopped_by": stopped}


__all__ = ["iterate", "Progress", "StoppingRule", "poisson_deviance", "ACCELERATIONS"]
