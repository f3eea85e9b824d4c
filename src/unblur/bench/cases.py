"""Cases of a suite: dataset items x kernels x noise levels (a *unit*: one degraded image) x methods.

A unit's degraded image depends only on the suite seed and the unit's names (image, kernel, noise
level), not on its position in the list, so ``--limit`` or ``--methods`` never change what a method
sees, and every method of a unit restores the same data.  The noise of a unit is drawn with a torch
generator seeded by ``crc32(image|kernel|level) + suite seed``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from .suite import MethodSpec, Suite

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


@dataclass
class Unit:
    """One degraded input: a dataset item, a kernel and a noise level (or a ready blurred/sharp pair)."""

    uid: str
    item: dict          # {"name", "path" | "shape" | "blurred"/"truth"/"psf" paths}
    kernel_name: str
    kernel: np.ndarray | None
    noise: str
    level: float | list
    seed: int
    boundary: str
    crop: int = 0
    color: str = "keep"
    field: int = 0      # observed side (dataset.field): the crop is field + k - 1 for "valid", mirror-extended


@dataclass
class Case:
    """One method run on one unit."""

    cid: str
    unit: Unit
    method: MethodSpec
    kind: str                     # "nonblind" or "blind" (the registry's kind of the method)
    seed: int
    metrics: list[str] = field(default_factory=list)
    reference: str | None = None  # label of the error-ratio reference (None for the reference itself)
    metric_options: dict = field(default_factory=dict)
    group_by: str | None = None   # report.group: one table per kernel or image
    index: int = 0                # position in the suite's case list (tables keep that order)


def _root(data: str | Path | None) -> Path:
    if data is not None:
        return Path(data).expanduser().resolve()
    from ..data import data_root
    return data_root()


def _resolve(root: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    p = p if p.is_absolute() else root / p
    require(p.exists(), f"benchmark data {p} not found",
            "set UNBLUR_DATA to the shared data root, or give --data DIR (a folder of images)")
    return p


def _images_in(folder: Path, limit: int, select=None, skip: int = 0) -> list[Path]:
    if folder.is_file():
        return [folder]
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    require(len(files) > 0, f"no images in {folder}", f"put {', '.join(IMAGE_SUFFIXES)} files there or give another --data")
    if select:  # dataset.select: file names without suffix, kept in the folder's order
        stems = {p.stem for p in files}
        missing = [str(s) for s in select if str(s) not in stems]
        require(not missing, f"no image(s) {', '.join(missing)} in {folder}", "name images by their file name without suffix")
        files = [p for p in files if p.stem in {str(s) for s in select}]
    files = files[skip:]
    return files[:limit] if limit else files


def dataset_items(suite: Suite, data: str | Path | None = None) -> list[dict]:
    """The dataset's items: ``{"name", "path"}`` (images), ``{"name", "blurred", "truth", "psf"?}`` (pairs,
    stacks), ``{"name", "shape"}`` (synthetic).  ``data`` replaces the suite's folders (``--data``; ``select`` and
    ``skip`` then do not apply)."""
    ds = suite.dataset
    kind = ds["kind"]
    limit = ds.get("limit", 0)
    limits = [int(v) for v in limit] if isinstance(limit, list) else None
    limit = 0 if limits is not None else int(limit)
    if kind == "synthetic":
        return [{"name": "x".join(map(str, s)), "shape": list(s)} for s in ds.get("shapes", [])]
    root = _root(data) if data is None else Path(data).expanduser().resolve()
    if kind == "images":
        folders = [root] if data is not None else [_resolve(root, p) for p in ds.get("path", [])]
        require(len(folders) > 0, f"suite {suite.name}: dataset.path is empty", "name a folder of images or give --data DIR")
        require(limits is None or len(limits) == len(folders), f"suite {suite.name}: dataset.limit has {len(limits or [])} "
                f"entries for {len(folders)} folders", "give one limit, or one per folder")
        skip = ds.get("skip", 0)
        skips = [int(v) for v in skip] if isinstance(skip, list) else [int(skip)] * len(folders)
        require(len(skips) == len(folders) or data is not None, f"suite {suite.name}: dataset.skip has {len(skips)} "
                f"entries for {len(folders)} folders", "give one skip, or one per folder")
        items = []
        for i, f in enumerate(folders):
            for p in _images_in(f, limits[i] if limits and data is None else (limits[0] if limits else limit),
                                ds.get("select") if data is None else None, skips[i] if data is None else 0):
                items.append({"name": p.stem if len(folders) == 1 else f"{f.name}/{p.stem}", "path": str(p)})
        return items
    if kind == "pairs":
        base = root if data is not None else _root(None)
        blurred = _resolve(base, ds.get("blurred", "blurred"))
        sharp = _resolve(base, ds.get("sharp", "sharp"))
        kernels = ds.get("kernels")
        kdir = _resolve(base, kernels) if kernels else None
        items = []
        for p in _images_in(blurred, limit):
            truth = [q for q in sharp.iterdir() if q.stem == p.stem]
            require(len(truth) == 1, f"no sharp image named {p.stem}.* in {sharp}", "name each sharp image like its blurred one")
            item = {"name": p.stem, "blurred": str(p), "truth": str(truth[0])}
            if kdir is not None:
                ks = [q for q in kdir.iterdir() if q.stem == p.stem]
                if ks:
                    item["psf"] = str(ks[0])
            items.append(item)
        return items
    # stacks
    base = root if data is not None else _root(None)
    items = []
    for s in ds.get("stacks", []):
        item = {"name": s.get("name", Path(s["truth"]).parent.name)}
        for key in ("blurred", "truth", "psf"):
            if key in s:
                item[key] = str(_resolve(base, s[key]))
        items.append(item)
    require(len(items) > 0, f"suite {suite.name}: no stacks", "add dataset.stacks entries {truth, psf[, blurred]}")
    return items[:limit] if limit else items


# -- kernels --------------------------------------------------------------------------------------

def _read_kernel_file(p: Path, select) -> list[tuple[str, np.ndarray]]:
    if p.is_dir():
        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES + (".npz",))
        out = [kv for q in files for kv in _read_kernel_file(q, None)]
    elif p.suffix.lower() == ".npz":
        z = np.load(p)
        out = [(k, np.asarray(z[k], np.float32)) for k in z.files]
    else:
        from ..io import read_image
        a = np.asarray(read_image(p), np.float32)
        if a.ndim == 3 and a.shape[-1] in (3, 4):
            a = a[..., :3].mean(-1)
        out = [(p.stem, a)]
    if select is not None:
        names = [n for n, _ in out]
        picked = []
        for s in select:
            if isinstance(s, int):
                require(0 <= s < len(out), f"kernel index {s} out of range in {p}", f"use 0..{len(out) - 1}")
                picked.append(out[s])
            else:
                require(s in names, f"no kernel {s!r} in {p}", f"use one of {', '.join(names)}")
                picked.append(out[names.index(s)])
        out = picked
    return out


def build_kernels(suite: Suite, data: str | Path | None = None) -> list[tuple[str, np.ndarray]]:
    """``[(name, kernel)]`` of the suite's kernel sources, normalised to sum 1, float32."""
    return [(name, k) for name, k, _ in _kernels_with_levels(suite)]


