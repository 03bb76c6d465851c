"""BenchReport: the JSON (environment, command, config) round-trips, strict JSON."""
from __future__ import annotations

import json
from pathlib import Path

from skugen.bench import BenchReport


def test_json_has_environment_command_config_and_round_trips(bench):
    rep = bench["report"]
    d = json.loads(Path(bench["json"]).read_text())
    assert d["schema_version"] == 1 and d["kind"] == "bench"
    assert d["command"] == ["skugen", "bench", "(test)"]
    env = d["environment"]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_vnni" in flags:
        assert "avx512_vnni" in env["cpu"]["flags"]
    assert env["cpu"]["model"] and env["cpu"]["usable_cores"] >= 1
    for k in ("skugen", "onnxruntime", "numpy", "torch"):
        assert env["versions"][k], k
    assert "tensorrt" in env["versions"] and "cuda_toolkit" in env["versions"]
    assert "jetson_power_mode" in env
    assert d["config"]["threads_resolved"] == 1 and d["config"]["batches"] == list(bench["matrix"]["batches"])
    back = BenchReport.load(bench["json"])
    assert back.to_dict()["cells"] == d["cells"]
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN/inf anywhere


def test_report_says_who_signed_each_bundle(bench):
    """The fixture bundles are unsigned: the JSON and the HTML say so per bundle (skugen.signing)."""
    d = json.loads(Path(bench["json"]).read_text())
    names = {c["bundle"] for c in d["cells"]}
    assert names and all(d["references"][n]["signature"]["status"] == "unsigned" for n in names)
    from skugen.bench import render_html

    html = render_html(bench["report"])
    assert all(f"bundle {n}" in html for n in names) and "unsigned" in html
