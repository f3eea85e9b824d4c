"""The real motion-blurred clock of scikit-image, restored blindly (no ground truth: a figure to look at).

The synthetic protocol (BSD68 / Set12 with camera-shake kernels, error ratio against the true kernel) is
the ``blind-camera-shake`` suite of ``unblur bench``; this script keeps only what a suite cannot express,
an image without ground truth.  ``skimage.data.clock()`` (300x400 gray, blurred by a real horizontal
camera motion) is restored by ``unblur.blind_deconvolve(method="l0")`` with each ``--kernel-sizes`` value;
the figure ``OUT/clock.png`` shows the input and each result side by side (each estimated kernel,
scaled to its peak and enlarged 3x, in the top-left corner of its panel), and the script prints the CPU
time, the kernel's support and the re-blur discrepancy of each run.

    python benchmarks/blind_photo.py --kernel-sizes 31,61 --out runs/blind_photo

``--methods`` restores the clock with other blind methods or settings (the names of :data:`CLOCK_METHODS`),
e.g. Fast EM's default (valid model, ``l0`` start, safeguard) beside the paper's setting (circular model on
the raw photograph, Dirac start, no safeguard) and the valid model from a Dirac; besides the support and the
discrepancy, each run prints the share of the kernel's mass in its central column outside the centre
(``vertical arm``): the clock's blur is a nearly horizontal line, so a large vertical arm is the "+"-shaped
kernel of a circular model on a non-periodic photograph.

    python benchmarks/blind_photo.py --kernel-sizes 41 --methods l0,fast-em,fast-em-paper,fast-em-dirac \
        --figure clock-fastem.png --out runs/blind_photo

``--large WxH`` times instead what a photographer runs on a large photo: a colour mosaic of CBSD68 images
(read from the data root, ``test/cbsd68_color``) of ``W x H`` pixels, blurred by a random camera-shake kernel
(``--large-kernel`` px, the observed image the valid part of the blur), Gaussian noise 1%, saved as 8-bit PNG;
then ``unblur blind IN -o OUT.png`` in a fresh process (all defaults: ``l0``, its kernel size, the stability
check), whose wall and CPU time are printed with the shift-tolerant PSNR of input and result.

    python benchmarks/blind_photo.py --large 4000x3000 --out runs/blind_photo
    taskset -c 0 python benchmarks/blind_photo.py --large 255x255 --gray --large-kernel 25 --repeats 5 \
        --out runs/blind_photo [--blind-args "--verify off"]

(``taskset -c 0``: one core; the process's FFTs and threads then share it.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np


#: The blind runs ``--methods`` may name: ``(registry method, parameters)``.
CLOCK_METHODS = {
    "l0": ("l0", {}),
    "fast-em": ("fast-em", {}),
    "fast-em-paper": ("fast-em", {"boundary": "circular", "init_kernel": "dirac", "safeguard": False, "final_step": False}),
    "fast-em-dirac": ("fast-em", {"init_kernel": "dirac", "final_step": False}),
    "diffusion-em": ("diffusion-em", {}),
}


def vertical_arm(kernel: np.ndarray) -> float:
    """Share of the kernel's mass in its central column farther than 2 px from the centre row."""
    k = np.asarray(kernel, np.float64)
    c, r = k.shape[1] // 2, k.shape[0] // 2
    col = k[:, c].copy()
    col[max(r - 2, 0):r + 3] = 0
    return float(col.sum() / max(k.sum(), 1e-12))


def clock_figure(sizes: list[int], out: Path, width: int = 0, methods: tuple[str, ...] = ("l0",),
                 name: str = "clock.png") -> Path:
    """Restore the clock with each of ``methods`` at each kernel size; write ``out/name``; returns its path."""
    from PIL import Image
    from skimage import data

    y = data.clock().astype(np.float32) / 255
    panels, kernels, labels = [y], [], []
    for m in methods:
        method, params = CLOCK_METHODS[m]
        for ks in sizes:
            t0 = time.process_time()
            r = unblur.blind_deconvolve(y, method=method, kernel_size=ks, **params)
            dt = time.process_time() - t0
            c = r.info["checks"]
            guard = r.info.get("safeguard") or {}
            em = ""
            if guard.get("kept_start"):
                em = (f"; start kept, the EM result's discrepancy {guard['em_discrepancy']:.2f}, "
                      f"vertical arm {vertical_arm(r.info['em_kernel']):.3f}")
            print(f"clock, {m} kernel size {ks}: {dt:.1f} CPU s, kernel support {c['kernel_support']}, "
                  f"discrepancy {c['discrepancy']:.2f}, vertical arm {vertical_arm(r.kernel):.3f}{em}", flush=True)
            panels.append(np.clip(np.asarray(r.image, np.float32), 0, 1))
            kernels.append(np.asarray(r.kernel, np.float32))
            labels.append(f"{m} {ks}")
    h, w = y.shape
    canvas = np.ones((h, (w + 8) * len(panels) - 8), np.float32)
    for i, p in enumerate(panels):
        canvas[:, i * (w + 8):i * (w + 8) + w] = p
    for i, k in enumerate(kernels):
        kk = np.kron(k / max(float(k.max()), 1e-12), np.ones((3, 3), np.float32))
        x0 = (i + 1) * (w + 8)
        canvas[:kk.shape[0], x0:x0 + kk.shape[1]] = kk
    img = Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
    if width and img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    img.save(path, optimize=True)
    print(f"figure: {path} (input, then {', '.join(labels)})")
    return path