def _kernels_with_levels(suite: Suite) -> list[tuple[str, np.ndarray, list]]:
    """``[(name, kernel, noise levels)]``: a kernel entry's own ``levels``, else ``degradation.levels``."""
    from .. import psf as P
    res = []
    for spec in suite.degradation.get("kernels", []):
        out: list[tuple[str, np.ndarray]] = []
        src = spec["source"]
        seed = int(spec.get("seed", suite.seed))
        size = int(spec.get("size", 25))
        if src == "file":
            path = Path(spec["path"]).expanduser()
            if not path.is_absolute():
                path = _resolve(_root(None), spec["path"])
            out += [(f"{path.stem}:{n}" if path.suffix == ".npz" else n, k) for n, k in _read_kernel_file(path, spec.get("select"))]
        elif src == "gaussian":
            sigmas = spec.get("sigmas", [spec.get("sigma", 2.0)])
            nd = int(spec.get("ndim", 2))
            out += [(f"gauss{size}{'x3d' if nd == 3 else ''}-s{s:g}", P.gaussian_kernel(size, float(s), ndim=nd)) for s in sigmas]
        elif src == "disk":
            radii = spec.get("radii", [spec.get("radius", 3.0)])
            out += [(f"disk{size}-r{r:g}", P.disk_kernel(size, float(r))) for r in radii]
        elif src == "defocus":
            waves = spec.get("waves_list", [spec.get("waves", 0.5)])
            out += [(f"defocus{size}-w{w:g}", P.diffraction_psf(size, cutoff=float(spec.get("cutoff", 0.2)),
                                                                coefficients={4: float(w)})) for w in waves]
        elif src == "motion":
            seeds = spec.get("seeds") or list(range(seed, seed + int(spec.get("count", 1))))
            model = spec.get("model", "gp")
            out += [(f"motion{size}-{model}-{s}", P.motion_kernel(size, seed=int(s), model=model,
                                                                 intensity=float(spec.get("intensity", 0.7)))) for s in seeds]
        elif src == "zernike":
            n = int(spec.get("count", 1))
            ks = P.random_zernike_psfs(size, n, seed=seed, amplitude=float(spec.get("amplitude", 0.15)),
                                       cutoff=float(spec.get("cutoff", 0.2)))
            out += [(f"zernike{size}-{seed}-{i}", ks[i, 0].detach().numpy()) for i in range(n)]
        levels = spec.get("levels", suite.degradation.get("levels", [0.0]))
        if "levels_255" in spec:
            levels = [float(v) / 255 for v in spec["levels_255"]]
        for name, k in out:
            k = np.clip(np.asarray(k, np.float32), 0, None)
            require(k.sum() > 0, f"kernel {name} is empty", "check the kernel source")
            res.append((name, (k / k.sum()).astype(np.float32), list(levels)))
    return res


