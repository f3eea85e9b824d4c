"""``l0``'s kernel refinement at full resolution (``refine``), scored on the kernels of an ``unblur bench`` run.

The run's ``LABEL`` must have estimated its kernels with ``refine=0`` (the pyramid's kernel, as every run
before the refinement existed) or be scored with the variant ``0`` only. For every degraded image of the run
the script rebuilds the degradation from the suite (same seed and names, hence the same image), takes the
saved kernel, applies :func:`unblur.blind.l0.refine_kernel` with each variant's settings, runs ``l0``'s final
step (hyper-Laplacian, unknown boundaries, the default weight from the true noise level) and prints per
variant: shift-tolerant PSNR, the difference to the same final step with the true kernel, the error ratio
<= 2 / <= 3 against that step, the mean and median kernel error, the results worse than the blurred input and
the refinement's time.

A variant is ``ROUNDS[:EDGE_FACTOR[:WEIGHT_FACTOR[:GAMMA]]]`` (defaults 2, 5, 1, 0.1): the refinement rounds,
the edges of the kernel step (``EDGE_FACTOR * size^2``), the latent step's prior weight as a multiple of the
final step's, the kernel step's Tikhonov weight. ``0`` is the saved kernel itself; ``l0``'s default refinement
is ``4:5:1:0.3`` (``gamma`` 0.1 times ``REFINE_GAMMA_FACTOR``).

    # tuning: the l0-estimation-knobs run (BSD68 images outside the suites), its "outer_iter 10" label
    python benchmarks/l0_refine.py runs/l0-knobs --label "outer_iter 10" \\
        --suite benchmarks/choices/l0-estimation-knobs.toml --variants 0 1 2 4 2:10 2:3 2:5:2 2:5:1:0.3
    # held out: the blind-camera-shake --full run before the refinement
    python benchmarks/l0_refine.py runs/bcs-final2 --label l0 --suite blind-camera-shake --full --variants 0 2
    # the kernels l0 refines today (stability check included), tuning and held out
    python benchmarks/l0_refine.py runs/l0-refine-variants --label "l0, refine 0" \\
        --suite benchmarks/choices/l0-refine-variants.toml --variants 0 2 4:5:1:0.3

``--shard I/N`` scores every N-th degraded image from the I-th and writes its rows to ``--save``; ``--merge``
prints the table of several saved shards.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import unblur  # noqa: F401  (sets the thread environment first)
import numpy as np

from unblur.bench import load_suite, shards
from unblur.bench.cases import degrade, make_units
from unblur.bench.runner import safe_name
from unblur.blind.l0 import _final_weight, hyper_laplacian_deconvolve_valid, refine_kernel
from unblur.metrics import error_ratio, kernel_error, shift_tolerant

SHIFT = dict(crop=15, max_shift=10, data_range=1.0)  # the bench's shift-tolerant metric settings


def _variant(spec: str) -> dict:
    parts = [float(p) for p in spec.split(":")]
    parts += [5.0, 1.0, 0.1][len(parts) - 1:]
    return dict(rounds=int(parts[0]), edge_factor=parts[1], weight_factor=parts[2], gamma=parts[3])


def score(run: Path, label: str, suite_name: str, full: bool, variants: list[str], shard=(0, 1)) -> dict:
    suite = load_suite(suite_name, full=full)
    units = {u.uid: u for u in make_units(suite)}
    records = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("ok") and r["label"] == label:
            records[r["unit"]] = r
    rows = defaultdict(list)
    for j, uid in enumerate(sorted(records)):
        if j % shard[1] != shard[0]:
            continue
        d = degrade(units[uid])
        y, x = np.asarray(d["blurred"], np.float64), np.asarray(d["truth"], np.float64)
        k_true, sigma = np.asarray(d["kernel"], np.float64), float(d["sigma"])
        k_saved = np.load(run / "kernels" / f"{safe_name(records[uid]['case'])}.npy")
        weight = _final_weight(sigma)
        reference = hyper_laplacian_deconvolve_valid(y, k_true, weight)
        p_in, p_ref = shift_tolerant(y, x, **SHIFT)["psnr"], shift_tolerant(reference, x, **SHIFT)["psnr"]
        for spec in variants:
            v = _variant(spec)
            t0 = time.perf_counter()
            k = refine_kernel(y, k_saved, weight * v["weight_factor"], rounds=v["rounds"],
                              edge_factor=v["edge_factor"], gamma=v["gamma"])
            t = time.perf_counter() - t0
            out = hyper_laplacian_deconvolve_valid(y, k.astype(np.float64), weight)
            p = shift_tolerant(out, x, **SHIFT)["psnr"]
            rows[spec].append((p, p - p_ref, error_ratio(out, reference, x, **SHIFT), kernel_error(k, k_true),
                               p < p_in, t))
    return dict(rows)


def table(rows: dict) -> str:
    out = ["| refinement (rounds:edges:weight:gamma) | n | shift-tol. PSNR (dB) | to the true-kernel step (dB) | "
           "error ratio <= 2 / <= 3 | kernel error mean / median | worse than input | s per image |",
           "|---|---|---|---|---|---|---|---|"]
    for spec, r in rows.items():
        a = np.asarray(r, float)
        out.append(f"| {spec} | {len(a)} | {a[:, 0].mean():.2f} | {a[:, 1].mean():+.2f} | "
                   f"{np.mean(a[:, 2] <= 2):.0%} / {np.mean(a[:, 2] <= 3):.0%} | "
                   f"{a[:, 3].mean():.3f} / {np.median(a[:, 3]):.3f} | {int(a[:, 4].sum())} | {a[:, 5].mean():.2f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?")
    ap.add_argument("--label")
    ap.add_argument("--suite", help="suite name or TOML file the run was made with")
    ap.add_argument("--full", action="store_true", help="the suite's --full protocol")
    ap.add_argument("--variants", nargs="+", default=["0", "2"])
    shards.add_arguments(ap)
    args = ap.parse_args()
    if not args.merge and not (args.run and args.label and args.suite):
        ap.error("give RUN, --label and --suite (or --merge)")
    print(table(shards.rows_of(args, lambda shard: score(args.run, args.label, args.suite, args.full, args.variants,
                                                         shard))))


if __name__ == "__main__":
    main()
