"""Tables of a run: per condition (noise level) and method, the mean, standard deviation and count of each metric."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

#: metric key -> (column title, format, better: "high" / "low" / None)
COLUMNS = OrderedDict([
    ("psnr", ("PSNR (dB)", "{:.2f}", "high")),
    ("psnr_delta", ("PSNR - reference (dB)", "{:+.2f}", "high")),
    ("psnr_input", ("PSNR of the input (dB)", "{:.2f}", None)),
    ("psnr_band", ("PSNR border band (dB)", "{:.2f}", "high")),
    ("psnr_interior", ("PSNR interior (dB)", "{:.2f}", "high")),
    ("ssim", ("SSIM", "{:.3f}", "high")),
    ("psnr_shift", ("PSNR shift-tol. (dB)", "{:.2f}", "high")),
    ("ssim_shift", ("SSIM shift-tol.", "{:.3f}", "high")),
    ("error_ratio", ("error ratio", "{:.2f}", "low")),
    ("gain", ("gain over input (dB)", "{:.2f}", "high")),
    ("isnr", ("ISNR (dB)", "{:.2f}", "high")),
    ("reblur_rms", ("re-blur RMS", "{:.4f}", None)),
    ("residual_share", ("share abs(r) > 3", "{:.3f}", "low")),
    ("seed_spread", ("seed spread", "{:.4f}", None)),
    ("kernel_error", ("kernel error", "{:.3f}", "low")),
    ("niqe", ("NIQE", "{:.2f}", "low")),
    ("brisque", ("BRISQUE", "{:.1f}", "low")),
    ("lpips", ("LPIPS", "{:.3f}", "low")),
    ("time_s", ("time (s)", "{:.2f}", "low")),
    ("peak_mem_mb", ("peak RSS (MiB)", "{:.1f}", "low")),
    ("cuda_peak_mb", ("CUDA peak (MiB)", "{:.0f}", "low")),
    ("it_per_s", ("iterations/s", "{:.1f}", "high")),
    ("mvox_it_per_s", ("Mvoxel-it/s", "{:.1f}", "high")),
    ("nfe", ("NFE", "{:.0f}", None)),
    ("kept_start", ("safeguard kept the start", "{:.0%}", None)),
    ("unstable", ("kernel unstable", "{:.0%}", None)),
])


def condition_of(rec: dict) -> str:
    """The table a record belongs to: its noise model and level (after its group: a shape, kernel or image)."""
    lv = rec.get("level")
    if rec.get("group"):
        rest = {k: v for k, v in rec.items() if k != "group"}
        return f"{rec['group']}" + ("" if rec.get("noise") in (None, "none", "given") else f", {condition_of(rest)}")
    if rec.get("noise") in (None, "given"):
        return "given data"
    if rec.get("noise") == "none":
        return "no noise"
    if isinstance(lv, list):
        return f"{rec['noise']} alpha={lv[0]:g} beta={lv[1]:g}"
    if rec.get("noise") == "gaussian":
        return f"gaussian sigma={lv:g} ({lv * 255:.3g}/255)"
    return f"{rec['noise']} gain={lv:g}"


def _stats(values: list[float]) -> dict:
    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0, "median": None}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
            "median": float(np.median(v))}


_NO_REF = "PSNR difference: the reference"


def fill_deltas(records: list[dict], reference: str | None) -> list[dict]:
    """Records whose ``psnr_delta`` is missing because the reference's restoration was no longer on disk (a
    resumed run that added a method) get it from the PSNR of the reference's record of the same unit."""
    ref_psnr = {(r.get("unit"), r["label"]): r["metrics"].get("psnr") for r in records if r.get("ok")}
    out = []
    for r in records:
        ref = reference if r["label"] != reference else None
        if r.get("ok") and ref and "psnr_delta" not in r["metrics"] and "psnr" in r["metrics"] \
                and ref_psnr.get((r.get("unit"), ref)) is not None and any(_NO_REF in n for n in r.get("notes", [])):
            r = dict(r, metrics=dict(r["metrics"], psnr_delta=r["metrics"]["psnr"] - ref_psnr[(r.get("unit"), ref)]),
                     notes=[n for n in r.get("notes", []) if _NO_REF not in n])
        out.append(r)
    return out


def summarize(records: list[dict], labels: list[str] | None = None, reference: str | None = None) -> dict:
    """``{condition: {label: {metric: {mean, std, n, median}, "_ok": n, "_failed": n}}}`` in method order; rows with
    an error ratio add ``_er_le2`` / ``_er_le3`` (shares), rows with the gain metric ``_worse`` (a count).
    ``reference``: the suite's reference label, for :func:`fill_deltas`."""
    records = fill_deltas(records, reference)
    labels = labels or list(OrderedDict.fromkeys(r["label"] for r in records))
    out: dict = OrderedDict()
    ordered = sorted(records, key=lambda r: r.get("index", 0)) if all("index" in r for r in records) else records
    for cond in OrderedDict.fromkeys(condition_of(r) for r in ordered):  # the suite's order, not the order of completion
        table = OrderedDict()
        for lab in labels:
            rs = [r for r in records if condition_of(r) == cond and r["label"] == lab]
            if not rs:
                continue
            ok = [r for r in rs if r.get("ok")]
            row = {"_ok": len(ok), "_failed": len(rs) - len(ok)}
            for key in COLUMNS:
                vals = [r["metrics"].get(key) for r in ok if key in r["metrics"]]
                if vals:
                    row[key] = _stats(vals)
            if "error_ratio" in row:
                er = [r["metrics"]["error_ratio"] for r in ok if "error_ratio" in r["metrics"]]
                row["_er_le3"] = float(np.mean(np.array(er) <= 3.0))
                row["_er_le2"] = float(np.mean(np.array(er) <= 2.0))
            if "gain" in row:  # results worse than the blurred input (shift-tolerant PSNR below the input's)
                row["_worse"] = int(sum(r["metrics"]["gain"] < 0 for r in ok if "gain" in r["metrics"]))
            table[lab] = row
        out[cond] = table
    return out


