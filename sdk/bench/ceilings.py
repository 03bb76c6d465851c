"""The machine's measured GEMM ceilings for one run: what a cell's GMAC/s is a fraction of.

Compute efficiency is measured, not quoted: the same run times an fp32 GEMM
(numpy float32 matmul, 1 thread and T threads) and an int8 GEMM (ONNX Runtime
MatMulInteger on a tiny graph built with onnx.helper), and each cell reports its
achieved GMAC/s as a fraction of that ceiling. The fp32-GEMM time is also the
regression gate's same-run yardstick (skugen.bench.gate).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from ..errors import SkugenError


def _time_min(fn: Callable[[], Any], reps: int, budget_s: float = 3.0) -> float:
    """Best-of-reps seconds (the ceiling is the machine's best, so min, not median), after one warm-up call."""
    fn()
    best = math.inf
    t_end = time.perf_counter() + budget_s
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > t_end:
            break
    return best


def _gemm_entry(seconds: float, macs: int) -> dict:
    return {"ms": seconds * 1e3, "gmacs_per_s": macs / seconds / 1e9}


def fp32_gemm_ceiling(threads: int, size: int = 1024, reps: int = 7) -> dict:
    """numpy float32 (size x size) @ (size x size), single-threaded and with `threads` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    macs = size ** 3
    out: dict = {"what": f"numpy float32 matmul {size}x{size}x{size}", "macs": macs, "by_threads": {}}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is None:
        out["by_threads"]["default"] = _gemm_entry(_time_min(lambda: a @ b, reps), macs)
        out["best"] = _best(out)
        out["note"] = ("threadpoolctl is not installed, so numpy's BLAS ran with its default thread count "
                       "(1-thread and T-thread ceilings could not be separated)")
        return out
    out["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "num_threads")} for i in threadpool_info()
                   if i.get("user_api") == "blas"]
    for t in sorted({1, int(threads)}):
        with threadpool_limits(limits=t, user_api="blas"):
            out["by_threads"][str(t)] = _gemm_entry(_time_min(lambda: a @ b, reps), macs)
    out["best"] = _best(out)
    return out


def _matmul_model(kind: str, size: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        # uint8 activations x int8 weights -> int32: ORT's MLAS QGEMM (VNNI on AVX512-VNNI CPUs),
        # the kernel a Q/DQ Conv/MatMul runs after ORT fuses it into QLinearConv/MatMulInteger.
        w = numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "B")
        a = helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])
        y = helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    else:
        w = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "B")
        a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [size, size])
        y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [size, size])
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    g = helper.make_graph([node], f"gemm_{kind}", [a], [y], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8  # readable by every ORT >= 1.10
    onnx.checker.check_model(m)
    return m.SerializeToString()


def ort_gemm_ceiling(kind: str, threads: int, size: int = 1024, reps: int = 7) -> dict:
    """ONNX Runtime MatMulInteger (int8) or MatMul (fp32) of size^3, 1 thread and `threads` threads."""
    macs = size ** 3
    what = (f"onnxruntime MatMulInteger uint8 x int8 -> int32 {size}x{size}x{size}" if kind == "int8"
            else f"onnxruntime MatMul float32 {size}x{size}x{size}")
    out: dict = {"what": what, "macs": macs, "by_threads": {}}
    try:
        model = _matmul_model(kind, size)
    except ImportError as e:
        return {"what": what, "available": False,
                "reason": f"onnx is not importable ({e}); the ceiling graph is built with onnx.helper. "
                          "Install it with: pip install 'skugen[export]' (or pip install onnx)."}
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, (size, size), dtype=np.uint8) if kind == "int8"
         else rng.standard_normal((size, size)).astype(np.float32))
    for t in sorted({1, int(threads)}):
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        out["by_threads"][str(t)] = _gemm_entry(_time_min(lambda: sess.run(None, {"A": x}), reps), macs)
        del sess
    out["best"] = _best(out)
    return out


def _ov_matmul_model(ov, kind: str, size: int):
    """A (size x size) @ (size x size) OpenVINO model built with the opset API (no onnx needed).

    int8 is the pattern NNCF writes for a quantized MatMul: FakeQuantize(256 levels) on the activations and
    int8 weight constants with a dequantizing Convert x scale, which the CPU plugin's low-precision
    transformations run as one int8 GEMM (the entry records the precision it actually executed).
    """
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([size, size], np.float32, name="A")
    if kind == "int8":
        lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
        x = ops.fake_quantize(a, lo, hi, lo, hi, 256)
        w = ops.constant(rng.integers(-127, 128, (size, size), dtype=np.int8))
        wf = ops.multiply(ops.convert(w, "f32"), ops.constant(np.float32(0.01)))
    else:
        x, wf = a, ops.constant(rng.standard_normal((size, size)).astype(np.float32))
    return ov.Model([ops.matmul(x, wf, False, False)], [a], f"gemm_{kind}")


def ov_gemm_ceiling(kind: str, threads: int, size: int = 1024, reps: int = 7) -> dict:
    """OpenVINO CPU plugin MatMul of size^3 at f32, bf16 (precision hint) or int8, 1 thread and `threads` threads."""
    macs = size ** 3
    what = f"openvino CPU MatMul {kind} {size}x{size}x{size}"
    try:
        from ..backends.openvino import core, import_openvino, native_bf16, runtime_precisions

        ov = import_openvino()
    except SkugenError as e:
        return {"what": what, "available": False, "reason": str(e)}
    if kind == "bf16":
        ok, why = native_bf16()
        if not ok:
            return {"what": what, "available": False, "reason": f"not native here: {why}"}
    model = _ov_matmul_model(ov, kind, size)
    x = np.random.default_rng(1).standard_normal((size, size)).astype(np.float32)
    out: dict = {"what": what, "macs": macs, "by_threads": {}}
    for t in sorted({1, int(threads)}):
        cm = core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": t,
                                                 "INFERENCE_PRECISION_HINT": "bf16" if kind == "bf16" else "f32"})
        req = cm.create_infer_request()
        out["by_threads"][str(t)] = _gemm_entry(_time_min(lambda: req.infer({"A": x}), reps), macs)
        out["executed_as"] = runtime_precisions(cm)
        del req, cm
    out["best"] = _best(out)
    return out


# engine -> precision -> the ceiling a cell of that engine and precision is a fraction of (the same runtime's limit)
CEILING_OF = {"onnxruntime": {"fp32": "fp32_gemm_ort", "fp16": "fp32_gemm_ort", "int8": "int8_gemm"},
              "openvino": {"fp32": "ov_f32_gemm", "bf16": "ov_bf16_gemm", "int8": "ov_int8_gemm"},
              "torch": {"fp32": "fp32_gemm"}}


def ceiling_name(backend: str, precision: str) -> str | None:
    return CEILING_OF.get(backend, {}).get(precision)


def measure_ceilings(threads: int, size: int = 1024, engines: tuple[str, ...] = ("onnxruntime",)) -> dict:
    """The machine's measured GEMM ceilings for this run: fp32 numpy (the gate's yardstick), fp32 / u8s8 ORT,
    and, when "openvino" is among `engines`, OpenVINO f32 / bf16 / int8."""
    c = {"threads": int(threads), "size": int(size),
         "fp32_gemm": fp32_gemm_ceiling(threads, size),
         "fp32_gemm_ort": ort_gemm_ceiling("fp32", threads, size),
         "int8_gemm": ort_gemm_ceiling("int8", threads, size)}
    if "openvino" in engines:
        for k in ("f32", "bf16", "int8"):
            c[f"ov_{k}_gemm"] = ov_gemm_ceiling(k, threads, size)
    c["note"] = ("fraction_of_ceiling = achieved GMAC/s of the cell's inference / the same runtime's GEMM best GMAC/s "
                 "with 1..T threads at the cell's precision (ONNX Runtime fp32 vs fp32_gemm_ort, int8 vs int8_gemm "
                 "(MatMulInteger u8s8); OpenVINO f32 / bf16 / int8 vs ov_f32_gemm / ov_bf16_gemm / ov_int8_gemm; torch "
                 "vs fp32_gemm (numpy)); the gate's yardstick is fp32_gemm (numpy). "
                 "Convolutions rarely reach GEMM speed; small models are dominated by per-op overhead.")
    return c


def _best(entry: dict) -> dict | None:
    """The fastest of the thread counts tried (<= T): what the machine can do with the threads it was given.

    On a loaded machine a T-thread BLAS can be far slower than 1 thread (threads wait for busy
    cores), so the ceiling is the best of 1..T threads, not blindly the T-thread figure.
    """
    bt = (entry or {}).get("by_threads") or {}
    if not bt:
        return None
    t, e = min(bt.items(), key=lambda kv: kv[1]["ms"])
    return {"threads": t, **e}


def ceiling_gmacs(ceilings: dict | None, name: str, threads: int | None = None) -> float | None:
    if not ceilings or name not in ceilings:
        return None
    b = ceilings[name].get("best") or _best(ceilings[name])
    return b.get("gmacs_per_s") if b else None


def ceiling_ms(ceilings: dict | None, name: str = "fp32_gemm") -> float | None:
    """The best fp32-GEMM time of this run: the same-run yardstick the gate normalises p50s by."""
    if not ceilings or name not in ceilings:
        return None
    b = ceilings[name].get("best") or _best(ceilings[name])
    return b.get("ms") if b else None
