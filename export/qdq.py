"""Q/DQ graph rewrites on ONNX models: the engine flavours of one calibration, and float fallbacks.

- ONNX Runtime x86 fuses Q/DQ only for uint8 activations: `int8_acts_to_uint8` (exact);
- TensorRT reads only int8 Q/DQ with zero point 0: `to_signed_int8` / `uint8_to_int8`;
- `tensorrt_fp16` makes the TensorRT twin carry FP16 for everything not quantized (strongly-typed builds run
  each layer in the graph's type);
- `keep_float` switches named layers of an INT8 graph back to float (the gate's probes);
- `qdq_summary` counts what is quantized.
See skugen.export.quantize for why (the measured speeds and the gate).
"""
from __future__ import annotations

import copy

import numpy as np

from skugen.errors import InputError

from .onnx_export import WEIGHTED_OPS, as_proto

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")

def to_signed_int8(int8_onnx) -> bytes:
    """The TensorRT flavour of a Q/DQ model: every uint8 Q/DQ pair rewritten to int8, zero point 0."""
    q = copy.deepcopy(as_proto(int8_onnx))
    uint8_to_int8(q)
    return q.SerializeToString()


def tensorrt_fp16(trt_int8_onnx, keep_fp32=()) -> bytes:
    """The TensorRT INT8 twin with every non-quantized node in FP16, except `keep_fp32` (the FP16 gate's FP32 nodes;
    names the twin lacks are skipped). Q/DQ stay FP32 with casts at their edges: at opset 17 QuantizeLinear takes no
    float16 and DequantizeLinear yields tensor(float) (skugen.export.fp16's schema rule does this by itself).

    Not opset 19 with FP16 scales (Q/DQ in FP16 natively): ONNX Runtime's CPU optimizer (1.32) computes such a
    graph wrongly (cGAN student: PSNR 12.9 dB vs the INT8 twin, 45.7 dB with optimizations off), and the bundle's
    golden statistics and the gate run this twin on ONNX Runtime.
    """
    from .fp16 import to_fp16

    mp = as_proto(trt_int8_onnx)
    names = {n.name for n in mp.graph.node}
    return to_fp16(mp, [k for k in keep_fp32 if k in names])


def with_tensorrt_twin(int8, twin: bytes, keep_fp32=()):
    """The manifest's models["int8"] Variant with its TensorRT twin replaced by `twin`, the FP16 rewrite of
    tensorrt_fp16 (keep_fp32: the FP16 gate's FP32 nodes, named in the activations note)."""
    from dataclasses import replace

    from skugen.io import sha256_bytes

    t = int8.variants["tensorrt"]
    return replace(int8, variants={**int8.variants, "tensorrt": replace(
        t, sha256=sha256_bytes(twin), bytes=len(twin),
        activations="int8, zero point 0 (TensorRT explicit quantization); fp16 elsewhere"
                    + (f", fp32: {', '.join(keep_fp32)}" if keep_fp32 else ""))})


def _drop_value_info(mp, elem_type: int) -> None:
    """Q outputs changed element type: drop their stale value_info so shape inference recomputes it."""
    keep = [v for v in mp.graph.value_info if v.type.tensor_type.elem_type != elem_type]
    del mp.graph.value_info[:]
    mp.graph.value_info.extend(keep)


def int8_acts_to_uint8(mp) -> int:
    """ORT x86 flavour: rewrite int8 ACTIVATION Q/DQ pairs (NNCF's signed tensors, zero point 0) to uint8
    zero point 128, same scale (in place); returns how many nodes changed.

    Exact: clamp(round(x/s), -128, 127) + 128 == clamp(round(x/s) + 128, 0, 255), and dequantizing
    subtracts the zero point again. ORT's x86 QDQ selectors fuse only uint8 activations (U8S8), so
    without this every Conv fed by a signed tensor ran as DQ -> float Conv (measured on the SR student:
    2 of 19 Convs fused, INT8 28.0 ms vs FP32 12.9 ms). Weights (DequantizeLinear of an initializer)
    stay int8. `uint8_to_int8` maps zero point 128 straight back for TensorRT.
    """
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in mp.graph.initializer}
    n = 0
    for node in mp.graph.node:
        if node.op_type not in QDQ_OPS or len(node.input) < 3 or node.input[2] not in inits:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            continue  # weights and quantized constants stay int8 (the S8 of U8S8)
        zp = numpy_helper.to_array(inits[node.input[2]])
        if zp.dtype != np.int8:
            continue
        if np.any(zp):
            raise AssertionError(f"asymmetric int8 zero point on {node.name}; use the 'performance' preset")
        name = node.input[2] + "_u8"
        if name not in inits:  # a new initializer: the int8 one may be shared with a weight DequantizeLinear
            inits[name] = numpy_helper.from_array(np.full(zp.shape, 128, np.uint8), name)
            mp.graph.initializer.append(inits[name])
        node.input[2] = name
        n += 1
    _drop_value_info(mp, onnx.TensorProto.INT8)
    return n


