"""Where unblur finds the shared test/training data (``shared/data``).

One setting: the environment variable ``UNBLUR_DATA``.  When it is unset, unblur looks for
``../shared/data`` next to the repository checkout.  ``UNBLUR_DATA_REQUIRED=1`` (set by ``.ci/run``)
turns a missing file into an error instead of a pytest skip.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The data root: ``$UNBLUR_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("UNBLUR_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (_REPO_ROOT.parent / "shared" / "data").resolve()


def data_required() -> bool:
    """True when missing data must fail (CI) rather than be skipped."""
    return os.environ.get("UNBLUR_DATA_REQUIRED", "") not in ("", "0", "false", "no")


def data_path(relative: str | os.PathLike) -> Path:
    """Path of ``relative`` under the data root; raises :class:`InputError` if it does not exist."""
    p = data_root() / relative
    if not p.exists():
        raise InputError(
            f"data file {relative!s} not found under data root {data_root()}",
            "set UNBLUR_DATA to the folder that holds train/, test/, kernels/, microscopy/",
        )
    return p


def list_images(relative: str, suffixes=(".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")) -> list[Path]:
    """Sorted image files in a data folder (raises if the folder is missing or empty)."""
    folder = data_path(relative)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"no images in {folder}", "check the data root (UNBLUR_DATA)")
    return files
