"""Benchmark suites as data: a TOML file names the dataset, the degradation, the methods and the metrics.

A suite file (``unblur bench --list`` shows the shipped ones, ``src/unblur/bench/suites/*.toml``)::

    name = "smoke"
    description = "three tiny gray crops, two kernels, three fast methods"
    kind = "nonblind"                 # which methods make sense: "nonblind", "blind" or "mixed"
    seed = 0                          # seeds the kernels, the noise and stochastic methods

    [dataset]
    kind = "images"                   # images | pairs | stacks | synthetic
    path = ["test/set12"]             # folders relative to the data root; --data DIR replaces them
    limit = 3                         # images per folder (sorted by name; 0 = all; a list: one per folder)
    skip = 0                          # optional: leave out the first N images of each folder (a list: one per folder)
    select = ["08", "09"]             # optional: only these images (file names without suffix)
    color = "gray"                    # gray | rgb | keep
    crop = 64                         # centre crop side in pixels (0 = whole image)
    field = 0                         # optional, instead of crop: the observed side; the crop is field + k - 1
                                      # with boundary "valid" (per kernel), the image mirror-extended if smaller

    [degradation]
    boundary = "circular"             # unblur.physics.convolution boundaries: circular, zero, replicate, reflect, valid
    noise = "gaussian"                # none | gaussian | poisson | poisson-gaussian
    levels = [0.01]                   # gaussian: sigma in image units; poisson: gain; poisson-gaussian: [alpha, beta]
    kernels = [{source = "gaussian", size = 15, sigma = 1.6}, {source = "motion", size = 15, seeds = [0, 1]}]
                                      # a kernel entry's own levels = [...] replace degradation.levels for its kernels

    [[methods]]
    method = "rl"                     # a registered method (unblur methods)
    label = "RL 30"                   # the name in tables (default: the method)
    limit = 0                         # optional: this method runs on the first N degraded images only (slow methods)
    kernel = "true"                   # optional, non-blind methods: the kernel they are given, "true" or "dirac"
                                      # (a Dirac: the lower reference of a method that does not deblur)
    params = {num_iter = 30}          # "$sigma" is replaced by the true noise sigma, "$kernel_size" by the kernel side,
                                      # "$kernel" by the true kernel (a blind method's init_kernel: its ceiling)

    [metrics]
    names = ["psnr", "ssim", "isnr", "reblur", "time", "memory"]
    reference = "Wiener"              # label of the method the error ratio divides by
    # "gain": shift-tolerant PSNR minus that of the blurred input (tables count the results worse than it)
    # also: crop (border left out of PSNR/SSIM), shift_crop, max_shift (shift-tolerant metrics),
    # data_range, flux_scale (scale restorations by sum(truth) / sum(data) first),
    # band (psnr_band / psnr_interior: PSNR on the border band of that width and inside it),
    # clip (clip restorations to [0, data_range] before every metric)
    # "psnr_delta": PSNR minus that of the reference method on the same degraded image
    # "psnr_input": PSNR of the blurred input (where it has the truth's shape)
    # "residual_share": share of pixels whose 7x7 window-summed re-blur residual (A x - y) / sigma exceeds 3,
    #   with the true sigma and the degradation's boundary (unblur.diagnostics); for "valid" the method's own
    #   info["residual_outlier_share"] (diagnostics = true)
    # "seed_spread": the method's info["seed_spread_mean"] (samplers with seeds >= 2)

    [report]
    panels = 2                        # image panels of the first units in the HTML report
    group = "kernel"                  # optional: one table per kernel (or "image") and noise level
    matrix = "psnr"                   # optional: the BENCHMARKS.md block is one table of this metric, methods x
                                      # tables (with psnr_delta in brackets); the HTML report keeps every table

    [full]                            # overrides applied by --full (the paper-size protocol)
    dataset = {limit = 68, crop = 256}

Kernel sources (``degradation.kernels`` entries): ``file`` (``path`` of a ``.npz``/``.npy``/image/TIFF
kernel file or a folder of them, ``select`` names or indices), ``gaussian`` (``size``, ``sigma``),
``disk`` (``size``, ``radius``), ``defocus`` (``size``, ``waves`` of Zernike defocus, ``cutoff``: a
diffraction PSF), ``motion`` (``size``, ``seeds`` or ``count``, ``model``, ``intensity``:
:func:`unblur.psf.motion.motion_kernel`), ``zernike`` (``size``, ``count``, ``amplitude``, ``cutoff``:
:func:`unblur.psf.zernike.random_zernike_psfs`, the deep-blur preset).  Kernel generators are seeded with
the entry's ``seed`` (default: the suite seed), so a suite always sees the same kernels.

Dataset kinds: ``images`` (sharp images, degraded by the suite), ``pairs`` (``blurred`` and ``sharp``
folders with matching names, optional ``kernels`` folder; no degradation), ``stacks`` (entries
``{truth, psf}`` degraded by the suite, or ``{blurred, truth, psf}`` used as they are), ``synthetic``
(``shapes``: seeded smooth random images or stacks, for time and memory).
"""

from __future__ import annotations

import copy
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError, require

