"""The one registry of restoration methods, shared by the CLI, the Python API and the benchmarks.

A method is a :class:`Method`: a name, a kind (``"nonblind"`` needs a PSF, ``"blind"`` estimates
it), a function and its parameters (:class:`Param`, with type, default and help, from which the
CLI builds its options).  The function's signature is

* non-blind: ``func(image, psf, **params) -> (restored, info)``
* blind:     ``func(image, **params) -> (restored, info)`` with ``info["kernel"]`` the estimated PSF

where ``image``/``restored`` follow the numpy layout conventions and ``info`` is a JSON-friendly
dict (at least ``time_s``; learned methods add ``nfe``, the number of network evaluations).

Modules that define methods call :func:`register` at import; :mod:`unblur.methods` lists them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import InputError

KINDS = ("nonblind", "blind")


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    func: Callable
    summary: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    reference: str = ""

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def resolve(self, given: dict) -> dict:
        """Defaults overridden by ``given``; unknown names raise a clear error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InputError(f"method {self.name!r} has no parameter(s) {', '.join(unknown)}",
                             f"its parameters are: {', '.join(known) or '(none)'}")
        out = self.defaults()
        for k, v in given.items():
            p = known[k]
            if p.choices is not None and v not in p.choices:
                raise InputError(f"{k}={v!r} is not one of {', '.join(map(str, p.choices))}", f"choose a valid {k}")
            out[k] = v
        return out


_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(method: Method) -> Method:
    if method.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
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
    _load()
    if name not in _REGISTRY:
        raise InputError(f"unknown method {name!r}", f"available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_methods(kind: str | None = None) -> list[Method]:
    _load()
    return [m for m in sorted(_REGISTRY.values(), key=lambda m: m.name) if kind is None or m.kind == kind]
