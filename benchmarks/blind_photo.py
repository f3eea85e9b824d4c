"""The real motion-blurred clock of scikit-image, restored by ``l0`` (no ground truth: a figure to look at).

The synthetic protocol (BSD68 / Set12 with camera-shake kernels, error ratio against the true kernel) is
the ``blind-camera-shake`` suite of ``unblur bench``; this script keeps only what a suite cannot express,
an image without ground truth.  ``skimage.data.clock()`` (300x400 gray, blurred by a real horizontal
camera motion) is restored by ``unblur.blind_deconvolve(method="l0")`` with each ``--kernel-sizes`` value;
the figure ``OUT/clock.png`` shows the input and each result side by side (each estimated kernel,
scaled to its peak and enlarged 3x, in the top-left corner of its panel), and the script prints the CPU
time, the kernel's support and the re-blur discrepancy of each run.

    python benchmarks/blind_photo.py --kernel-sizes 31,61 --out runs/blind_photo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import unblur  # sets OMP_WAIT_POLICY before torch is imported
import numpy as np


def clock_figure(sizes: list[int], out: Path, width: int = 0) -> Path:
    """Restore the clock with ``l0`` at each kernel size; write ``out/clock.png``; returns its path."""
    from PIL import Image
    from skimage import data

    y = data.clock().astype(np.float32) / 255
    panels, kernels = [y], []
    for ks in sizes:
        t0 = time.process_time()
        r = unblur.blind_deconvolve(y, method="l0", kernel_size=ks)
        dt = time.process_time() - t0
        c = r.info["checks"]
        print(f"clock, l0 kernel size {ks}: {dt:.1f} CPU s, kernel support {c['kernel_support']}, "
              f"discrepancy {c['discrepancy']:.2f}", flush=True)
        panels.append(np.clip(np.asarray(r.image, np.float32), 0, 1))
        kernels.append(np.asarray(r.kernel, np.float32))
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
    path = out / "clock.png"
    img.save(path, optimize=True)
    print(f"figure: {path} (input, then l0 with kernel size {', '.join(map(str, sizes))})")
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel-sizes", default="31,61", help="l0 kernel sizes, comma-separated (odd)")
    ap.add_argument("--out", default="runs/blind_photo")
    ap.add_argument("--width", type=int, default=0, help="resize the figure to this width (0: full size)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    clock_figure([int(s) for s in args.kernel_sizes.split(",") if s], Path(args.out), args.width)


if __name__ == "__main__":
    main()
