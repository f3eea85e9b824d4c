"""Registry entries of the classical methods: Richardson-Lucy, RL-TV, Wiener, Tikhonov, TV-ADMM and blind L0."""

from __future__ import annotations

from ..registry import Capabilities, Method, register

_CLASSICAL = Capabilities(dims=(2, 3), device=True, tileable=True)

register(Method(
    "rl", "nonblind", "unblur.solvers.richardson_lucy:richardson_lucy",
    "Richardson-Lucy (2-D/3-D; Poisson maximum likelihood), optional acceleration and stopping rule",
    "Richardson 1972; Lucy 1974; Biggs & Andrews 1997", _CLASSICAL, skip=("lambda_tv", "tv_eps")))

register(Method(
    "rl-tv", "nonblind", "unblur.solvers.richardson_lucy:rl_tv",
    "Richardson-Lucy with total-variation regularisation (multiplicative form)", "Dey et al. 2006", _CLASSICAL))

register(Method(
    "wiener", "nonblind", "unblur.solvers.linear:wiener",
    "Wiener-Hunt filter; regularisation fitted from a noise estimate unless given", "Wiener 1949; Hunt 1973",
    _CLASSICAL))

register(Method(
    "tikhonov", "nonblind", "unblur.solvers.linear:tikhonov",
    "Tikhonov least squares; closed form (circular) or conjugate gradient (other boundaries)", "Tikhonov 1963",
    _CLASSICAL))

register(Method(
    "tv-admm", "nonblind", "unblur.solvers.tv:tv_admm",
    "total-variation deconvolution by ADMM (Gaussian data term; FGP prox of TV, exact or CG data step)",
    "Rudin, Osher, Fatemi 1992; Boyd et al. 2011; Beck & Teboulle 2009", _CLASSICAL))

register(Method(
    "l0", "blind", "unblur.blind.l0:l0_blind",
    "L0 gradient prior, coarse-to-fine MAP kernel estimation, then hyper-Laplacian deconvolution (photographs, fast)",
    "Pan, Hu, Su, Yang, TPAMI 2017; Xu, Zheng, Jia, CVPR 2013; Krishnan & Fergus 2009", Capabilities(),
    skip=("init_kernel",)))
