"""Blind deconvolution methods (kernel unknown).  Each registers itself in :mod:`unblur.registry`."""
