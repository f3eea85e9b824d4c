"""Non-blind deconvolution with the true kernel, per kernel size: every non-blind method against Richardson-Lucy.

Data: gray 255x255 fields of view (``--set``: ``set12`` under ``test/set12`` for choices, ``bsd68`` under
``test/bsd68_gray`` for reported numbers; ``--images`` of them, ``--first`` skips some).  Each observation is
the *valid* part of the blur of a larger sharp crop (``255 + k - 1`` pixels a side, centred), so the edge of
the field cuts through real content as in a photograph (non-periodic blur); where the image is smaller than
that crop (Set12 256x256 images, BSD68 with the 67-75 px kernels) the scene is first extended by mirror
symmetry, which only supplies the content beyond the field of view.  Gaussian noise ``--noise`` (default 0.01
= 1 %, seeded per image and kernel).  PSNR on the whole field against the sharp field, outputs clipped to [0, 1].

Kernels (``--kernels``): camera shake from ``unblur.psf.motion.motion_kernel`` (``motion15`` ...
``motion75``: size 15 ... 75 px, seed = size; ``motion25s3``: size 25, seed 3), the USRNet motion kernels ``kernel09`` ... ``kernel12``
(25x25, ``kernels/usrnet_kernels_12_float32.npz``) and ``KAIR_k_large_1`` (67x67) / ``KAIR_k_large_2``
(70x70) (``kernels/KAIR_k_large_*.png``).

Methods (``--methods``): registry names with their defaults, or ``name:key=value,key=value`` for other
settings (e.g. ``dpir:boundary=replicate;num_iter=8``), all through ``unblur.deconvolve``; the noise sigma is left to
each method's own estimate unless ``--give-sigma``.  The slow diffusion methods (``pigdm``, ``dps``,
``rl-diffusion``) are meant for a subset (``--images 1 --kernels motion25,motion75``).

``--taus`` adds, for each diffusion sampler (a method with ``consistency_tau``), one column per value: the
sampler run once with ``consistency_tau=0`` and its final sample (on the object grid, caught by the step
callback) passed through :func:`unblur.algorithms.guidance.consistency_step` with that ``tau`` and the
sampler's own noise sigma, which is what the method does with ``consistency_tau`` set.  ``--field`` sets the
side of the observed field (255 by default; the diffusion samplers are slow on a CPU).

Output: a table of mean PSNR per kernel and method, the difference to RL, and the kernels where a method is
more than 0.5 dB below RL; mean time per method.

    python benchmarks/nonblind_kernels.py --set set12 --images 2 --threads 1
    python benchmarks/nonblind_kernels.py --set bsd68 --images 4 --threads 1 \\
        --methods rl,rl-tv,wiener,tikhonov,tv-admm,dpir,pnp-admm,dpir:boundary=replicate,wiener:boundary=reflect
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np
import torch

from unblur.algorithms.guidance import consistency_step
from unblur.data import data_path
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.physics.convolution import Convolution
from unblur.psf.motion import motion_kernel
from unblur.solvers.problem import setup_problem

FIELD = 255
SETS = {"set12": "test/set12", "bsd68": "test/bsd68_gray"}
ALL_KERNELS = ("motion15", "motion25", "motion35", "motion55", "motion75", "kernel09", "kernel10", "kernel11",
               "kernel12", "KAIR_k_large_1", "KAIR_k_large_2")
DEFAULT_METHODS = "rl,rl-tv,wiener,tikhonov,tv-admm,dpir,pnp-admm"


def load_kernel(name: str) -> np.ndarray:
    """A kernel by name (see the module docstring), float32, sum 1."""
    if name.startswith("motion"):  # motion<size> (seed = size) or motion<size>s<seed>
        size, _, seed = name[len("motion"):].partition("s")
        k = motion_kernel(int(size), seed=int(seed) if seed else int(size))
    elif name.startswith("kernel"):
        k = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))[name]
    elif name.startswith("KAIR_k_large"):
        k = read_image(data_path(f"kernels/{name}.png")).astype(np.float64)
        k = k[..., 0] if k.ndim == 3 else k
    else:
        raise SystemExit(f"unknown kernel {name!r}; choose from {', '.join(ALL_KERNELS)} or motionN")
    k = np.clip(np.asarray(k, np.float64), 0, None)
    return (k / k.sum()).astype(np.float32)


def load_images(set_name: str, n: int, first: int = 0) -> list[tuple[str, np.ndarray]]:
    """``n`` gray images of a test set (files sorted by name), float32 in [0, 1]."""
    folder = Path(data_path(SETS.get(set_name, set_name)))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))
    out = []
    for p in files[first:first + n]:
        a = read_image(p).astype(np.float32)
        out.append((p.stem, a[..., :3].mean(-1) if a.ndim == 3 else a))
    return out


def observe(img: np.ndarray, k: np.ndarray, sigma: float, seed: int, field: int = FIELD):
    """``(y, truth)``: the valid part of the blur of a centred ``field + k - 1`` crop (mirror-extended if the
    image is smaller), plus Gaussian noise; ``truth`` is the sharp field of view."""
    kh, kw = k.shape
    need = (field + kh - 1, field + kw - 1)
    ph, pw = max(0, need[0] - img.shape[0]), max(0, need[1] - img.shape[1])
    if ph or pw:
        img = np.pad(img, ((ph // 2 + 1, ph - ph // 2 + 1), (pw // 2 + 1, pw - pw // 2 + 1)), mode="symmetric")
    r0, c0 = (img.shape[0] - need[0]) // 2, (img.shape[1] - need[1]) // 2
    scene = np.ascontiguousarray(img[r0:r0 + need[0], c0:c0 + need[1]], np.float32)
    truth = scene[kh // 2:kh // 2 + field, kw // 2:kw // 2 + field].copy()
    op = Convolution(torch.from_numpy(k), (field, field), "valid")
    y = op.A(torch.from_numpy(scene)[None, None])[0, 0].numpy()
    y = y + sigma * np.random.default_rng(seed).standard_normal(y.shape)
    return y.astype(np.float32), truth


def parse_method(spec: str) -> tuple[str, dict]:
    """``"dpir:boundary=replicate;num_iter=8"`` -> ``("dpir", {"boundary": "replicate", "num_iter": 8})``."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return name, params


