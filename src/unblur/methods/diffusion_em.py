"""Registry entries ``fast-em`` and ``diffusion-em`` (Laroche, Almansa, Coupete, WACV 2024)."""

from __future__ import annotations

import warnings

from ..algorithms.guidance import R_CHOICES
from ..blind.diffusion_em.diffusion_em import diffusion_em
from ..blind.diffusion_em.fast_em import fast_diffusion_em
from ..blind.diffusion_em.mstep import EVEN_RULES, REGULARIZERS
from ..errors import InputError
from ..registry import Method, Param, register

_REF = "Laroche, Almansa, Coupete, Fast Diffusion EM, WACV 2024"


def _regularizer(regularizer: str, kernel_prior, kernel_size: int, notes: list) -> str:
    """``auto``: the kernel denoiser when its weights load, else l1 (said in the result's notes)."""
    if regularizer != "auto":
        return regularizer
    try:
        from ..blind.diffusion_em.em_run import resolve_kernel_prior
        resolve_kernel_prior(kernel_prior, kernel_size)
        return "denoiser"
    except InputError as err:
        if kernel_prior is not None:
            raise
        msg = f"kernel denoiser unavailable ({err.problem}); using the l1 kernel regulariser"
        notes.append(msg)
        warnings.warn(msg, stacklevel=3)
        return "l1"


def _run(func, image, regularizer="auto", lam=None, beta=None, **p):
    notes: list = []
    reg = _regularizer(regularizer, p.get("kernel_prior"), p["kernel_size"], notes)
    if beta is None:
        beta = 1e3 if reg == "l1" else 1e5  # l1: threshold lam/beta = 1e-3 of the kernel mass per pixel
    restored, info = func(image, regularizer=reg, lam=lam, beta=beta, **p)
    info["notes"] = list(info.get("notes") or []) + notes
    return restored, info


_COMMON = (
    Param("guidance", str, "pigdm", "E-step guidance", ("pigdm", "dps")),
    Param("particles", int, 1, "number of image particles n (sampled as one batch)"),
    Param("kernel_size", int, 33, "kernel support (odd; even sizes need --even-rule fftshift)"),
    Param("steps", int, 100, "diffusion steps (respaced DDPM)"),
    Param("noise_sigma", float, None, "noise sigma in [0, 1] units; estimated (wavelet MAD, Donoho 1995) if omitted"),
    Param("seed", int, 0, "random seed"),
    Param("prior", str, None, "image prior: checkpoint path/spec (default: the embedded unblur network)"),
    Param("kernel_prior", str, None, "kernel denoiser checkpoint (default: the shipped one)"),
    Param("regularizer", str, "auto", "kernel prior of the M-step: auto = denoiser if available, else l1",
          ("auto",) + REGULARIZERS),
    Param("lam", float, None, "M-step regularisation weight lambda (default 0.3 with the kernel denoiser, 1 for l1/l2)"),
    Param("beta", float, None, "HQS splitting weight beta (default 1e5; 1e3 for l1)"),
    Param("hqs_iters", int, 10, "HQS iterations per M-step"),
    Param("zeta", float, 0.3, "DPS step size"),
    Param("r_choice", str, "fastem", "PiGDM r_t^2 and step: fastem = the Fast EM authors' code (default), "
          "paper = 1 - abar_t with Tweedie step", R_CHOICES),
    Param("even_rule", str, "refuse", "even kernel sizes: refuse, or fftshift (centre pixel n // 2)", EVEN_RULES),
    Param("progress", bool, True, "show a progress bar"),
)

register(Method(
    "fast-em", "blind", lambda image, **p: _run(fast_diffusion_em, image, **p),
    "Fast Diffusion EM: kernel M-step inside one DPS/PiGDM diffusion run (circular blur)",
    _COMMON + (Param("mstep_variance", bool, False,
                   "PiGDM: the paper's M-step with the x0 variance r_t^2 (App. D, eq. D.9); off: it over-smooths the kernel"),),
    _REF))

register(Method(
    "diffusion-em", "blind", lambda image, **p: _run(diffusion_em, image, **p),
    "Diffusion EM: em_iters full diffusion runs, each followed by the kernel M-step (slow)",
    _COMMON + (Param("em_iters", int, 10, "EM iterations L (each a full diffusion run)"),),
    _REF))
