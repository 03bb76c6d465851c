"""`skugen bench` from the command line: run, save, gate (exit 0 / 1), usage errors (exit 2)."""
from __future__ import annotations

import json

from skugen import cli
from skugen.bench import BenchReport


def test_cli_bench_runs_and_gates(bench, tmp_path, capsys, fabricate, gate_key):
    """`skugen bench BUNDLE ... --baseline OLD.json`: exit 0 within thresholds, 1 with a diff table beyond."""
    d = bench["report"].to_dict()
    key = gate_key(bench["report"], precision="fp32")
    (tmp_path / "fast.json").write_text(json.dumps(fabricate(d, key, p50_factor=1 / 50)))   # baseline 50x faster
    (tmp_path / "slow.json").write_text(json.dumps(fabricate(d, key, p50_factor=50)))      # baseline 50x slower
    args = ["bench", str(bench["cgan"]), "--backends", "onnxruntime", "--precisions", "fp32", "--batch", "1",
            "--warmup", "1", "--iters", "5", "--threads", "1", "--no-quality", "--ceiling-size", "256",
            "--no-progress", "--json", str(tmp_path / "new.json"), "--csv", str(tmp_path / "new.csv"),
            "--md", str(tmp_path / "new.md")]
    assert cli.main(args + ["--baseline", str(tmp_path / "slow.json")]) == 0
    out = capsys.readouterr().out
    assert "regression gate: PASS" in out and "| bundle | model |" in out
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["command"] and new["cells"][0]["status"] == "ok"
    assert (tmp_path / "new.csv").read_text().startswith("key,bundle,")
    assert (tmp_path / "new.md").read_text() == BenchReport.from_dict(new).to_markdown()

    assert cli.main(args + ["--baseline", str(tmp_path / "fast.json")]) == 1
    out = capsys.readouterr().out
    assert "regression gate: FAIL" in out and "FAIL slower" in out and key in out


def test_cli_from_report_gates_quality(bench, tmp_path, capsys, fabricate, gate_key):
    d = bench["report"].to_dict()
    key = gate_key(bench["report"])
    (tmp_path / "better.json").write_text(json.dumps(fabricate(d, key, psnr_delta=1.0)))
    base = ["bench", "--from-report", str(bench["json"]), "--baseline"]
    assert cli.main(base + [str(bench["json"])]) == 0
    capsys.readouterr()
    assert cli.main(base + [str(tmp_path / "better.json"), "--max-quality-drop", "0.1"]) == 1
    assert "FAIL worse" in capsys.readouterr().out
    # A looser threshold lets the same drop through.
    assert cli.main(base + [str(tmp_path / "better.json"), "--max-quality-drop", "1.5"]) == 0


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main(["bench", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["bench", "--from-report", str(tmp_path / "nope.json")]) == 2