def has_param(method: str, name: str) -> bool:
    return any(p.name == name for p in unblur.get_method(method).params)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="set12", help="set12 (choices) or bsd68 (reported numbers), or a folder")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--kernels", default=",".join(ALL_KERNELS))
    ap.add_argument("--methods", default=DEFAULT_METHODS,
                    help="comma-separated registry names, or name:key=value;key=value for other settings")
    ap.add_argument("--noise", type=float, default=0.01, help="noise sigma in [0, 1] units")
    ap.add_argument("--give-sigma", action="store_true", help="pass the true noise sigma to methods that take one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--field", type=int, default=FIELD, help="side of the observed field in pixels")
    ap.add_argument("--taus", type=float, nargs="*", default=[],
                    help="final data-consistency tau values to add for the diffusion samplers (module docstring)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    specs = [s.strip() for s in args.methods.split(",") if s.strip()]
    methods = [(s, *parse_method(s)) for s in specs]
    columns = [s for s, m, _ in methods for s in [s] + ([f"{s} +tau{t:g}" for t in args.taus]
                                                      if args.taus and has_param(m, "consistency_tau") else [])]
    kernels = [(n, load_kernel(n)) for n in args.kernels.split(",") if n]
    images = load_images(args.set, args.images, args.first)
    print(f"{len(images)} images of {args.set} ({', '.join(n for n, _ in images)}), {args.field}x{args.field} valid-blur fields, "
          f"noise {args.noise:g}, sigma {'given' if args.give_sigma else 'estimated by each method'}, "
          f"torch threads {torch.get_num_threads()}\n")
    scores = {(kn, s): [] for kn, _ in kernels for s in columns}
    blurred = {kn: [] for kn, _ in kernels}
    times = {s: [] for s in columns}
    for kj, (kn, k) in enumerate(kernels):
        for i, (name, img) in enumerate(images):
            y, truth = observe(img, k, args.noise, seed=args.seed + 1000 * (args.first + i) + kj, field=args.field)
            blurred[kn].append(psnr(y, truth))
            for spec, mname, params in methods:
                kw = dict(params)
                if args.give_sigma and has_param(mname, "noise_sigma"):
                    kw.setdefault("noise_sigma", args.noise)
                if has_param(mname, "progress"):
                    kw.setdefault("progress", False)
                taus = args.taus if has_param(mname, "consistency_tau") and args.taus else []
                last = {}
                if taus:
                    kw.setdefault("consistency_tau", 0.0)
                    kw["callback"] = lambda it, x, info: last.update(x=x)
                t0 = time.perf_counter()
                r = unblur.deconvolve(y, k, method=mname, **kw)
                times[spec].append(time.perf_counter() - t0)
                scores[(kn, spec)].append(psnr(np.clip(np.asarray(r.image, np.float64), 0, 1), truth))
                for tau in taus:  # the final data-consistency step around the sample (module docstring)
                    prob = setup_problem(y, k, r.info["boundary"], negative_image="keep")
                    x01 = ((last["x"] + 1) / 2).clamp(0, 1)
                    x = consistency_step(prob.op, prob.y, x01, r.info["noise_sigma"], tau).clamp(0, 1)
                    scores[(kn, f"{spec} +tau{tau:g}")].append(psnr(np.asarray(prob.output(x), np.float64), truth))
                    times.setdefault(f"{spec} +tau{tau:g}", []).append(times[spec][-1])
        print(f"  {kn}: blurred {np.mean(blurred[kn]):.2f} | " + " | ".join(
            f"{s} {np.mean(scores[(kn, s)]):.2f}" for s in columns), flush=True)
    ref = next((s for s, m, p in methods if m == "rl" and not p), None)
    head = ["kernel", "size", "blurred"] + columns
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    below = {s: [] for s in columns}
    for kn, k in kernels:
        cells = [kn, f"{k.shape[0]}x{k.shape[1]}", f"{np.mean(blurred[kn]):.2f}"]
        for spec in columns:
            v = float(np.mean(scores[(kn, spec)]))
            if ref is not None and spec != ref:
                d = v - float(np.mean(scores[(kn, ref)]))
                cells.append(f"{v:.2f} ({d:+.2f})")
                if d < -0.5:
                    below[spec].append(f"{kn} ({d:+.2f})")
            else:
                cells.append(f"{v:.2f}")
        print("| " + " | ".join(cells) + " |")
    print("| mean time (s) | | | " + " | ".join(f"{np.mean(times[s]):.1f}" for s in columns) + " |")
    if ref is not None:
        print("\nMore than 0.5 dB below RL (mean over the images):")
        for spec in columns:
            if spec != ref:
                print(f"- {spec}: {', '.join(below[spec]) or 'none'}")


if __name__ == "__main__":
    main()
