"""unblur bench: the nonblind-kernels and diffusion-nonface suites and the suite features they use (observed
field with mirror extension, per-kernel noise levels, skip, tables per kernel, PSNR difference to the reference,
PSNR of the input, residual share, seed spread)."""

import numpy as np
import pytest

from unblur.bench import load_suite, run_suite
from unblur.bench.cases import degrade, make_cases, make_units, mirror_crop
from unblur.errors import InputError


def _folder(tmp_path, n=2, size=40, color=False):
    import imageio.v3 as iio
    from scipy import ndimage
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        shape = (size, size, 3) if color else (size, size)
        a = ndimage.gaussian_filter(rng.random(shape), (1.5, 1.5, 0) if color else 1.5)
        a = (255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8)
        iio.imwrite(d / f"img{i}.png", a)
    return d


@pytest.mark.parametrize("full", [False, True])
def test_new_suites_parse(full):
    s = load_suite("nonblind-kernels", full=full)
    assert s.dataset["field"] == 255 and s.degradation["boundary"] == "valid" and s.reference == "RL"
    assert s.report["group"] == "kernel" and "psnr_delta" in s.metric_names
    d = load_suite("diffusion-nonface", full=full)
    levels = {k["source"]: k["levels"] for k in d.degradation["kernels"]}
    assert levels["file"] == [0.01] and levels["gaussian"] == ([0.025, 0.05] if full else [0.025])
    assert {"residual_share", "seed_spread"} <= set(d.metric_names)


def test_suite_feature_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[dataset]\npath = ["x"]\n[degradation]\nkernels = [{source = "disk", size = 5}]\n'
                   '[[methods]]\nmethod = "rl"\n[metrics]\nnames = ["psnr_delta"]\n')
    with pytest.raises(InputError, match="psnr_delta needs a reference"):
        load_suite(bad)
    with pytest.raises(InputError, match="report.group"):
        load_suite("smoke", overrides=['report.group="method"'])


def test_mirror_crop_extends_small_images_symmetrically():
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert np.array_equal(mirror_crop(a, (2, 3)), a[1:3, 1:4])        # larger image: the centred crop
    b = mirror_crop(a, (8, 5))                                         # 2 rows short on each side
    assert b.shape == (8, 5) and np.array_equal(b[2:6], a)
    assert np.array_equal(b[:2], a[1::-1]) and np.array_equal(b[6:], a[:1:-1])  # mirrored, edge row repeated


def test_field_is_the_observed_side_for_every_kernel(tmp_path):
    d = _folder(tmp_path, n=3, size=40)
    s = load_suite("nonblind-kernels", overrides=[
        "dataset.field=36", "dataset.skip=1", "dataset.limit=0",
        'degradation.kernels=[{source = "disk", size = 5, radius = 2}, {source = "motion", size = 15, seeds = [15]}]'])
    units = make_units(s, d)
    assert sorted({u.item["name"] for u in units}) == ["img0", "img1", "img2"]   # skip does not apply to --data
    for u in units:
        x = degrade(u)
        assert x["blurred"].shape == x["truth"].shape == (36, 36)   # 36 + 15 - 1 = 50 > 40: mirror-extended


def test_skip_and_per_kernel_levels(tmp_path):
    d = _folder(tmp_path, n=3, size=40)
    s = load_suite("smoke", overrides=[f'dataset.path=["{d}"]', "dataset.skip=1", "dataset.limit=1",
                                       'degradation.kernels=[{source = "gaussian", size = 5, sigma = 1, levels = [0.02, 0.03]}, '
                                       '{source = "disk", size = 5, radius = 2}]', "degradation.levels=[0.01]"])
    units = make_units(s)
    assert [(u.item["name"], u.kernel_name, u.level) for u in units] == [
        ("img1", "gauss5-s1", 0.02), ("img1", "gauss5-s1", 0.03), ("img1", "disk5-r2", 0.01)]


