"""Inference backends. Each module writes only _activate/_infer/_deactivate (see base.Runner)."""
from __future__ import annotations

from .base import Runner, TensorMeta  # noqa: F401

BACKENDS = ("onnxruntime", "tensorrt")


def tensorrt_usable() -> bool:
    """True when TensorRT, pycuda and a CUDA GPU are all present (cheap check, no engine build)."""
    try:
        from .tensorrt import is_available
    except ImportError:
        return False
    return is_available()
