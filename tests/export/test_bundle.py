"""export_bundle + `skugen export`: manifest contents, golden data, reports, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from skugen.bundle import load_bundle
from skugen.cli import main
from skugen.errors import ModelError
from skugen.export.data import FMNIST_CLASSES
from skugen.io import sha256_file


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def test_generator_manifest(cgan_bundle):
    b = load_bundle(cgan_bundle)
    m = b.spec.to_dict()
    assert m["schema_version"] == 1 and m["kind"] == "generator" and m["name"] == "test-cgan"
    io = m["io"]
    assert [i["name"] for i in io["inputs"]] == ["z", "onehot"]
    assert io["inputs"][0]["shape"] == ["batch", 128] and io["inputs"][1]["shape"] == ["batch", 10]
    assert io["outputs"][0] == {"name": "image", "dtype": "float32", "shape": ["batch", 1, 32, 32], "range": [-1, 1]}
    assert io["class_names"] == list(FMNIST_CLASSES) and io["z_dim"] == 128 and io["n_classes"] == 10
    assert io["max_batch"] == 64 and io["image_size"] == 32 and io["channels"] == 1
    assert m["postprocess"]["value_range"] == [-1, 1] and m["postprocess"]["layout"] == "GRAY"
    assert set(m["models"]) == {"fp32", "int8"}
    for prec, e in m["models"].items():
        assert e["precision"] == prec and e["opset"] >= 17 and e["params"] > 0 and e["macs"] > 0
        assert e["sha256"] == sha256_file(b.root / e["file"]) == m["files"][e["file"]]
        assert e["bytes"] == (b.root / e["file"]).stat().st_size
    q = m["models"]["int8"]["quantization"]
    assert q["tool"] == "nncf" and isinstance(q["ignored_layers"], list) and "min_psnr_db" in q["budget"]
    assert m["models"]["int8"]["bytes"] < m["models"]["fp32"]["bytes"]
    trt = m["models"]["int8"]["variants"]["tensorrt"]  # int8-only Q/DQ flavour for TensorRT
    assert trt["file"] == "model.int8.trt.onnx" and trt["sha256"] == m["files"][trt["file"]]
    tol = m["golden"]["tolerances"]
    ov_int8 = "openvino" in m["models"]["int8"].get("variants", {})
    assert set(tol) == {"fp32", "fp16", "int8"} | ({"int8.openvino"} if ov_int8 else set())  # its own INT8
    if ov_int8:
        assert b.spec.tolerance("int8", "openvino") == tol["int8.openvino"] != tol["int8"]
        assert b.spec.tolerance("int8", "onnxruntime") == tol["int8"]
    assert {"atol", "rtol"} <= set(tol["fp32"]) and {"min_psnr_db", "max_mean_abs", "rule"} <= set(tol["int8"])
    assert set(m["reports"]) == {"parity", "quality", "quantization"} | (
        {"quantization_openvino"} if _has_openvino() else set())  # tests/export/test_openvino_quant.py checks it
    for rel in list(m["reports"].values()) + [m["card"], m["source"]["weights"], m["source"]["card"]]:
        assert rel in m["files"]
    assert m["source"]["sha256"] == m["files"]["source/model.safetensors"]
    assert b.report("parity")["pass"] is True
    assert b.report("quantization")["outcome"].startswith("int8")
    assert json.loads((b.root / "card.json").read_text())["bundle"]["precisions"] == ["fp32", "int8"]


def test_golden_data_is_pickle_free_and_from_torch(cgan_bundle, cgan_model):
    import torch

    b = load_bundle(cgan_bundle)
    for rel in ("golden/inputs.npz", "golden/outputs.npz"):
        with np.load(b.root / rel, allow_pickle=False) as z:
            assert all(z[k].dtype == np.float32 for k in z.files)
    gi, go = b.golden()
    assert gi["z"].shape == (10, 128) and (gi["onehot"].argmax(1) == np.arange(10)).all()
    with torch.no_grad():
        ref = cgan_model(torch.from_numpy(gi["z"]), torch.from_numpy(gi["onehot"])).numpy()
    np.testing.assert_array_equal(go["image"], ref)  # made by the reference PyTorch model


def test_enhancer_manifest(sr_bundle):
    m = load_bundle(sr_bundle).spec.to_dict()
    assert m["kind"] == "enhancer"
    assert m["io"]["inputs"][0]["shape"] == ["batch", 3, "h", "w"] and m["io"]["scale"] == 2
    assert m["io"]["outputs"][0]["shape"] == ["batch", 3, "2h", "2w"]
    assert m["preprocess"] == {"layout": "RGB", "tensor_layout": "NCHW", "dtype": "float32",
                               "input_range": [0, 1], "mean": [0, 0, 0], "std": [1, 1, 1]}
    assert m["postprocess"]["value_range"] == [0, 1] and m["postprocess"]["layout"] == "RGB"
    assert m["tile"]["size"] == 128 and m["tile"]["overlap"] == 32
    assert 2 * m["tile"]["receptive_radius"] <= m["tile"]["overlap"] + 1  # context covers the conv stack
    assert "GroceryStore" in m["golden"]["source"]
    assert load_bundle(sr_bundle).report("quantization")["eval"]["metric"] == "psnr_y_db"


def test_cli_export_fp32_and_tar(cgan_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SKUGEN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "b"
    assert main(["export", str(cgan_model_dir), "--out", str(out), "--tar", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert list(s["models"]) == ["fp32"] and s["quantization"] is None
    assert s["tar"] == str(out) + ".tar"
    tb = load_bundle(s["tar"])
    assert tb.spec.to_dict() == load_bundle(out).spec.to_dict()
    assert "quantization" not in tb.spec.to_dict()["reports"] and "int8" not in tb.spec.to_dict()["golden"]["tolerances"]


def test_cli_export_int8(cgan_model_dir, tmp_path, capsys):
    out = tmp_path / "b8"
    rc = main(["export", str(cgan_model_dir), "--out", str(out), "--int8", "--no-openvino", "--no-fp16", "--calib", "16",
               "--min-psnr-db", "10", "--classifier", "none"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "int8" in text and "INT8" in text and "parity vs PyTorch" in text
    assert load_bundle(out).spec.to_dict()["models"]["int8"]["quantization"]["calibration_samples"] == 16


def test_cli_export_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    h = capsys.readouterr().out
    assert "Examples:" in h and "--int8" in h and "--budget-db" in h and "--tar" in h


def test_export_refuses_a_classifier(tmp_path):
    from skugen.export import ckpt, models
    from skugen.export.bundle import export_bundle

    d = ckpt.save_model(models.build(models.ClassifierConfig(widths=(8, 8, 8, 8, 8), feat_dim=8)), tmp_path / "clf")
    with pytest.raises(ModelError, match="cannot be bundled"):
        export_bundle(d, tmp_path / "out")


def test_export_unknown_model_is_a_model_error(tmp_path):
    from skugen.export.bundle import export_bundle

    with pytest.raises(ModelError, match="neither a zoo model"):
        export_bundle(tmp_path / "nope", tmp_path / "out")


@pytest.fixture(scope="module")
def fp16_int8_bundle(cgan_model_dir, tmp_path_factory):
    from skugen.export.bundle import BundleConfig, export_bundle
    from skugen.export.quantize import QualityBudget, QuantConfig

    return export_bundle(cgan_model_dir, tmp_path_factory.mktemp("f16") / "b", BundleConfig(
        int8=True, calib_n=32, eval_n=64, classifier=None, quant=QuantConfig(subset_size=32),
        budget=QualityBudget(min_psnr_db=20.0)))


def test_int8_export_adds_the_gated_fp16_variant(fp16_int8_bundle):
    from skugen.export.fp16 import fp16_summary

    b = load_bundle(fp16_int8_bundle)
    assert b.precisions == ["fp32", "int8", "fp16"]
    v = b.spec.models["fp16"]
    q = v.quantization
    assert v.file == "model.fp16.onnx" and v.precision == "fp16" and v.sha256 == sha256_file(b.model_path("fp16"))
    assert q["psnr_vs_fp32_db"] >= 45.0 or q["kept_fp32"]
    assert q["method"].startswith("fp16-storage simulation") and q["report"] == "reports/fp16.json"
    rep = b.report("fp16")
    assert rep["outcome"].startswith("fp16") and rep["confirm"]["n"] == 64 and "misses" in rep["method"]
    assert [k["node"] for k in rep["kept_fp32"]] == q["kept_fp32"]
    quality = b.spec.quality
    assert quality["fp16"]["psnr_vs_fp32_db"] == q["psnr_vs_fp32_db"] and "int8" in quality
    assert b.spec.tolerance("fp16") == {"atol": 2e-2, "rtol": 1e-2}
    # TensorRT parses this file for fp16 engines (bundle.model_path("fp16", backend="tensorrt"))
    assert b.model_path("fp16", backend="tensorrt") == b.model_path("fp16")
    s = fp16_summary(b.model_path("fp16"))
    assert set(s["fp32_nodes"]) == set(q["kept_fp32"])


def test_int8_tensorrt_twin_carries_fp16(fp16_int8_bundle):
    """Everything not quantized in the TensorRT twin is FP16 (strongly-typed builds run the graph's types)."""
    import onnx

    from skugen.backends.onnxruntime import OnnxRuntimeRunner
    from skugen.export.fp16 import fp16_summary

    b = load_bundle(fp16_int8_bundle)
    twin = b.model_path("int8", backend="tensorrt")
    s = fp16_summary(twin)
    ops = {n.name: n.op_type for n in onnx.load(str(twin)).graph.node}
    assert {ops[n] for n in s["fp32_nodes"]} <= {"QuantizeLinear", "DequantizeLinear"} | \
        {ops.get(k) for k in b.spec.models["fp16"].quantization["kept_fp32"]}
    assert {"Conv", "Gemm", "MatMul"} <= {ops[n] for n in s["fp16_nodes"]}
    assert "fp16 elsewhere" in b.spec.models["int8"].variants["tensorrt"].activations
    assert "int8_tensorrt_fp16" in b.spec.quality
    gi, go = b.golden()
    with OnnxRuntimeRunner(twin) as r:
        out = r.infer(gi)["image"]
    assert out.dtype == np.float32 and np.abs(out - go["image"]).mean() < 0.1
