"""FP16 graphs of diffusion bundles: the rule-kept FP32 nodes, the final-image gate and its search, the bundle."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from skugen.export import zoo
from skugen.export.diffusion_fp16 import DiffusionFP16Config, fp16_graphs
from skugen.export.diffusion_gate import DiffusionGateConfig, LoopSpec
from skugen.export.diffusion_quant import conditioning_nodes
from skugen.export.prompts import build_vocab


@pytest.fixture(scope="module")
def graphs(diffusion_bundle):
    return ((diffusion_bundle / "text_encoder.fp32.onnx").read_bytes(),
            (diffusion_bundle / "model.fp32.onnx").read_bytes())


def _spec():
    return LoopSpec(build_vocab(), 4, 3.0, 64, (1, 32, 32))


def _fp16_initializers(b: bytes) -> int:
    return sum(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load_from_string(b).graph.initializer)


def test_both_graphs_go_fp16_with_the_timestep_phase_kept_fp32(graphs):
    cfg = DiffusionFP16Config(gate=DiffusionGateConfig(n=40, max_fidelity_drop_pts=5.0, max_fid_ratio=1.5),
                              calib_prompts=4, rows_per_step=2)
    r = fp16_graphs(*graphs, _spec(), zoo.load_judge(), cfg)
    rep = r.report
    assert r.met_budget, rep["message"]
    assert _fp16_initializers(r.den_bytes) > 0 and _fp16_initializers(r.text_bytes) > 0
    rule = {k["node"] for k in rep["kept_fp32"]["denoiser"] if k["reason"].startswith("computed from t")}
    assert rule and rule <= set(conditioning_nodes(graphs[1])) and rule <= set(r.kept_den)
    assert rep["final"]["psnr_vs_fp32_db"] >= cfg.min_psnr_db and rep["final"]["budget"]["ok"]
    assert rep["judged"].startswith("final images") and rep["n_evals"] == 1 and rep["outcome"] == "fp16"


def test_a_budget_no_graph_holds_searches_then_ships_nothing(graphs):
    cfg = DiffusionFP16Config(gate=DiffusionGateConfig(n=20), min_psnr_db=200.0, max_float_fraction=0.03,
                              calib_prompts=4, rows_per_step=2)
    r = fp16_graphs(*graphs, _spec(), zoo.load_judge(), cfg)
    s = r.report["search"]
    assert not r.met_budget and r.den_bytes is None and r.text_bytes is None
    assert s["max_fp32"] >= 2 and len(s["ranking"]) > s["max_fp32"]
    errs = [p["velocity_rel_err_if_fp32"] for p in s["ranking"]]
    assert errs == sorted(errs), "ranked by the velocity error each node leaves"
    # k = 1, 2, 4, ... capped at max_fp32, each judged by whole sampling runs
    ks = [len(st["kept_fp32"]) for st in s["steps"]]
    assert ks[0] == 1 and ks[-1] == s["max_fp32"] and ks == sorted(set(ks))
    assert r.report["n_evals"] == 1 + len(ks) and "no FP16 graphs" in r.report["message"]


def test_fp16_bundle_verifies_and_runs(diffusion_model_dir, tmp_path):
    import skugen
    from skugen.backends.tensorrt.plan import engine_source_sha256
    from skugen.bundle import load_bundle
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.quantize import QualityBudget
    from skugen.verify import verify_graphs

    out = export_bundle(diffusion_model_dir, tmp_path / "b", BundleConfig(fp16=True, eval_n=40, openvino=False,
                                                                          budget=QualityBudget(max_fidelity_drop_pts=5.0)))
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["models"]) == {"fp32", "fp16"} and set(m["graphs"]["text_encoder"]["models"]) == {"fp32", "fp16"}
    assert m["reports"]["fp16"] == "reports/fp16.json" and "fp16" in m["golden"]["tolerances"]
    reps = verify_graphs(out, "onnxruntime", "fp16")
    assert [r.precision for r in reps] == ["fp16", "fp16"] and all(r.passed for r in reps)
    b = load_bundle(out)
    # TensorRT (strongly typed) builds each graph's FP16 engine from that graph's FP16 file
    assert engine_source_sha256(b.spec, "fp16") == m["models"]["fp16"]["sha256"]
    assert engine_source_sha256(b.graph("text_encoder").spec, "fp16") == \
        m["graphs"]["text_encoder"]["models"]["fp16"]["sha256"]
    with skugen.load(out, backend="onnxruntime", precision="fp16") as pipe, \
            skugen.load(out, backend="onnxruntime", precision="fp32") as ref:
        a = pipe.generate(prompts=["a bag", "white sneakers"], seed=0).images
        assert pipe.info["diffusion"]["text_encoder"]["model_file"] == "text_encoder.fp16.onnx"
        want = ref.generate(prompts=["a bag", "white sneakers"], seed=0).images
    assert np.abs(a.astype(int) - want.astype(int)).mean() < 2.0


def test_tensorrt_int8_twin_goes_fp16_outside_its_qdq(diffusion_model_dir, tmp_path):
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.quantize import QualityBudget

    out = export_bundle(diffusion_model_dir, tmp_path / "b", BundleConfig(int8=True, eval_n=40, openvino=False,
                                                                          budget=QualityBudget(max_fidelity_drop_pts=5.0)))
    m = json.loads((out / "manifest.json").read_text())
    rep = json.loads((out / "reports/fp16.json").read_text())
    tw = rep["int8_tensorrt_fp16"]
    assert tw["judged"].startswith("final images") and tw["kept_fp32"] == m["models"]["fp16"]["quantization"]["kept_fp32"]
    if not tw["within_budget"]:
        pytest.fail(f"a random tiny denoiser's FP16 twin should hold a loose budget: {tw}")
    t = m["models"]["int8"]["variants"]["tensorrt"]
    assert "fp16 elsewhere" in t["activations"]
    twin = onnx.load(str(out / t["file"]))
    ops = {n.op_type for n in twin.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and _fp16_initializers(twin.SerializeToString()) > 0
    # the timestep's phase stayed FP32 in the twin too: its Sin/Cos take a float32 argument
    from skugen.export.fp16 import _typed

    _, dtype = _typed(twin)
    trig = [n for n in twin.graph.node if n.op_type in ("Sin", "Cos")]
    assert trig and all(dtype[n.input[0]] == onnx.TensorProto.FLOAT for n in trig)
