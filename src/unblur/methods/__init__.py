"""Modules whose import registers methods in :mod:`unblur.registry` (one line per module)."""

MODULES = [
    "unblur.methods.classical",
    "unblur.methods.deepblur",
    "unblur.methods.dip",
    "unblur.methods.diffusion_em",
    "unblur.methods.learned",
]