def test_nonblind_kernels_tiny_run(tmp_path):
    """Tables per kernel, the difference to RL on the same degraded image, the input's PSNR (a few seconds)."""
    from unblur.bench.summary import markdown_tables
    d = _folder(tmp_path, n=2, size=40)
    s = load_suite("nonblind-kernels", overrides=[
        "dataset.field=32", 'degradation.kernels=[{source = "disk", size = 7, radius = 3}, {source = "motion", size = 15, seeds = [15]}]',
        'methods=[{method = "rl", label = "RL", params = {num_iter = 20}}, {method = "wiener", label = "Wiener"}]'])
    res = run_suite(s, tmp_path / "out", data=d)
    recs = res["records"]
    assert len(recs) == 8 and all(r["ok"] for r in recs), [r.get("error") for r in recs]
    for r in recs:
        m = r["metrics"]
        assert r["group"] == f"{r['kernel']} ({'x'.join(map(str, r['kernel_shape']))})"
        assert m["psnr_input"] < m["psnr"]
        rl = next(q for q in recs if q["unit"] == r["unit"] and q["label"] == "RL")
        assert rl["metrics"]["psnr_input"] == m["psnr_input"]
        if r["label"] == "Wiener":
            assert m["psnr_delta"] == pytest.approx(m["psnr"] - rl["metrics"]["psnr"], abs=1e-9)
        else:
            assert "psnr_delta" not in m
    text = markdown_tables(res["summary"])
    assert "**disk7-r3 (7x7), gaussian sigma=0.01" in text and "**motion15-gp-15 (15x15)," in text
    assert "PSNR - reference (dB)" in text and "PSNR of the input (dB)" in text


def test_residual_share_of_truth_and_of_the_blurred_input(tmp_path):
    """The residual share is about 0.3 % for the true image and large for the blurred input."""
    from unblur.bench.runner import _residual_share
    d = _folder(tmp_path, n=1, size=64)
    s = load_suite("diffusion-nonface", overrides=['degradation.kernels=[{source = "gaussian", size = 9, sigma = 2, levels = [0.01]}]',
                                                   "dataset.crop=0"])
    case = make_cases(s, d)[0]
    data = degrade(case.unit)
    truth_share, _ = _residual_share(case, data, data["truth"], {})
    blurred_share, _ = _residual_share(case, data, data["blurred"], {})
    assert truth_share < 0.02 and blurred_share > 0.2


def test_diffusion_nonface_tiny_run(tmp_path):
    """RL, RL-TV and a few-step RL-diffusion with two seeds on a colour crop: residual share and seed spread."""
    d = _folder(tmp_path, n=1, size=32, color=True)
    s = load_suite("diffusion-nonface", overrides=[
        "dataset.crop=32", 'degradation.kernels=[{source = "gaussian", size = 7, sigma = 1.5, levels = [0.02]}]',
        'methods=[{method = "rl-tv", label = "RL-TV", params = {num_iter = 5, boundary = "replicate"}}, '
        '{method = "rl-diffusion", label = "RLD", params = {N = 2, L = 2, M = 2, noise_sigma = "$sigma", '
        'boundary = "replicate", seeds = 2}}]'])
    recs = run_suite(s, tmp_path / "out", data=d)["records"]
    assert len(recs) == 2 and all(r["ok"] for r in recs), [r.get("error") for r in recs]
    by = {r["label"]: r for r in recs}
    assert 0 <= by["RL-TV"]["metrics"]["residual_share"] <= 1 and "seed_spread" not in by["RL-TV"]["metrics"]
    assert by["RLD"]["metrics"]["seed_spread"] > 0 and 0 <= by["RLD"]["metrics"]["residual_share"] <= 1
    assert not any("seed spread" in n for n in by["RL-TV"]["notes"] + by["RLD"]["notes"])


def test_tables_follow_the_suite_order_not_the_order_of_completion():
    from unblur.bench.summary import summarize
    recs = [{"label": "RL", "ok": True, "noise": "none", "level": 0.0, "group": g, "index": i, "metrics": {"psnr": 20.0}}
            for g, i in (("k75", 2), ("k15", 0), ("k35", 1))]
    assert list(summarize(recs)) == ["k15", "k35", "k75"]
    assert list(summarize([{k: v for k, v in r.items() if k != "index"} for r in recs])) == ["k75", "k15", "k35"]