# -- units and cases ------------------------------------------------------------------------------

def unit_seed(suite_seed: int, *names) -> int:
    return (zlib.crc32("|".join(map(str, names)).encode()) + int(suite_seed)) % (2**31)


def _level_name(level) -> str:
    return "-".join(f"{v:g}" for v in level) if isinstance(level, (list, tuple)) else f"{float(level):g}"


def make_units(suite: Suite, data: str | Path | None = None) -> list[Unit]:
    items = dataset_items(suite, data)
    ds, deg = suite.dataset, suite.degradation
    common = dict(crop=int(ds.get("crop", 0)), color=ds.get("color", "keep"), field=int(ds.get("field", 0)))
    units = []
    if ds["kind"] == "pairs" or (ds["kind"] == "stacks" and all("blurred" in it for it in items)):
        for it in items:
            units.append(Unit(it["name"], it, "given", None, "given", 0.0, 0, deg.get("boundary", "valid"), **common))
        return units
    if ds["kind"] == "stacks":
        kernels = [("psf", None, deg["levels"])]
    else:
        kernels = _kernels_with_levels(suite)
    for it in items:
        for kname, k, levels in kernels:
            if "shape" in it and k is not None and k.ndim != len(it["shape"]):
                continue  # synthetic data: each kernel blurs the items of its dimension
            for level in levels:
                uid = f"{it['name']}|{kname}|{deg['noise']}={_level_name(level)}"
                units.append(Unit(uid, it, kname, k, deg["noise"], level, unit_seed(suite.seed, it["name"], kname, _level_name(level)),
                                  deg["boundary"], **common))
    return units


