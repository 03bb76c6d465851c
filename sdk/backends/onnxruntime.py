"""ONNX Runtime runner: CPU EP with full graph optimisation and explicit threads; CUDA/TensorRT EPs when present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from skugen import config
from skugen.errors import BackendUnavailable, BundleError, InputError

from .base import Runner, TensorMeta

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _is_input_problem(e: Exception) -> bool:
    """True for ORT's errors about the feed itself: wrong dtype, rank, dimensions or names.

    ORT's C++ core raises INVALID_ARGUMENT (pybind type `InvalidArgument`) for dtype/shape/unknown
    names, and its Python wrapper a plain ValueError for missing inputs. Everything else (FAIL,
    RUNTIME_EXCEPTION, EP errors, a torn-down session) is not the caller's input and surfaces as is.
    """
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    return isinstance(e, InvalidArgument) or type(e) is ValueError


def available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file (or bytes). Thread-safe: ORT's InferenceSession.run is re-entrant.

    providers: None picks TensorRT EP > CUDA EP > CPU EP among those installed
    (the TensorRT/CUDA EPs need onnxruntime-gpu; the default wheel is CPU-only).
    """

    name = "onnxruntime"

    def __init__(self, model: str | os.PathLike | bytes, providers: list[str] | None = None,
                 intra_op_threads: int | None = None, inter_op_threads: int = 1,
                 graph_optimization: str = "all") -> None:
        super().__init__()
        self.model = model
        self.providers = providers
        self.intra_op_threads = intra_op_threads if intra_op_threads is not None else config.get_int("SKUGEN_NUM_THREADS")
        self.inter_op_threads = inter_op_threads
        self.graph_optimization = graph_optimization
        self.sess = None

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - base dependency
            raise BackendUnavailable(f"onnxruntime is not installed ({e}). pip install onnxruntime") from e
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        if self.intra_op_threads:
            so.intra_op_num_threads = int(self.intra_op_threads)
        so.inter_op_num_threads = self.inter_op_threads
        so.log_severity_level = 3
        avail = ort.get_available_providers()
        if self.providers is None:
            prefer = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
            providers = [p for p in prefer if p in avail] or avail
        else:
            missing = [p for p in self.providers if p not in avail]
            if missing:
                raise BackendUnavailable(f"ONNX Runtime providers {missing} are not available here (have {avail}). "
                                         "Install onnxruntime-gpu for CUDA/TensorRT EPs.")
            providers = self.providers
        src = self.model if isinstance(self.model, (bytes, bytearray)) else str(self.model)
        if not isinstance(src, (bytes, bytearray)) and not Path(src).is_file():
            raise BundleError(f"ONNX model {src} not found.")
        try:
            self.sess = ort.InferenceSession(src, sess_options=so, providers=providers)
        except Exception as e:  # ORT raises its own exception types (InvalidGraph, Fail, ...)
            raise BundleError(f"ONNX Runtime cannot load the model ({type(e).__name__}: {str(e)[:300]}). "
                              "Re-export the bundle; check `skugen info` and `skugen verify`.") from e
        self.info = {"backend": "onnxruntime", "providers": self.sess.get_providers(),
                     "device": "gpu" if self.sess.get_providers()[0] != "CPUExecutionProvider" else "cpu",
                     "onnxruntime": ort.__version__, "intra_op_threads": so.intra_op_num_threads}
        self._meta = {}
        for i in self.sess.get_inputs():
            if i.type not in _ORT_TYPES:
                raise BundleError(f"input {i.name} has unsupported type {i.type}")
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            self._meta[i.name] = TensorMeta(i.name, np.dtype(_ORT_TYPES[i.type]), shape)
        self._outputs = [o.name for o in self.sess.get_outputs()]

    def _deactivate(self) -> None:
        self.sess = None

    def _input_metadata(self) -> dict[str, TensorMeta]:
        return self._meta

    def _output_names(self) -> list[str]:
        return self._outputs

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = self.sess  # one read: deactivate() may clear it from another thread
        if sess is None:
            raise RuntimeError("onnxruntime runner is not active (its session was closed by deactivate()): "
                               "call activate() again or use it as a context manager")
        try:
            outs = sess.run(self._outputs, feed)
        except Exception as e:
            if not _is_input_problem(e):
                raise  # a kernel failure, an EP error, ...: not something the caller's inputs caused
            raise InputError(f"onnxruntime rejected the inputs ({type(e).__name__}: {str(e)[:300]}). "
                             f"Expected {[m.to_dict() for m in self._meta.values()]}.") from e
        return dict(zip(self._outputs, outs))
