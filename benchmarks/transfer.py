"""Restoring in linear light (``--transfer srgb``) against restoring the encoded values, on photographs.

Scenes: 8 BSD68 gray images (``test042``-``test050`` without ``test048``, read from the data root), their 8-bit
values taken as sRGB-encoded. Two ways the blurred photograph is made, each with a camera-shake kernel
(``unblur.psf.motion_kernel`` 19 px, seed 5; USRNet ``kernel11`` 25x25), observed 200x200 as the valid part of the
blur of a larger crop:

* ``light``: decode to linear light, blur, add Gaussian noise 0.005 (linear units), encode to sRGB, quantise to
  8 bits: what a camera writing a JPEG or PNG does (without its own tone curve);
* ``encoded``: blur the encoded values themselves, noise 0.01, quantise: the usual synthetic protocol, under which
  ``"linear"`` (the default) is the matching model.

Each degraded image is restored by RL (50 iterations) and TV-ADMM with the true kernel and by ``l0`` (blind, the
true kernel size), once on the encoded values (``transfer="linear"``) and once decoded to linear light and encoded
after (``transfer="srgb"``, as ``unblur deconvolve|blind --transfer srgb`` does). Score: shift-tolerant PSNR (dB)
against the sharp encoded scene, mean over the cases; for ``l0`` also the kernel error.

    python benchmarks/transfer.py [--shard 0/2 --save runs/transfer-0.pkl]   # --merge FILES prints the table
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import unblur
import numpy as np
from scipy import signal

from unblur.bench import shards
from unblur.data import data_path
from unblur.metrics import kernel_error, shift_tolerant
from unblur.physics.transfer import decode, encode
from unblur.psf.motion import motion_kernel

IMAGES = [f"test0{i}" for i in (42, 43, 44, 45, 46, 47, 49, 50)]
SIZE = 200


def kernels():
    k = motion_kernel(size=19, seed=5, intensity=0.8).astype(np.float64)
    usr = np.load(data_path("kernels/usrnet_kernels_12_float32.npz"))["kernel11"].astype(np.float64)
    return {"motion19-5": k / k.sum(), "kernel11": usr / usr.sum()}


def degrade(scene: np.ndarray, k: np.ndarray, mode: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = k.shape[0]
    big = scene[:SIZE + n - 1, :SIZE + n - 1]
    rng = np.random.default_rng(seed)
    if mode == "light":
        y = encode(np.clip(signal.fftconvolve(decode(big, "srgb"), k, mode="valid")
                           + 0.005 * rng.standard_normal((SIZE, SIZE)), 0, 1), "srgb")
    else:
        y = signal.fftconvolve(big, k, mode="valid") + 0.01 * rng.standard_normal((SIZE, SIZE))
    y = np.round(np.clip(y, 0, 1) * 255) / 255
    return y, big[n // 2:n // 2 + SIZE, n // 2:n // 2 + SIZE]


def psnr(x, truth):
    return shift_tolerant(np.clip(np.asarray(x, np.float64), 0, 1), truth, crop=15, max_shift=10, data_range=1.0)["psnr"]


def run(shard=(0, 1)) -> dict:
    import imageio.v3 as iio
    rows = defaultdict(list)
    cases = [(im, kn, mode) for im in IMAGES for kn in kernels() for mode in ("light", "encoded")]
    for j, (im, kn, mode) in enumerate(cases):
        if j % shard[1] != shard[0]:
            continue
        scene = iio.imread(data_path(f"test/bsd68_gray/{im}.png")).astype(np.float64) / 255
        k = kernels()[kn]
        y, truth = degrade(scene, k, mode, seed=j)
        rows[(mode, "input", "-")].append((psnr(y, truth), np.nan))
        for transfer in ("linear", "srgb"):
            light = decode(y, transfer)
            for method in ("rl", "tv-admm"):
                out = unblur.deconvolve(light, k, method=method).image
                rows[(mode, method, transfer)].append((psnr(encode(out, transfer), truth), np.nan))
            r = unblur.blind_deconvolve(light, method="l0", kernel_size=k.shape[0])
            rows[(mode, "l0", transfer)].append((psnr(encode(r.image, transfer), truth), kernel_error(r.kernel, k)))
        print(f"{im} {kn} {mode} done", flush=True)
    return dict(rows)


def table(rows: dict) -> str:
    out = ["| blur made in | method | transfer | n | shift-tol. PSNR (dB) | kernel error | better than the other transfer |",
           "|---|---|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: (k[0] != "light", k[1] != "input", k[1], k[2])):
        mode, method, transfer = key
        a = np.asarray(rows[key], float)
        other = rows.get((mode, method, "srgb" if transfer == "linear" else "linear"))
        better = "-" if other is None else f"{int((a[:, 0] > np.asarray(other, float)[:, 0]).sum())} of {len(a)}"
        ke = "-" if np.isnan(a[:, 1]).all() else f"{np.nanmean(a[:, 1]):.3f}"
        out.append(f"| {mode} | {method} | {transfer} | {len(a)} | {a[:, 0].mean():.2f} | {ke} | {better} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shards.add_arguments(ap)
    print(table(shards.rows_of(ap.parse_args(), run)))


if __name__ == "__main__":
    main()
