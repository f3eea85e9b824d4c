"""``unblur methods [NAME]``: list the registered methods, or one method's parameters."""

from __future__ import annotations

from ..registry import DEFAULT_BLIND_METHOD, DEFAULT_METHOD, get_method, list_methods
from .common import CLI_DEFAULTS

HELP = "list the available methods (capabilities, default), or the parameters of one"


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help=HELP, description=HELP)
    p.add_argument("name", nargs="?", help="a method: print its parameters, types, defaults and help")


def _print_params(m) -> None:
    print(f"{m.name} [{m.kind}] {m.summary}")
    if m.reference:
        print(f"  reference: {m.reference}")
    print(f"  capabilities: {', '.join(m.capabilities.labels())}")
    print(f"  function: {m.target.replace(':', '.')}")
    for p in m.params:
        kind = "{" + ",".join(map(str, p.choices)) + "}" if p.choices else p.type.__name__
        default = CLI_DEFAULTS.get(p.name, p.default)
        print(f"    --{p.name.replace('_', '-'):18s} {kind:12s} default={default!s:10s} {p.help}")


def run(args) -> int:
    if args.name:
        _print_params(get_method(args.name))
        return 0
    defaults = {DEFAULT_METHOD: "default of 'unblur deconvolve'", DEFAULT_BLIND_METHOD: "default of 'unblur blind'"}
    for kind in ("nonblind", "blind"):
        print("non-blind (unblur deconvolve):" if kind == "nonblind" else "blind (unblur blind):")
        for m in list_methods(kind):
            note = f"  [{defaults[m.name]}]" if m.name in defaults else ""
            print(f"  {m.name:14s} {', '.join(m.capabilities.labels()):38s} {m.summary}{note}")
    print("Parameters of one method: unblur methods NAME")
    return 0