DATASET_KINDS = ("images", "pairs", "stacks", "synthetic")
NOISES = ("none", "gaussian", "poisson", "poisson-gaussian")
BOUNDARIES = ("circular", "zero", "replicate", "reflect", "valid")
KERNEL_SOURCES = ("file", "gaussian", "disk", "defocus", "motion", "zernike")
COLORS = ("gray", "rgb", "keep")
KERNEL_GIVEN = ("true", "dirac")
METRIC_KEYS = ("psnr", "ssim", "psnr_shift", "ssim_shift", "error_ratio", "gain", "isnr", "kernel_error")
METRICS = ("psnr", "ssim", "psnr_shift", "ssim_shift", "error_ratio", "gain", "isnr", "reblur", "kernel_error",
           "niqe", "brisque", "lpips", "time", "memory", "throughput", "psnr_delta", "psnr_input", "residual_share",
           "seed_spread")
GROUPS = ("kernel", "image")


@dataclass
class MethodSpec:
    """One method of a suite: a registered method, the label it has in tables, its parameters."""

    method: str
    label: str
    params: dict = field(default_factory=dict)
    limit: int = 0   # run on the first ``limit`` units only (0: all), for slow methods
    kernel: str = "true"   # the kernel a non-blind method is given: "true" or "dirac" (same size, all mass at the centre)


@dataclass
class Suite:
    """A parsed suite (see the module docstring for the file format)."""

    name: str
    description: str
    kind: str
    seed: int
    dataset: dict
    degradation: dict
    methods: list[MethodSpec]
    metrics: dict
    report: dict
    source: str
    raw: dict

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics.get("names", []))

    @property
    def reference(self) -> str | None:
        return self.metrics.get("reference")


def suites_dir() -> Path:
    """Folder of the suites shipped with unblur."""
    return Path(str(resources.files("unblur.bench") / "suites"))


def shipped_suites() -> dict[str, Path]:
    """``{name: path}`` of the shipped suites."""
    return {p.stem: p for p in sorted(suites_dir().glob("*.toml"))}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_assignment(text: str) -> dict:
    """``"dataset.limit=4"`` -> ``{"dataset": {"limit": 4}}`` (the value is read as TOML, else kept as text)."""
    key, sep, value = text.partition("=")
    require(bool(sep) and key.strip() != "", f"cannot read the setting {text!r}", "write KEY=VALUE, e.g. dataset.limit=4")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = parsed
    return out


def load_suite(name_or_path: str | Path, full: bool = False, overrides: list[str] | tuple = ()) -> Suite:
    """Read a shipped suite by name, or a suite file by path; apply ``[full]`` and ``KEY=VALUE`` overrides."""
    shipped = shipped_suites()
    p = Path(name_or_path)
    if str(name_or_path) in shipped:
        p = shipped[str(name_or_path)]
    require(p.is_file(), f"no suite named {str(name_or_path)!r}",
            f"use one of {', '.join(shipped)} (unblur bench --list) or the path of a suite .toml file")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"suite file {p} is not valid TOML ({e})", "fix the file (TOML 1.0 syntax)") from None
    data = copy.deepcopy(raw)
    if full:
        data = _merge(data, raw.get("full", {}))
    for text in overrides:
        data = _merge(data, parse_assignment(text))
    return _validate(data, p, raw)


