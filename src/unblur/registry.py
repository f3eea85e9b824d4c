"""The one registry of restoration methods, shared by the CLI, the Python API and the benchmarks.

A method is a :class:`Method`: a name, a kind (``"nonblind"`` needs a PSF, ``"blind"`` estimates
it), the function that implements it, named ``"package.module:function"`` and imported only when the
method runs, a summary, a reference and its :class:`Capabilities`.  The function is the one source of
the method's parameters: its keyword parameters, defaults, annotations and numpydoc ``Parameters``
entries become :class:`Param` objects (see :mod:`unblur.methods.signature`) from which the CLI builds
its options.  Names that are not options (arrays, callbacks, ``channel_axis``...) are listed in
``skip``; ``fixed`` arguments are always passed.  The function's signature is

* non-blind: ``func(image, psf, **params) -> (restored, info)``
* blind:     ``func(image, **params) -> (restored, info)`` with ``info["kernel"]`` the estimated PSF

where ``image``/``restored`` follow the numpy layout conventions and ``info`` is a dict (at least
``time_s``; learned methods add ``nfe``, the number of network evaluations).  A function that returns
only the image unless ``return_info=True`` is called with ``return_info=True``.

Modules that define methods call :func:`register` at import; :mod:`unblur.methods` lists them.

Example
-------
>>> m = get_method("rl")
>>> m.kind, m.defaults()["num_iter"], m.capabilities.dims
('nonblind', 50, (2, 3))
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

from .errors import InputError, require
from .methods.signature import Param, parameter_names, read_parameters

KINDS = ("nonblind", "blind")
DEFAULT_METHOD = "rl"
DEFAULT_BLIND_METHOD = "l0"
#: signature names that are never options: the data, layout, callbacks and the info switch
NOT_OPTIONS = ("image", "psf", "channel_axis", "callback", "return_info")


@dataclass(frozen=True)
class Capabilities:
    """What a method handles: spatial dimensions, colour, a learned prior, randomness, devices, tiling."""

    dims: tuple[int, ...] = (2,)   # spatial dimensions: (2,) images, (2, 3) images and stacks
    colour: bool = True            # colour images (H, W, C)
    prior: bool = False            # needs a learned prior (network weights)
    stochastic: bool = False       # depends on a seed
    device: bool = False           # runs on a torch device chosen with device=
    tileable: bool = False         # results of overlapping tiles can be blended (local, shift-invariant)

    def labels(self) -> list[str]:
        out = ["/".join(f"{d}-D" for d in self.dims)]
        out += [name for name, on in (("colour", self.colour), ("prior", self.prior), ("stochastic", self.stochastic),
                                      ("device", self.device), ("tileable", self.tileable)) if on]
        return out


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    target: str                     # "package.module:function"
    summary: str
    reference: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    skip: tuple[str, ...] = ()      # further signature names that are not options
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def params(self) -> tuple[Param, ...]:
        """The options, read from the function's source (nothing is imported)."""
        return read_parameters(self.target, NOT_OPTIONS + tuple(self.skip) + tuple(self.fixed))

    @property
    def func(self) -> Callable:
        """The implementing function (imported now)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @cached_property
    def api_only(self) -> tuple[str, ...]:
        """Keywords the Python API passes through but the CLI does not offer (arrays, callbacks, layout)."""
        hidden = set(NOT_OPTIONS + tuple(self.skip)) - {"image", "psf", "return_info"} - set(self.fixed)
        return tuple(n for n in parameter_names(self.target) if n in hidden)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def resolve(self, given: dict) -> dict:
        """Defaults overridden by ``given`` (plus any :attr:`api_only` keyword given); unknown names raise a clear error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known) - set(self.api_only))
        if unknown:
            raise InputError(f"method {self.name!r} has no parameter(s) {', '.join(unknown)}",
                             f"its parameters are: {', '.join(known) or '(none)'}")
        out = self.defaults()
        for k, v in given.items():
            p = known.get(k)
            if p is not None and p.choices is not None and v not in p.choices:
                raise InputError(f"{k}={v!r} is not one of {', '.join(map(str, p.choices))}", f"choose a valid {k}")
            out[k] = v
        return out

    def check_input(self, image, psf=None) -> None:
        """Refuse data the method cannot handle (a 3-D stack for a 2-D method), with a clear error."""
        ndim = getattr(image, "ndim", None)
        if ndim is None:
            return
        if self.kind == "nonblind":
            stack = ndim == 5 or (ndim in (3, 4) and getattr(psf, "ndim", 2) == 3 and not hasattr(image, "detach"))
        else:
            stack = ndim == 4 or (ndim == 3 and image.shape[-1] > 4)
        require(not stack or 3 in self.capabilities.dims, f"method {self.name!r} restores 2-D images, not 3-D stacks",
                "use a method for stacks (see 'unblur methods': 3-D), e.g. rl, or deconvolve slice by slice")

    def run(self, image, psf=None, **params) -> tuple[Any, dict]:
        """Run the method with ``params`` (defaults for the others); returns ``(restored, info)``.

        ``info`` has ``time_s`` (wall time), ``method`` and ``params`` (every parameter's value).
        """
        resolved = self.resolve(params)
        self.check_input(image, psf)
        if resolved.get("device") is not None:
            from .arrays import resolve_device
            resolve_device(resolved["device"])  # a clear error when the device is unavailable
        extra = dict(self.fixed)
        if "return_info" in parameter_names(self.target):
            extra["return_info"] = True
        data = (image,) if self.kind == "blind" else (image, psf)
        t0 = time.perf_counter()
        restored, info = self.func(*data, **extra, **resolved)
        info = dict(info)
        info.setdefault("time_s", time.perf_counter() - t0)
        info.update(method=self.name, params=resolved)
        return restored, info


_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(method: Method) -> Method:
    if method.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if method.name in _REGISTRY and _REGISTRY[method.name] != method:
        raise ValueError(f"method {method.name!r} registered twice")
    _REGISTRY[method.name] = method
    return method


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        methods = importlib.import_module("unblur.methods")
        for mod in methods.MODULES:
            importlib.import_module(mod)


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name raises :class:`InputError` listing the others."""
    _load()
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r}", f"available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_methods(kind: str | None = None) -> list[Method]:
    """Registered methods (of one kind), sorted by name."""
    _load()
    return [m for m in sorted(_REGISTRY.values(), key=lambda m: m.name) if kind is None or m.kind == kind]


def default_method(kind: str) -> str:
    """Name of the method used when none is given: :data:`DEFAULT_METHOD` or :data:`DEFAULT_BLIND_METHOD`."""
    return DEFAULT_METHOD if kind == "nonblind" else DEFAULT_BLIND_METHOD


__all__ = ["Capabilities", "DEFAULT_BLIND_METHOD", "DEFAULT_METHOD", "KINDS", "Method", "Param", "default_method",
           "get_method", "list_methods", "register"]