def test_choice_suites_parse_and_name_registered_parameters():
    """The suites in benchmarks/choices/ (how defaults were chosen) stay runnable: every method and parameter exists."""
    from pathlib import Path

    from unblur.registry import get_method
    files = sorted((Path(__file__).parents[1] / "benchmarks" / "choices").glob("*.toml"))
    assert files
    for f in files:
        s = load_suite(str(f))
        for m in s.methods:
            names = {p.name for p in get_method(m.method).params} | set(get_method(m.method).api_only)
            assert set(m.params) <= names, (f.name, m.label, set(m.params) - names)


def test_matrix_table_one_row_per_method_one_column_per_kernel():
    from unblur.bench.summary import matrix_table, summarize

    def rec(kernel, label, psnr, delta=None, idx=0):
        m = {"psnr": psnr, "psnr_input": 20.0, "time_s": 1.0}
        if delta is not None:
            m["psnr_delta"] = delta
        return {"label": label, "group": kernel, "noise": "gaussian", "level": 0.01, "ok": True, "metrics": m, "index": idx}

    records = [rec("k.npz:kernel09 (25x25)", "RL", 25.0, idx=0), rec("k.npz:kernel09 (25x25)", "DPIR", 27.0, 2.0, 1),
               rec("motion35 (35x35)", "RL", 24.0, idx=2), rec("motion35 (35x35)", "DPIR", 23.5, -0.5, 3)]
    table = matrix_table(summarize(records, ["RL", "DPIR"]), "psnr")
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    assert lines[0] == "| method | kernel09 (25x25) | motion35 (35x35) | mean time (s) |"
    assert lines[2] == "| blurred input | 20.00 | 20.00 | - |"
    assert lines[3] == "| RL | 25.00 | 24.00 | 1.00 |"
    assert lines[4] == "| DPIR | 27.00 (+2.00) | 23.50 (-0.50) | 1.00 |"
    with pytest.raises(InputError, match="report.matrix"):
        load_suite("smoke", overrides=['report.matrix="lpips"'])


def test_psnr_difference_filled_from_the_reference_record_when_its_restoration_is_gone():
    from unblur.bench.summary import fill_deltas
    note = "PSNR difference: the reference 'RL' has no restoration for this unit (it failed)"
    recs = [{"label": "RL", "unit": "u1", "ok": True, "metrics": {"psnr": 25.0}, "notes": []},
            {"label": "DPIR", "unit": "u1", "ok": True, "metrics": {"psnr": 26.5}, "notes": [note]},
            {"label": "DPIR", "unit": "u2", "ok": True, "metrics": {"psnr": 20.0}, "notes": [note]}]
    out = fill_deltas(recs, "RL")
    assert out[1]["metrics"]["psnr_delta"] == pytest.approx(1.5) and out[1]["notes"] == []
    assert "psnr_delta" not in out[2]["metrics"] and out[2]["notes"] == [note]  # no reference record for u2
    assert "psnr_delta" not in recs[1]["metrics"]  # the records themselves are not changed


def test_safeguard_outcome_is_recorded_and_shown_as_a_share():
    from unblur.bench.runner import safeguard_metrics
    from unblur.bench.summary import markdown_tables, summarize
    assert safeguard_metrics({"safeguard": {"enabled": True, "kept_start": True}}) == {"kept_start": 1.0}
    assert safeguard_metrics({"safeguard": {"enabled": False, "kept_start": False}}) == {}
    assert safeguard_metrics({"nfe": 3}) == {}
    recs = [{"label": "Fast EM", "noise": "gaussian", "level": 0.01, "ok": True, "metrics": {"kept_start": v}, "index": i}
            for i, v in enumerate((1.0, 0.0, 0.0, 0.0))]
    assert "| safeguard kept the start |" in markdown_tables(summarize(recs)).replace(" | n |", " |")
    assert "| Fast EM | 25% ± 50% | 4 |" in markdown_tables(summarize(recs))
