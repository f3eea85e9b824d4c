"""unblur bench --report-only: the report and BENCHMARKS block of the results so far, without running a case."""

import numpy as np
import pytest

from unblur.errors import InputError


def _folder(tmp_path, n=2, size=40):
    import imageio.v3 as iio
    from scipy import ndimage
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(2)
    for i in range(n):
        a = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
        iio.imwrite(d / f"img{i}.png", (255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8))
    return d


def test_report_only_writes_the_partial_report_and_runs_nothing(tmp_path, monkeypatch):
    from unblur.bench import runner
    from unblur.bench.store import append_record, read_records
    from unblur.cli.bench import main
    d, out, md = _folder(tmp_path), tmp_path / "run", tmp_path / "B.md"
    args = ["smoke", "--data", str(d), "--out", str(out), "--no-progress", "--set", "dataset.crop=32",
            "--methods", "Wiener", "--markdown", str(md)]
    from unblur.bench import load_suite, run_suite
    with pytest.raises(InputError, match="no results"):
        run_suite(load_suite("smoke"), out, data=d, report_only=True)
    assert main(args + ["--workers", "2"]) == 0
    recs = read_records(out / "results.jsonl")
    keep = recs[:1]  # a partial run: one case of the results
    (out / "results.jsonl").write_text("")
    for r in keep:
        append_record(out / "results.jsonl", r)
    (out / "report.html").unlink()
    md.write_text("# t\n")

    def refuse(*a, **k):
        raise AssertionError("report-only ran a case")

    monkeypatch.setattr(runner, "run_cases", refuse)
    assert main(args + ["--report-only"]) == 0
    assert (out / "report.html").exists() and len(read_records(out / "results.jsonl")) == 1
    text = md.read_text()
    assert "### `smoke`" in text and "| Wiener |" in text and "--report-only" not in text
    # the block describes the run (2 workers), not the report command (1 by default)
    assert "2 worker(s)" in text and "--workers 2" in text
