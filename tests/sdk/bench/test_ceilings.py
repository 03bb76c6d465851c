"""The GEMM ceilings: measured in the same run, 1 and T threads, and honest when onnx is missing."""
from __future__ import annotations

import sys

from skugen.bench import measure_ceilings, ort_gemm_ceiling


def test_ceilings_are_measured_in_the_same_run(bench):
    ce = bench["report"].ceilings
    assert ce["threads"] == 1 and ce["size"] == 256
    for name in ("fp32_gemm", "fp32_gemm_ort", "int8_gemm"):
        assert ce[name]["by_threads"]["1"]["gmacs_per_s"] > 0, name
        assert ce[name]["best"]["ms"] > 0
    assert "MatMulInteger" in ce["int8_gemm"]["what"]
    assert ce["fp32_gemm_end"]["best"]["ms"] > 0 and ce["drift"] > 0
    # OpenVINO was benched: its own ceilings, int8 really executed as int8, bf16 only where native.
    for name in ("ov_f32_gemm", "ov_int8_gemm"):
        assert ce[name]["best"]["gmacs_per_s"] > 0, name
    ex = ce["ov_int8_gemm"]["executed_as"]
    assert ex.get("i8", 0) + ex.get("u8", 0) > 0, ex
    from skugen.backends.openvino import native_bf16

    native, _ = native_bf16()
    assert (ce["ov_bf16_gemm"].get("available") is False) == (not native)
    if not native:
        assert "no native BF16" in ce["ov_bf16_gemm"]["reason"]


def test_ceilings_without_openvino_are_unavailable_with_the_extra(monkeypatch):
    from skugen.bench.ceilings import ov_gemm_ceiling

    monkeypatch.setitem(sys.modules, "openvino", None)
    e = ov_gemm_ceiling("f32", threads=1, size=32)
    assert e["available"] is False and "skugen[openvino]" in e["reason"]


def test_ceilings_one_and_t_threads():
    ce = measure_ceilings(threads=2, size=64)
    assert set(ce["fp32_gemm"]["by_threads"]) == {"1", "2"}
    assert set(ce["int8_gemm"]["by_threads"]) == {"1", "2"}


def test_int8_ceiling_without_onnx_is_unavailable_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    e = ort_gemm_ceiling("int8", threads=1, size=32)
    assert e["available"] is False and "onnx" in e["reason"] and "pip install" in e["reason"]
