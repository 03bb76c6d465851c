"""OpenVINO INT8 by NNCF on the OpenVINO model, its gate, the BF16 record, and the bundle variant.

Real OpenVINO and NNCF on this CPU (no mocks); a small random-init generator keeps it fast.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

pytest.importorskip("openvino")

from skugen.bundle import load_bundle  # noqa: E402
from skugen.errors import BundleError, InputError  # noqa: E402
from skugen.export.onnx_export import WEIGHTED_OPS, onnx_from_torch  # noqa: E402
from skugen.export.openvino_quant import (OV_INT8_FILE, OV_INT8_WEIGHTS, bf16_record, compile_cpu,  # noqa: E402
                                          executed_precisions, int8_layers, ir_bytes, keep_float_ov, layer_names,
                                          nncf_int8, ov_model, ov_runner, quantize_openvino_gated, read_ir)
from skugen.export.evalsets import generator_calibration, generator_eval_set  # noqa: E402
from skugen.export.quantize import QualityBudget  # noqa: E402
from skugen.io import sha256_file  # noqa: E402

CAL_N, EVAL_N = 32, 64


@pytest.fixture(scope="module")
def gen(cgan_model):
    c = cgan_model.cfg
    fp32 = onnx_from_torch(cgan_model).onnx_bytes
    return (fp32, generator_calibration(c.z_dim, c.n_classes, CAL_N), generator_eval_set(c.z_dim, c.n_classes, EVAL_N),
            generator_eval_set(c.z_dim, c.n_classes, EVAL_N, seed=20_000))


@pytest.fixture(scope="module")
def names(gen):
    return layer_names(gen[0])


@pytest.fixture(scope="module")
def q_all(gen, names):
    fp32, calib, _, _ = gen
    return nncf_int8(fp32, calib, (), names=names)


def test_every_onnx_layer_maps_to_one_openvino_op(gen, names):
    fp32 = gen[0]
    weighted = [n.name for n in onnx.load_from_string(fp32).graph.node if n.op_type in WEIGHTED_OPS]
    assert list(names) == weighted
    ov_ops = {op.get_friendly_name(): op.get_type_name() for op in ov_model(fp32).get_ordered_ops()}
    assert len(set(names.values())) == len(names)
    for onnx_name, ov_name in names.items():
        assert ov_ops[ov_name] in ("Convolution", "MatMul") and (ov_name == onnx_name or ov_name.startswith(onnx_name + "/"))


def test_ignored_scope_names_keep_exactly_those_layers_float(gen, names, q_all):
    fp32, calib, _, _ = gen
    every = int8_layers(q_all, names)
    convs = [n for n in every if "conv" in n]
    assert len(every) >= len(names) - 2 and convs  # all weights-bearing layers quantized (attention maps may not be)
    keep = (every[0], convs[-1])
    q = nncf_int8(fp32, calib, keep, names=names)
    assert set(int8_layers(q, names)) == set(every) - set(keep)


def test_unknown_float_layer_is_an_input_error(gen, names):
    fp32, calib, _, _ = gen
    with pytest.raises(InputError, match="not weighted layers of the model"):
        nncf_int8(fp32, calib, ("no-such-layer",), names=names)


def test_int8_runs_in_int8_on_openvino(q_all):
    ex = executed_precisions(compile_cpu(q_all, "f32"))
    assert sum(n for precs in ex.values() for p, n in precs.items() if p in ("u8", "i8")) >= 5, ex


def _drop_fake_quantize(model):
    """Test helper: every FakeQuantize left (on Adds, pools: not the probe's business) bypassed."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            op.output(0).replace(op.input_value(0))
    model.validate_nodes_and_infer_types()
    return model


def test_probe_restores_fp32_weights_biases_and_inputs(gen, names, q_all):
    """The graph-edit probe gives each layer its FP32 inputs exactly: with every weighted layer float and the
    FakeQuantize nodes NNCF put elsewhere removed, the model is the FP32 model again (so no int8 weight and no
    bias-corrected bias is left)."""
    fp32, _, ev, _ = gen
    run = ov_runner("f32")
    ref = run(ov_model(fp32), ev.feeds)
    probe = keep_float_ov(q_all, fp32, tuple(names), names)
    assert int8_layers(probe, names) == []
    np.testing.assert_allclose(run(_drop_fake_quantize(probe), ev.feeds), ref, atol=1e-5)
    # ...while the int8 model with only the FakeQuantize nodes dropped is not (int8 weights, corrected biases)
    assert np.abs(run(_drop_fake_quantize(q_all.clone()), ev.feeds) - ref).max() > 1e-3
    assert int8_layers(q_all, names)  # q_all itself untouched by the probe (it edits a clone)


def test_ir_bytes_round_trip(q_all, gen):
    xml, bin_ = ir_bytes(q_all)
    run = ov_runner("f32")
    np.testing.assert_array_equal(run(read_ir(xml, bin_), gen[2].feeds), run(q_all, gen[2].feeds))


def test_gate_loose_budget_ships_ir_confirmed_on_a_second_draw(gen):
    fp32, calib, ev, cf = gen
    r = quantize_openvino_gated(fp32, calib, ev, QualityBudget(min_psnr_db=10.0), classifier=None, confirm_set=cf)
    assert r.met_budget and r.xml.startswith(b"<?xml") and len(r.bin) > 0
    rep = r.report
    assert rep["engine"] == "openvino" and rep["final"]["psnr_vs_fp32_db"] >= 10.0
    assert rep["confirm"]["source"] == cf.source and rep["confirm"]["within_budget"] is True
    assert rep["measured_on"]["isa"] is not None and rep["measured_on"]["openvino"]
    assert any(p in ("u8", "i8") for precs in rep["executed"].values() for p in precs)
    json.dumps(rep)


def test_gate_strict_budget_keeps_the_most_sensitive_layers_float(gen):
    fp32, calib, ev, cf = gen
    loose = quantize_openvino_gated(fp32, calib, ev, QualityBudget(min_psnr_db=10.0))
    target = loose.report["final"]["psnr_vs_fp32_db"] + 1.0  # just above all-int8: needs float layers
    r = quantize_openvino_gated(fp32, calib, ev, QualityBudget(min_psnr_db=target, max_float_fraction=0.5))
    rep = r.report
    assert len(rep["sensitivity"]) == len(rep["quantizable_layers"])
    if r.met_budget:
        ranked = [p["layer"] for p in sorted(rep["sensitivity"], key=lambda p: p["rank"])]
        assert list(r.kept_float) == ranked[:len(r.kept_float)] and r.kept_float
        assert rep["final"]["psnr_vs_fp32_db"] >= target
        assert rep["steps"][-1]["how"].startswith("NNCF re-quantized")
        assert rep["kept_float_openvino"] == [layer_names(fp32)[n] for n in r.kept_float]
    else:
        assert r.xml is None and "Relax the budget" in r.message


def test_gate_impossible_budget_ships_nothing_and_says_so(gen):
    fp32, calib, ev, _ = gen
    r = quantize_openvino_gated(fp32, calib, ev, QualityBudget(min_psnr_db=200.0, max_float_fraction=0.25))
    assert not r.met_budget and r.xml is None and r.bin is None and r.kept_float == ()
    assert r.report["outcome"].startswith("fp32") and "Relax the budget" in r.message


def test_bf16_record_claims_only_what_openvino_executed(gen):
    fp32, _, ev, cf = gen
    rec = bf16_record(fp32, ev, QualityBudget(min_psnr_db=30.0), confirm_set=cf)
    ran_bf16 = any("bf16" in precs for precs in rec["executed"].values())
    assert rec["native"] is ran_bf16
    if not ran_bf16:  # e.g. this AVX2-only CPU: the hint ran f32, so no bf16 quality is recorded
        assert rec["accepted"] is False and rec["measured"] is False and "eval" not in rec
    else:
        assert rec["measured"] and rec["accepted"] == (rec["eval"]["within_budget"] and rec["confirm"]["within_budget"])
    assert rec["measured_on"]["isa"] is not None


def test_bundle_ships_the_openvino_variant_and_the_bf16_record(cgan_bundle, tmp_path):
    b = load_bundle(cgan_bundle)
    m = b.spec.to_dict()
    bf16 = m["models"]["fp32"]["runtime_precisions"]["openvino"]["bf16"]
    assert set(bf16) >= {"accepted", "native", "executed", "measured_on"}
    rep = b.report("quantization_openvino")
    assert rep["engine"] == "openvino" and rep["bf16"] == bf16
    assert "int8" in m["models"]
    v = m["models"]["int8"]["variants"].get("openvino")
    if v is None:
        assert not rep["outcome"].startswith("int8")
        return
    assert v["file"] == OV_INT8_FILE and v["weights"] == OV_INT8_WEIGHTS and v["precision"] == "int8"
    assert v["use_for"] == ["openvino"]
    assert v["sha256"] == sha256_file(b.root / v["file"]) == m["files"][v["file"]]
    assert m["files"][v["weights"]] == sha256_file(b.root / v["weights"])
    q = v["quantization"]
    assert q["engine"] == "openvino" and q["ignored_layers"] == [k["layer"] for k in rep["kept_float"]] and isinstance(q["float_layers"], int)
    assert q["measured_on"]["isa"] is not None and q["confirm"]["within_budget"] is True
    assert "int8" in m["golden"]["tolerances"] and "int8_openvino" in json.loads(
        (b.root / "reports/quality.json").read_text())["golden_vs_reference"]
    # the IR runs from the bundle's files
    gi, _ = b.golden()
    out = ov_runner(q["inference_precision"])(read_ir((b.root / v["file"]).read_bytes(),
                                                      (b.root / v["weights"]).read_bytes()), gi)
    assert out.shape == (10, 1, 32, 32) and np.isfinite(out).all()
    # the .bin is sha256-checked like every other file
    bad = tmp_path / "bad"
    shutil.copytree(cgan_bundle, bad)
    with open(bad / v["weights"], "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match=v["weights"].replace(".", r"\.")):
        load_bundle(bad)
