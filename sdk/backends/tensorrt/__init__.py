"""TensorRT 10 backend, one module per concern (after Polygraphy's backend/trt/):

    plan     everything about a build that needs no GPU: BuildConfig, profile shapes, engine keys, the
             engine.json sidecar, mismatch checks, inspector parsing (CPU-tested)
    cuda     lazy tensorrt/pycuda imports, the TensorRT logger, the primary CUDA context, device info
    store    where engines live (the bundle's engines/<key>/ or the read-only fallback cache), listing,
             the verified.json marker; runtime-light, shared with deploy and triton
    build    engine_from_onnx: strongly typed network, parser, profiles, timing cache, inspector
    runner   TensorRTRunner: buffers, stream, chunking, the zero-copy path for the CUDA kernels

    rec = engine_from_onnx(bundle, "int8")                   # or: skugen build BUNDLE --precision int8
    # precision picks the ONNX graph (fp32 / fp16 / the int8 Q/DQ twin); every build is strongly typed
    with runner_for(bundle, "tensorrt", "int8") as r:         # skugen.backends.runner_for
        out = r.infer({"z": z, "onehot": onehot})

Importing this package never imports tensorrt or pycuda; every entry point raises BackendUnavailable
naming the `skugen[tensorrt]` extra when TensorRT, pycuda or a GPU is missing.
"""
from __future__ import annotations

from . import plan, store  # noqa: F401
from .build import engine_from_onnx
from .cuda import _require, current_device, is_available, status, unavailable_reason  # noqa: F401  (_require: gpu_check.sh, skugen build)
from .plan import BuildConfig
from .runner import TensorRTRunner
from .store import EngineRecord

__all__ = ["BuildConfig", "EngineRecord", "TensorRTRunner", "current_device", "engine_from_onnx", "is_available",
           "plan", "status", "store", "unavailable_reason"]
