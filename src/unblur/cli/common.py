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
        resolved = [t.resolve() for t in targets]
        for i, t in enumerate(resolved):
            require(t not in resolved[:i], f"two outputs of this command would be written to {targets[i]}",
                    "give each output its own name (e.g. -o and --kernel-out)")
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


#: image kinds by axes (unblur's order, without a leading ``T``)
IMAGE_KINDS = {"YX": "gray", "YXC": "colour", "ZYX": "stack", "ZYXC": "stack-colour"}
#: the diagnostic maps a method may put in ``info`` -> the suffix of their file (``OUT.residual.tif``)
DIAGNOSTIC_MAPS = {"residual_map": "residual", "seed_spread": "spread"}


def load_psf_for_image(psf_path: Path, image, image_path: Path, center: str = "none",
                       notes: list | None = None, meta=None) -> list:
    """Read a PSF file and match it to ``image``; returns ``[psf]`` (shared) or one PSF per channel.

    The same as :func:`match_psf_to_image` without the axes.
    """
    return match_psf_to_image(psf_path, image, image_path, center=center, notes=notes, meta=meta)[0]


def match_psf_to_image(psf_path: Path, image, image_path: Path, center: str = "none",
                       notes: list | None = None, meta=None) -> tuple[list, str]:
    """Read a PSF file and match it to ``image``; returns ``(psfs, axes)``.

    ``psfs`` is ``[psf]`` (shared by the channels) or one PSF per channel; ``axes`` names the
    image's axes in unblur's order (``YX``, ``YXC``, ``ZYX``, ``ZYXC``, with a leading ``T`` when
    the file holds several time points: the caller restores each time point on its own).

    Layout rules:

    * Files that name their axes (``meta.axes``: ImageJ hyperstacks, OME-TIFF, OME-Zarr, pictures)
      are taken as named.  The PSF must be 2-D for ``YX``, 2-D or one per channel ``(Y, X, C)``
      (1 or C channels) for ``YXC``, and 3-D for ``ZYX`` and ``ZYXC``.
    * Files without axis names: a 2-D image is gray; a 3-axis image from PNG/JPEG/BMP, or from
      TIFF with at most 4 values on the last axis and a 2-D or colour PSF, is a colour image
      ``(H, W, C)``; a 3-axis TIFF with a 3-D (non-colour) PSF is a stack ``(Z, Y, X)``; 4 axes:
      ``(Z, Y, X, C)`` with a 3-D PSF.

    Voxel sizes: the PSF is brought to the image's voxel size by
    :func:`unblur.metadata.match_psf_voxel` (resampled when both are known and differ; assumed
    equal, with a note, when one is unknown); a PSF that would then be larger than the image is
    refused.  Each PSF is then validated and normalised by :func:`unblur.psf.prepare_psf`.  What
    was done goes to ``notes``.

    Parameters
    ----------
    psf_path, image_path : Path
        The PSF file and the image file.
    image : ndarray
        The image as :func:`unblur.io.read_image` returned it.
    center : {"none", "integer", "subpixel"}
        Re-centring of the PSF (:func:`unblur.psf.prepare_psf`).
    notes : list, optional
        Receives one line per thing done or assumed.
    meta : ImageMetadata, optional
        The image's metadata (``read_image(path, with_metadata=True)``); read from ``image_path``
        when not given.
    """
    from ..io import RASTER_SUFFIXES, read_image, read_metadata
    from ..psf.core import prepare_psf

    notes = notes if notes is not None else []
    if meta is None:
        meta = read_metadata(image_path)
    raw, psf_meta = read_image(psf_path, scale=False, drop_alpha=False, with_metadata=True)
    psf_raster = psf_path.suffix.lower() in RASTER_SUFFIXES
    if psf_raster and raw.ndim == 3 and raw.shape[-1] in (2, 4):
        raw = raw[..., :-1]  # drop the alpha channel
    name = f"PSF {psf_path.name}"
    psf_axes = None if psf_raster else psf_meta.axes
    require(psf_axes in (None, "YX", "YXC", "ZYX"),
            f"{name} has axes {psf_axes} {raw.shape}", "give a 2-D PSF (Y, X), one per channel (Y, X, C) or a 3-D PSF (Z, Y, X)")
    psf_colour = psf_axes == "YXC" if psf_axes else raw.ndim == 3 and (psf_raster or raw.shape[-1] <= 4)
    require(raw.ndim in (2, 3), f"{name} has {raw.ndim} axes {raw.shape}", "give a 2-D PSF (or 3-D for stacks)")
    axes = _image_axes(image, meta, image_path, raw, psf_colour, name)
    timed = axes.startswith("T")
    kind = IMAGE_KINDS[axes[1:] if timed else axes]
    frame_shape = image.shape[1:] if timed else image.shape
    if kind == "gray":
        require(raw.ndim == 2 and not (psf_colour and raw.shape[-1] > 1),
                f"channel count mismatch: {name} has {raw.shape[-1]} colour channels but the image is gray"
                if psf_colour else f"{name} is 3-D {raw.shape} but the image is 2-D {frame_shape}",
                "give a single-channel 2-D PSF for a gray 2-D image")
        spatial = frame_shape
    elif kind == "colour":
        spatial = frame_shape[:2]
        require(raw.ndim == 2 or psf_colour, f"{name} is 3-D {raw.shape} but the image is a 2-D colour image",
                "give a 2-D PSF (shared by the channels) or one per channel (H, W, C)")
    else:
        spatial = frame_shape[:3]
        require(raw.ndim == 3 and not (psf_axes == "YXC" or psf_raster),
                f"the image {frame_shape} is a 3-D stack ({axes}) but {name} is "
                + ("a colour PSF (Y, X, C)" if raw.ndim == 3 else "2-D") + f" {raw.shape}",
                "give a 3-D PSF (Z, Y, X)" + ("" if getattr(meta, "axes", None)
                                              else "; colour images need their channels on the last axis (at most 4)"))
    if kind == "colour" and psf_colour:
        c_img, c_psf = frame_shape[-1], raw.shape[-1]
        require(c_psf in (1, c_img), f"channel count mismatch: {name} has {c_psf} channels, the image {c_img}",
                "give one PSF for all channels or one per channel")
        chans = [_match_voxel(raw[..., c], psf_meta, meta, spatial, name, notes) for c in range(c_psf)]
        return [prepare_psf(p, 2, image_shape=spatial, center=center, name=f"{name} channel {i}" if c_psf > 1 else name,
                            report=notes) for i, p in enumerate(chans)], axes
    psf = _match_voxel(raw, psf_meta, meta, spatial, name, notes)
    return [prepare_psf(psf, len(spatial), image_shape=spatial, center=center, name=name, report=notes)], axes


