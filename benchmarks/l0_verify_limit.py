"""How ``l0``'s stability check separates failed kernels from good ones, per disagreement limit.

``l0`` estimates the kernel twice, with and without Xu & Jia's usefulness mask, and calls the kernel
unstable when the two disagree by more than ``verify_limit`` (:func:`unblur.blind.l0.l0_blind`). This
script reads an ``unblur bench`` run of the ``blind-camera-shake`` degradation and prints, for several
limits, what ``verify="input"`` (the blurred input returned where the kernel is unstable) would give:
error ratio <= 2 / <= 3, results worse than the input, mean gain, and how many flagged cases were failures
(error ratio > 3 or worse than the input) or good results (false alarms).

With ``--third LABEL`` (and ``--pair``), ``l0``'s deciding estimate is scored too: where the pair disagrees,
the kernel of ``LABEL`` (e.g. a run with ``gamma`` three times the default) picks the pair's kernel it agrees
with (that label's result is taken), and only where it agrees with neither is the input returned.

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
    ap.add_argument("--third", help="label whose saved kernels decide where the pair disagrees (needs --pair)")
    ap.add_argument("--limits", nargs="+", type=float, default=[0.2, 0.3, 0.5, 1.0])
    args = ap.parse_args()
    if args.third and not (args.pair and args.label in args.pair):
        ap.error("--third needs --pair with --label one of the pair")
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
        third = None
        if args.pair:
            if not all(lb in d for lb in args.pair + ([args.third] if args.third else [])):
                continue
            kernel = {lb: np.load(args.run / "kernels" / f"{safe_name(d[lb]['case'])}.npy")
                      for lb in args.pair + ([args.third] if args.third else [])}
            dis = _disagreement(*(kernel[lb] for lb in args.pair))
            if args.third:
                other = args.pair[0] if args.pair[1] == args.label else args.pair[1]
                mo = d[other]["metrics"]
                third = (_disagreement(kernel[args.label], kernel[args.third]),
                         _disagreement(kernel[other], kernel[args.third]), mo["gain"], mo["error_ratio"])
        else:
            if "kernel_disagreement" not in m:
                continue
            dis = m["kernel_disagreement"]
        rows.append((dis, m["gain"], m["error_ratio"], third))
    n = len(rows)
    print(f"{args.run} ({args.label}): {n} cases")
    print("| limit | check | flagged (failures / good) | error ratio <= 2 / <= 3 | worse than input | gain (dB) |")
    print("|---|---|---|---|---|---|")
    for lim in [None] + args.limits:
        for decide in ([False, True] if args.third and lim is not None else [False]):
            r2 = r3 = worse = fl = fl_bad = 0
            gains = []
            for dis, gain, ratio, third in rows:
                if lim is not None and dis > lim and decide and min(third[:2]) <= lim:
                    if third[1] < third[0]:  # the third agrees with the other estimate: its result is taken
                        gain, ratio = third[2], third[3]
                elif lim is not None and dis > lim:
                    fl += 1
                    fl_bad += ratio > 3 or gain < 0
                    ratio, gain = ratio * 10 ** (gain / 10), 0.0
                r2 += ratio <= 2
                r3 += ratio <= 3
                worse += gain < 0
                gains.append(gain)
            name = "no check" if lim is None else f"{lim:g}"
            check = "-" if lim is None else "pair, third decides" if decide else "pair"
            print(f"| {name} | {check} | {fl} ({fl_bad} / {fl - fl_bad}) | {100 * r2 / n:.0f}% / {100 * r3 / n:.0f}% | "
                  f"{worse} | {np.mean(gains):+.2f} |")


def _disagreement(a, b):
    return max(kernel_error(a, b), kernel_error(b, a))


if __name__ == "__main__":
    main()
