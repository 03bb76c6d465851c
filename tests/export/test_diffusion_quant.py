"""INT8 of the diffusion denoiser: trajectory calibration, the final-image gate, the bundle's int8 variants."""
from __future__ import annotations

import json

import numpy as np
import pytest

from skugen.export import zoo
from skugen.export.diffusion_gate import DiffusionGateConfig, LoopSpec
from skugen.export.diffusion_quant import DenoiserQuantConfig, quantize_denoiser, trajectory_calibration
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


def test_int8_bundle_verifies_and_runs(diffusion_model_dir, tmp_path):
    import skugen
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.quantize import QualityBudget
    from skugen.verify import verify_graphs

    out = export_bundle(diffusion_model_dir, tmp_path / "b", BundleConfig(int8=True, eval_n=40, openvino=False,
                                                                          budget=QualityBudget(max_fidelity_drop_pts=5.0)))
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["models"]) == {"fp32", "int8"} and m["models"]["int8"]["variants"]["tensorrt"]["file"] == \
        "model.int8.trt.onnx"
    assert "int8" in m["golden"]["tolerances"] and m["reports"]["quantization"] == "reports/quantization.json"
    reps = verify_graphs(out, "onnxruntime", "int8")
    assert reps[0].passed and reps[1].precision == "fp32"  # the text encoder has no int8: fp32 is what runs
    with skugen.load(out, backend="onnxruntime", precision="int8") as pipe:
        assert pipe.generate(prompts=["a bag"], seed=0).images.shape == (1, 32, 32, 1)