def _image_axes(image, meta, image_path: Path, raw, psf_colour: bool, name: str) -> str:
    """The image's axes: as the file names them, else by the shape rule of :func:`match_psf_to_image`."""
    from ..io import RASTER_SUFFIXES

    axes = getattr(meta, "axes", None)
    if axes:
        spatial = axes[1:] if axes.startswith("T") else axes
        require(spatial in IMAGE_KINDS and len(axes) == image.ndim,
                f"cannot interpret the axes {axes} of {image_path.name} (shape {image.shape})",
                "save it as an ImageJ hyperstack or OME-TIFF with axes among T, Z, C, Y, X")
        return axes
    img_raster = image_path.suffix.lower() in RASTER_SUFFIXES
    if image.ndim == 2:
        return "YX"
    if image.ndim == 3 and (img_raster or (image.shape[-1] <= 4 and (raw.ndim == 2 or psf_colour))):
        return "YXC"
    if image.ndim == 3:
        return "ZYX"
    require(image.ndim == 4 and raw.ndim == 3 and not psf_colour,
            f"image of shape {image.shape} with {name} of shape {raw.shape} is not supported",
            "give (Z, Y, X) or (Z, Y, X, C) stacks with a 3-D PSF")
    return "ZYXC"


def _match_voxel(psf, psf_meta, meta, spatial, name: str, notes: list):
    """:func:`unblur.metadata.match_psf_voxel`, refusing a PSF that would be larger than the image."""
    from ..metadata import match_psf_voxel

    nd = psf.ndim
    pv, iv = psf_meta.voxel_size(nd), meta.voxel_size(nd)
    resampled = any(a and b and abs(a - b) > 0.01 * max(a, b) for a, b in zip(pv, iv))  # match_psf_voxel's rtol
    est = tuple(max(1, round(n * a / b)) if a and b else n for n, a, b in zip(psf.shape, pv, iv))
    fmt = lambda v: " x ".join("?" if x is None else f"{x:.4g}" for x in v)  # noqa: E731
    require(not resampled or all(e <= s for e, s in zip(est, spatial)),
            f"{name} ({'x'.join(map(str, psf.shape))}, voxel {fmt(pv)} µm) resampled to the image's voxel "
            f"{fmt(iv)} µm would be about {'x'.join(map(str, est))}, larger than the image "
            f"({'x'.join(map(str, spatial))})",
            "give a PSF sampled at the image's voxel size, cropped to its significant part")
    out, vnotes = match_psf_voxel(psf, psf_meta, meta, max_shape=spatial)
    notes.extend(vnotes)
    return out


