"""Classical deconvolution solvers: plain functions, numpy (or torch) in, same type out."""

from .cg import conjugate_gradient
from .linear import tikhonov, wiener
from .richardson_lucy import richardson_lucy, rl_iterations, rl_tv

__all__ = ["conjugate_gradient", "tikhonov", "wiener", "richardson_lucy", "rl_iterations", "rl_tv"]
