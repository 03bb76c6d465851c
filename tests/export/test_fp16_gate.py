"""The FP16 gate on small hand-built enhancers whose sensitive node is known, and on the cGAN fixture."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.export.fp16_gate import METHOD, fp16_gated
from skugen.export.onnx_export import onnx_from_torch
from skugen.export.evalsets import generator_eval_set
from skugen.export.quantize import EvalSet, QualityBudget


def _enhancer(mix_w: float, boost: float = 1.0) -> bytes:
    """lr -> Concat(lr, lr) -> Conv1x1 'mix' (w*x - 1000*x: cancellation inside one node) -> Mul 'boost' -> Mul
    'unboost' -> Resize x2 -> Conv1x1 'gain' -> hr. With mix_w = 1000.3 FP16 weights (1000.5) ruin 'mix'."""
    w = np.zeros((3, 6, 1, 1), np.float32)
    for c in range(3):
        w[c, c], w[c, 3 + c] = mix_w, -1000.0
    inits = [numpy_helper.from_array(w, "mix.w"), numpy_helper.from_array(np.zeros(3, np.float32), "mix.b"),
             numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) / (mix_w - 1000.0), "gain.w"),
             numpy_helper.from_array(np.float32(boost), "k"), numpy_helper.from_array(np.float32(1 / boost), "ik"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("Concat", ["lr", "lr"], ["cat"], name="cat", axis=1),
             helper.make_node("Conv", ["cat", "mix.w", "mix.b"], ["m"], name="mix"),
             helper.make_node("Mul", ["m", "k"], ["b"], name="boost"),
             helper.make_node("Mul", ["b", "ik"], ["u"], name="unboost"),
             helper.make_node("Resize", ["u", "", "scales"], ["r"], name="up", mode="nearest"),
             helper.make_node("Conv", ["r", "gain.w"], ["hr"], name="gain")]
    g = helper.make_graph(nodes, "tiny-sr", [helper.make_tensor_value_info("lr", 1, ["batch", 3, "h", "w"])],
                          [helper.make_tensor_value_info("hr", 1, ["batch", 3, "H", "W"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _eval(model: bytes, n: int, seed: int) -> EvalSet:
    rng = np.random.default_rng(seed)
    lr = rng.random((n, 3, 12, 12), dtype=np.float32)
    with OnnxRuntimeRunner(model) as r:
        hr = r.infer({"lr": lr})["hr"]
    hr = np.clip(hr + rng.normal(0, 0.02, hr.shape), 0, 1)  # a ground truth the model does not reproduce exactly
    hr = np.rint(hr * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return EvalSet({"lr": lr}, hr=hr, source=f"uniform LR seed {seed}, n={n}")


def test_gate_keeps_exactly_the_sensitive_node_and_confirms_it():
    m = _enhancer(1000.3)
    r = fp16_gated(m, _eval(m, 16, 0), QualityBudget(max_float_fraction=0.5), confirm_set=_eval(m, 16, 1))
    assert r.met_budget and r.kept_fp32 == ("mix",)
    rep = r.report
    assert rep["fp16_all_nodes"]["psnr_vs_fp32_db"] < 45.0 <= rep["final"]["psnr_vs_fp32_db"]
    assert rep["sensitivity"][0]["node"] == "mix" and rep["kept_fp32"][0]["reason"].startswith("most sensitive #1")
    assert rep["confirm"]["within_budget"] and rep["confirm"]["psnr_vs_fp32_db"] >= 45.0
    assert rep["method"] == METHOD and rep["outcome"] == "fp16-mixed"
    assert "mix" in rep["summary"]["fp32_nodes"] and "gain" in rep["summary"]["fp16_nodes"]
    with OnnxRuntimeRunner(r.onnx_bytes) as run:  # the shipped graph loads and runs
        assert run.infer({"lr": np.zeros((1, 3, 8, 8), np.float32)})["hr"].shape == (1, 3, 16, 16)


def test_nodes_near_the_fp16_range_are_kept_by_measurement():
    m = _enhancer(1001.0, boost=40_000.0)  # 'boost' outputs up to ~4e4 >= 0.5 x 65504; mix is FP16-exact here
    r = fp16_gated(m, _eval(m, 8, 0))
    assert r.met_budget and r.kept_fp32 == ("boost",)
    assert "range" in r.report["kept_fp32"][0]["reason"] and r.report["sensitivity"] == []


def test_unreachable_budget_ships_no_fp16_and_says_why():
    m = _enhancer(1000.3)
    r = fp16_gated(m, _eval(m, 8, 0), QualityBudget(max_float_fraction=0.5), min_psnr_db=200.0)
    assert not r.met_budget and r.onnx_bytes is None
    assert "budget not met" in r.message and r.error() is not None


def test_generator_gate_on_the_cgan_fixture(cgan_model):
    fp32 = onnx_from_torch(cgan_model).onnx_bytes
    c = cgan_model.cfg
    clf = lambda x: np.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)  # noqa: E731 - a 2-class toy judge
    ev = generator_eval_set(c.z_dim, c.n_classes, 64)
    r = fp16_gated(fp32, ev, classifier=clf, confirm_set=generator_eval_set(c.z_dim, c.n_classes, 64, seed=5))
    assert r.met_budget, r.message
    f = r.report["final"]
    assert f["psnr_vs_fp32_db"] >= 45.0 and "fidelity_drop_pts" in f
    assert r.report["confirm"]["n"] == 64
    mp = onnx.load_from_string(r.onnx_bytes)
    assert [i.type.tensor_type.elem_type for i in mp.graph.input] == [1, 1]
