"""INT8 of the diffusion denoiser: trajectory calibration, the final-image gate, the bundle's int8 variants."""
from __future__ import annotations

import json

import numpy as np
import pytest

from skugen.export import zoo
from skugen.export.diffusion_gate import DiffusionGateConfig, LoopSpec
from skugen.export.diffusion_quant import (DenoiserQuantConfig, conditioning_nodes, quantize_denoiser,
                                          trajectory_calibration)
from skugen.export.prompts import build_vocab


@pytest.fixture(scope="module")
def graphs(diffusion_bundle):
    return ((diffusion_bundle / "text_encoder.fp32.onnx").read_bytes(),
            (diffusion_bundle / "model.fp32.onnx").read_bytes())


def _spec(guidance=3.0):
    return LoopSpec(build_vocab(), 4, guidance, 64, (1, 32, 32))


def test_calibration_covers_every_timestep_equally(graphs):
    calib, states = trajectory_calibration(*graphs, _spec(), DenoiserQuantConfig(calib_prompts=6, rows_per_step=5))
    assert len(states) == 4 and calib["x"].shape == (20, 1, 32, 32)
    ts = np.round(calib["t"], 4)
    assert sorted(set(ts.tolist()), reverse=True) == [1.0, 0.75, 0.5, 0.25]
    assert all((ts == t).sum() == 5 for t in set(ts.tolist()))
    assert len(states[0]["x"]) == 12  # 6 prompts + their CFG halves: what the denoiser really sees


def test_the_time_embedding_and_mask_bias_stay_float(graphs):
    """The sinusoidal phase (t * freq -> sin/cos) and the mask's -1e4 attention bias are pure functions of t and
    mask: they are found, and with them in the ignored scope no quantizer touches t or the phase."""
    import onnx

    from skugen.export.quantize import QuantConfig, quantize_qdq

    text, den = graphs
    names = conditioning_nodes(den)
    m = onnx.load_from_string(den)
    ops = {n.name: n.op_type for n in m.graph.node}
    assert {"Sin", "Cos"} <= {ops[n] for n in names}
    assert not {ops[n] for n in names} & {"Conv", "Gemm", "MatMul", "Softmax"}
    calib, states = trajectory_calibration(text, den, _spec(), DenoiserQuantConfig(calib_prompts=4, rows_per_step=4))
    q = onnx.load_from_string(quantize_qdq(den, calib, QuantConfig(tool="nncf", subset_size=16, ignored=tuple(names))))
    # the tensors computed from t alone, up to the sin/cos features (Concat, in [-1, 1]: quantizing those is fine)
    from_t = {"t"}
    for n in m.graph.node:
        if n.name in names and n.op_type != "Concat" and any(i in from_t for i in n.input):
            from_t.update(n.output)
    bad = [n.name for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in from_t]
    assert not bad, f"the timestep's phase argument is quantized: {bad}"
    # and the blanket quantization (nothing ignored) does put quantizers there: the rule is not vacuous
    q_all = onnx.load_from_string(quantize_qdq(den, calib, QuantConfig(tool="nncf", subset_size=16)))
    assert any(n.op_type == "QuantizeLinear" and n.input[0] in from_t for n in q_all.graph.node)


def test_gate_ships_both_flavours_with_a_timestep_profile(graphs):
    cfg = DenoiserQuantConfig(calib_prompts=8, rows_per_step=4, gate=DiffusionGateConfig(n=40, max_fid_ratio=1.5,
                                                                                        max_fidelity_drop_pts=5.0))
    q = quantize_denoiser(*graphs, _spec(), zoo.load_judge(), cfg)
    r = q.report
    assert r["calibration"]["rows"] == 16 and r["judged"].startswith("final images")
    if not q.met_budget:
        pytest.fail(f"a random tiny denoiser should hold a loose budget: {r['message']}")
    assert q.onnx_bytes and q.trt_onnx_bytes and r["final"]["budget"]["ok"] and r["final_onnxruntime_flavour"]
    prof = r["timestep_profile"]["onnxruntime"]
    assert [p["step"] for p in prof] == [0, 1, 2, 3] and all(p["rel_l2_error"] > 0 for p in prof)
    assert r["qdq"]["QuantizeLinear"] > 0


def test_an_impossible_budget_ships_no_int8(graphs):
    cfg = DenoiserQuantConfig(calib_prompts=4, rows_per_step=2, max_float_fraction=0.0,
                              gate=DiffusionGateConfig(n=20, max_fid_ratio=0.5))
    q = quantize_denoiser(*graphs, _spec(), zoo.load_judge(), cfg)
    assert not q.met_budget and q.onnx_bytes is None and q.report["outcome"] == "fp32 (budget not met)"
    assert "not shipped" in q.report["message"] and q.report["timestep_profile"]["all_int8_onnxruntime"]


def test_int8_bundle_verifies_and_runs(diffusion_model_dir, tmp_path, capsys):
    import skugen
    from skugen.cli import main
    from skugen.verify import verify_graphs

    out = tmp_path / "b"
    assert main(["export", str(diffusion_model_dir), "--out", str(out), "--int8", "--eval-n", "40", "--no-openvino", "--no-fp16",
                 "--budget-fidelity-pts", "5"]) == 0
    printed = capsys.readouterr().out
    assert "models: fp32, int8" in printed and "model.int8.onnx" in printed and "int8: INT8 denoiser" in printed
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["models"]) == {"fp32", "int8"} and m["models"]["int8"]["variants"]["tensorrt"]["file"] == \
        "model.int8.trt.onnx"
    assert "int8" in m["golden"]["tolerances"] and m["reports"]["quantization"] == "reports/quantization.json"
    reps = verify_graphs(out, "onnxruntime", "int8")
    assert reps[0].passed and reps[1].precision == "fp32"  # the text encoder has no int8: fp32 is what runs
    with skugen.load(out, backend="onnxruntime", precision="int8") as pipe:
        assert pipe.generate(prompts=["a bag"], seed=0).images.shape == (1, 32, 32, 1)
