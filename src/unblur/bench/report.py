"""Self-contained HTML report of a run and its BENCHMARKS.md section.

The page holds everything inline (plots and image panels as base64 PNG, CSS in a ``<style>`` element,
no script, no network resource): the run's command, machine and date; per condition a table of mean ±
standard deviation per method with the per-image rows in a ``<details>`` element; a quality-vs-time plot;
image panels (input | each method | ground truth, with a zoomed crop below each) for the first units;
for blind methods the estimated kernels next to the true one.  Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np

from .summary import COLUMNS, columns_present, condition_of, fill_deltas, fmt, markdown_tables, matrix_table, summarize

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eef}
td:first-child,th:first-child{text-align:left}
td.best{font-weight:bold;background:#efe}
pre{background:#f4f4f4;padding:8px;white-space:pre-wrap;word-break:break-all}
img{max-width:100%;height:auto}.note{color:#a40}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _quality_key(table: dict) -> str | None:
    cols = columns_present(table)
    for k in ("psnr_shift", "psnr", "ssim", "niqe", "brisque"):
        if k in cols:
            return k
    return None


def quality_time_plot(summary: dict) -> str | None:
    """One scatter per condition: mean quality against mean time per method (log time axis)."""
    plt = _plt()
    conds = [(c, t) for c, t in summary.items() if _quality_key(t) and any("time_s" in r for r in t.values())]
    if not conds:
        return None
    fig, axes = plt.subplots(1, len(conds), figsize=(5.2 * len(conds), 4), squeeze=False)
    for ax, (cond, table) in zip(axes[0], conds):
        q = _quality_key(table)
        for lab, row in table.items():
            if q in row and "time_s" in row and row[q]["mean"] is not None:
                ax.errorbar(row["time_s"]["mean"], row[q]["mean"], yerr=row[q]["std"] or 0, fmt="o", capsize=3)
                ax.annotate(lab, (row["time_s"]["mean"], row[q]["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("mean time per image (s)")
        ax.set_ylabel(COLUMNS[q][0])
        ax.set_title(cond, fontsize=9)
        ax.grid(alpha=0.3)
    return _png(fig)


def _show(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    if a.ndim == 3 and a.shape[-1] not in (3, 4):  # a stack: the middle plane
        a = a[a.shape[0] // 2]
    return a


def image_panel(title: str, images: list[tuple[str, np.ndarray]], zoom: float = 0.25) -> str:
    """Row of images (input | methods | truth) and below each the zoomed central ``zoom`` fraction."""
    plt = _plt()
    ims = [(n, _show(a)) for n, a in images]
    lo = min(float(np.percentile(a, 0.5)) for _, a in ims)
    hi = max(float(np.percentile(a, 99.5)) for _, a in ims)
    n = len(ims)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for j, (name, a) in enumerate(ims):
        h, w = a.shape[:2]
        ch, cw = max(8, int(h * zoom)), max(8, int(w * zoom))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        shown = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
        for i, img in enumerate((shown, shown[y0:y0 + ch, x0:x0 + cw])):
            ax = axes[i, j]
            ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].add_patch(plt.Rectangle((x0, y0), cw, ch, fill=False, color="r", lw=1))
        axes[0, j].set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def kernel_panel(title: str, kernels: list[tuple[str, np.ndarray]]) -> str:
    plt = _plt()
    n = len(kernels)
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.2), squeeze=False)
    for ax, (name, k) in zip(axes[0], kernels):
        k = np.asarray(k, np.float32)
        if k.ndim == 3:
            k = k.max(0)
        ax.imshow(k / max(float(k.max()), 1e-12), cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    return _png(fig)


def _table_html(table: dict) -> str:
    cols = columns_present(table)
    best = {}
    for c in cols:
        better = COLUMNS[c][2]
        vals = {lab: row[c]["mean"] for lab, row in table.items() if c in row and row[c]["mean"] is not None}
        if better and len(vals) > 1:
            best[c] = (max if better == "high" else min)(vals, key=vals.get)
    head = "".join(f"<th>{html.escape(COLUMNS[c][0])}</th>" for c in cols)
    rows = []
    for lab, row in table.items():
        best_cls = ' class="best"'
        cells = "".join(f"<td{best_cls if best.get(c) == lab else ''}>{html.escape(fmt(row.get(c), c))}</td>" for c in cols)
        n = f"{row['_ok']}" + (f" ({row['_failed']} failed)" if row["_failed"] else "")
        er = (f"<td>{100 * row['_er_le2']:.0f}% / {100 * row['_er_le3']:.0f}%</td>" if "_er_le3" in row
              else ("<td>-</td>" if any("_er_le3" in r for r in table.values()) else ""))
        er += f"<td>{row['_worse']}</td>" if "_worse" in row else ("<td>-</td>" if any("_worse" in r for r in table.values()) else "")
        rows.append(f"<tr><td>{html.escape(lab)}</td>{cells}{er}<td>{n}</td></tr>")
    er_head = "<th>error ratio &le; 2 / &le; 3</th>" if any("_er_le3" in r for r in table.values()) else ""
    er_head += "<th>worse than input</th>" if any("_worse" in r for r in table.values()) else ""
    return f"<table class=\"summary\"><tr><th>method</th>{head}{er_head}<th>n</th></tr>{''.join(rows)}</table>"


def _per_image_html(records: list[dict], cond: str) -> str:
    rs = [r for r in records if condition_of(r) == cond]
    keys = [k for k in COLUMNS if any(k in r.get("metrics", {}) for r in rs)]
    head = "".join(f"<th>{html.escape(COLUMNS[k][0])}</th>" for k in keys)
    rows = []
    for r in sorted(rs, key=lambda r: (r["image"], r["kernel"], r["label"])):
        m = r.get("metrics", {})
        cells = "".join(f"<td>{COLUMNS[k][1].format(m[k]) if isinstance(m.get(k), (int, float)) else '-'}</td>" for k in keys)
        err = "" if r.get("ok") else f" <span class=\"note\">failed: {html.escape(str(r.get('error', ''))[:200])}</span>"
        rows.append(f"<tr><td>{html.escape(r['image'])}</td><td>{html.escape(r['kernel'])}</td>"
                    f"<td>{html.escape(r['label'])}{err}</td>{cells}</tr>")
    return (f"<details><summary>per-image results ({len(rs)} cases)</summary><table class=\"per-image\">"
            f"<tr><th>image</th><th>kernel</th><th>method</th>{head}</tr>{''.join(rows)}</table></details>")


def _panels(cases, out_dir: Path, units: list[str]) -> list[str]:
    from .cases import degrade
    from .runner import safe_name
    blocks = []
    by_unit: dict = {}
    for c in cases:
        by_unit.setdefault(c.unit.uid, []).append(c)
    for uid in units:
        cs = by_unit.get(uid)
        if not cs:
            continue
        data = degrade(cs[0].unit)
        ims = [("input", data["blurred"])]
        kernels = [("true", data["kernel"])] if data["kernel"] is not None else []
        for c in cs:
            f = out_dir / "restored" / f"{safe_name(c.cid)}.npy"
            if f.exists():
                ims.append((c.method.label, np.load(f)))
            kf = out_dir / "kernels" / f"{safe_name(c.cid)}.npy"
            if kf.exists():
                kernels.append((c.method.label, np.load(kf)))
        ims.append(("ground truth", data["truth"]))
        if len(ims) > 2:
            blocks.append(f"<h3>{html.escape(uid)}</h3><img alt=\"image panel {html.escape(uid)}\" src=\"{image_panel(uid, ims)}\">")
        if len(kernels) > 1:
            blocks.append(f"<img alt=\"kernels {html.escape(uid)}\" src=\"{kernel_panel('kernels: ' + uid, kernels)}\">")
    return blocks


def write_report(out_dir: Path, suite, cases, records: list[dict], command: str, machine: dict, started: str,
                 panel_units: list[str]) -> Path:
    """Write ``out_dir/report.html`` and return its path."""
    out_dir = Path(out_dir)
    labels = [m.label for m in suite.methods]
    records = fill_deltas(records, suite.reference)
    summary = summarize(records, labels, suite.reference)
    notes = sorted({n for r in records for n in r.get("notes", [])})
    failed = [r for r in records if not r.get("ok")]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>unblur bench: {html.escape(suite.name)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>unblur bench: {html.escape(suite.name)}</h1><p>{html.escape(suite.description)}</p>",
             f"<p><b>Reproduce:</b></p><pre class=\"command\">{html.escape(command)}</pre>",
             f"<p><b>Machine:</b> {html.escape(machine_line(machine))}. <b>Started:</b> {html.escape(started)}. "
             f"<b>Cases:</b> {len(records)} ({len(failed)} failed).</p>"]
    if notes:
        parts.append("<ul>" + "".join(f"<li class=\"note\">{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("<h2>Results</h2><p>Mean ± standard deviation over the cases; the best mean of each column in bold.</p>")
    for cond, table in summary.items():
        parts.append(f"<h3>{html.escape(cond)}</h3>{_table_html(table)}{_per_image_html(records, cond)}")
    plot = quality_time_plot(summary)
    if plot:
        parts.append(f"<h2>Quality against time</h2><img alt=\"quality against time\" src=\"{plot}\">")
    panels = _panels(cases, out_dir, panel_units)
    if panels:
        parts.append("<h2>Images</h2><p>Input | each method | ground truth; below, the central quarter enlarged "
                     "(red box). Stacks show their middle plane.</p>" + "".join(panels))
    parts.append("</body></html>")
    path = out_dir / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path


def machine_line(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU (CPU only)"
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')} with {m.get('torch_threads', '?')} "
            f"threads, {gpu}; unblur {m.get('unblur', '?')}, Python {m.get('python', '?')}"
            + (f"; load average {m['load_1min']:.1f} at the start (times are upper bounds when it exceeds the cores)"
               if m.get("load_1min") is not None else ""))


# -- BENCHMARKS.md ---------------------------------------------------------------------------------

SECTION = "## Benchmark suites (unblur bench)"
SECTION_INTRO = ("Generated by `unblur bench SUITE --markdown BENCHMARKS.md`: each suite's block below is rewritten by "
                 "its run (between its marker comments); mean ± standard deviation over the cases.")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- unblur bench {name}: begin -->", f"<!-- unblur bench {name}: end -->"


def markdown_block(suite, records: list[dict], command: str, machine: dict, date: str, workers: int) -> str:
    labels = [m.label for m in suite.methods]
    records = fill_deltas(records, suite.reference)
    summary = summarize(records, labels, suite.reference)
    gpu = machine.get("gpu")
    where = f"on a GPU ({gpu})" if gpu else "on the CPU (no GPU)"
    lines = [f"### `{suite.name}`", "", suite.description, "",
             f"Command: `{command}`", "",
             f"Machine: {machine_line(machine)}; run {where}, {workers} worker(s); {date}.", "",
             matrix_table(summary, suite.report["matrix"]) if suite.report.get("matrix") else markdown_tables(summary)]
    failed = [r for r in records if not r.get("ok")]
    if failed:
        lines += ["", f"{len(failed)} case(s) failed: " + "; ".join(sorted({str(r.get('error'))[:120] for r in failed}))]
    notes = sorted({n for r in records for n in r.get("notes", [])})
    if notes:
        lines += ["", "Notes: " + "; ".join(notes)]
    return "\n".join(lines)


def update_markdown(path: str | Path, suite_name: str, block: str) -> None:
    """(Re)write the suite's block between its markers in the "Benchmark suites" section; nothing else changes."""
    p = Path(path)
    text = p.read_text() if p.exists() else "# unblur benchmarks\n"
    begin, end = _markers(suite_name)
    new = f"{begin}\n{block.rstrip()}\n{end}"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pat.search(text):
        text = pat.sub(lambda _m: new, text, count=1)
    else:
        if SECTION not in text:
            text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{SECTION_INTRO}\n"
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        stop = len(text) if nxt < 0 else nxt + 1
        body = text[start:stop].rstrip("\n")
        text = text[:start] + body + f"\n\n{new}\n" + ("\n" + text[stop:] if stop < len(text) else "")
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text)
    tmp.replace(p)
