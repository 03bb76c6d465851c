"""Backend and precision choice for `skugen.load` ("auto" included), from the parsed manifest."""
from __future__ import annotations

from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import InputError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


def resolve(backend: Any, precision: Any, bundle: Bundle) -> tuple[str, str]:
    """(backend, precision) to run: "auto" resolved (see skugen.pipeline's docstring), the pair checked."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if backend == "auto":
        from .backends import registry

        backend = registry.auto_backend()
    have = bundle.precisions
    if precision == "auto":
        if backend == "tensorrt":
            precision = "fp16"
        else:
            precision = fastest_cpu_precision(bundle)
    if backend == "onnxruntime" and precision not in have:
        if precision == "fp16":
            raise InputError(f"precision 'fp16' runs on TensorRT; ONNX Runtime runs this bundle's "
                             f"{have} models. Use backend='tensorrt' on an NVIDIA GPU, or precision='fp32'/'int8'.")
        raise InputError(f"bundle {bundle.name!r} has no {precision!r} model (it has {have}); "
                         "re-export with INT8 or pick one of those precisions.")
    return backend, precision


def fastest_cpu_precision(bundle: Bundle) -> str:
    """int8 when the bundle has it, unless export measured it slower than fp32 on ONNX Runtime CPU."""
    have = bundle.precisions
    if "int8" not in have:
        return "fp32"
    lat = {p: getattr(bundle.spec.models[p].cpu_latency, "p50_ms", None) for p in ("fp32", "int8")}
    if lat["fp32"] and lat["int8"] and lat["fp32"] < lat["int8"]:
        return "fp32"
    return "int8"


def check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InputError(f"threads must be a positive int or None (all cores), got {threads!r}")
    return int(threads)