def large_photo(width: int, height: int, kernel_size: int, out: Path, gray: bool = False, repeats: int = 1,
                blind_args: tuple[str, ...] = ()) -> None:
    """Blur a ``width x height`` colour (or ``gray``) mosaic, run ``unblur blind`` on it in a fresh process (with
    ``repeats > 1``: one warm-up run, then the median of ``repeats`` runs), print the times."""
    import resource
    import subprocess
    import sys

    from PIL import Image
    from scipy.signal import fftconvolve

    from unblur.data import list_images
    from unblur.metrics import aligned_psnr
    from unblur.psf import motion_kernel

    k = np.asarray(motion_kernel(kernel_size, seed=kernel_size), np.float64)
    tiles = [np.asarray(Image.open(p).convert("L" if gray else "RGB"), np.float32) / 255
             for p in list_images("test/cbsd68_color")]
    H, W = height + kernel_size - 1, width + kernel_size - 1
    rows, i = [], 0
    while sum(r.shape[0] for r in rows) < H:
        row = []
        while sum(t.shape[1] for t in row) < W:
            row.append(tiles[i % len(tiles)][:321, :481])
            i += 1
        rows.append(np.concatenate(row, 1)[:, :W])
    sharp = np.concatenate(rows, 0)[:H]
    sharp = sharp[..., None] if gray else sharp
    y = np.stack([fftconvolve(sharp[..., c], k, mode="valid") for c in range(sharp.shape[-1])], -1)
    y = np.clip(y + 0.01 * np.random.default_rng(0).standard_normal(y.shape), 0, 1).astype(np.float32)
    r = kernel_size // 2
    truth = sharp[r:r + height, r:r + width].squeeze(-1) if gray else sharp[r:r + height, r:r + width]
    axis = None if gray else -1
    out.mkdir(parents=True, exist_ok=True)
    src, dst = out / f"large_{width}x{height}.png", out / f"large_{width}x{height}_l0.png"
    Image.fromarray((y * 255 + 0.5).astype(np.uint8).squeeze()).save(src)
    walls, cpus = [], []
    for _ in range(repeats + (repeats > 1)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "unblur", "blind", str(src), "-o", str(dst), "--force", *blind_args],
                       check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    timed = slice(1, None) if repeats > 1 else slice(None)
    wall, cpu = float(np.median(walls[timed])), float(np.median(cpus[timed]))
    mode = "L" if gray else "RGB"
    restored = np.asarray(Image.open(dst).convert(mode), np.float32).reshape(truth.shape) / 255
    y8 = np.asarray(Image.open(src).convert(mode), np.float32).reshape(truth.shape) / 255
    runs = f" (median of {repeats})" if repeats > 1 else ""
    print(f"{width}x{height} {'gray' if gray else 'colour'}, {kernel_size}-px camera shake, noise 1%: "
          f"unblur blind {' '.join(blind_args)}{runs} {wall:.2f} s wall, "
          f"{cpu:.2f} CPU s; shift-tolerant PSNR input {aligned_psnr(y8, truth, channel_axis=axis):.2f} dB, "
          f"l0 {aligned_psnr(restored, truth, channel_axis=axis):.2f} dB", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel-sizes", default="31,61", help="kernel sizes, comma-separated (odd)")
    ap.add_argument("--methods", default="l0", help=f"clock: comma-separated, of {', '.join(CLOCK_METHODS)}")
    ap.add_argument("--figure", default="clock.png", help="clock: the figure's file name in --out")
    ap.add_argument("--out", default="runs/blind_photo")
    ap.add_argument("--width", type=int, default=0, help="resize the figure to this width (0: full size)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--large", default="", help="WxH: time unblur blind on a blurred colour mosaic of this size")
    ap.add_argument("--large-kernel", type=int, default=35, help="camera-shake kernel size of --large (px)")
    ap.add_argument("--gray", action="store_true", help="--large in gray")
    ap.add_argument("--repeats", type=int, default=1, help="--large: median of this many runs after a warm-up")
    ap.add_argument("--blind-args", default="", help="--large: extra options of unblur blind, e.g. '--verify off'")
    args = ap.parse_args(argv)
    if args.large:
        w, h = (int(v) for v in args.large.lower().split("x"))
        large_photo(w, h, args.large_kernel, Path(args.out), args.gray, args.repeats, tuple(args.blind_args.split()))
        return
    import torch
    torch.set_num_threads(args.threads)
    methods = tuple(m for m in args.methods.split(",") if m)
    unknown = [m for m in methods if m not in CLOCK_METHODS]
    if unknown:
        ap.error(f"unknown --methods {', '.join(unknown)}; choose among {', '.join(CLOCK_METHODS)}")
    clock_figure([int(s) for s in args.kernel_sizes.split(",") if s], Path(args.out), args.width, methods,
                 args.figure)


if __name__ == "__main__":
    main()
