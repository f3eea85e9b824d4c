"""Registry entries of the deep-image-prior blind methods: selfdeblur, vdip-sparse, vdip-extreme."""

from __future__ import annotations

from ..blind.dip.api import selfdeblur, vdip
from ..blind.dip.fit import KERNEL_INITS, PRESETS
from ..registry import Method, Param, register

_COMMON = (
    Param("kernel_size", int, None, "odd kernel support in pixels; if omitted: 2*floor(min(H,W)/20)+1, clamped to [7, 31]"),
    Param("preset", str, "fast", "full: published recipe (5000 iterations, 128-channel generator; GPU-scale cost); "
                                 "fast: CPU recipe (small generator, <=1500 iterations with a kernel-change stop); "
                                 "fast-c2f: the CPU recipe coarse to fine (kernel estimated at 1/4, 1/2, then "
                                 "full resolution; ~30 % less CPU than fast at about equal PSNR on the benchmark)",
          tuple(PRESETS)),
    Param("iterations", int, None, "blind iterations at full resolution (default from the preset; the SSIM switch "
                                   "and fast-c2f's coarse levels scale with it)"),
    Param("refine_iters", int, None, "iterations of the non-blind second pass with the kernel fixed (default from the preset)"),
    Param("seed", int, 0, "random seed (network weights and noise inputs)"),
    Param("seeds", int, 1, "number of seeds to run; the best data fit is kept and a consistency report logged"),
    Param("kernel_init", str, None, "stabiliser: random (default), uniform or no-blur (kernel net pre-fitted)",
          KERNEL_INITS),
    Param("ssim_switch", bool, None, "stabiliser: switch from MSE to 1-SSIM (default on)"),
    Param("beta1", float, None, "stabiliser: Adam first-moment coefficient of the image net (default 0.9)"),
    Param("threads", int, None, "CPU threads for torch (default: torch's choice)"),
    Param("progress", bool, True, "show a progress bar"),
)


def _info(out):
    restored, info = out
    info.pop("all_runs", None)
    return restored, info


register(Method("selfdeblur", "blind", lambda image, **p: _info(selfdeblur(image, **p)),
                "SelfDeblur: deep-image-prior image and kernel generators fitted to one image", _COMMON,
                "Ren et al., CVPR 2020; Brozova & Smidl 2024 (stabilisers)"))
register(Method("vdip-sparse", "blind", lambda image, **p: _info(vdip(image, prior="sparse", **p)),
                "VDIP with a sparse-gradient prior (variational deep image prior)", _COMMON,
                "Huo et al. 2023"))
register(Method("vdip-extreme", "blind", lambda image, **p: _info(vdip(image, prior="extreme", **p)),
                "VDIP with the extreme-channel (dark/bright channel) prior", _COMMON,
                "Huo et al. 2023"))
