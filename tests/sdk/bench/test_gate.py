"""The regression gate: passes against itself, fails on slowdown and quality, says CROSS-RUN without ceilings."""
from __future__ import annotations

import copy

from skugen.bench import GateConfig, compare_reports


def test_gate_passes_against_itself_and_fails_on_slowdown_and_quality(bench, fabricate, gate_key):
    rep = bench["report"]
    d = rep.to_dict()
    same = compare_reports(d, d)
    assert same.passed and not same.cross_run
    assert any(r["metric"].startswith("p50 / fp32-GEMM") for r in same.rows)

    key = gate_key(rep)
    slower = compare_reports(d, fabricate(d, key, p50_factor=1 / 1.5))  # baseline 1.5x faster
    assert not slower.passed
    bad = [r for r in slower.rows if r["verdict"].startswith("FAIL")]
    assert [(r["key"], r["verdict"]) for r in bad] == [(key, "FAIL slower")]
    assert "x1.500" in bad[0]["change"]
    assert "regression gate: FAIL" in slower.table() and key in slower.table()
    assert compare_reports(d, fabricate(d, key, p50_factor=1 / 1.5), GateConfig(max_slowdown=1.6)).passed

    worse = compare_reports(d, fabricate(d, key, psnr_delta=0.5))  # baseline 0.5 dB better
    assert not worse.passed
    assert any(r["metric"] == "psnr_ref_db" and r["verdict"] == "FAIL worse" for r in worse.rows)

    within = compare_reports(d, fabricate(d, key, p50_factor=1 / 1.05, psnr_delta=0.05))
    assert within.passed, within.table()


def test_gate_without_ceilings_says_cross_run(bench):
    d = bench["report"].to_dict()
    b = copy.deepcopy(d)
    for c in b["cells"]:
        if c.get("normalized"):
            c["normalized"]["p50_over_fp32_gemm"] = None
    res = compare_reports(d, b)
    assert res.cross_run
    assert any("CROSS-RUN" in r["metric"] for r in res.rows)
    assert any("CROSS-RUN" in n for n in res.notes)


def test_gate_lists_baseline_cells_missing_now(bench, gate_key):
    d = bench["report"].to_dict()
    cur = copy.deepcopy(d)
    key = gate_key(bench["report"])
    cur["cells"] = [c for c in cur["cells"] if c["key"] != key]
    res = compare_reports(cur, d)
    assert res.passed and any(r["key"] == key and r["verdict"] == "NOT COMPARED" for r in res.rows)


def test_gate_works_across_engines(bench, fabricate, gate_key):
    """An OpenVINO cell is gated like an ONNX Runtime one (same-run yardstick), and an engine upgrade is noted."""
    rep = bench["report"]
    d = rep.to_dict()
    key = gate_key(rep, backend="openvino", precision="fp32")
    slower = compare_reports(d, fabricate(d, key, p50_factor=1 / 1.5))
    assert [(r["key"], r["verdict"]) for r in slower.rows if r["verdict"].startswith("FAIL")] == [(key, "FAIL slower")]
    b = copy.deepcopy(d)
    b["environment"]["versions"]["openvino"] = "2025.1.0"
    assert any("openvino version differs" in n for n in compare_reports(d, b).notes)
