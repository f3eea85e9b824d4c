"""Reproducible benchmark suites: ``unblur bench SUITE`` (see :mod:`unblur.bench.suite` for the file format).

* :mod:`unblur.bench.suite` -- suites as TOML data (shipped in ``unblur/bench/suites/``), overrides;
* :mod:`unblur.bench.cases` -- dataset items, kernels, seeded degradations, cases;
* :mod:`unblur.bench.runner` -- cases through the registry, metrics, time and memory, Dask, resume;
* :mod:`unblur.bench.store` -- the JSONL results file (atomic appends);
* :mod:`unblur.bench.summary`, :mod:`unblur.bench.report` -- tables, the HTML report, BENCHMARKS.md.

Example
-------
>>> from unblur.bench import load_suite
>>> s = load_suite("smoke")
>>> s.name, [m.method for m in s.methods][:2]
('smoke', ['wiener', 'rl'])
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import require
from .suite import Suite, describe, load_suite, select_methods, shipped_suites

__all__ = ["Suite", "load_suite", "shipped_suites", "describe", "select_methods", "run_suite"]


def run_suite(suite: Suite, out_dir: str | Path, data: str | Path | None = None, workers: int = 1,
              scheduler: str | None = None, resume: bool = False, progress: bool = False, command: str = "",
              lpips_weights: str | None = None, report_only: bool = False) -> dict:
    """Run ``suite`` into ``out_dir`` (``results.jsonl``, ``run.json``, ``report.html``); returns the run's summary.

    ``resume=True`` continues a run in ``out_dir`` (the same suite and data); without it an existing
    results file is refused.  ``report_only=True`` runs no case: the report of the results so far (a
    partial run shows its case counts).
    """
    from .cases import check_cases, make_cases
    from .report import write_report
    from .runner import RESULTS, _threads_for, machine_info, run_cases
    from .store import read_records, write_json_atomic
    from .summary import summarize
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if lpips_weights:
        suite.metrics["lpips_weights"] = str(lpips_weights)
    cases = make_cases(suite, data)
    check_cases(cases)
    ids = [c.cid for c in cases]
    import hashlib
    fingerprint = hashlib.sha1("\n".join(ids).encode()).hexdigest()
    run_file = out / "run.json"
    results = out / RESULTS
    require(not report_only or (results.exists() and bool(read_records(results))), f"{results} holds no results to report",
            "run the suite first (without --report-only)")
    if results.exists() and read_records(results):
        require(resume or report_only, f"{results} already holds results", "add --resume to continue that run, or choose another --out")
        import json
        prev = json.loads(run_file.read_text()) if run_file.exists() else {}
        done = {r["case"] for r in read_records(results)}
        require(prev.get("suite") == suite.name and done <= set(ids),
                f"{out} holds a run of another suite or other cases ({prev.get('suite')})",
                "resume with the same suite, data and options, or choose another --out")
    machine = machine_info()
    machine["torch_threads"] = _threads_for(workers)  # what each case runs with (run_cases sets it)
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    if report_only:
        import json
        prev = json.loads(run_file.read_text()) if run_file.exists() else {}
        machine, started = prev.get("machine", machine), prev.get("started", started)
        workers = prev.get("workers", workers)  # the report describes the run, not this command
    else:
        write_json_atomic(run_file, {"suite": suite.name, "source": suite.source, "command": command, "cases": len(cases),
                                     "fingerprint": fingerprint, "machine": machine, "started": started, "workers": workers})
    units = list(dict.fromkeys(c.unit.uid for c in cases))
    panel_units = units[: int(suite.report.get("panels", 2))]
    if not report_only:
        run_cases(cases, out, workers=workers, scheduler=scheduler, progress=progress, save_units=set(panel_units))
    records = [r for r in read_records(results) if r["case"] in set(ids)]
    report = write_report(out, suite, cases, records, command, machine, started, panel_units)
    return {"records": records, "summary": summarize(records, [m.label for m in suite.methods], suite.reference), "report": report,
            "machine": machine, "started": started, "cases": cases, "workers": workers}
