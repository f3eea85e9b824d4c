"""The one iteration driver of unblur's iterative solvers: stopping rules, acceleration, progress.

A solver supplies one step ``step(v, it) -> (x_new, model)``: the new iterate computed at the point
``v`` (the current iterate, or an extrapolated one) and, when a discrepancy rule needs it, the model
``A v`` of the data (else ``None``).  :func:`iterate` owns the rest:

* **stopping** (:class:`StoppingRule`), checked after each step, ``num_iter`` the maximum:

  - ``"relative-change"``: ``||x_k - x_{k-1}|| / ||x_{k-1}|| < tol``;
  - ``"discrepancy"`` (Gaussian noise, Morozov): ``mean((A x - y)^2) <= tau sigma^2``;
  - ``"poisson-discrepancy"`` (Bertero et al. 2010, data in photon counts):
    ``(2 / N) KL(y, A x) <= tau``;
  - ``"relative-residual"`` (linear solvers): ``max_items ||r|| / ||b|| < tol``, the squared ratios
    ``<r, r> / <b, b>`` given by a function of the solver's state (``residual=``);
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

**Multiplicative steps** (EM algorithms such as Richardson-Lucy: ``x_{k+1} = v * q(v)``) may
declare ``step.multiplicative = True`` and return the factor ``q`` instead of ``x_{k+1}``; they
provide ``step.point_buffer()``, an object-shaped tensor (e.g. a view of an FFT grid) where the
driver writes the point ``v`` before calling ``step(buffer, it)``.  The driver then owns the
iterate and updates it in place, in slabs, fused with the Biggs-Andrews bookkeeping: the state is
``x_k``, ``h_k = x_k - x_{k-1}`` and ``g_{k-1}`` (the extrapolated point is recomputed from them,
``v = project(x_k + alpha h_k)``), three object-sized arrays for an accelerated run and one for a
plain run; the relative change is accumulated in the same pass.  ``x`` passed to the callback is
then updated in place by later iterations (copy it to keep it).  Two optional attributes of the
step make the acceleration's state smaller: ``step.state_region`` (an index tuple into ``x``, e.g.
the data window of an object estimated beyond the field of view) keeps ``h`` and ``g`` there only,
the rest of ``x`` taking plain steps (``v = x`` outside), so ``alpha`` is measured where the data
constrain the object; ``step.state_dtype`` (e.g. ``torch.bfloat16``) stores ``h`` and ``g`` in
that type, all arithmetic staying in ``x``'s type (``alpha`` is a ratio of sums over the region,
insensitive to the 2^-9 relative rounding of each stored value).
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

    RULES = (None, "none", "relative-change", "discrepancy", "poisson-discrepancy", "relative-residual")

    def __init__(self, rule=None, tol: float = 1e-4, sigma: float | None = None, tau: float = 1.0,
                 residual: Callable | None = None):
        require(rule in self.RULES, f"unknown stopping rule {rule!r}",
                "use relative-change, discrepancy, poisson-discrepancy or none")
        require(tol > 0, f"tol must be > 0, got {tol}")
        require(rule != "discrepancy" or (sigma is not None and sigma > 0),
                "the discrepancy rule needs the noise sigma", "pass noise_sigma (or let the solver estimate it)")
        require(rule != "relative-residual" or residual is not None, "the relative-residual rule needs residual=")
        self.rule = None if rule == "none" else rule
        self.tol, self.sigma, self.tau, self.residual = tol, sigma, tau, residual
        self.value = math.nan

    def reached(self) -> bool:
        """Relative-residual rule: ``max <r, r> / <b, b> < tol^2`` (compared in the tensors' precision)."""
        ratio = self.residual().max()
        self.value = math.sqrt(max(float(ratio.detach()), 0.0))
        return bool(ratio < self.tol**2)

    @property
    def needs_model(self) -> bool:
        """True when the rule reads the model ``A x`` (the discrepancy rules)."""
        return self.rule in ("discrepancy", "poisson-discrepancy")

    def __call__(self, x_new, x_old, Ax=None, y=None, change: tuple[float, float] | None = None) -> str | None:
        """Check the rule; ``change = (||x_new - x_old||^2, ||x_old||^2)`` when the caller has the norms."""
        if self.rule is None:
            return None
        if self.rule == "relative-residual":
            return "relative-residual" if self.reached() else None
        if self.rule == "relative-change":
            if change is not None:
                self.value = math.sqrt(change[0]) / max(math.sqrt(change[1]), 1e-30)
            else:
                self.value = float((x_new - x_old).norm() / x_old.norm().clamp_min(1e-30))
            return "relative-change" if self.value < self.tol else None
        if self.rule == "discrepancy":
            self.value = float(((Ax - y) ** 2).mean() / self.sigma**2)
            return "discrepancy" if self.value <= self.tau else None
        self.value = float(2 * poisson_deviance(y, Ax) / y.numel())
        return "poisson-discrepancy" if self.value <= self.tau else None


def iterate(step: Callable, x0: torch.Tensor, num_iter: int, *, y: torch.Tensor | None = None,
            stop: StoppingRule | None = None, acceleration: str | None = None, project: Callable | None = None,
            progress: Progress | None = None, info: Callable | None = None, overwrite_x0: bool = False):
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
    overwrite_x0 : bool
        A multiplicative step may update ``x0`` itself in place (saves a copy); otherwise it is copied.

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
    if getattr(step, "multiplicative", False):
        require(accel != "nesterov", "a multiplicative step takes Biggs-Andrews acceleration or none")
        return _iterate_multiplicative(step, x0, num_iter, y=y, stop=stop, accelerate=accel == "biggs-andrews",
                                       project=project, progress=progress, info=info, overwrite_x0=overwrite_x0)
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


def _slabs(x: torch.Tensor, size: int = 1 << 18):
    """Index tuples cutting ``x`` into slabs of about ``size`` elements along the first axes."""
    lead = x.shape[:-1]
    per = max(1, x.shape[-1])
    rows = max(1, size // per)
    if x.ndim >= 3:  # slab along axis ndim - 2 (rows of the last two axes), looping over the axes before it
        n = x.shape[-2]
        for idx in torch.cartesian_prod(*[torch.arange(m) for m in lead[:-1]]).reshape(-1, len(lead) - 1).tolist():
            for i in range(0, n, rows):
                yield tuple(idx) + (slice(i, i + rows),)
    else:
        for i in range(0, x.shape[0], rows):
            yield (slice(i, i + rows),)


#: elements per slab of the fused Biggs-Andrews update (its temporaries are a few slabs)
_STATE_SLAB = 1 << 16


def _boxes_outside(shape: tuple[int, ...], region: tuple) -> list[tuple]:
    """Index tuples of the boxes that cover an array of ``shape`` minus the box ``region`` (slices)."""
    out, inner = [], []
    for ax, (n, sl) in enumerate(zip(shape, region)):
        a, b, _ = sl.indices(n)
        if a > 0:
            out.append(tuple(inner) + (slice(0, a),))
        if b < n:
            out.append(tuple(inner) + (slice(b, n),))
        inner.append(slice(a, b))
    return out


def _iterate_multiplicative(step, x0, num_iter, *, y, stop, accelerate, project, progress, info, overwrite_x0):
    """:func:`iterate` for a multiplicative step (module docstring): ``x_{k+1} = v_k * q(v_k)`` in place."""
    x = x0 if overwrite_x0 else x0.clone()
    region = getattr(step, "state_region", None) if accelerate else None
    outside = [] if region is None else _boxes_outside(tuple(x.shape), tuple(region))
    outside = [b for b in outside if x[b].numel()]
    xr = x if region is None else x[region]
    state_dtype = getattr(step, "state_dtype", None) or x.dtype
    lean = state_dtype != x.dtype
    h = g = None
    gg_prev = gg_cross = gg_prev_old = None   # <g_{k-1}, g_{k-1}>, <g_{k-1}, g_{k-2}>, <g_{k-2}, g_{k-2}>
    want_change = stop is not None and stop.rule == "relative-change"
    stopped, n_done = "num_iter", 0
    for it in range(num_iter):
        alpha = None
        if accelerate and gg_cross is not None:
            alpha = min(max(gg_cross / max(gg_prev_old, 1e-30), 0.0), 0.999)
        buf = step.point_buffer()
        if alpha is None:
            buf.copy_(x)
        else:
            for b in outside:
                buf[b].copy_(x[b])
            bufr = buf if region is None else buf[region]
            for sl in _slabs(xr, _STATE_SLAB):
                if lean:
                    v = bufr[sl].copy_(h[sl]).mul_(alpha).add_(xr[sl])
                else:
                    v = torch.add(xr[sl], h[sl], alpha=alpha, out=bufr[sl])
                if project is not None:
                    bufr[sl] = project(v)
        q, model = step(buf, it)
        change = old = 0.0
        if not accelerate and not want_change:
            x.mul_(q)
        else:
            if accelerate and h is None:
                h, g = (torch.empty(xr.shape, dtype=state_dtype, device=x.device) for _ in range(2))
            qr = q if region is None else q[region]
            cross = new = 0.0
            for sl in _slabs(xr, _STATE_SLAB):
                xs, qs = xr[sl], qr[sl]
                if alpha is None:
                    v = xs
                elif lean:   # the point exactly as written into the buffer above
                    v = h[sl].to(xs.dtype).mul_(alpha).add_(xs)
                else:
                    v = torch.add(xs, h[sl], alpha=alpha)
                if alpha is not None and project is not None:
                    v = project(v)
                xn = v * qs
                if accelerate:
                    gs = xn - v
                    if gg_prev is not None:
                        cross += float(torch.dot(gs.flatten(), g[sl].to(gs.dtype).flatten()))
                    new += float(torch.dot(gs.flatten(), gs.flatten()))
                    g[sl] = gs
                    if lean:
                        d = xn - xs
                        h[sl] = d
                    else:
                        d = torch.sub(xn, xs, out=h[sl])
                else:
                    d = xn - xs
                if want_change:
                    change += float(torch.dot(d.flatten(), d.flatten()))
                    old += float(torch.dot(xs.flatten(), xs.flatten()))
                xs.copy_(xn)
            for b in outside:   # plain steps outside the region
                for sl in _slabs(x[b], _STATE_SLAB):
                    xs, qs = x[b][sl], q[b][sl]
                    if want_change:
                        d = xs * (qs - 1)
                        change += float(torch.dot(d.flatten(), d.flatten()))
                        old += float(torch.dot(xs.flatten(), xs.flatten()))
                    xs.mul_(qs)
            if accelerate:
                gg_cross = cross if gg_prev is not None else None
                gg_prev_old, gg_prev = gg_prev, new
        n_done = it + 1
        reason = stop(x, None, model, y, change=(change, old)) if stop is not None else None
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
