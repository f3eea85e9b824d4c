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


def _full_record(record: dict) -> dict:
    return _jsonable(dict(record, unblur_version=__version__, python=platform.python_version(), argv=sys.argv,
                          finished=time.strftime("%Y-%m-%dT%H:%M:%S")))


def _file_mode() -> int:
    """The mode a plain ``open()`` gives a new file: ``0o666`` less the umask (0644 with umask 022)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_log(path: Path, record: dict, overwrite: bool) -> Path:
    """JSON log of every setting and result, written atomically (mode as any new file: 0644 with umask 022).

    Commands that write an image use :class:`Outputs`, which writes the log together with the image.
    """
    import os
    import tempfile

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists", "pass --force to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_full_record(record), f, indent=2)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def log_path_for(output: Path) -> Path:
    """``OUT.json`` (the whole name: ``x.png`` and ``x.jpg`` have the logs ``x.png.json`` and ``x.jpg.json``)."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def check_output_and_log(output, force: bool) -> tuple[Path, Path]:
    """Check, before any work, that ``output`` and its JSON log may be written (exist only with ``force``)."""
    from ..io import check_writable

    out = check_writable(output, force)
    log = log_path_for(out)
    if log.exists() and not force:
        raise InputError(f"{log} exists", "pass --force to replace it")
    return out, log


def preview_path_for(output: Path, kind: str = "compare") -> Path:
    """``OUT.compare.png`` (``kind``: ``compare``, or ``preview`` for ``unblur psf``); unique per output name."""
    output = Path(output)
    return output.with_name(f"{output.name}.{kind}.png")


def _disk_full(err: BaseException) -> bool:
    import errno

    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder (Zarr: its files' relative paths and contents, in sorted order)."""
    import hashlib

    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class Outputs:
    """The files one command writes (the output, a preview, ...), committed as one unit with their JSON log.

    Rules:

    * Checked before any work: the output may be written (:func:`unblur.io.check_writable`), it and
      its log (``OUT.json``) and preview (``OUT.compare.png``) exist only with ``force``, and no
      target is one of the command's ``inputs`` (even with ``force``: the input would be lost).
    * ``OUT.lock`` (created exclusively, holding the process id) keeps two runs from writing the same
      output at the same time; a lock whose process no longer exists is taken over.
    * :meth:`write` writes each file under a hidden temporary name in its target folder
      (``.unblur-<token>-<name>``).  A full disk (ENOSPC, EDQUOT) is an :class:`InputError`
      ("disk full writing X").
    * :meth:`commit` writes the log last, with the SHA-256 of every other file (``sha256``), gives it
      the mode of a new file (0644 with umask 022), then renames every file into place, the log last,
      with SIGINT/SIGTERM held (:func:`unblur.signals.deferred`).
    * Leaving the ``with`` block without a commit (an error, Ctrl-C, SIGTERM) removes every temporary
      file: the output folder is left as it was.  The lock is removed in every case.
    """

    def __init__(self, output, force: bool, inputs=(), preview: str | None = None, extra=()):
        from ..io import check_writable

        self.force = bool(force)
        self.output = check_writable(output, force)
        self.log = log_path_for(self.output)
        self.preview = preview_path_for(self.output, preview) if preview else None
        self.extra = [Path(p) for p in extra]
        targets = [self.output, self.log] + ([self.preview] if self.preview else []) + self.extra
        for t in targets[1:]:
            require(force or not t.exists(), f"{t} exists", "pass --force to replace it")
        for t in targets:
            for src in inputs:
                if src is not None:
                    require(not _same_file(t, Path(src)), f"the output {t} is the input {src}",
                            "choose another output name (the input would be replaced)")
        import os
        import secrets

        self._token = secrets.token_hex(4)
        self._staged: dict[Path, Path] = {}
        self._lock = self.output.with_name(self.output.name + ".lock")
        self._locked = False
        self._pid = os.getpid()

    # -- lock ---------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        import os

        for _ in range(2):
            try:
                fd = os.open(self._lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self._lock.read_text().strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise InputError(f"{self.output} is being written by another unblur run (process {pid}, "
                                     f"lock {self._lock.name})",
                                     "wait for it to finish or choose another output name") from None
                self._lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{self._pid}\n")
            self._locked = True
            return
        raise InputError(f"cannot lock {self.output} ({self._lock.name} keeps reappearing)",
                         "another run is starting on the same output; choose another output name")

    def __enter__(self):
        self._acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        for tmp in self._staged.values():
            _remove(tmp)
        self._staged.clear()
        if self._locked:
            self._lock.unlink(missing_ok=True)
            self._locked = False
        return False

    # -- writing ------------------------------------------------------------------------------------
    def temp_for(self, target: Path) -> Path:
        target = Path(target)
        return target.with_name(f".unblur-{self._token}-{target.name}")

    def write(self, target, writer) -> Path:
        """Call ``writer(tmp)`` to write ``target``'s content to its temporary name; returns ``target``."""
        target = Path(target)
        tmp = self.temp_for(target)
        self._staged[target] = tmp
        try:
            writer(tmp)
        except OSError as e:
            if _disk_full(e):
                raise InputError(f"disk full writing {target}", "free space or choose another folder") from None
            raise
        return target

    def commit(self, record: dict) -> list[Path]:
        """Write the log (``record`` plus ``outputs`` and their ``sha256``) and rename every file into place."""
        import os

        from ..signals import deferred

        outputs = list(self._staged) + [self.log]
        sha = {str(t): _sha256(tmp) for t, tmp in self._staged.items() if tmp.exists()}
        full = _full_record(dict(record, outputs=[str(p) for p in outputs], sha256=sha))
        tmp_log = self.temp_for(self.log)
        self._staged[self.log] = tmp_log

        def dump(p):
            with open(p, "w") as f:
                json.dump(full, f, indent=2)
            os.chmod(p, _file_mode())

        self.write(self.log, dump)
        done: list[Path] = []
        with deferred():
            try:
                for target, tmp in list(self._staged.items()):  # the log was staged last
                    _replace(tmp, target)
                    done.append(target)
                    del self._staged[target]
            except BaseException:
                for t in done:  # never leave an image without its log (or a log of another image)
                    _remove(t)
                raise
        return outputs


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; a folder (Zarr) replaces an existing folder through a trash name."""
    import os

    if tmp.is_dir() and target.exists():
        trash = target.with_name(f".unblur-trash-{os.getpid()}-{target.name}")
        os.replace(target, trash)
        os.replace(tmp, target)
        _remove(trash)
    else:
        os.replace(tmp, target)


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
