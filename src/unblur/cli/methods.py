"""``unblur methods``: list the registered methods and their parameters."""

from __future__ import annotations

from ..registry import list_methods

HELP = "list the available methods and their parameters"


def add_parser(sub) -> None:
    sub.add_parser("methods", help=HELP, description=HELP)


def run(args) -> int:
    for m in list_methods():
        print(f"{m.name:16s} [{m.kind}] {m.summary}" + (f"  ({m.reference})" if m.reference else ""))
        for p in m.params:
            print(f"    --{p.name.replace('_', '-'):22s} {p.type.__name__:6s} default={p.default!s:10s} {p.help}")
    return 0
