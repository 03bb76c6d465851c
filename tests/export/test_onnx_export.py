"""onnx_from_torch + parity_report on small random-init models (see tests/conftest.py)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.errors import InputError, VerificationError
from skugen.export import models
from skugen.export.onnx_export import (ExportConfig, fold_batchnorm, onnx_from_torch, parity_inputs,
                                       parity_report)


@pytest.fixture(scope="module")
def cgan(cgan_model):
    return cgan_model


@pytest.fixture(scope="module")
def sr(sr_model):
    return sr_model


@pytest.fixture(scope="module")
def cgan_onnx(cgan):
    return onnx_from_torch(cgan)


@pytest.fixture(scope="module")
def sr_onnx(sr):
    return onnx_from_torch(sr)


def test_generator_graph_contract(cgan_onnx):
    mp = cgan_onnx.proto()
    ops = {n.op_type for n in mp.graph.node}
    assert "BatchNormalization" not in ops
    assert "ConvTranspose" not in ops  # DESIGN trap: QDQ ConvTranspose is slow on ORT CPU
    assert cgan_onnx.folded_bn == 7  # fc_bn + 2 per stage
    assert max(o.version for o in mp.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert cgan_onnx.opset >= 17
    assert [i["name"] for i in cgan_onnx.inputs] == ["z", "onehot"]
    assert cgan_onnx.inputs[0] == {"name": "z", "dtype": "float32", "shape": ["batch", 128]}
    assert cgan_onnx.outputs[0] == {"name": "image", "dtype": "float32", "shape": ["batch", 1, 32, 32]}
    onnx.checker.check_model(mp, full_check=True)
    # weighted nodes carry their torch module path (readable IgnoredScope / reports)
    names = {n.name for n in mp.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")}
    assert {"embed", "fc", "blocks.0.conv1", "blocks.2.conv2", "attn.q", "to_img"} <= names
    json.dumps(cgan_onnx.to_dict())


def test_enhancer_graph_contract(sr_onnx):
    assert "BatchNormalization" not in sr_onnx.op_counts
    # the residual scale is folded into conv2: no Mul between a Conv and its Add (ORT fuses QLinearConv/Add)
    assert "Mul" not in sr_onnx.op_counts and sr_onnx.op_counts["Add"] >= 2
    assert sr_onnx.inputs[0]["shape"] == ["batch", 3, "h", "w"]
    assert sr_onnx.outputs[0]["shape"][:2] == ["batch", 3]


def test_batchnorm_folding_is_exact(cgan):
    folded, n = fold_batchnorm(cgan)
    assert n == 7
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = models.example_inputs(cgan.cfg, batch=4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(folded(*x), cgan.eval()(*x), atol=1e-5, rtol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in cgan.modules())  # the original is untouched


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_generator(cgan, cgan_onnx, batch):
    feeds = parity_inputs(cgan, n=batch, seed=5)
    with OnnxRuntimeRunner(cgan_onnx.onnx_bytes) as r:
        out = r.infer(feeds)["image"]
    with torch.no_grad():
        ref = cgan(torch.from_numpy(feeds["z"]), torch.from_numpy(feeds["onehot"])).numpy()
    assert out.shape == (batch, 1, 32, 32)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("batch,h,w", [(1, 16, 16), (7, 20, 36)])
def test_dynamic_batch_and_size_enhancer(sr, sr_onnx, batch, h, w):
    x = np.random.default_rng(0).random((batch, 3, h, w), dtype=np.float32)
    with OnnxRuntimeRunner(sr_onnx.onnx_bytes) as r:
        out = r.infer({"lr": x})["hr"]
    assert out.shape == (batch, 3, 2 * h, 2 * w)
    with torch.no_grad():
        np.testing.assert_allclose(out, sr(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-3)


def test_parity_report_passes(cgan, cgan_onnx, sr, sr_onnx):
    for model, res, out in ((cgan, cgan_onnx, "image"), (sr, sr_onnx, "hr")):
        rep = parity_report(model, res.onnx_bytes, n=4, seed=1)
        s = rep["outputs"][out]
        assert rep["pass"] and s["pass"] and s["n_fail"] == 0
        assert s["max_abs"] < 1e-4 and s["mean_abs"] <= s["max_abs"]
        assert s["psnr_db"] is None or s["psnr_db"] > 80
        json.dumps(rep)


def test_parity_report_fails_on_impossible_tolerance(cgan, cgan_onnx):
    # ORT and torch differ in the last bits; a zero tolerance must flag that
    with pytest.raises(VerificationError, match=r"disagrees with PyTorch.*atol=0"):
        parity_report(cgan, cgan_onnx.onnx_bytes, n=4, atol=0.0, rtol=0.0)
    rep = parity_report(cgan, cgan_onnx.onnx_bytes, n=4, atol=0.0, rtol=0.0, raise_on_fail=False)
    assert rep["pass"] is False and rep["outputs"]["image"]["n_fail"] > 0


def test_parity_report_fails_on_perturbed_weights(cgan, cgan_onnx):
    mp = cgan_onnx.proto()
    w = next(i for i in mp.graph.initializer if i.name == "to_img.weight")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) + np.float32(0.05), w.name))
    with pytest.raises(VerificationError, match="max_abs"):
        parity_report(cgan, mp.SerializeToString(), n=4)


def test_export_rejects_old_opset(cgan):
    with pytest.raises(InputError, match="opset"):
        onnx_from_torch(cgan, ExportConfig(opset=13))
