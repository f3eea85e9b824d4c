"""Richardson-Lucy deconvolution (2-D/3-D), with Biggs-Andrews acceleration, RL-TV and stopping rules.

Richardson-Lucy is the multiplicative EM step on the Poisson fidelity ``KL(y, A x + b)``
(:class:`unblur.optim.PoissonKL`); RL-TV adds the total-variation prior
(:class:`unblur.optim.TotalVariation`) in the form of Dey et al. (2006).  For any linear operator ``A``
with non-negative entries (blur, product-convolution)::

    x_{k+1} = x_k / (A^T 1 + lambda_tv * grad TV_eps(x_k)) * A^T( y / (A x_k + background) )

* ``A^T 1`` (floored at 1e-3 of its maximum) normalises the update: flux is preserved (``sum(A x) == sum(y)``
  after each step for a circulant blur) and, with ``boundary="valid"``, it is the *masked* update that
  removes edge ringing (pixels outside the field of view are estimated, not wrapped).
* ``grad TV_eps(x) = -div(grad x / sqrt(|grad x|^2 + eps^2))`` is the smoothed TV gradient of RL-TV.
* Division by ``A x`` is guarded: where ``A x < filter_epsilon`` (default 1e-12 relative to the data
  maximum) the ratio is 0, so zeros in the data never produce NaN or Inf.

:func:`rl_step` is that one step; the iteration (stopping rules, Biggs & Andrews 1997 acceleration,
progress) is :func:`unblur.optim.iterate`.  On the CPU, for the ``circular``, ``zero`` and ``valid``
boundaries, :class:`GridStep` runs the step in place in one complex FFT buffer (the data, the
iterate, that buffer and the OTF are the only large arrays; ``A^T 1`` is an exact separable sum
computed plane by plane), and the driver updates the iterate in place, with the Biggs-Andrews state
in two more arrays (object-sized float32, or on the data window in bfloat16 where the peak would
otherwise exceed :data:`MEMORY_TARGET`).  Elsewhere (GPU, autograd, other boundaries, RL-TV, user operators) the step
writes the ratio ``y / A x`` into one zero-padded FFT grid reused at every iteration.

Negative data (background-subtracted images) are set to 0 with a warning: RL is defined for
non-negative data.  Use ``background=`` to model a known constant offset instead.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from typing import Literal

import numpy as np
import torch

from ..arrays import to_batch
from ..errors import require
from ..optim.driver import Progress, StoppingRule, _slabs, iterate
from ..optim.prior import TotalVariation
from ..physics.convolution import Convolution, FFTGrid, Sensitivity, _scipy_ok
from ..physics.operator import LinearOperator
from .problem import setup_problem

INITS = ("image", "flat", "mean")
#: ``otf="auto"`` stores the OTF when the modelled peak (:meth:`GridStep.memory_multiple`) stays within
#: this multiple of the data, and generates it at each convolution otherwise
MEMORY_TARGET = 5.5
#: the target in effect for RL runs in this context (a multiple of the data, as :data:`MEMORY_TARGET`; None:
#: :data:`MEMORY_TARGET`): set by callers that budget the memory themselves, e.g. the tiles of
#: :mod:`unblur.tiling`, each of which has its share of the memory limit
memory_target: ContextVar[float | None] = ContextVar("unblur_rl_memory_target", default=None)
RL_ACCELERATIONS = (None, "none", "biggs-andrews")
#: RL-TV stops when the estimate's mean exceeds this multiple of the data's (or is not finite)
DIVERGED_FLUX = 2.0


def max_lambda_tv(ndim: int) -> float:
    """Largest RL-TV weight accepted for ``ndim`` spatial axes (exclusive): ``1 / (4 ndim)``.

    Dey et al. (2006) need a positive denominator ``1 - lambda div(grad x / |grad x|)``; each
    component of the normalised gradient is in [-1, 1], so ``|div| <= 2 ndim`` and ``lambda < 1 / (2
    ndim)`` guarantees it.  Half of that bound is used: where ``A^T 1 < 1`` (near the edges with
    ``boundary="valid"``) the denominator is smaller, and estimates there grow without limit close
    to ``1 / (2 ndim)``.  0.125 in 2-D, 1/12 in 3-D; useful values are 0.001 to 0.02.
    """
    return 1.0 / (4 * ndim)


class _FluxWatch:
    """Progress wrapper that stops a diverging RL-TV run: every 5 iterations the flux the estimate
    sends to the data, ``sum(A x) = <x, A^T 1>``, must be finite and at most :data:`DIVERGED_FLUX`
    times the data's (less the background)."""

    def __init__(self, inner, y: torch.Tensor, background: float, at1: torch.Tensor, every: int = 5):
        self.inner, self.every, self.at1 = inner, every, at1
        self.ref = max(float(y.detach().sum()) - background * y.numel(), 1e-30)

    def update(self, it: int, x: torch.Tensor, **info) -> None:
        if self.inner is not None:
            self.inner.update(it, x, **info)
        if (it + 1) % self.every == 0:
            ratio = float((x.detach() * self.at1).sum()) / self.ref
            require(math.isfinite(ratio) and ratio <= DIVERGED_FLUX,
                    f"RL-TV diverged at iteration {it + 1} (total intensity {ratio:.3g}x the data's)",
                    "lower --lambda-tv (useful values 0.001 to 0.02) or --num-iter")