def make_cases(suite: Suite, data: str | Path | None = None) -> list[Case]:
    """All cases of ``suite`` (units x methods), the error-ratio reference's cases first in each unit."""
    from ..registry import get_method
    kinds = {m.label: get_method(m.method).kind for m in suite.methods}
    ref = suite.reference
    order = sorted(suite.methods, key=lambda m: m.label != ref)
    opts = {k: v for k, v in suite.metrics.items() if k not in ("names", "reference")}
    cases = []
    for i, u in enumerate(make_units(suite, data)):
        for m in order:
            if m.limit and i >= m.limit and m.label != ref:  # a slow method on the first units only
                continue
            cases.append(Case(f"{u.uid}|{m.label}", u, m, kinds[m.label], seed=u.seed, metrics=suite.metric_names,
                              reference=None if (ref is None or m.label == ref) else ref, metric_options=opts,
                              group_by=suite.report.get("group"), index=len(cases)))
    return cases


# -- degradation ----------------------------------------------------------------------------------

def _to_color(a: np.ndarray, color: str) -> np.ndarray:
    if color == "gray" and a.ndim == 3 and a.shape[-1] in (3, 4):
        return (a[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)
    if color == "rgb" and a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=-1)
    if color == "rgb" and a.ndim == 3 and a.shape[-1] == 4:
        return a[..., :3]
    return a


