"""OpenVINO's own INT8 IR of the diffusion denoiser: NNCF on the OpenVINO model, gated on final images."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("openvino")


def test_int8_ir_ships_verifies_and_keeps_the_phase_float(diffusion_model_dir, tmp_path):
    import skugen
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.openvino_quant import read_ir
    from skugen.export.quantize import QualityBudget
    from skugen.verify import verify_graphs

    out = export_bundle(diffusion_model_dir, tmp_path / "b", BundleConfig(
        int8=True, fp16=False, eval_n=40, budget=QualityBudget(max_fidelity_drop_pts=5.0)))
    m = json.loads((out / "manifest.json").read_text())
    rep = json.loads((out / "reports/quantization.openvino.json").read_text())
    assert rep["tries"] and rep["tries"][0]["kept_float"] == [] and rep["judged"].startswith("final images")
    if rep["final"] is None:
        pytest.fail(f"a random tiny denoiser should hold a loose budget on OpenVINO: {rep['message']}")
    ov = m["models"]["int8"]["variants"]["openvino"]
    assert ov["file"] == "model.int8.openvino.xml" and ov["weights"] == "model.int8.openvino.bin"
    assert "int8.openvino" in m["golden"]["tolerances"]
    # the timestep's phase: no FakeQuantize feeds an op computed from t alone
    model = read_ir((out / ov["file"]).read_bytes(), (out / ov["weights"]).read_bytes())
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    phase = [n for n in rep["always_float_openvino_ops"] if n in ops]
    assert phase and any("Sin" in n or "Cos" in n for n in phase)
    for n in phase:
        for inp in ops[n].inputs():
            assert inp.get_source_output().get_node().get_type_name() != "FakeQuantize", n
    reps = verify_graphs(out, "openvino", "int8")
    assert reps[0].passed and reps[0].model_file == "model.int8.openvino.xml"
    with skugen.load(out, backend="openvino", precision="int8") as pipe, \
            skugen.load(out, backend="onnxruntime", precision="fp32") as ref:
        a = pipe.generate(prompts=["a bag", "white sneakers"], seed=0).images
        want = ref.generate(prompts=["a bag", "white sneakers"], seed=0).images
        assert pipe.runner.info["model_file"] == "model.int8.openvino.xml"
    assert a.shape == want.shape and np.isfinite(a).all()
