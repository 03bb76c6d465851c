"""benchmarks/run_suite.py's own logic (nothing timed here: the rows below are hand-made speed_summary rows)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from file_modules import load_file  # tests/support

ROOT = Path(__file__).resolve().parents[1]


def _suite_module():
    return load_file(ROOT / "benchmarks" / "run_suite.py", "run_suite")


def _row(backend, batch, int8=None, fp32=None, bf16=None, teacher=None):
    return {"backend": backend, "batch": batch,
            "p50_ms": {"student_int8": int8, "student_fp32": fp32, "student_bf16": bf16, "teacher_fp32_torch": teacher},
            "speedup": {"int8_vs_fp32": None, "int8_vs_teacher": None, "fp32_vs_teacher": None}}


ROWS = [_row("onnxruntime", 1, int8=9.0, fp32=30.0, teacher=300.0), _row("openvino", 1, int8=8.0, fp32=25.0, bf16=6.0)]


def test_best_cell_counts_bf16_only_when_its_gate_accepted_it():
    rs = _suite_module()
    gated = rs.best_cells(ROWS, ("int8", "fp32", "bf16"))[1]
    assert gated["cell"] == "openvino BF16" and gated["ms"] == 6.0
    assert gated["vs_ort_fp32"] == 5.0 and gated["vs_teacher"] == 50.0
    not_gated = rs.best_cells(ROWS, ("int8", "fp32"))[1]
    assert not_gated["cell"] == "openvino INT8" and not_gated["ms"] == 8.0


def test_best_cell_reads_rows_without_a_bf16_key():
    """Reports written before the BF16 column have no student_bf16 key."""
    rs = _suite_module()
    old = [{**r, "p50_ms": {k: v for k, v in r["p50_ms"].items() if k != "student_bf16"}} for r in ROWS]
    assert rs.best_cells(old, ("int8", "fp32", "bf16"))[1]["cell"] == "openvino INT8"


def _with_bf16_record(src_root, out: Path, rec: dict | None) -> Path:
    """A copy of the bundle at src_root whose models.fp32.runtime_precisions.openvino.bf16 is `rec` (None: no record),
    rewritten through skugen.bundle.write_bundle (which re-hashes the files)."""
    from skugen.bundle import load_bundle, write_bundle

    src = load_bundle(src_root)
    m = {k: v for k, v in src.spec.to_dict().items() if k != "files"}
    fp32 = {k: v for k, v in m["models"]["fp32"].items() if k != "runtime_precisions"}
    if rec is not None:
        fp32["runtime_precisions"] = {"openvino": {"bf16": rec}}
    m["models"] = {**m["models"], "fp32": fp32}
    return write_bundle(out, m, {rel: src.root / rel for rel in src.spec.files})


@pytest.mark.parametrize("rec, expected", [
    (None, (("int8", "fp32"),
            "the bundle records no BF16 quality gate (re-export with openvino installed to gate it)")),
    # accepted=True but not native: the gate measured nothing, so bf16 must still not compete
    ({"accepted": True, "native": False, "measured": False},
     (("int8", "fp32"), "the exporting CPU has no native BF16, so the gate measured nothing for bf16 (re-export on "
                        "a CPU with AVX512-BF16/AMX to gate it)")),
    ({"accepted": True, "native": True}, (("int8", "fp32", "bf16"), None)),
    ({"accepted": False, "native": True}, (("int8", "fp32"), "bf16 gate: rejected on the exporting machine")),
], ids=["absent", "not-native", "native-accepted", "native-rejected"])
def test_gated_precisions_follow_the_bundles_bf16_record(cgan_bundle, tmp_path, rec, expected):
    """cgan_bundle ships fp32 + int8 (tests/conftest.py); only its bf16 record differs between the cases."""
    rs = _suite_module()
    bundle = _with_bf16_record(cgan_bundle, tmp_path / "b", rec)
    assert rs.gated_precisions(str(bundle)) == expected


def test_committed_suite_benches_bf16_on_openvino():
    suite = json.loads((ROOT / "benchmarks" / "suite.json").read_text())
    for s in suite["suites"]:
        if "openvino" in s["backends"]:
            assert "bf16" in s["precisions"], s["name"]


def test_summary_markdown_best_table_uses_the_gated_precisions():
    rs = _suite_module()
    res = {"name": "x", "what": "", "command": ["python"], "files": [], "ratios": ROWS, "spread": None,
           "max_spread": None, "quality": {}}
    md = rs.summary_md([{**res, "gated_precisions": ["int8", "fp32", "bf16"]}], {})
    assert "| 1 | openvino BF16 | 6.00 | 5.00x | 50.00x |" in md
    md = rs.summary_md([{**res, "gated_precisions": ["int8", "fp32"], "bf16_not_gated": "no record"}], {})
    assert "| 1 | openvino INT8 | 8.00 |" in md and "bf16 not a candidate: no record" in md
