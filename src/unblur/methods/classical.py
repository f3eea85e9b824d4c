"""Registry entries of the classical solvers (Wiener, Tikhonov, Richardson-Lucy, RL-TV)."""

from __future__ import annotations

from ..physics.convolution import BOUNDARIES
from ..registry import Method, Param, register
from ..solvers import richardson_lucy, tikhonov, wiener

_B = Param("boundary", str, "valid", "boundary model: valid (no edge ringing), circular, zero, replicate, reflect", BOUNDARIES)
_STOP = ("none", "relative-change", "discrepancy", "poisson-discrepancy")


def _rl(image, psf, stop="none", acceleration="none", **p):
    return richardson_lucy(image, psf, stop=None if stop == "none" else stop,
                           acceleration=None if acceleration == "none" else acceleration, return_info=True, **p)


_RL_PARAMS = (
    Param("num_iter", int, 50, "maximum number of iterations"),
    _B,
    Param("acceleration", str, "none", "Biggs-Andrews vector extrapolation", ("none", "biggs-andrews")),
    Param("stop", str, "none", "stopping rule (num_iter stays the maximum)", _STOP),
    Param("tol", float, 1e-4, "threshold of the relative-change rule"),
    Param("noise_sigma", float, None, "Gaussian noise sigma in image units (discrepancy rule); estimated if omitted"),
    Param("background", float, 0.0, "known constant background in the model A x + b"),
    Param("init", str, "image", "starting estimate", ("image", "flat", "mean")),
    Param("clip", bool, False, "clip the result to [0, 1]"),
    Param("progress", bool, True, "show a progress bar"),
)

register(Method(
    "rl", "nonblind", _rl, "Richardson-Lucy (2-D/3-D; Poisson maximum likelihood), optional acceleration and stopping rule",
    _RL_PARAMS, "Richardson 1972; Lucy 1974; Biggs & Andrews 1997"))

register(Method(
    "rl-tv", "nonblind", _rl, "Richardson-Lucy with total-variation regularisation (multiplicative form)",
    tuple(p if p.name != "num_iter" else Param("num_iter", int, 25, p.help) for p in _RL_PARAMS)
    + (Param("lambda_tv", float, 0.005, "TV weight"),),
    "Dey et al. 2006"))

register(Method(
    "wiener", "nonblind", lambda image, psf, **p: wiener(image, psf, return_info=True, **p),
    "Wiener-Hunt filter; regularisation fitted from a noise estimate unless given",
    (Param("noise_sigma", float, None, "noise sigma in image units; estimated (wavelet MAD) if omitted"),
     Param("balance", float, None, "noise-to-signal ratio; overrides the automatic choice"),
     Param("reg", str, "gradient", "signal model: gradient (1/f^2 spectrum) or identity (flat)", ("gradient", "identity")),
     Param("boundary", str, "reflect", "reflect/replicate (pad then crop) or circular", ("reflect", "replicate", "circular"))),
    "Wiener 1949; Hunt 1973"))

register(Method(
    "tikhonov", "nonblind", lambda image, psf, **p: tikhonov(image, psf, return_info=True, **p),
    "Tikhonov least squares; closed form (circular) or conjugate gradient (other boundaries)",
    (Param("lam", float, 1e-3, "regularisation weight"),
     Param("reg", str, "gradient", "penalty on the gradient or on the image", ("gradient", "identity")),
     Param("boundary", str, "reflect", _B.help, BOUNDARIES),
     Param("max_iter", int, 100, "CG iterations (non-circular boundaries)")),
    "Tikhonov 1963"))