# -- outputs of the image commands ---------------------------------------------------------------------

def output_metadata(meta, axes: str, output: Path):
    """Metadata to write ``output`` with (:func:`unblur.io.write_image`), or None for a plain file.

    The input's metadata (axes, voxel sizes, channel names) is kept when the input names its axes
    (ImageJ, OME, Zarr) or the output needs axes (``.ome.tif``, ``.zarr``, ``.ome.zarr``); ``axes``
    are those :func:`match_psf_to_image` decided.  Pictures (PNG, JPEG) keep only their alpha channel, bit
    depth, ICC profile, EXIF, dpi and FITS header (``unblur.io``'s rules: alpha written back unchanged, 16-bit in gives
    16-bit out, colour profile and EXIF written back into PNG and JPEG).
    """
    from dataclasses import replace

    from ..io import RASTER_SUFFIXES
    from ..io.lazy import is_ome_name, is_zarr_path
    from ..metadata import ImageMetadata

    meta = meta if meta is not None else ImageMetadata()
    named = bool(meta.axes) and meta.format not in {s.lstrip(".") for s in RASTER_SUFFIXES} | {"jpg"}
    if named or is_ome_name(output) or is_zarr_path(output):
        return replace(meta, axes=axes)
    if getattr(meta, "alpha", None) is not None or getattr(meta, "dtype", None) is not None:
        # pictures: only what the file rules need (alpha written back, 16-bit in -> 16-bit out)
        return ImageMetadata(alpha=getattr(meta, "alpha", None), dtype=getattr(meta, "dtype", None),
                             icc_profile=getattr(meta, "icc_profile", None), exif=getattr(meta, "exif", None),
                             dpi=getattr(meta, "dpi", None), fits_header=getattr(meta, "fits_header", None))
    return None


def expected_diagnostic_maps(method: Method, params: dict) -> list[str]:
    """The keys of :data:`DIAGNOSTIC_MAPS` a run of ``method`` with ``params`` writes as files:
    ``residual_map`` with ``diagnostics``, ``seed_spread`` with ``seeds >= 2`` given in ``params`` (a
    method's own default seeds, e.g. the mean of 2 samples of ``dps`` and ``pigdm``, write no map)."""
    values = dict({p.name: p.default for p in method.params}, **params)
    keys = []
    if values.get("diagnostics"):
        keys.append("residual_map")
    if (params.get("seeds") or 1) > 1:
        keys.append("seed_spread")
    return keys


