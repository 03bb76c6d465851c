"""qdq.tensorrt_fp16: the TensorRT INT8 twin with FP16 for everything not quantized."""
from __future__ import annotations

import numpy as np
import onnx

from skugen.backends.onnxruntime import OnnxRuntimeRunner
from skugen.export.fp16 import fp16_storage_sim, fp16_summary
from skugen.export.onnx_export import onnx_from_torch
from skugen.export.qdq import tensorrt_fp16, to_signed_int8
from skugen.export.evalsets import generator_calibration
from skugen.export.quantize import QuantConfig, quantize_qdq
from skugen.metrics import psnr


def test_tensorrt_twin_in_fp16_keeps_qdq_fp32_and_runs_in_ort(cgan_model):
    c = cgan_model.cfg
    fp32 = onnx_from_torch(cgan_model).onnx_bytes
    twin = to_signed_int8(quantize_qdq(fp32, generator_calibration(c.z_dim, c.n_classes, 16),
                                       QuantConfig(subset_size=16)))
    t16 = tensorrt_fp16(twin, keep_fp32=("to_img", "not-in-the-twin"))
    s = fp16_summary(t16)
    ops = {n.name: n.op_type for n in onnx.load_from_string(t16).graph.node}
    assert {ops[n] for n in s["fp32_nodes"]} == {"DequantizeLinear", "Conv"}
    typed = onnx.shape_inference.infer_shapes(onnx.load_from_string(t16))
    dtype = {v.name: v.type.tensor_type.elem_type for v in (*typed.graph.value_info, *typed.graph.input)}
    qs = [n for n in typed.graph.node if n.op_type == "QuantizeLinear"]
    assert qs and all(dtype[n.input[0]] == onnx.TensorProto.FLOAT for n in qs)  # Q reads FP32 (opset 17)
    assert [n for n in s["fp32_nodes"] if ops[n] == "Conv"] == ["to_img"]
    assert {"Conv", "Gemm", "MatMul", "Softmax", "Resize"} <= {ops[n] for n in s["fp16_nodes"]}
    # int8 weights stay int8; the float weights left (biases, the FP32 node's) are FP16 except to_img's
    mp = onnx.load_from_string(t16)
    assert any(t.data_type == onnx.TensorProto.INT8 for t in mp.graph.initializer)
    feeds = generator_calibration(c.z_dim, c.n_classes, 16, seed=7)
    with OnnxRuntimeRunner(twin, graph_optimization="none") as r:
        ref = r.infer(feeds)["image"]
    with OnnxRuntimeRunner(fp32) as r:
        f32 = r.infer(feeds)["image"]
    img = lambda x: np.clip((x.astype(np.float64) + 1) * 127.5, 0, 255).transpose(0, 2, 3, 1)  # noqa: E731
    int8_cost = psnr(img(ref), img(f32))
    for model in (t16, fp16_storage_sim(t16)):
        with OnnxRuntimeRunner(model) as r:
            out = r.infer(feeds)["image"]
        # FP16 around the int8 layers moves the output less than INT8 itself moved it from FP32
        assert out.dtype == np.float32 and psnr(img(out), img(ref)) > int8_cost + 3.0, int8_cost
