"""Helpers shared by the CLI subcommands: options built from registry parameters, JSON logs, outputs."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from .. import __version__
from ..errors import InputError, require
from ..registry import Method, Param

#: defaults of the command line that differ from the functions' (a terminal user wants to see progress)
CLI_DEFAULTS = {"progress": True}


def requested_method(argv, default: str) -> str:
    """The value of ``--method`` in ``argv`` (``--method X`` or ``--method=X``), else ``default``."""
    argv = list(argv or [])
    for i, a in enumerate(argv):
        if a == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--method="):
            return a.split("=", 1)[1]
    return default


def _flag(p: Param) -> str:
    return "--" + p.name.replace("_", "-")


def _default_text(p: Param) -> str:
    d = CLI_DEFAULTS.get(p.name, p.default)
    if d is None:
        return ""
    if p.type is bool:
        return f" (default {'on' if d else 'off'})"
    return f" (default {d})"


def _add_option(container, p: Param, shown: bool) -> None:
    text = (p.help + _default_text(p)).replace("%", "%%") if shown else argparse.SUPPRESS  # argparse %-formats help
    if p.type is bool:
        container.add_argument(_flag(p), dest=p.name, action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        container.add_argument(_flag(p), dest=p.name, type=p.type, default=None, help=text,
                               choices=p.choices if shown else None, metavar=None if shown and p.choices else p.name.upper())


def add_method_options(parser: argparse.ArgumentParser, methods: list[Method], shown: Method) -> None:
    """Every method's parameters as options; ``--help`` lists those of ``shown`` with its own defaults.

    Any method's option parses (the choice of method is checked in :func:`method_params_from_args`);
    choices of the other methods' options are checked by :meth:`unblur.registry.Method.resolve`.
    """
    group = parser.add_argument_group(f"options of --method {shown.name} ({', '.join(shown.capabilities.labels())})")
    seen = set()
    for p in shown.params:
        _add_option(group, p, True)
        seen.add(p.name)
    for m in methods:
        for p in m.params:
            if p.name not in seen:
                _add_option(parser, p, False)
                seen.add(p.name)


def method_epilog(command: str, methods: list[Method], shown: Method, default: str) -> str:
    others = ", ".join(m.name for m in methods if m.name != shown.name)
    which = f"the default method {shown.name}" if shown.name == default else f"--method {shown.name}"
    return (f"The method options above are those of {which}. Other methods: {others}; their options and "
            f"defaults: 'unblur {command} --method NAME --help' or 'unblur methods NAME'.")


def method_params_from_args(args: argparse.Namespace, method: Method, all_methods: list[Method]) -> dict:
    """Options the user gave, checked against the chosen method's parameters (plus :data:`CLI_DEFAULTS`)."""
    names = {p.name for m in all_methods for p in m.params}
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    own = {p.name for p in method.params}
    stray = sorted(set(given) - own)
    if stray:
        raise InputError(f"--method {method.name} does not take {', '.join('--' + s.replace('_', '-') for s in stray)}",
                         f"see 'unblur {args.command} --method {method.name} --help' for its options")
    for k, v in CLI_DEFAULTS.items():
        if k in own and k not in given:
            given[k] = v
    return given


def _jsonable(v):
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _jsonable(dataclasses.asdict(v))
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


def check_output_and_log(output, force: bool) -> tuple[Path, Path]:
    """Check, before any work, that ``output`` and its JSON log may be written (exist only with ``force``)."""
    from ..io import check_writable

    out = check_writable(output, force)
    log = log_path_for(out)
    if log.exists() and not force:
        raise InputError(f"{log} exists", "pass --force to replace it")
    return out, log


def preview_path_for(output: Path) -> Path:
    return output.with_name(output.stem + "_compare.png")


def load_psf_for_image(psf_path: Path, image, image_path: Path, center: str = "none",
                       notes: list | None = None) -> list:
    """Read a PSF file and match it to ``image``; returns ``[psf]`` (shared) or one PSF per channel.

    Layout rules (files carry no axis names, so the CLI decides here, once):

    * 2-D image: the PSF must be 2-D (a colour PSF file or a 3-D PSF is refused).
    * 3-axis image from PNG/JPEG/BMP, or from TIFF with at most 4 values on the last axis and a
      2-D or colour PSF: a colour image ``(H, W, C)``; the PSF is 2-D (shared) or has 1 or C
      channels (one PSF per channel).
    * 3-axis TIFF with a 3-D (non-colour) PSF: a stack ``(Z, Y, X)``; 4-axis: ``(Z, Y, X, C)`` with a
      3-D PSF.
    Each PSF is validated and normalised by :func:`unblur.psf.prepare_psf` (notes go to ``notes``).
    """
    from ..io import RASTER_SUFFIXES, read_image
    from ..psf.core import prepare_psf

    raw = read_image(psf_path, scale=False, drop_alpha=False)
    psf_raster = psf_path.suffix.lower() in RASTER_SUFFIXES
    if psf_raster and raw.ndim == 3 and raw.shape[-1] in (2, 4):
        raw = raw[..., :-1]  # drop the alpha channel
    psf_colour = raw.ndim == 3 and (psf_raster or raw.shape[-1] <= 4)
    img_raster = image_path.suffix.lower() in RASTER_SUFFIXES
    name = f"PSF {psf_path.name}"
    require(raw.ndim in (2, 3), f"{name} has {raw.ndim} axes {raw.shape}", "give a 2-D PSF (or 3-D for stacks)")
    if image.ndim == 2:
        require(raw.ndim == 2 and not (psf_colour and raw.shape[-1] > 1),
                f"channel count mismatch: {name} has {raw.shape[-1]} colour channels but the image is gray"
                if psf_colour else f"{name} is 3-D {raw.shape} but the image is 2-D {image.shape}",
                "give a single-channel 2-D PSF for a gray 2-D image")
        kind, spatial = "gray", image.shape
    elif image.ndim == 3 and (img_raster or (image.shape[-1] <= 4 and (raw.ndim == 2 or psf_colour))):
        kind, spatial = "colour", image.shape[:2]
        require(raw.ndim == 2 or psf_colour, f"{name} is 3-D {raw.shape} but the image is a 2-D colour image",
                "give a 2-D PSF (shared by the channels) or one per channel (H, W, C)")
    elif image.ndim == 3:
        require(raw.ndim == 3, f"the image {image.shape} is a 3-D stack (Z, Y, X) but {name} is 2-D",
                "give a 3-D PSF (Z, Y, X); colour images need their channels on the last axis (at most 4)")
        kind, spatial = "stack", image.shape
    else:
        require(image.ndim == 4 and raw.ndim == 3 and not psf_raster,
                f"image of shape {image.shape} with {name} of shape {raw.shape} is not supported",
                "give (Z, Y, X) or (Z, Y, X, C) stacks with a 3-D PSF")
        kind, spatial = "stack-colour", image.shape[:3]
    if kind == "colour" and psf_colour:
        c_img, c_psf = image.shape[-1], raw.shape[-1]
        require(c_psf in (1, c_img), f"channel count mismatch: {name} has {c_psf} channels, the image {c_img}",
                "give one PSF for all channels or one per channel")
        chans = [raw[..., c] for c in range(c_psf)]
        return [prepare_psf(p, 2, image_shape=spatial, center=center, name=f"{name} channel {i}" if c_psf > 1 else name,
                            report=notes) for i, p in enumerate(chans)]
    return [prepare_psf(raw, len(spatial), image_shape=spatial, center=center, name=name, report=notes)]
