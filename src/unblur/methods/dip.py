"""Registry entries of the deep-image-prior blind methods: selfdeblur, vdip-sparse, vdip-extreme."""

from __future__ import annotations

from ..registry import Capabilities, Method, register

_DIP = Capabilities(stochastic=True, device=True)

register(Method("selfdeblur", "blind", "unblur.blind.dip.api:selfdeblur",
                "SelfDeblur: deep-image-prior image and kernel generators fitted to one image",
                "Ren et al., CVPR 2020; Brozova & Smidl 2024 (stabilisers)", _DIP, skip=("init_kernel",)))
register(Method("vdip-sparse", "blind", "unblur.blind.dip.api:vdip",
                "VDIP with a sparse-gradient prior (variational deep image prior)", "Huo et al. 2023", _DIP,
                skip=("init_kernel",), fixed={"prior": "sparse"}))
register(Method("vdip-extreme", "blind", "unblur.blind.dip.api:vdip",
                "VDIP with the extreme-channel (dark/bright channel) prior", "Huo et al. 2023", _DIP,
                skip=("init_kernel",), fixed={"prior": "extreme"}))