def diagnostic_paths(output, keys) -> dict:
    """``{key: OUT.residual.tif / OUT.spread.tif}`` for the given :data:`DIAGNOSTIC_MAPS` keys."""
    output = Path(output)
    return {k: output.with_name(f"{output.name}.{DIAGNOSTIC_MAPS[k]}.tif") for k in keys}


def pop_diagnostic_maps(info: dict) -> dict:
    """Remove the diagnostic maps (arrays) from ``info``; return them as float32 numpy arrays."""
    import numpy as np

    maps = {}
    for k in DIAGNOSTIC_MAPS:
        v = info.get(k)
        if v is not None and not isinstance(v, (str, int, float)):
            v = info.pop(k)
            maps[k] = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float32)
    return maps


def write_diagnostic_maps(unit: Outputs, maps: dict, image_shape, meta) -> dict:
    """Stage each map as ``OUT.residual.tif`` / ``OUT.spread.tif`` (float32) in ``unit``; return
    ``{key: path}`` for the log.  ``meta`` (axes, voxel sizes) is kept when a map has the image's shape."""
    from ..io import write_image

    written = {}
    for key, arr in maps.items():
        target = diagnostic_paths(unit.output, [key])[key]
        if target not in unit.extra:
            continue  # not asked for (a method's default seeds, not --seeds): only the summary goes to the log
        require(unit.force or not target.exists(), f"{target} exists", "pass --force to replace it")
        m = meta if meta is not None and tuple(arr.shape) == tuple(image_shape) else None
        unit.write(target, lambda p, a=arr, m=m: write_image(p, a, metadata=m))
        written[key] = str(target)
    return written


def join_restorations(parts: list, axis: int, key: str):
    """One :class:`unblur.api.Restoration` from restorations of the channels (``axis=-1``,
    ``key="per_channel"``) or time points (``axis=0``, ``key="per_time_point"``) of one image.

    Images and diagnostic maps are stacked on ``axis``; ``info`` is the first part's, with the
    summed ``time_s`` and each part's own ``info`` (without parameters and maps) under ``key``.
    """
    import numpy as np

    from ..api import Restoration

    info = dict(parts[0].info, time_s=sum(r.info.get("time_s", 0) for r in parts),
                **{key: [{k: v for k, v in r.info.items() if k != "params" and k not in DIAGNOSTIC_MAPS}
                         for r in parts]})
    for k in DIAGNOSTIC_MAPS:
        info.pop(k, None)
        got = [r.info.get(k) for r in parts]
        if all(g is not None and not isinstance(g, (str, int, float)) for g in got):
            info[k] = np.stack([np.asarray(g.detach().cpu().numpy() if hasattr(g, "detach") else g) for g in got], axis)
    return Restoration(np.stack([np.asarray(r.image) for r in parts], axis), info)


def preview_view(image, axes: str):
    """A 2-D (or ``(H, W, 3)``) view of ``image`` with ``axes`` for the preview: the first time
    point, the middle plane of a stack, the mean of the channels unless there are 3."""
    import numpy as np

    a = np.asarray(image)
    if axes.startswith("T"):
        a, axes = a[0], axes[1:]
    if axes.startswith("Z"):
        a = a[a.shape[0] // 2]
    if axes.endswith("C") and a.shape[-1] != 3:
        a = a.mean(-1)
    return a


def add_transfer_option(p) -> None:
    """``--transfer linear|srgb`` (:mod:`unblur.physics.transfer`), passed to the API's ``transfer``."""
    from ..physics.transfer import TRANSFERS
    p.add_argument("--transfer", choices=TRANSFERS, default="linear",
                   help="transfer curve of the image values: srgb decodes a JPEG/PNG photograph to linear light before the "
                        "restoration and encodes the result after it (blur adds light); linear (default): the values as given")
