"""The matrix: every cell listed, unrunnable ones with their reason, measured ones with timing and facts."""
from __future__ import annotations

import pytest

from skugen.backends import tensorrt_usable
from skugen.bundle import load_bundle


def test_every_cell_is_listed_and_unrunnable_ones_say_why(bench, bench_cell):
    rep = bench["report"]
    n_bundles = len(bench["bundles"])
    mx = bench["matrix"]
    assert len(rep.cells) == n_bundles * len(mx["backends"]) * len(mx["precisions"]) * len(mx["batches"])
    for c in rep.cells:
        assert c["status"] in ("ok", "skipped", "error"), c
        if c["status"] != "ok":
            assert c["reason"], f"{c['key']} has no reason"
        assert c["status"] != "error", f"{c['key']}: {c['reason']}"
    name = rep.ok_cells()[0]["bundle"]
    assert "fp16" in bench_cell(rep, name, "student", "onnxruntime", "fp16", 1)["reason"]
    assert "fp32 only" in bench_cell(rep, name, "teacher", "torch", "int8", 2)["reason"]
    trt = bench_cell(rep, name, "student", "tensorrt", "fp32", 1)
    if not tensorrt_usable():
        assert trt["status"] == "skipped" and "TensorRT" in trt["reason"]


def test_ok_cells_have_latency_split_throughput_memory_and_compute(bench, bench_cell):
    rep = bench["report"]
    ok = rep.ok_cells()
    assert {(c["backend"], c["precision"]) for c in ok} >= {("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                           ("openvino", "fp32"), ("openvino", "int8"),
                                                           ("torch", "fp32")}
    for c in ok:
        lat = c["latency_ms"]
        for stage in ("pre", "infer", "post", "total"):
            for k in ("p50", "p90", "p99", "mean", "min"):
                assert lat[stage][k] is not None and lat[stage][k] >= 0, (c["key"], stage, k)
        assert lat["total"]["n"] == 3 * 2  # iters x repeats
        assert lat["total"]["min"] <= lat["total"]["p50"] <= lat["total"]["p90"] <= lat["total"]["p99"]
        assert len(c["p50_runs_ms"]) == 2 and c["p50_spread"] is not None
        assert c["throughput_ips"] > 0 and c["throughput_ips_mean"] > 0
        assert c["memory"]["peak_rss_mb"] > 10
        mi = c["model_info"]
        assert mi["bytes"] > 0 and mi["macs_per_image"] > 0, (c["key"], mi)
        comp = c["compute"]
        assert comp["gmacs_per_s"] > 0
        # "% of ceiling" is against the same runtime's GEMM at the cell's precision.
        want = {("onnxruntime", "fp32"): "fp32_gemm_ort", ("onnxruntime", "int8"): "int8_gemm",
                ("openvino", "fp32"): "ov_f32_gemm", ("openvino", "int8"): "ov_int8_gemm",
                ("openvino", "bf16"): "ov_bf16_gemm", ("torch", "fp32"): "fp32_gemm"}
        assert comp["ceiling"] == want[(c["backend"], c["precision"])], c["key"]
        assert comp["fraction_of_ceiling"] > 0
        assert c["normalized"]["p50_over_fp32_gemm"] > 0
    # The student's size on disk is the ONNX file's size.
    c = bench_cell(rep, ok[0]["bundle"], "student", "onnxruntime", "int8", 1)
    b = load_bundle(c["bundle_path"])
    assert c["model_info"]["bytes"] == b.model_path("int8").stat().st_size
    assert c["model_info"]["bytes"] < bench_cell(rep, c["bundle"], "student", "onnxruntime", "fp32", 1)["model_info"]["bytes"]


def test_enhancer_macs_scale_with_the_tile(bench):
    if not bench["has_sr"]:
        pytest.skip("no enhancer bundle here (GroceryStore missing)")
    rep = bench["report"]
    c = next(c for c in rep.ok_cells() if c["kind"] == "enhancer" and c["model"] == "student")
    m = load_bundle(c["bundle_path"]).spec.to_dict()["models"]["fp32"]
    # manifest MACs are for a 64x64 LR image; the bench ran 32x32 tiles: a quarter of them.
    assert m["macs_input"][-2:] == [64, 64]
    assert c["model_info"]["macs_per_image"] == pytest.approx(m["macs"] / 4, rel=1e-6)
