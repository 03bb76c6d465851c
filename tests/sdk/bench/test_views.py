"""The CSV and Markdown views of a report."""
from __future__ import annotations

import csv
import io

from skugen.bench import FID_NAME


def test_csv_and_markdown(bench, tmp_path):
    rep = bench["report"]
    rep.save_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == len(rep.cells)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["p50_ms"]) > 0 and float(r["throughput_ips"]) > 0 for r in ok)
    assert all(r["reason"] for r in rows if r["status"] == "skipped")
    md = rep.to_markdown()
    assert "| bundle | model | backend | prec | batch | p50 ms |" in md
    assert "Cells not measured here" in md and FID_NAME in md
    assert md.count("\n| ") >= len(rep.cells)


def test_engines_side_by_side(bench):
    from skugen.bench.html import render_html
    from skugen.bench.views import engine_comparison, markdown_table

    d = bench["report"].to_dict()
    rows = engine_comparison(d)
    both = [r for r in rows if set(r["engines"]) == {"onnxruntime", "openvino"}]
    assert both, rows
    for r in both:
        ms = {e: v["p50_ms"] for e, v in r["engines"].items()}
        assert r["faster"] == min(ms, key=ms.get)
        assert abs(r["openvino_speedup"] - ms["onnxruntime"] / ms["openvino"]) < 1e-9
        assert r["engines"]["openvino"]["ceiling"].startswith("ov_")
    assert "CPU engines side by side" in markdown_table(d)
    assert "CPU engines side by side" in render_html(d)