def tv_gradient_term(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``-div(grad x / sqrt(|grad x|^2 + eps^2))`` over the spatial axes (:meth:`TotalVariation.gradient`)."""
    return TotalVariation(1.0, eps).gradient(x)


def _ratio(y: torch.Tensor, Av: torch.Tensor, eps: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """``y / Av`` where ``Av > eps`` and 0 elsewhere (no NaN/Inf from empty regions), into ``out`` if given.

    One division and one masked fill (no reduction, no temporaries of image size besides a bool
    mask): about 2x cheaper than ``where`` + ``clamp`` in the RL inner loop."""
    r = torch.div(y, Av, out=out) if out is not None else y / Av
    return r.masked_fill_((Av > eps).logical_not_(), 0.0)


def rl_step(op: LinearOperator, y: torch.Tensor, *, at1: torch.Tensor, eps: float, background: float = 0.0,
            lambda_tv: float = 0.0, tv_eps: float = 1e-3, need_model: bool = False, reuse_grid: bool = False,
            clipped: torch.Tensor | None = None):
    """The Richardson-Lucy (or RL-TV) step ``v -> (x_new, model)`` for :func:`unblur.optim.iterate`.

    ``at1`` is the normaliser (``A^T 1``, or 1); ``model`` is ``A v`` without the background when
    ``need_model`` (discrepancy rules), else ``None``.  ``reuse_grid`` (a :class:`Convolution`, no
    autograd): write the ratio into one FFT grid and update the back-projection in place.

    ``clipped`` (1 at saturated pixels, 0 elsewhere): their data are lower bounds (censored), so the EM
    step replaces each by ``max(y, A v)``: the ratio there is ``max(y / A v, 1)`` (the model is not pulled
    down to the ceiling, only up to it), and ``model`` is ``min(A v, y)`` there (no residual above the
    ceiling).
    """
    tv = TotalVariation(1.0, tv_eps) if lambda_tv > 0 else None
    grid = view = None

    def step(v: torch.Tensor, it: int):
        nonlocal grid, view
        Av = op.A(v)
        if background:
            Av = Av + background
        if reuse_grid:
            if grid is None or grid.shape[:-op.spatial_ndim] != Av.shape[:-op.spatial_ndim]:
                grid, view = op.data_grid(torch.broadcast_tensors(y, Av)[0])
            r = _ratio(y, Av, eps, out=view)
            if clipped is not None:
                torch.maximum(r, clipped, out=r)
            back = op.A_adjoint_grid(grid)
        else:
            r = _ratio(y, Av, eps)
            back = op.A_adjoint(r if clipped is None else torch.maximum(r, clipped))
        denom = (at1 + lambda_tv * tv.gradient(v)).clamp_min(1e-3) if tv is not None else at1
        if reuse_grid and not back.requires_grad:  # fresh tensor from the FFT: update it in place
            x_new = back.mul_(v).div_(denom).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).clamp_min_(0)
        else:
            x_new = torch.nan_to_num(back * v / denom, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
        model = (Av - background if background else Av) if need_model else None
        if model is not None and clipped is not None:
            model = torch.where(clipped > 0, torch.minimum(model, y), model)
        return x_new, model

    return step


class GridStep:
    """The Richardson-Lucy step in one FFT grid, as a multiplicative step of :func:`unblur.optim.iterate`.

    For a :class:`Convolution` with boundary ``circular``, ``zero`` or ``valid`` on the CPU without
    autograd.  Memory: the data, the OTF, one complex FFT buffer (:class:`~unblur.physics.convolution.FFTGrid`)
    and the iterate (the driver's), plus slab-sized temporaries.  ``A^T 1`` is not stored: it is the
    constant ``sum(psf)`` (circular) or computed slice by slice (:class:`~unblur.physics.convolution.Sensitivity`).
    The driver writes the point ``v`` into ``point_buffer()`` (the grid's object view); the step
    computes ``A v`` in place, writes ``y / (A v + background)`` into the data window (0 where the
    model is below ``eps``), zeroes the rest, back-projects in place and divides by ``A^T 1``: the
    returned factor ``q = A^T(y / A v) / A^T 1`` is a view of the grid (valid until the next step).
    For 3-D grids the ratio and the division by ``A^T 1`` run inside the plane loops of
    :meth:`FFTGrid.convolve` (``post=``), on each plane while it is in cache; the transforms skip the
    planes outside the object (forward) or the data window (adjoint) and return only the planes read.
    """

    multiplicative = True

    def __init__(self, op: Convolution, y: torch.Tensor, *, eps: float, background: float = 0.0,
                 normalize: bool = True, need_model: bool = False, otf: str = "stored", state: str = "full"):
        self.op, self.eps, self.background, self.need_model = op, eps, background, need_model
        if state == "lean":   # Biggs-Andrews state on the data window, in bfloat16 (unblur.optim.driver)
            self.state_dtype = torch.bfloat16
            if tuple(op.in_shape) != tuple(op.out_shape):
                self.state_region = (slice(None),) * 2 + tuple(slice(s, s + n) for s, n in zip(op.crop_start, op.out_shape))
        lead = tuple(np.broadcast_shapes(tuple(y.shape[:2]), tuple(op.psf.shape[:2])))
        self.y = y.expand(lead + tuple(y.shape[2:]))
        self.grid = FFTGrid(op, lead, otf=otf)
        psf = op.psf.detach().double().numpy()
        self.at1 = {}
        if normalize:
            for b in range(lead[0]):
                for c in range(lead[1]):
                    key = (b if psf.shape[0] > 1 else 0, c if psf.shape[1] > 1 else 0)
                    if key not in self.at1:
                        self.at1[key] = Sensitivity(op, psf[key])

    @staticmethod
    def supported(op, y: torch.Tensor, x0: torch.Tensor) -> bool:
        """True when this step applies (see class docstring)."""
        return (isinstance(op, Convolution) and op.boundary in ("circular", "zero", "valid") and y.dtype == torch.float32
                and _scipy_ok(y, x0, op.psf) and not (y.requires_grad or x0.requires_grad or op.psf.requires_grad))

    @staticmethod
    def memory_multiple(op: Convolution, acceleration: str | None = None, otf: str = "stored",
                        state: str = "full") -> float:
        """Modelled peak memory of a run in multiples of the float32 data (one image and channel):
        the data, the iterate, with Biggs-Andrews two more arrays (``state="full"``: object-sized,
        float32; ``"lean"``: on the data window, bfloat16), the complex FFT buffer and, when stored,
        the OTF; slab-sized temporaries are not counted."""
        data = float(np.prod(op.out_shape))
        obj = float(np.prod(op.in_shape))
        if acceleration == "biggs-andrews":
            obj += 2 * float(np.prod(op.in_shape)) if state == "full" else data
        spec = 2.0 * float(np.prod(op.fft_shape[:-1])) * (op.fft_shape[-1] // 2 + 1)
        return (data + obj + spec * (2 if otf == "stored" else 1)) / data

    def point_buffer(self) -> torch.Tensor:
        return self.grid.object

    def __call__(self, v: torch.Tensor, it: int):
        if self.op.spatial_ndim == 3:
            return self._step_planes(v)
        g = self.grid
        if v is not g.object:
            g.object.copy_(v)
        g.zero_outside_object()
        g.convolve(nonzero=g.object_box(), needed=g.window_box())
        w, y, eps = g.window, self.y, self.eps
        if self.background:
            w.add_(self.background)
        model = (w - self.background) if self.need_model else None
        for sl in _slabs(w):
            ws = w[sl]
            below = ws <= eps
            torch.div(y[sl], ws, out=ws).masked_fill_(below, 0.0)
        g.zero_outside_window()
        g.convolve(conj=True, nonzero=g.window_box(), needed=g.object_box())
        q = g.object
        for (b, c), sens in self.at1.items():
            self._divide(q, b, c, sens)
        for sl in _slabs(q):
            q[sl].nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).clamp_min_(0)
        return q, model

    def _step_planes(self, v: torch.Tensor):
        """The 3-D step, its elementwise parts fused into the plane loops of :meth:`FFTGrid.convolve`."""
        g, y, eps, bg, op = self.grid, self.y, self.eps, self.background, self.op
        if v is not g.object:
            g.object.copy_(v)
        g.zero_outside_object()
        (z0, _, x0), (_, _, nx) = g.window_box()
        model = torch.empty(y.shape, dtype=y.dtype) if self.need_model else None

        def ratio(lead, p, rows):
            ws = rows[:, x0:x0 + nx]
            if bg:
                ws.add_(bg)
            if model is not None:
                torch.sub(ws, bg, out=model[lead][p - z0]) if bg else model[lead][p - z0].copy_(ws)
            below = ws <= eps
            torch.div(y[lead][p - z0], ws, out=ws).masked_fill_(below, 0.0)

        g.convolve(nonzero=g.object_box(), needed=g.window_box(), post=ratio)
        g.zero_outside_window()
        n2 = op.in_shape[-1]
        kb, kc = op.psf.shape[:2]

        def normalise(lead, p, rows):
            q = rows[:, :n2]
            sens = self.at1.get((lead[0] if kb > 1 else 0, lead[1] if kc > 1 else 0))
            if sens is not None:
                q.div_(sens.slice(p) if sens.constant is None else sens.constant)
            q.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).clamp_min_(0)

        g.convolve(conj=True, nonzero=g.window_box(), needed=g.object_box(), post=normalise)
        return g.object, model

    def _divide(self, q, b, c, sens):
        bs = range(q.shape[0]) if self.op.psf.shape[0] == 1 else [b]
        cs = range(q.shape[1]) if self.op.psf.shape[1] == 1 else [c]
        for bi in bs:
            for ci in cs:
                qi = q[bi, ci]
                if sens.constant is not None:
                    qi.div_(sens.constant)
                elif self.op.spatial_ndim == 2:
                    qi.div_(sens.slice(slice(None)))
                else:
                    for i in range(qi.shape[0]):
                        qi[i].div_(sens.slice(i))


def rl_iterations(op: LinearOperator, y: torch.Tensor, x0: torch.Tensor, num_iter: int, *,
                  lambda_tv: float = 0.0, tv_eps: float = 1e-3, acceleration: str | None = None,
                  background: float = 0.0, filter_epsilon: float | None = None,
                  stop: StoppingRule | None = None, progress: Progress | None = None, normalize: bool = True,
                  overwrite_x0: bool = False, otf: str = "auto", state: str = "auto",
                  clipped: torch.Tensor | None = None):
    """Run Richardson-Lucy on torch tensors; returns ``(x, info)``.  Used by every RL-based method.

    ``clipped``: saturated pixels as lower bounds (:func:`rl_step`; the one-grid step is then not used).

    A :class:`Convolution` with boundary ``circular``, ``zero`` or ``valid`` on the CPU runs RL
    (plain or Biggs-Andrews) in one FFT grid (:class:`GridStep`); ``overwrite_x0=True`` lets it
    update ``x0`` in place.  ``otf``: ``"stored"`` keeps the OTF (one spectrum-sized array),
    ``"computed"`` generates it block by block at each convolution
    (:class:`~unblur.physics.convolution.SeparableOTF`: less memory, some more time); ``"auto"``
    stores it when the modelled peak stays within :data:`MEMORY_TARGET` times the data (or the
    target set in :data:`memory_target`).  ``state``
    (Biggs-Andrews): ``"full"`` keeps ``x_k - x_{k-1}`` and the last step as float32 object arrays,
    ``"lean"`` on the data window in bfloat16 (the border of a ``valid`` object then takes plain
    steps; :mod:`unblur.optim.driver`); ``"auto"`` takes the first of (full, stored OTF), (lean,
    stored), (full, computed), (lean, computed) whose modelled peak stays within the target.
    """
    require(num_iter >= 0, f"num_iter must be >= 0, got {num_iter}")
    require(acceleration in RL_ACCELERATIONS, f"unknown acceleration {acceleration!r}", "use 'biggs-andrews' or 'none'")
    require(lambda_tv >= 0, f"lambda_tv must be >= 0, got {lambda_tv}")
    require(state in ("auto", "full", "lean"), f"unknown state {state!r}", "use 'auto', 'full' or 'lean'")
    nd = len(op.in_shape)
    require(lambda_tv < max_lambda_tv(nd), f"lambda_tv {lambda_tv:g} is too large for {nd}-D RL-TV (the estimate "
            f"diverges; it must be < {max_lambda_tv(nd):.4g})", "use a value below it (useful values 0.001 to 0.02)")
    require(background >= 0, f"background must be >= 0, got {background:g}",
            "give the constant offset of the data (0 when there is none)")
    if background:
        least = float(y.detach().flatten(2).mean(-1).min())
        require(background < least, f"background {background:g} is not below the data's mean ({least:.4g})",
                "the background is part of the data: give a value below its mean (RL would return zeros)")
    eps = filter_epsilon if filter_epsilon is not None else 1e-12 * max(float(y.max()), -float(y.min()), 1e-30)
    if lambda_tv == 0 and clipped is None and GridStep.supported(op, y, x0):
        states = ("full", "lean") if state == "auto" else (state,)
        otfs = ("stored", "computed") if otf == "auto" else (otf,)
        options = [(o, s) for o in otfs for s in states]
        target = memory_target.get()
        target = MEMORY_TARGET if target is None else target
        otf, state = next(((o, s) for o, s in options if GridStep.memory_multiple(op, acceleration, o, s) <= target),
                          options[-1])
        step = GridStep(op, y, eps=eps, background=background, normalize=normalize,
                        need_model=stop is not None and stop.needs_model, otf=otf, state=state)
        if not overwrite_x0 or float(x0.min()) < 0:
            x0 = x0.clamp_min(0)
        return iterate(step, x0, num_iter, y=y, stop=stop, acceleration=acceleration,
                       project=lambda v: v.clamp_min(0), progress=progress, overwrite_x0=True)
    if normalize:
        # A^T 1 is ~1e-10 at the outer corners of the "valid" object (only PSF tails reach the data), where
        # FFT round-off makes it meaningless (even negative): floor it at 1e-3 of its maximum, so that
        # such barely observed pixels decay instead of exploding.
        at1 = op.adjoint_of_ones(y)
        at1 = at1.clamp_min(1e-3 * float(at1.max()))
    else:
        at1 = torch.ones((), dtype=y.dtype, device=y.device)
    reuse = isinstance(op, Convolution) and not (y.requires_grad or x0.requires_grad or op.psf.requires_grad)
    step = rl_step(op, y, at1=at1, eps=eps, background=background, lambda_tv=lambda_tv, tv_eps=tv_eps,
                   need_model=stop is not None and stop.needs_model, reuse_grid=reuse, clipped=clipped)
    watch = _FluxWatch(progress, y, background, at1) if lambda_tv > 0 else progress
    return iterate(step, x0.clamp_min(0), num_iter, y=y, stop=stop, acceleration=acceleration,
                   project=lambda v: v.clamp_min(0), progress=watch)


def _initial(init, problem, y):
    op = problem.op
    if isinstance(init, str):
        require(init in INITS, f"unknown init {init!r}", f"use one of {', '.join(INITS)} or an array")
        if init == "image":
            x0 = op.initial_object(y)
            return x0.clamp_min_(0).add_(1e-6 * float(y.mean().clamp_min(1e-12)))
        if init == "mean":
            return torch.full(y.shape[:2] + tuple(op.in_shape), float(y.mean().clamp_min(1e-12)), dtype=y.dtype, device=y.device)
        return torch.full(y.shape[:2] + tuple(op.in_shape), 0.5, dtype=y.dtype, device=y.device)
    x0, _ = to_batch(init, len(op.in_shape))
    require(tuple(x0.shape[2:]) == tuple(op.in_shape), f"init has shape {tuple(x0.shape[2:])}, expected {tuple(op.in_shape)}")
    return x0.to(y)


def richardson_lucy(image, psf, num_iter: int = 50, clip: bool = False, filter_epsilon: float | None = None, *,
                    boundary: Literal["valid", "circular", "zero", "replicate", "reflect"] = "valid",
                    init: Literal["image", "flat", "mean"] = "image",
                    acceleration: Literal["none", "biggs-andrews"] = "none",
                    stop: Literal["none", "relative-change", "discrepancy", "poisson-discrepancy"] = "none",
                    tol: float = 1e-4, noise_sigma: float | None = None, tau: float = 1.0, background: float = 0.0,
                    lambda_tv: float = 0.0, tv_eps: float = 1e-3, normalize: bool = True,
                    missing: Literal["error", "mask"] = "error", saturation: str | float | None = None,
                    channel_axis: int | None = None, device: str | None = None, progress: bool = False,
                    callback=None, return_info: bool = False):
    """Richardson-Lucy deconvolution of a 2-D/3-D image (numpy or torch in, same type out).

    The first five arguments follow ``skimage.restoration.richardson_lucy(image, psf, num_iter, clip,
    filter_epsilon)``; the defaults differ where scikit-image's are biased:

    * ``boundary="valid"``: the object is estimated beyond the image edge and cropped (no edge
      ringing); scikit-image convolves with zero padding (``mode="same"``, ``boundary="zero"`` here)
      and its update is not normalised by ``A^T 1`` (``normalize=False`` reproduces it);
    * ``clip=False``: values are not clipped to [-1, 1] (scikit-image clips by default), so flux and
      the image's units are preserved;
    * ``init="image"``: the iterations start from the data; scikit-image starts from 0.5 (``init="flat"``);
    * the PSF is normalised to sum 1 (scikit-image uses it as given).

    Parameters
    ----------
    image : array
        ``(H, W)``, ``(H, W, C)``, ``(Z, Y, X)`` or torch ``(B, C, ...)``; non-negative (negative pixels
        are set to 0 with a warning).  Float64 in gives float64 out.
    psf : array or LinearOperator
        The PSF; normalised to sum 1 (clipped if negative, with a warning).  A non-negative linear
        operator (e.g. :class:`unblur.physics.product_convolution.ProductConvolution` for space-varying
        blur) is accepted instead; ``boundary`` is then ignored.
    num_iter : int
        Maximum number of iterations (>= 1).
    clip : bool
        Clip the result to [0, 1] (scikit-image's behaviour; off by default so that flux and the
        image's units are preserved).
    filter_epsilon : float or None
        Where the re-blurred estimate is below this, the ratio ``y / A x`` is set to 0.
    boundary : str
        Blur boundary model: ``"valid"`` (edge-aware, no ringing), ``"circular"``, ``"zero"``,
        ``"replicate"`` or ``"reflect"`` (see :mod:`unblur.physics.convolution`).
    init : str
        Starting estimate: ``"image"`` (the data), ``"flat"`` (0.5, scikit-image) or ``"mean"`` (the
        data mean); Python callers may pass an array.
    acceleration : str
        ``"biggs-andrews"`` extrapolates each step (Biggs & Andrews 1997); ``"none"`` (or None) is plain RL.
    stop : str
        Stopping rule checked after each iteration (``num_iter`` stays the maximum): ``"none"`` (or None),
        ``"relative-change"``, ``"discrepancy"`` or ``"poisson-discrepancy"`` (:mod:`unblur.optim.driver`).
    tol : float
        Threshold of the relative-change rule.
    noise_sigma : float or None
        Gaussian noise sigma for ``stop="discrepancy"``; estimated from the image (wavelet MAD) if omitted.
    tau : float
        Threshold of the discrepancy rules.
    background : float
        Known constant background added to the model ``A x + background``; 0 <= background < the
        data's mean (per channel).
    lambda_tv : float
        Total-variation weight (RL-TV, Dey et al. 2006); 0 is plain RL; below ``1 / (4 d)`` for
        ``d`` spatial axes (:func:`max_lambda_tv`).
    tv_eps : float
        Smoothing of the TV gradient.
    normalize : bool
        Divide the update by ``A^T 1`` (default).  ``False`` reproduces scikit-image's update, which is
        biased near the edges for non-circular boundaries (kept for like-for-like comparisons).
    missing : {"error", "mask"}
        NaN/Inf pixels: refused (``"error"``), or left out of the fit as missing data (``"mask"``: blank
        borders of registered or mosaicked frames, bad pixels).  The model becomes ``M A`` with ``M`` the
        observed pixels (:class:`unblur.physics.operator.Masked`), so ``A^T 1`` counts only those; missing
        pixels start from the mean of the observed pixels around them and are estimated where the PSF links
        them to observed pixels, NaN in the result where no observed pixel does.  The noise level and the
        discrepancy rules use the observed pixels only.
    saturation : "auto", float or None
        Clipped pixels (:mod:`unblur.physics.saturation`): ``"auto"`` (each image and channel's maximum when it
        is a plateau), the sensor's ceiling in the image's units, or None (no pixel clipped).  A saturated
        pixel is a lower bound of the blur (censored data; Whyte, Sivic & Zisserman 2014): the update
        replaces it by ``max(y, A x)``, so highlights are restored above the ceiling instead of flattened,
        and their neighbours do not ring.  The result is not clipped there (``clip=True`` does).
    channel_axis : int or None
        ``-1`` for a trailing colour axis (detected from the PSF's shape when omitted).
    device : str or None
        Torch device, e.g. ``"cuda"`` (default: the input's, the CPU for numpy).
    progress : bool
        Show a progress bar.
    callback : callable or None
        ``callback(iteration, x, info)`` after each iteration (``x`` the torch estimate on the object grid).
    return_info : bool
        Also return a dict with iterations run, the reason for stopping and wall time.

    Examples
    --------
    >>> import numpy as np
    >>> from unblur.solvers import richardson_lucy
    >>> richardson_lucy(np.ones((16, 16)), np.ones((3, 3)), 5).shape
    (16, 16)
    """
    require(num_iter >= 1, f"num_iter must be >= 1, got {num_iter}", "0 iterations would return the input unchanged")
    t0 = time.perf_counter()
    stop = None if stop == "none" else stop
    acceleration = None if acceleration == "none" else acceleration
    problem = setup_problem(image, psf, boundary, channel_axis=channel_axis, device=device, negative_image="clip",
                            missing=missing, saturation=saturation)
    y = problem.y
    if stop == "discrepancy" and noise_sigma is None:
        noise_sigma = problem.noise_sigma()
    # the discrepancy rules average over every pixel, the missing ones (residual 0) included
    rule = StoppingRule(stop, tol=tol, sigma=noise_sigma, tau=tau * problem.observed_share()) if stop else None
    bar = Progress(num_iter, "RL-TV" if lambda_tv else "Richardson-Lucy", progress, callback)
    x, info = rl_iterations(problem.op, y, _initial(init, problem, y), num_iter, lambda_tv=lambda_tv,
                            tv_eps=tv_eps, acceleration=acceleration, background=background,
                            filter_epsilon=filter_epsilon, stop=rule, progress=bar, normalize=normalize,
                            overwrite_x0=isinstance(init, str), clipped=problem.clipped)
    bar.close()
    if clip:
        x = x.clamp(0, 1)
    out = problem.output(x)
    info.update(time_s=time.perf_counter() - t0, boundary=boundary, notes=problem.notes)
    return (out, info) if return_info else out


def rl_tv(image, psf, num_iter: int = 50, lambda_tv: float = 0.002, *, tv_eps: float = 1e-3,
          boundary: Literal["valid", "circular", "zero", "replicate", "reflect"] = "valid",
          init: Literal["image", "flat", "mean"] = "image", acceleration: Literal["none", "biggs-andrews"] = "none",
          stop: Literal["none", "relative-change", "discrepancy", "poisson-discrepancy"] = "none", tol: float = 1e-4,
          noise_sigma: float | None = None, tau: float = 1.0, background: float = 0.0, clip: bool = False,
          filter_epsilon: float | None = None, normalize: bool = True,
          missing: Literal["error", "mask"] = "error", saturation: str | float | None = None,
          channel_axis: int | None = None, device: str | None = None, progress: bool = False, callback=None,
          return_info: bool = False):
    """Richardson-Lucy with total-variation regularisation (Dey et al. 2006): the Poisson fidelity plus
    ``lambda_tv`` TV in the multiplicative form (module docstring).

    Defaults: 50 iterations (as :func:`richardson_lucy`) and lambda 0.002, chosen for [0, 1] images with
    noise of about 1 % and camera-shake kernels up to 75 px (BENCHMARKS.md, "Non-blind methods per kernel
    size"); the RL-diffusion paper's baseline is 25 iterations with lambda 0.005.

    Parameters
    ----------
    image : array
        As :func:`richardson_lucy`.
    psf : array or LinearOperator
        As :func:`richardson_lucy`.
    num_iter : int
        Maximum number of iterations (>= 1).
    lambda_tv : float
        Total-variation weight, > 0 and below ``1 / (4 d)`` for ``d`` spatial axes (0.125 for images).
    tv_eps : float
        Smoothing of the TV gradient.
    boundary : str
        Blur boundary model: ``"valid"``, ``"circular"``, ``"zero"``, ``"replicate"`` or ``"reflect"``.
    init : str
        Starting estimate: ``"image"``, ``"flat"`` or ``"mean"``.
    acceleration : str
        ``"biggs-andrews"`` or ``"none"``.
    stop : str
        Stopping rule: ``"none"``, ``"relative-change"``, ``"discrepancy"`` or ``"poisson-discrepancy"``.
    tol : float
        Threshold of the relative-change rule.
    noise_sigma : float or None
        Gaussian noise sigma for ``stop="discrepancy"`` (estimated if omitted).
    tau : float
        Threshold of the discrepancy rules.
    background : float
        Known constant background added to the model; 0 <= background < the data's mean.
    clip : bool
        Clip the result to [0, 1].
    filter_epsilon : float or None
        Where the re-blurred estimate is below this, the ratio ``y / A x`` is set to 0.
    normalize : bool
        Divide the update by ``A^T 1``.
    missing : {"error", "mask"}
        NaN/Inf pixels refused or left out of the fit, as :func:`richardson_lucy`.
    saturation : "auto", float or None
        Clipped pixels treated as lower bounds, as :func:`richardson_lucy`.
    channel_axis : int or None
        ``-1`` for a trailing colour axis.
    device : str or None
        Torch device, e.g. ``"cuda"``.
    progress : bool
        Show a progress bar.
    callback : callable or None
        ``callback(iteration, x, info)`` after each iteration.
    return_info : bool
        Also return a dict with iterations run, the reason for stopping and wall time.
    """
    require(lambda_tv > 0, f"lambda_tv must be > 0 for RL-TV, got {lambda_tv}", "use richardson_lucy for lambda 0")
    return richardson_lucy(image, psf, num_iter, clip, filter_epsilon, boundary=boundary, init=init,
                           acceleration=acceleration, stop=stop, tol=tol, noise_sigma=noise_sigma, tau=tau,
                           background=background, lambda_tv=lambda_tv, tv_eps=tv_eps, normalize=normalize,
                           missing=missing, saturation=saturation, channel_axis=channel_axis, device=device,
                           progress=progress,
                           callback=callback, return_info=return_info)