def columns_present(table: dict) -> list[str]:
    return [k for k in COLUMNS if any(k in row for row in table.values())]


def fmt(stat: dict | None, key: str, spread: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    f = COLUMNS[key][1]
    s = f.format(stat["mean"])
    if spread and stat["n"] > 1:
        s += " ± " + f.replace("+", "").format(stat["std"])
    return s


def markdown_tables(summary: dict, spread: bool = True) -> str:
    """One markdown table per condition (mean ± standard deviation over the images; n = cases); with an error
    ratio, the share of cases at or below 2 and 3; with the gain metric, the count of results worse than the input."""
    parts = []
    for cond, table in summary.items():
        cols = columns_present(table)
        er = any("_er_le2" in row for row in table.values())
        worse = any("_worse" in row for row in table.values())
        head = (["method"] + [COLUMNS[c][0] for c in cols] + (["error ratio ≤ 2 / ≤ 3"] if er else [])
                + (["worse than input"] if worse else []) + ["n"])
        lines = [f"**{cond}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for lab, row in table.items():
            n = f"{row['_ok']}" + (f" ({row['_failed']} failed)" if row["_failed"] else "")
            extra = ([f"{100 * row['_er_le2']:.0f}% / {100 * row['_er_le3']:.0f}%" if "_er_le2" in row else "-"] if er else [])
            extra += [str(row["_worse"]) if "_worse" in row else "-"] if worse else []
            lines.append("| " + " | ".join([lab] + [fmt(row.get(c), c, spread) for c in cols] + extra + [n]) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def matrix_table(summary: dict, metric: str, extra: tuple[str, ...] = ("time_s",)) -> str:
    """One markdown table of ``metric`` for every method (rows) and condition (columns), mean over the cases;
    with ``psnr_delta`` the difference to the reference follows in brackets, with ``psnr_input`` a first row
    gives the blurred input's value; ``extra`` metrics become columns averaged over every condition.
    Conditions that share their noise part are named by what precedes it (e.g. the kernel)."""
    conds = list(summary)
    names = [c.split(", ")[0].split(":")[-1] for c in conds]  # "kernels.npz:kernel09 (25x25)" -> "kernel09 (25x25)"
    tails = {c.partition(", ")[2] for c in conds}
    if len(tails) != 1 or len(set(names)) != len(names):  # several noise levels: "kernel09 (25x25), sigma=0.01"
        names = [f"{n}, {c.partition(', ')[2].split(' (')[0].replace('gaussian ', '')}" if ", " in c else c
                 for n, c in zip(names, conds)]
        names = names if len(set(names)) == len(names) else conds
    labels = list(dict.fromkeys(lab for t in summary.values() for lab in t))
    extra = tuple(e for e in extra if any(e in row for t in summary.values() for row in t.values()))
    head = ["method"] + names + [f"mean {COLUMNS[e][0]}" for e in extra]
    title = COLUMNS[metric][0] + (f", {next(iter(tails))}" if len(tails) == 1 and names != conds and next(iter(tails)) else "")
    lines = [f"**{title}** (difference to the reference in brackets; mean over the cases)"
             if any("psnr_delta" in row for t in summary.values() for row in t.values()) else f"**{title}**",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if any("psnr_input" in row for t in summary.values() for row in t.values()):
        cells = []
        for c in conds:
            vals = [row["psnr_input"]["mean"] for row in summary[c].values() if row.get("psnr_input", {}).get("mean") is not None]
            cells.append(f"{vals[0]:.2f}" if vals else "-")
        lines.append("| blurred input | " + " | ".join(cells + ["-"] * len(extra)) + " |")
    for lab in labels:
        cells = []
        for c in conds:
            row = summary[c].get(lab)
            cell = fmt(row.get(metric), metric, spread=False) if row else "-"
            if row and row.get("psnr_delta", {}).get("mean") is not None:
                cell += f" ({row['psnr_delta']['mean']:+.2f})"
            cells.append(cell)
        for e in extra:
            vals = [row[e]["mean"] for t in summary.values() for la, row in t.items()
                    if la == lab and row.get(e, {}).get("mean") is not None]
            cells.append(COLUMNS[e][1].format(float(np.mean(vals))) if vals else "-")
        lines.append("| " + " | ".join([lab] + cells) + " |")
    return "\n".join(lines)
