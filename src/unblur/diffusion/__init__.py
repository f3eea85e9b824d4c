"""Diffusion-model view of the priors: VP schedule, respacing, and x0/epsilon/score conversions."""

from .schedule import VPSchedule

__all__ = ["VPSchedule"]
