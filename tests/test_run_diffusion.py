"""benchmarks/run_diffusion.py end to end in its --quick mode on the fixture diffusion bundle and the zoo teacher:
it writes the three result files, and the table names every cell and the teacher (nothing timed is asserted)."""
from __future__ import annotations

import json
from pathlib import Path
from file_modules import load_file  # tests/support

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_file(ROOT / "benchmarks" / "run_diffusion.py", "run_diffusion")


def test_quick_run_writes_json_md_html(diffusion_bundle, tmp_path):
    rd = _module()
    assert rd.main(["--bundle", str(diffusion_bundle), "--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    rep = json.loads((tmp_path / "fmnist-diffusion.json").read_text())
    md = (tmp_path / "fmnist-diffusion.md").read_text()
    html = (tmp_path / "fmnist-diffusion.html").read_text()
    assert rep["kind"] == "diffusion-bench" and rep["teacher"]["steps"] == 32 and rep["command"][1].endswith(
        "run_diffusion.py")
    ok = [c for c in rep["cells"] if c["status"] == "ok"]
    assert {("onnxruntime", "fp32")} <= {(c["engine"], c["precision"]) for c in ok}
    for c in ok:
        assert f"| student | {c['engine']} | {c['precision']} | {c['steps']} |" in md
    assert "| teacher | torch | fp32 | 32 |" in md and "**Best cell:" in md
    assert "Same prompts and seeds in every column" in html and html.count("<img") >= 4


def test_missing_bundle_says_how_to_build_it(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="skugen export fmnist-diffusion-student"):
        _module().main(["--bundle", str(tmp_path / "nope")])
