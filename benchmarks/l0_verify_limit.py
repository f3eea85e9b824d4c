"""How ``l0``'s stability check separates failed kernels from good ones, per disagreement limit.

``l0`` estimates the kernel twice, with and without Xu & Jia's usefulness mask, and calls the kernel
unstable when the two disagree by more than ``verify_limit`` (:func:`unblur.blind.l0.l0_blind`). This
script reads an ``unblur bench`` run of the ``blind-camera-shake`` degradation and prints, for several
limits, what ``verify="input"`` (the blurred input returned where the kernel is unstable) would give:
error ratio <= 2 / <= 3, results worse than the input, mean gain, and how many flagged cases were failures
(error ratio > 3 or worse than the input) or good results (false alarms).

The disagreement comes from the records (metric ``kernel_disagreement``, written by runs of ``l0`` with
``verify="warn"``, whose results are the estimates' own) or, with ``--pair A B``, from the kernels saved by two labels of the same run (one with
``edge_usefulness = 0``, one with the mask). With the input returned, a case's error ratio becomes the
input's (``ratio * 10^(gain / 10)``) and its gain 0.

    python benchmarks/l0_verify_limit.py runs/l0-edge-usefulness --label "l0, edge_usefulness 0.3 (default)" \\
        --pair "l0, no mask (edge_usefulness 0)" "l0, edge_usefulness 0.3 (default)"
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from unblur.bench.runner import safe_name
from unblur.metrics import kernel_error


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--label", required=True, help="the l0 label whose results are scored")
    ap.add_argument("--pair", nargs=2, metavar=("A", "B"), help="labels whose saved kernels give the disagreement")
    ap.add_argument("--limits", nargs="+", type=float, default=[0.2, 0.3, 0.5, 1.0])
    args = ap.parse_args()
    units = defaultdict(dict)
    for line in (args.run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("ok"):
            units[r["unit"]][r["label"]] = r
    rows = []
    for u, d in sorted(units.items()):
        if args.label not in d or "error_ratio" not in d[args.label]["metrics"]:
            continue
        m = d[args.label]["metrics"]
        if args.pair:
            if not all(lb in d for lb in args.pair):
                continue
            ka, kb = (np.load(args.run / "kernels" / f"{safe_name(d[lb]['case'])}.npy") for lb in args.pair)
            dis = max(kernel_error(ka, kb), kernel_error(kb, ka))
        else:
            if "kernel_disagreement" not in m:
                continue
            dis = m["kernel_disagreement"]
        rows.append((dis, m["gain"], m["error_ratio"]))
    n = len(rows)
    print(f"{args.run} ({args.label}): {n} cases")
    print("| limit | flagged (failures / good) | error ratio <= 2 / <= 3 | worse than input | gain (dB) |")
    print("|---|---|---|---|---|")
    for lim in [None] + args.limits:
        r2 = r3 = worse = fl = fl_bad = 0
        gains = []
        for dis, gain, ratio in rows:
            if lim is not None and dis > lim:
                fl += 1
                fl_bad += ratio > 3 or gain < 0
                ratio, gain = ratio * 10 ** (gain / 10), 0.0
            r2 += ratio <= 2
            r3 += ratio <= 3
            worse += gain < 0
            gains.append(gain)
        name = "no check" if lim is None else f"{lim:g}"
        print(f"| {name} | {fl} ({fl_bad} / {fl - fl_bad}) | {100 * r2 / n:.0f}% / {100 * r3 / n:.0f}% | {worse} | "
              f"{np.mean(gains):+.2f} |")


if __name__ == "__main__":
    main()
