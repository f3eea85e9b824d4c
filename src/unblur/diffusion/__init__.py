"""Diffusion-model view of the priors: VP schedule, respacing, and x0/epsilon/score conversions."""

from .epsilon import EpsilonDenoiser
from .schedule import VPSchedule, x0_from_denoiser

__all__ = ["VPSchedule", "x0_from_denoiser", "EpsilonDenoiser"]