def _validate(d: dict, path: Path, raw: dict) -> Suite:
    where = f"suite {path.name}"
    unknown = set(d) - {"name", "description", "kind", "seed", "dataset", "degradation", "methods", "metrics", "report",
                        "full"}
    require(not unknown, f"{where}: unknown section(s) {', '.join(sorted(unknown))}",
            "use name, description, kind, seed, dataset, degradation, methods, metrics, report, full")
    ds = dict(d.get("dataset", {}))
    ds.setdefault("kind", "images")
    require(ds["kind"] in DATASET_KINDS, f"{where}: dataset.kind {ds['kind']!r} unknown", f"use one of {', '.join(DATASET_KINDS)}")
    ds.setdefault("color", "keep")
    require(ds["color"] in COLORS, f"{where}: dataset.color {ds['color']!r} unknown", f"use one of {', '.join(COLORS)}")
    if isinstance(ds.get("path"), str):
        ds["path"] = [ds["path"]]
    require(int(ds.get("field", 0)) >= 0, f"{where}: dataset.field is negative", "give the observed side in pixels (0: off)")
    deg = dict(d.get("degradation", {}))
    if ds["kind"] in ("images", "stacks", "synthetic"):
        deg.setdefault("boundary", "circular")
        deg.setdefault("noise", "none")
        require(deg["boundary"] in BOUNDARIES, f"{where}: boundary {deg['boundary']!r} unknown", f"use one of {', '.join(BOUNDARIES)}")
        require(deg["noise"] in NOISES, f"{where}: noise {deg['noise']!r} unknown", f"use one of {', '.join(NOISES)}")
        if "levels_255" in deg:
            deg["levels"] = [float(v) / 255 for v in deg.pop("levels_255")]
        deg.setdefault("levels", [0.0])
        require(len(deg["levels"]) > 0, f"{where}: degradation.levels is empty", "give at least one noise level")
        if ds["kind"] != "stacks" or any("psf" not in s for s in ds.get("stacks", [])):
            kernels = deg.get("kernels", [])
            require(ds["kind"] == "stacks" or len(kernels) > 0, f"{where}: degradation.kernels is empty",
                    "give at least one kernel source, e.g. {source = \"gaussian\", size = 15, sigma = 2}")
            for k in kernels:
                require(k.get("source") in KERNEL_SOURCES, f"{where}: kernel source {k.get('source')!r} unknown",
                        f"use one of {', '.join(KERNEL_SOURCES)}")
                require("levels" not in k or len(k["levels"]) > 0, f"{where}: a kernel entry's levels are empty",
                        "give at least one noise level, or leave levels out (degradation.levels)")
    methods = []
    for m in d.get("methods", []):
        require("method" in m, f"{where}: a [[methods]] entry has no 'method'", "name a registered method (unblur methods)")
        require(int(m.get("limit", 0)) >= 0, f"{where}: method {m['method']!r} has a negative limit", "give limit = 0 (all) or more")
        require(m.get("kernel", "true") in KERNEL_GIVEN, f"{where}: method {m['method']!r} has kernel = {m.get('kernel')!r}",
                f"use one of {', '.join(KERNEL_GIVEN)}")
        methods.append(MethodSpec(m["method"], m.get("label", m["method"]), dict(m.get("params", {})), int(m.get("limit", 0)),
                                  m.get("kernel", "true")))
    require(len(methods) > 0, f"{where}: no methods", "add [[methods]] entries")
    labels = [m.label for m in methods]
    require(len(set(labels)) == len(labels), f"{where}: method labels repeat ({', '.join(labels)})", "give each entry its own label")
    metrics = dict(d.get("metrics", {}))
    metrics.setdefault("names", ["psnr", "ssim", "time", "memory"])
    bad = [n for n in metrics["names"] if n not in METRICS]
    require(not bad, f"{where}: unknown metric(s) {', '.join(bad)}", f"use {', '.join(METRICS)}")
    if metrics.get("reference") is not None:
        require(metrics["reference"] in labels, f"{where}: reference method {metrics['reference']!r} is not a method label",
                f"use one of {', '.join(labels)}")
    require("psnr_delta" not in metrics["names"] or metrics.get("reference") is not None,
            f"{where}: the metric psnr_delta needs a reference method", "set metrics.reference to a method label")
    report = dict(d.get("report", {}))
    require(report.get("group") in (None,) + GROUPS, f"{where}: report.group {report.get('group')!r} unknown",
            f"use one of {', '.join(GROUPS)}, or leave it out")
    require(report.get("matrix") in (None,) + tuple(k for k in METRIC_KEYS if k in metrics["names"] or k == "time_s"),
            f"{where}: report.matrix {report.get('matrix')!r} is not one of the suite's metrics",
            "name a metric of metrics.names (e.g. psnr), or leave it out")
    kind = d.get("kind", "nonblind")
    require(kind in ("nonblind", "blind", "mixed"), f"{where}: kind {kind!r} unknown", "use nonblind, blind or mixed")
    return Suite(name=d.get("name", path.stem), description=d.get("description", ""), kind=kind, seed=int(d.get("seed", 0)),
                 dataset=ds, degradation=deg, methods=methods, metrics=metrics, report=report,
                 source=str(path), raw=raw)


def select_methods(suite: Suite, wanted: list[str] | None) -> Suite:
    """Keep the methods whose label or method name is in ``wanted`` (and the error-ratio reference)."""
    if not wanted:
        return suite
    names = set(wanted)
    known = {m.label for m in suite.methods} | {m.method for m in suite.methods}
    missing = sorted(names - known)
    if missing:
        extra = []
        from ..registry import get_method
        for n in missing:
            get_method(n)  # a clear error for an unknown method
            extra.append(MethodSpec(n, n, {}))
        methods = [m for m in suite.methods if m.label in names or m.method in names] + extra
    else:
        methods = [m for m in suite.methods if m.label in names or m.method in names]
    ref = suite.reference
    if ref is not None and ref not in {m.label for m in methods}:
        methods.append(next(m for m in suite.methods if m.label == ref))
    out = copy.copy(suite)
    out.methods = methods
    return out


_SUBST = re.compile(r"^\$(sigma|kernel_size|seed|kernel)$")


def substitute(params: dict, values: dict) -> dict:
    """Replace ``"$sigma"``, ``"$kernel_size"``, ``"$seed"``, ``"$kernel"`` (the true kernel, e.g. a blind method's
    ``init_kernel`` for its true-kernel ceiling) in method parameters by the case's values."""
    out = {}
    for k, v in params.items():
        m = _SUBST.match(v) if isinstance(v, str) else None
        out[k] = values[m.group(1)] if m else v
    return out


def describe(suite: Suite) -> dict[str, Any]:
    """A short summary of a suite for ``--list``."""
    ds = suite.dataset
    return {"name": suite.name, "kind": suite.kind, "dataset": ds.get("path") or ds.get("kind"),
            "methods": [m.label for m in suite.methods], "description": suite.description}
