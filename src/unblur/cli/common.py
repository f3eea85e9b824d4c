"""Helpers shared by the CLI subcommands: options built from registry parameters, JSON logs, outputs."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..registry import Method


def add_method_options(parser: argparse.ArgumentParser, methods: list[Method]) -> None:
    """One ``--option`` per distinct parameter name, grouped by method in ``--help``."""
    seen: dict[str, type] = {}
    for m in methods:
        group = None
        for p in m.params:
            if p.name in seen:
                continue
            seen[p.name] = p.type
            group = group or parser.add_argument_group(f"options of --method {m.name} (and later methods sharing them)")
            flag = "--" + p.name.replace("_", "-")
            default_txt = "" if p.default is None else f" (default {p.default})"
            if p.type is bool:
                group.add_argument(flag, dest=p.name, action=argparse.BooleanOptionalAction, default=None,
                                   help=p.help + default_txt)
            else:
                group.add_argument(flag, dest=p.name, type=p.type, default=None, choices=p.choices,
                                   help=p.help + default_txt)


def method_params_from_args(args: argparse.Namespace, method: Method, all_methods: list[Method]) -> dict:
    """Options the user gave, checked against the chosen method's parameters."""
    names = {p.name for m in all_methods for p in m.params}
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    own = {p.name for p in method.params}
    stray = sorted(set(given) - own)
    if stray:
        raise InputError(f"--method {method.name} does not take {', '.join('--' + s.replace('_', '-') for s in stray)}",
                         f"see 'unblur {args.command} --help' for its options")
    return given


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 64 else f"<array {v.shape}>"
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "detach"):
        return _jsonable(v.detach().cpu().numpy())
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)


def write_log(path: Path, record: dict, overwrite: bool) -> Path:
    """JSON log of every setting and result, written atomically next to the output."""
    from ..io import check_writable
    import os
    import tempfile

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists", "pass --force to replace it")
    full = dict(record, unblur_version=__version__, python=platform.python_version(), argv=sys.argv,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(full), f, indent=2)
    os.replace(tmp, path)
    return path


def log_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".json")


def preview_path_for(output: Path) -> Path:
    return output.with_name(output.stem + "_compare.png")