def _centre_crop(a: np.ndarray, size: int, spatial: int = 2) -> np.ndarray:
    if not size:
        return a
    sl = []
    for n in a.shape[:spatial]:
        s = min(size, n)
        sl.append(slice((n - s) // 2, (n - s) // 2 + s))
    return a[tuple(sl)]


def synthetic_image(shape, seed: int) -> np.ndarray:
    """A seeded smooth random image or stack in [0, 1] (Gaussian-filtered white noise, sigma 2 px)."""
    from scipy import ndimage
    a = ndimage.gaussian_filter(np.random.default_rng(seed).random(tuple(shape)), 2.0)
    a = (a - a.min()) / max(a.max() - a.min(), 1e-12)
    return a.astype(np.float32)


def mirror_crop(a: np.ndarray, need: tuple[int, int]) -> np.ndarray:
    """The centred ``need`` crop of an image (``(H, W)`` or ``(H, W, C)``); where the image is smaller, it is first
    extended by mirror symmetry (``numpy.pad(mode="symmetric")``, one pixel more than needed on each side), which
    only supplies content beyond the observed field of view."""
    ph, pw = max(0, need[0] - a.shape[0]), max(0, need[1] - a.shape[1])
    if ph or pw:
        pad = [(ph // 2 + 1, ph - ph // 2 + 1) if ph else (0, 0), (pw // 2 + 1, pw - pw // 2 + 1) if pw else (0, 0)]
        a = np.pad(a, pad + [(0, 0)] * (a.ndim - 2), mode="symmetric")
    r0, c0 = (a.shape[0] - need[0]) // 2, (a.shape[1] - need[1]) // 2
    return a[r0:r0 + need[0], c0:c0 + need[1]]


def load_item(unit: Unit, key: str = "path") -> np.ndarray:
    from ..io import read_image
    it = unit.item
    if "shape" in it:
        return synthetic_image(it["shape"], unit.seed)
    a = np.asarray(read_image(it[key]), np.float32)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] <= 4 and key != "truth_stack"):
        a = _to_color(a, unit.color)
        if unit.field and unit.kernel is not None:  # dataset.field: the observed side, the crop follows the kernel
            extra = tuple(n - 1 for n in unit.kernel.shape[:2]) if unit.boundary == "valid" else (0, 0)
            a = mirror_crop(a, (unit.field + extra[0], unit.field + extra[1]))
        else:
            a = _centre_crop(a, unit.crop, 2)
    return np.ascontiguousarray(a)


def noise_sigma(unit: Unit) -> float | None:
    """The Gaussian noise sigma in image units (the Poisson-Gaussian ``sqrt(beta)`` floor; None for Poisson)."""
    if unit.noise == "gaussian":
        return float(unit.level)
    if unit.noise == "none":
        return 0.0
    if unit.noise == "poisson-gaussian":
        return float(np.sqrt(unit.level[1]))
    return None


def degrade(unit: Unit) -> dict:
    """``{"truth", "blurred", "kernel", "sigma"}`` of a unit (numpy float32, spatial layout of the truth)."""
    import torch

    from ..physics.convolution import Convolution, convolve
    from ..physics.noise import make_noise
    it = unit.item
    if "blurred" in it:  # given pairs / stacks
        from ..io import read_image
        y = np.asarray(read_image(it["blurred"]), np.float32)
        x = np.asarray(read_image(it["truth"]), np.float32)
        k = np.asarray(read_image(it["psf"]), np.float32) if "psf" in it else None
        if y.ndim == 2 or (y.ndim == 3 and k is not None and k.ndim == 2):
            y, x = _to_color(y, unit.color), _to_color(x, unit.color)
            y, x = _centre_crop(y, unit.crop), _centre_crop(x, unit.crop)
        if k is not None:
            k = np.clip(k, 0, None)
            k = k / k.sum()
        require(x.shape == y.shape, f"{it['name']}: blurred {y.shape} and sharp {x.shape} differ in shape",
                "give pairs of the same size")
        return {"truth": x, "blurred": y, "kernel": k, "sigma": None}
    if "truth" in it:  # stack degraded here
        from ..io import read_image
        x = np.asarray(read_image(it["truth"]), np.float32)
        k = np.asarray(read_image(it["psf"]), np.float32)
        k = np.clip(k, 0, None) / k.clip(0).sum()
    else:
        x = load_item(unit)
        k = unit.kernel
    spatial = k.ndim
    colour = x.ndim == spatial + 1
    t = torch.from_numpy(np.moveaxis(x, -1, 0)[None] if colour else x[None, None]).float()
    kt = torch.from_numpy(np.ascontiguousarray(k)).float()
    if unit.boundary == "valid":  # the observation is the valid part of the blur of the whole crop
        observed = tuple(n - m + 1 for n, m in zip(t.shape[2:], kt.shape))
        z = Convolution(kt, observed, "valid").A(t)
    else:
        z = convolve(t, kt, unit.boundary)
    if unit.noise == "poisson-gaussian":
        noise = make_noise("poisson-gaussian", alpha=float(unit.level[0]), beta=float(unit.level[1]))
    elif unit.noise == "poisson":
        noise = make_noise("poisson", gain=float(unit.level))
    else:
        noise = make_noise(unit.noise, sigma=float(unit.level) if unit.noise == "gaussian" else 0.0)
    g = torch.Generator().manual_seed(unit.seed)
    y = noise(z, seed=g)[0]
    y = np.moveaxis(y.numpy(), 0, -1) if colour else y[0].numpy()
    if unit.boundary == "valid":  # the truth seen by y: the central part of the object
        sl = tuple(slice(n // 2, n // 2 + m) for n, m in zip(k.shape, y.shape[:spatial]))
        x = x[sl]
    return {"truth": np.ascontiguousarray(x), "blurred": np.ascontiguousarray(y.astype(np.float32)), "kernel": k,
            "sigma": noise_sigma(unit)}


def check_parameters(methods: list[MethodSpec]) -> None:
    """Refuse parameters a method does not have (a ``$`` placeholder counts by its name only)."""
    from ..registry import get_method
    for spec in methods:
        m = get_method(spec.method)
        m.resolve({k: v for k, v in spec.params.items() if not (isinstance(v, str) and v.startswith("$"))})
        known = {p.name for p in m.params} | set(m.api_only)
        unknown = sorted(set(spec.params) - known)
        require(not unknown, f"method {spec.method!r} ({spec.label}) has no parameter(s) {', '.join(unknown)}",
                f"its parameters are: {', '.join(p.name for p in m.params)}")


def check_cases(cases: list[Case]) -> None:
    """Refuse a suite whose methods cannot run on its data (a non-blind method without PSF, unknown parameters)."""
    for c in cases[:1]:
        if c.unit.kernel is None and "psf" not in c.unit.item and c.kind == "nonblind":
            raise InputError(f"method {c.method.method!r} needs a PSF but {c.unit.item['name']} has none",
                             "give the dataset a kernels folder, or choose blind methods")
    check_parameters(list({c.method.label: c.method for c in cases}.values()))