def uint8_to_int8(mp) -> int:
    """Rewrite uint8 Q/DQ pairs to int8 with zero point 0 (in place); returns how many.

    zero point 128 (symmetric uint8, ORT's calibrator): q_s8 = q_u8 - 128 with the same
    scale, exact. zero point 0 (NNCF's non-negative post-ReLU activations, [0, 255 s]):
    int8 [0, 127 s'] with s' = 255/127 s covers the same range with one bit less, which
    is what TensorRT does with such tensors anyway. Constant uint8 data feeding a
    DequantizeLinear (a quantized Mul/Add constant) is converted the same way.
    """
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in mp.graph.initializer}
    mode: dict[str, str] = {}   # zero point name -> "shift" (zp 128) | "rescale" (zp 0)
    scaled: set[str] = set()    # scales already widened (never twice, even if shared)
    for node in mp.graph.node:
        if node.op_type not in QDQ_OPS or len(node.input) < 3:
            continue
        sname, zname = node.input[1], node.input[2]
        if zname in mode or zname not in inits or sname not in inits:
            continue
        zp = numpy_helper.to_array(inits[zname])
        if zp.dtype != np.uint8:
            continue
        if np.all(zp == 128):
            mode[zname] = "shift"
        elif not np.any(zp):
            mode[zname] = "rescale"
            if sname not in scaled:
                s = numpy_helper.to_array(inits[sname]).astype(np.float32)
                inits[sname].CopyFrom(numpy_helper.from_array((s * np.float32(255.0 / 127.0)).astype(np.float32), sname))
                scaled.add(sname)
        else:
            raise AssertionError(f"asymmetric uint8 zero point on {node.name}; use the 'performance' preset")
        inits[zname].CopyFrom(numpy_helper.from_array(np.zeros_like(zp, dtype=np.int8), zname))
    done_data: set[str] = set()
    for node in mp.graph.node:  # constant uint8 data dequantized with a rewritten zero point
        if node.op_type == "DequantizeLinear" and len(node.input) > 2 and node.input[2] in mode:
            x = node.input[0]
            if x in inits and x not in done_data and inits[x].data_type == onnx.TensorProto.UINT8:
                q = numpy_helper.to_array(inits[x]).astype(np.int32)
                q = q - 128 if mode[node.input[2]] == "shift" else np.rint(q * (127.0 / 255.0))
                inits[x].CopyFrom(numpy_helper.from_array(np.clip(q, -128, 127).astype(np.int8), x))
                done_data.add(x)
    _drop_value_info(mp, onnx.TensorProto.UINT8)
    return len(mode)


def qdq_summary(model) -> dict:
    """Counts of Q/DQ nodes and of weighted layers with int8 inputs (for reports and tests)."""
    mp = as_proto(model)
    prod = {o: n for n in mp.graph.node for o in n.output}
    ops = [n.op_type for n in mp.graph.node]
    quant = [n.name for n in mp.graph.node if n.op_type in WEIGHTED_OPS
             and any(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in n.input)]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear"),
            "int8_layers": quant,
            "float_layers": [n.name for n in mp.graph.node if n.op_type in WEIGHTED_OPS and n.name not in quant]}

# ----------------------------------------------------------------------------- graph edit: keep layers float


def keep_float(q_model, fp32_model, layers) -> bytes:
    """The INT8 graph with `layers` switched back to float, without re-calibrating.

    Each named node gets the exact inputs it has in the FP32 graph: the float
    activation tensor (bypassing its DequantizeLinear) and the original float weight
    and bias (added under an 'fp32::' prefix, because bias correction may have
    changed the int8 model's bias of the same name). Q/DQ nodes nobody reads any
    more are pruned. Used for cheap sensitivity probes; the shipped model is
    re-quantized with NNCF's IgnoredScope instead.
    """
    q = copy.deepcopy(as_proto(q_model))
    fp = as_proto(fp32_model)
    fp_nodes = {n.name: n for n in fp.graph.node}
    fp_inits = {i.name: i for i in fp.graph.initializer}
    layers = set(layers)
    missing = layers - set(fp_nodes)
    if missing:
        raise InputError(f"layers {sorted(missing)} are not in the FP32 model.")
    added: set[str] = set()
    for node in q.graph.node:
        if node.name not in layers:
            continue
        new_inputs = []
        for i in fp_nodes[node.name].input:
            if i in fp_inits:
                alias = f"fp32::{i}"
                if alias not in added:
                    t = copy.deepcopy(fp_inits[i])
                    t.name = alias
                    q.graph.initializer.append(t)
                    added.add(alias)
                new_inputs.append(alias)
            else:
                new_inputs.append(i)
        del node.input[:]
        node.input.extend(new_inputs)
    _prune(q)
    return q.SerializeToString()


def _prune(mp) -> None:
    """Drop nodes whose outputs nobody reads, then unused initializers (in place)."""
    outputs = {o.name for o in mp.graph.output}
    while True:
        used = outputs | {i for n in mp.graph.node for i in n.input}
        dead = [n for n in mp.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            mp.graph.node.remove(n)
    used = {i for n in mp.graph.node for i in n.input}
    keep = [t for t in mp.graph.initializer if t.name in used]
    del mp.graph.initializer[:]
    mp.graph.initializer.extend(keep)
